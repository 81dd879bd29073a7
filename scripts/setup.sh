#!/usr/bin/env bash
# Installs what building and testing Midge needs, when it is missing. Idempotent: on a machine
# that already has everything, it only checks and prints one line per item.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
say() { printf 'setup: %s\n' "$*"; }

# Installs the Debian packages named, if any, with one `apt-get update`.
apt_install() {
    [ $# -gt 0 ] || return 0
    say "installing Debian packages: $*"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

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

# Debian packages: mosquitto, its clients, Python with venv.
debian() {
    local missing=()
    have mosquitto_pub || missing+=(mosquitto-clients)
    have mosquitto || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
    have python3 || missing+=(python3)
    python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    apt_install "${missing[@]}"
    say "mosquitto $(mosquitto -h 2>/dev/null | head -1 | grep -o '[0-9][0-9.]*' | head -1), mosquitto_pub/sub ok"
}

# The browser toolchain: wasm-pack and the wasm-bindgen CLI at exactly the version Cargo.lock
# pins (wasm-pack uses the one on PATH only when the versions match, else it downloads), and
# Debian's Chromium + ChromeDriver for the headless tests. wasm-opt comes from the npm package
# `binaryen` (see npm_packages); Debian's binaryen is too old and must not be on PATH.
wasm() {
    local bindgen
    bindgen=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
    if ! have wasm-pack || [ "$(wasm-pack --version | cut -d' ' -f2)" != "$WASM_PACK_VERSION" ]; then
        say "installing wasm-pack $WASM_PACK_VERSION (cargo install, a few minutes)"
        cargo install --quiet --locked wasm-pack --version "$WASM_PACK_VERSION"
    fi
    if ! have wasm-bindgen || [ "$(wasm-bindgen --version | cut -d' ' -f2)" != "$bindgen" ]; then
        say "installing wasm-bindgen-cli $bindgen (cargo install, a few minutes)"
        # Not --locked: the CLI's own lockfile pins a webpki-roots the registry lacks.
        cargo install --quiet --force wasm-bindgen-cli --version "$bindgen"
    fi
    if [ -x /usr/bin/wasm-opt ] && dpkg -s binaryen >/dev/null 2>&1; then
        say "Debian's binaryen is installed; its wasm-opt breaks wasm-pack builds: apt-get remove binaryen"
        exit 1
    fi
    local missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
    apt_install "${missing[@]}"
    say "wasm-pack $WASM_PACK_VERSION, wasm-bindgen $bindgen, $(/usr/bin/chromium --version 2>/dev/null | head -1) ok"
}
WASM_PACK_VERSION=0.15.1

# The Python side of the end-to-end tests, in .venv, pinned by tests/e2e/requirements.txt.
python_packages() {
    local venv=.venv requirements=tests/e2e/requirements.txt stamp=.venv/.requirements
    if [ ! -x "$venv/bin/python" ]; then
        say "creating $venv"
        python3 -m venv "$venv"
    fi
    if ! cmp -s "$requirements" "$stamp"; then
        say "installing Python packages from $requirements"
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
        cp "$requirements" "$stamp"
    fi
    say "python packages ok: $(grep -v '^#' "$stamp" | tr '\n' ' ')"
}

# The npm side (MQTT.js for the interop tests), exactly as package-lock.json pins it.
npm_packages() {
    if ! have node || ! have npm; then
        apt_install nodejs npm
    fi
    if ! cmp -s package-lock.json node_modules/.midge-installed-lock; then
        say "installing npm packages (npm ci)"
        npm ci --no-audit --no-fund --loglevel=error
        cp package-lock.json node_modules/.midge-installed-lock
    fi
    say "node $(node --version), npm packages ok"
}

# With no arguments, everything; otherwise only the parts named (rust, wasm, debian, python, npm).
cd "$(dirname "$0")/.."
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(rust wasm debian python npm)
for part in "${parts[@]}"; do
    case "$part" in
        rust) rust ;;
        wasm) wasm ;;
        debian) debian ;;
        python) python_packages ;;
        npm) npm_packages ;;
        *) say "unknown part: $part"; exit 2 ;;
    esac
done
