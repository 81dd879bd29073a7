#!/usr/bin/env bash
# Midge's whole test suite: the README's test command, and all that CI runs (.ci/run).
# Installs what it needs first (scripts/setup.sh), so it passes on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

step() {
    printf '\n==> %s\n' "$1"
    shift
    "$@"
}

step "setup" scripts/setup.sh
step "formatting" cargo fmt --all --check
step "lints" cargo clippy --workspace --all-targets --locked -- -D warnings
step "the codec builds for the browser (wasm32-unknown-unknown)" \
    cargo build -p midge-codec --target wasm32-unknown-unknown --locked
step "lints of the browser client and its browser tests (wasm32-unknown-unknown)" \
    cargo clippy -p midge-wasm --all-targets --target wasm32-unknown-unknown --locked -- -D warnings
step "the npm package midge-mqtt: wasm-pack web and bundler builds, size check, copy in web/pkg" \
    scripts/build-wasm.sh
step "tests" cargo test --workspace --locked
step "broker and load generator binaries for the end-to-end tests" cargo build -p midge-broker -p midge-bench --locked
step "end to end: midge against mosquitto_pub/sub, Paho, MQTT.js and raw peers; the wasm client in Chromium; the npm package" \
    .venv/bin/pytest tests/e2e -q -p no:cacheprovider
step "browser: the demo page in headless Chromium" node --test tests/browser/
