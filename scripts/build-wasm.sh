#!/usr/bin/env bash
# Builds the npm package midge-mqtt from client-wasm/ with wasm-pack: the `--target web` build
# at the package root (plain <script type="module">, init() first) and the `--target bundler`
# build under bundler/ (Vite, webpack), from the same sources. Then copies the web build into
# web/pkg/ for the demo page, and checks the size budget (.wasm + JS, gzip -9, at most 40 KB).
#
#   scripts/build-wasm.sh          build client-wasm/pkg and web/pkg
#   scripts/build-wasm.sh --pack   also `npm pack` it into target/npm/
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh rust wasm npm >/dev/null
# wasm-pack takes wasm-opt from PATH: the npm package binaryen's (never Debian's, see
# ../shared/TOOLCHAIN.md). --mode no-install: fail rather than download anything.
export PATH="$PWD/node_modules/.bin:$PATH"

pkg=client-wasm/pkg
rm -rf "$pkg"
for target in web bundler; do
    out=pkg
    [ "$target" = web ] || out=pkg/$target
    echo "build-wasm: wasm-pack --target $target"
    # --no-default-features: without the standard library (see client-wasm/src/lib.rs).
    wasm-pack --quiet build client-wasm --mode no-install --target "$target" \
        --out-dir "$out" --out-name midge_mqtt --profile wasm-release -- --no-default-features
done
node client-wasm/npm/assemble.mjs "$pkg"

rm -rf web/pkg
mkdir -p web/pkg
cp "$pkg"/midge_mqtt.js "$pkg"/midge_mqtt_bg.wasm "$pkg"/midge_mqtt.d.ts web/pkg/
echo "build-wasm: the demo page's copy is in web/pkg/"

if [ "${1:-}" = --pack ]; then
    mkdir -p target/npm
    (cd "$pkg" && npm pack --silent --pack-destination ../../target/npm) | sed 's|^|build-wasm: packed target/npm/|'
fi
