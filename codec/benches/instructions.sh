#!/usr/bin/env bash
# Instructions per PUBLISH encode, midge-codec beside rumqttc, counted by callgrind: the same
# numbers on every run, so rows whose criterion medians are within the noise can be ranked.
# Each count is (run with N+10000 encodes) - (run with N), over 10,000: start-up cancels out.
#
#   codec/benches/instructions.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p midge-codec --example encode_instructions
bin=target/release/examples/encode_instructions
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$@" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-20s %10s %10s %8s\n' row midge rumqttc ratio
for row in publish_64B_v311 publish_4KiB_v311 publish_64B_v5 publish_4KiB_v5; do
    declare -A per
    for codec in midge rumqttc; do
        small=$(count "$codec" "$row" 1000)
        large=$(count "$codec" "$row" 11000)
        per[$codec]=$(( (large - small) / 10000 ))
    done
    printf '%-20s %10s %10s %8s\n' "$row" "${per[midge]}" "${per[rumqttc]}" \
        "$(awk -v m="${per[midge]}" -v r="${per[rumqttc]}" 'BEGIN { printf "%.2f", r / m }')"
done
echo "ratio: rumqttc's instructions over midge's (above 1: midge executes fewer)"
