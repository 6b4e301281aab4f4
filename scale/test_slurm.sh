#!/usr/bin/env bash
# The Slurm script end to end, as CI runs it (tests/scale.rs): a single-node Slurm started here
# (scale/local_slurm.sh), 8,000 molecules as a 4-task job array, array task 1 requeued while it
# runs (as Slurm does when a node is lost), the merge as a job that depends on the array; the
# shards must be a single-process run with the same seed, and the merged metrics `smirl eval`'s.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
smirl=$(realpath "${SMIRL:-target/release/smirl}")
work=$(mktemp -d)
trap 'scale/local_slurm.sh "$work/slurm" stop; rm -rf "$work"' EXIT
scale/local_slurm.sh "$work/slurm"
export SLURM_CONF=$work/slurm/slurm.conf
export SMIRL=$smirl MODEL=$repo/models/prior N=${N:-8000} SHARDS=4 SEED=7 BATCH=128 PARTITIONS=4
export OUT=$work/lib
array=$(sbatch --parsable --array=0-$((SHARDS - 1)) --export=ALL -D "$work" scale/slurm_library.sbatch)
merge=$(sbatch --parsable --dependency=afterok:$array --export=ALL -D "$work" \
    scale/slurm_library.sbatch merge)
echo "array job $array, merge job $merge"

# Requeue task 1 once its smirl is running.
for ((t = 0; t < 1200; t++)); do
    [[ $(squeue -h -j "${array}_1" -o %T 2> /dev/null) == RUNNING ]] && pgrep -f -- "--shard 1/$SHARDS" > /dev/null && break
    sleep 0.25
done
sleep 1
scontrol requeue "${array}_1"
# A requeued job waits (its begin time is pushed back); let it start again at once.
scontrol update JobId="${array}_1" StartTime=now 2> /dev/null || true
echo "requeued array task 1 mid-run"

for ((t = 0; t < 2400; t++)); do
    squeue -h -j "$array,$merge" 2> /dev/null | grep -q . || break
    sleep 0.5
done
state=$(scontrol show job "$merge" | grep -o 'JobState=[A-Z_]*')
[[ $state == JobState=COMPLETED ]] || { echo "merge job: $state" >&2; tail -n 20 "$work"/*.log >&2; exit 1; }
restarts=$(scontrol show job "${array}_1" | grep -o 'Restarts=[0-9]*')
[[ $restarts != Restarts=0 ]] || { echo "array task 1 was not rerun ($restarts)" >&2; exit 1; }

"$smirl" sample --model "$MODEL" -n "$N" --seed "$SEED" --batch "$BATCH" --out "$work/single.csv"
"$smirl" eval "$work/single.csv" --json > "$work/eval.json"
python3 - "$work" "$SHARDS" <<'PY'
import csv, json, sys
work, shards = sys.argv[1], int(sys.argv[2])
rows = lambda p: list(csv.reader(open(p, newline="")))
single = rows(f"{work}/single.csv")
joined = single[:1]
for i in range(shards):
    joined += rows(f"{work}/lib/shards/shard-{i:05d}.samples.csv")[1:]
assert joined == single, "the shards' samples are not the single run's"
merged = json.load(open(f"{work}/lib/metrics.json"))
evaluated = json.load(open(f"{work}/eval.json"))
assert merged["n"] == evaluated["n"]
for key in ["n_valid", "valid", "unique@1000", "novelty", "filters", "intdiv1", "snn_test", "qed_mean"]:
    assert abs(merged[key] - evaluated[key]) <= 1e-6, f"{key}: merged {merged[key]} vs eval {evaluated[key]}"
print(f"slurm == single process: {merged['distinct']} distinct molecules, valid {merged['valid']:.4f}")
PY
echo "array task 1: $restarts"
