#!/usr/bin/env bash
# The main job: builds and runs the broker, serving web/ over HTTP. Extra arguments go to
# `midge` (for example --tcp 127.0.0.1:1884 --http 127.0.0.1:8081 if the defaults are taken).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh rust
cargo build --release --locked -p midge-broker
echo "midge: open http://127.0.0.1:8080/ (or the HTTP address logged below); Ctrl-C stops it"
exec target/release/midge --web web "$@"
