#!/usr/bin/env bash
# The main job: builds the page's MQTT client (the midge-mqtt package, into web/pkg/) and the
# broker, then runs the broker serving the demo page in web/ over HTTP. Extra arguments go to
# `midge` (for example --tcp 127.0.0.1:1884 --http 127.0.0.1:8081 if the defaults are taken).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-wasm.sh
cargo build --release --locked -p midge-broker
echo "midge: open the HTTP address logged below (http://127.0.0.1:8080/ by default) in two tabs; Ctrl-C stops it"
exec target/release/midge --web web "$@"
