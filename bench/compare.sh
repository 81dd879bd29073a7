#!/usr/bin/env bash
# Mosquitto and midge side by side (docs/benchmarks.md): release builds, each broker pinned
# to core 0 and the load generator to core 1, the whole matrix in under 10 minutes.
#
#   bench/compare.sh                 # the full matrix
#   bench/compare.sh --quick         # a smoke run of a few rows
#   bench/compare.sh --only "pairs"  # the rows whose label contains "pairs"
#
# Every other flag goes to `midge-bench compare` (see `midge-bench compare --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p midge-broker -p midge-bench
# Each idle connection is a file descriptor in the generator and in the broker.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    exec taskset -c 1 target/release/midge-bench compare --midge target/release/midge --broker-cpu 0 "$@"
fi
echo "compare.sh: fewer than 2 cores or no taskset: nothing is pinned" >&2
exec target/release/midge-bench compare --midge target/release/midge --no-pin "$@"
