#!/usr/bin/env bash
# One reward, every tuning mode: tunes the prior with each mode on the reward, loss and diversity
# filter of BASE_CONFIG, samples 1,000 fresh molecules from each agent, and prints one markdown
# row per run (trainable parameters, steps, wall time of the steps, the fresh samples' metrics,
# the KL to the prior at the last step). Runs are kept under OUT_DIR and resumed if present, so
# an interrupted comparison picks up where it stopped.
#   scripts/compare_modes.sh configs/drug_like.toml runs/compare_drug_like
#   SEEDS="0 1" MODES="prefix:10 lora" scripts/compare_modes.sh configs/qed_target.toml runs/cmp
# MODES: soft_prompt, prefix:L (deep prefix of L slots), discrete_prompt, lora, full.
# Each mode keeps its own learning rate (LR_<mode>, defaults below: what its shipped config uses);
# everything else comes from BASE_CONFIG, except the number of steps where STEPS is set.
# SAMPLE_SEED (default 1) seeds the fresh samples.
set -euo pipefail
base=${1:?usage: compare_modes.sh BASE_CONFIG OUT_DIR}
out=${2:?usage: compare_modes.sh BASE_CONFIG OUT_DIR}
prior=${PRIOR:-models/prior}
smirl=${SMIRL:-target/release/smirl}
modes=${MODES:-soft_prompt prefix:5 prefix:10 prefix:20 discrete_prompt lora full}
seeds=${SEEDS:-0}
sample_seed=${SAMPLE_SEED:-1}
lr_soft_prompt=${LR_soft_prompt:-1e-2}
lr_prefix=${LR_prefix:-1e-2}
lr_discrete_prompt=${LR_discrete_prompt:-3e-3}
lr_lora=${LR_lora:-1e-3}
lr_full=${LR_full:-1e-4}
[ -f "$base" ] || { echo "$base: no such config" >&2; exit 1; }
[ -x "$smirl" ] || { echo "$smirl: not built (cargo build --release)" >&2; exit 1; }
mkdir -p "$out"

# BASE_CONFIG without its top-level mode, seed and learning rate and its mode sections; a relative
# training_set is made absolute, since the derived config lives elsewhere.
base_dir=$(cd "$(dirname "$base")" && pwd)
strip_base() {
  awk -v dir="$base_dir" -v steps="${STEPS:-}" '
    /^\[(prefix|soft_prompt|lora|discrete_prompt)\]/ { skip = 1; next }
    /^\[/ { skip = 0; in_section = 1 }
    skip { next }
    !in_section && /^(mode|seed|lr) *=/ { next }
    /^steps *=/ && steps != "" { print "steps = " steps; next }
    /^training_set *= *"[^\/]/ { sub(/"/, "\"" dir "/") }
    { print }' "$base"
}

mode_section() {
  case $1 in
    soft_prompt) printf '[soft_prompt]\nlength = 1\n' ;;
    prefix:*) printf '[prefix]\nlength = %s\n' "${1#prefix:}" ;;
    discrete_prompt) printf '[discrete_prompt]\nlength = 10\ncompletions = 8\nhidden = 64\n' ;;
    lora) printf '[lora]\nrank = 8\nalpha = 16.0\n' ;;
    full) ;;
    *) echo "unknown mode $1 (soft_prompt, prefix:L, discrete_prompt, lora, full)" >&2; exit 1 ;;
  esac
}

# One value of `smirl eval`'s metric block ("name   value").
metric() { awk -v k="$2" 'index($0, k) == 1 { print $NF; exit }' "$1"; }

echo "| mode | seed | trainable (% of prior) | steps | wall (s) | Valid | Unique@1k | Novelty | IntDiv1 | mean QED | QED > 0.9 | mean SA | KL (nats) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for m in $modes; do
  kind=${m%%:*}
  lr_var=lr_$kind
  for s in $seeds; do
    run=$out/${m/:/_L}_seed$s
    cfg=$out/${m/:/_L}_seed$s.toml
    {
      printf 'mode = "%s"\nseed = %s\nlr = %s\n' "$kind" "$s" "${!lr_var}"
      strip_base
      echo
      mode_section "$m"
    } > "$cfg"
    resume=()
    [ -f "$run/checkpoint/state.json" ] && resume=(--resume)
    "$smirl" tune --model "$prior" --config "$cfg" --out "$run" "${resume[@]}" 2> "$run.stderr" > "$run.out" ||
      { echo "tune failed for $m seed $s: see $run.stderr" >&2; tail -n 5 "$run.stderr" >&2; exit 1; }
    if [ "$kind" = discrete_prompt ]; then
      "$smirl" sample --model "$prior" --prompts "$run/prompts.csv" --top 10 -n 1000 --seed "$sample_seed" --out "$run/fresh.csv" >/dev/null
    else
      "$smirl" sample --model "$prior" --agent "$run" -n 1000 --seed "$sample_seed" --out "$run/fresh.csv" >/dev/null
    fi
    "$smirl" eval "$run/fresh.csv" > "$run/fresh_eval.txt"
    # "<mode> mode: N trainable parameters (P % of the prior's M)", tune's summary (resumed or not).
    trainable=$(grep -o '[0-9]* trainable parameters ([0-9.]* %' "$run.out" | head -n 1 |
      sed 's/ trainable parameters (/ (/; s/$/)/' || true)
    steps=$(awk -F, 'NR > 1 { n = $1 } END { print n }' "$run/log.csv")
    read -r wall kl < <(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
      { t += $col["seconds"]; kl = $col["kl"] } END { printf "%.0f %.2f\n", t, kl }' "$run/log.csv")
    e=$run/fresh_eval.txt
    echo "| $m | $s | ${trainable:-?} | $steps | $wall | $(metric "$e" Valid) | $(metric "$e" Unique@1k) | $(metric "$e" Novelty) | $(metric "$e" IntDiv1) | $(metric "$e" "mean QED") | $(metric "$e" "QED > 0.9") | $(metric "$e" "mean SA") | $kl |"
  done
done
