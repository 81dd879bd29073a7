#!/usr/bin/env bash
# Installs what building and testing Midge needs, when it is missing. Idempotent: on a machine
# that already has everything, it only checks and prints one line per item.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
say() { printf 'setup: %s\n' "$*"; }

rust() {
    if ! have cargo || ! have rustup; then
        say "cargo and rustup are required (https://rustup.rs); this script does not install Rust itself"
        exit 1
    fi
    local installed
    installed=$(rustup component list --installed)
    for component in rustfmt clippy; do
        if ! grep -q "^$component" <<<"$installed"; then
            say "installing rustup component $component"
            rustup component add "$component"
        fi
    done
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        say "installing the wasm32-unknown-unknown target"
        rustup target add wasm32-unknown-unknown
    fi
    say "rust $(rustc --version | cut -d' ' -f2): rustfmt, clippy, wasm32-unknown-unknown ok"
}

rust
