#!/usr/bin/env bash
# Cost of grammar-constrained sampling: wall time of `smirl sample --grammar` against plain
# `smirl sample` on the same model, seed and count, in ROUNDS interleaved rounds (plain,
# grammar, plain, grammar, …), reported as medians and the median of the per-round ratios, in
# wall time and in CPU time (user + sys, which a busy neighbour on a shared host disturbs less).
# Usage: bench/grammar_cost.sh [SMIRL] [MODEL] [N] [ROUNDS]
set -euo pipefail
smirl=${1:-target/release/smirl}
model=${2:-models/prior}
n=${3:-10000}
rounds=${4:-7}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) logical CPUs"
echo "SIMD: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512[a-z_0-9]*)$' | tr '\n' ' ')"
echo "smirl sample --model $model -n $n --seed 1 [--grammar], $rounds interleaved rounds"

seconds() { # "wall cpu" seconds of one run (bash's own `time`: nothing to install)
    local TIMEFORMAT='%R %U %S' times
    times=$( { time "$smirl" sample --model "$model" -n "$n" --seed 1 "$@" --out "$tmp/out.csv" \
        > "$tmp/log" 2>&1; } 2>&1 ) || { cat "$tmp/log" >&2; exit 1; }
    awk '{print $1, $2 + $3}' <<< "$times"
}

plain=(); grammar=(); ratios=(); plain_cpu=(); grammar_cpu=(); cpu_ratios=()
for r in $(seq 1 "$rounds"); do
    read -r p pc <<< "$(seconds)"
    read -r g gc <<< "$(seconds --grammar)"
    plain+=("$p"); grammar+=("$g"); ratios+=("$(awk -v g="$g" -v p="$p" 'BEGIN {print g / p}')")
    plain_cpu+=("$pc"); grammar_cpu+=("$gc"); cpu_ratios+=("$(awk -v g="$gc" -v p="$pc" 'BEGIN {print g / p}')")
    printf 'round %d: plain %.2f s (cpu %.2f s), grammar %.2f s (cpu %.2f s), ratio %.3f (cpu %.3f)\n' \
        "$r" "$p" "$pc" "$g" "$gc" "${ratios[-1]}" "${cpu_ratios[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.3f-%.3f", lo, hi}'; }
printf 'median wall: plain %.2f s, grammar %.2f s; grammar/plain %.3f (per-round ratios %s)\n' \
    "$(median "${plain[@]}")" "$(median "${grammar[@]}")" "$(median "${ratios[@]}")" "$(range "${ratios[@]}")"
printf 'median cpu:  plain %.2f s, grammar %.2f s; grammar/plain %.3f (per-round ratios %s)\n' \
    "$(median "${plain_cpu[@]}")" "$(median "${grammar_cpu[@]}")" "$(median "${cpu_ratios[@]}")" \
    "$(range "${cpu_ratios[@]}")"
grep -E 'redrawn|purr' "$tmp/log" || true
