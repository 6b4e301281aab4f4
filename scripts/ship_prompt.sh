#!/usr/bin/env bash
# Copies a prompt-mode tuning run into the prompt library: prompts/TASK/ gets the run's resolved
# config.toml and agent.safetensors (what `smirl sample --agent` needs), its log.csv, and
# metrics.txt: `smirl eval` of 1,000 fresh samples of the prompt next to 1,000 of the prior.
#   scripts/ship_prompt.sh runs/drug_like drug_like [models/prior]
#   scripts/ship_prompt.sh prompts/drug_like drug_like    (re-measures a shipped prompt in place,
#   e.g. after `smirl eval`'s defaults change)
set -euo pipefail
run=${1:?usage: ship_prompt.sh RUN_DIR TASK [PRIOR]}
task=${2:?usage: ship_prompt.sh RUN_DIR TASK [PRIOR]}
prior=${3:-models/prior}
smirl=${SMIRL:-target/release/smirl}
dst=prompts/$task
[ -f "$run/agent.safetensors" ] || { echo "$run/agent.safetensors: missing (not a prompt-mode run?)" >&2; exit 1; }
mkdir -p "$dst"
if [ "$(realpath "$run")" = "$(realpath "$dst")" ]; then
  # In place: keep the files and the step the metrics header already gives.
  step=$(sed -n 's/^# steps trained: \([0-9]*\).*/\1/p' "$dst/metrics.txt")
else
  cp "$run/config.toml" "$run/agent.safetensors" "$dst/"
  # The log up to the checkpoint the agent comes from.
  step=$(grep -o '"step":[0-9]*' "$run/checkpoint/state.json" | head -n 1 | cut -d: -f2)
  awk -F, -v s="$step" 'NR == 1 || $1 <= s' "$run/log.csv" > "$dst/log.csv"
fi
[ -n "$step" ] || { echo "$dst: cannot tell the step the agent comes from" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$smirl" sample --model "$prior" -n 1000 --seed 1 --out "$tmp/prior.csv" >/dev/null
"$smirl" sample --model "$prior" --agent "$dst" -n 1000 --seed 1 --out "$tmp/prompt.csv" >/dev/null
# The metric block of `smirl eval` (up to its first blank line; the published table follows it).
"$smirl" eval "$tmp/prompt.csv" > "$tmp/prompt_eval.txt"
"$smirl" eval "$tmp/prior.csv" > "$tmp/prior_eval.txt"
{
  echo "# $task: 1,000 fresh samples (seed 1) of $prior with this prompt, then of $prior alone"
  echo "# steps trained: $step (the run's last checkpoint)"
  echo "## with the prompt"
  sed '/^$/q' "$tmp/prompt_eval.txt"
  echo "## the prior alone"
  sed '/^$/q' "$tmp/prior_eval.txt"
} > "$dst/metrics.txt"
cat "$dst/metrics.txt"
