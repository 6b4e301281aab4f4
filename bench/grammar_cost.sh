#!/usr/bin/env bash
# Cost of grammar-constrained sampling: wall time of `smirl sample --grammar` against plain
# `smirl sample` on the same model, seed and count, in ROUNDS interleaved rounds (plain,
# grammar, plain, grammar, …), reported as medians and the median of the per-round ratios.
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

seconds() { # wall seconds of one run
    local start end
    start=$(date +%s.%N)
    "$smirl" sample --model "$model" -n "$n" --seed 1 "$@" --out "$tmp/out.csv" > "$tmp/log" 2>&1 \
        || { cat "$tmp/log" >&2; exit 1; }
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN {print b - a}' 
}

plain=(); grammar=(); ratios=()
for r in $(seq 1 "$rounds"); do
    p=$(seconds)
    g=$(seconds --grammar)
    plain+=("$p"); grammar+=("$g"); ratios+=("$(awk -v g="$g" -v p="$p" 'BEGIN {print g / p}')")
    printf 'round %d: plain %.2f s, grammar %.2f s, ratio %.3f\n' "$r" "$p" "$g" "${ratios[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.3f-%.3f", lo, hi}'; }
printf 'median: plain %.2f s, grammar %.2f s; grammar/plain %.3f (per-round ratios %s)\n' \
    "$(median "${plain[@]}")" "$(median "${grammar[@]}")" "$(median "${ratios[@]}")" "$(range "${ratios[@]}")"
grep -E 'redrawn|purr' "$tmp/log" || true
