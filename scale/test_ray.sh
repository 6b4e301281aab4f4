#!/usr/bin/env bash
# The Ray driver end to end, as CI runs it (tests/scale.rs): 20,000 molecules in 4 shards on a
# local Ray cluster, the worker running shard 1 killed mid-run; Ray reruns the shard, and the
# merged library and metrics must equal a single-process run with the same seed: the same
# sample stream, the same canonical molecules with the same copy counts, and the metrics of
# `smirl eval` on the single run.
set -euo pipefail
cd "$(dirname "$0")/.."
smirl=$(realpath "${SMIRL:-target/release/smirl}")
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
n=${N:-20000} shards=4 seed=7 batch=${BATCH:-256}

python3 scale/ray_library.py --address local -n $n --shards $shards --seed $seed --batch $batch \
    --model models/prior --out "$work/ray" --format csv --smirl "$smirl" &
driver=$!

# Kill the Ray worker of shard 1 once its smirl is running (the task writes its worker's pid).
victim=""
for ((t = 0; t < 1200; t++)); do
    mark=$(ls "$work"/ray/shards/.attempts/00001-* 2>/dev/null | head -1 || true)
    if [[ -n "$mark" ]] && pgrep -f -- "--shard 1/$shards" > /dev/null; then
        victim=$(awk '{print $2}' "$mark")
        break
    fi
    kill -0 $driver 2> /dev/null || break
    sleep 0.25
done
[[ -n "$victim" ]] || { echo "shard 1 never started" >&2; exit 1; }
sleep 1
kill -9 "$victim"
echo "killed Ray worker $victim mid-way through shard 1"
wait $driver

attempts=$(ls "$work"/ray/shards/.attempts/ | grep -c '^00001-')
[[ $attempts -ge 2 ]] || { echo "shard 1 ran $attempts time(s): the kill did not force a rerun" >&2; exit 1; }

# The single process with the same seed.
"$smirl" sample --model models/prior -n $n --seed $seed --batch $batch --out "$work/single.csv"
"$smirl" eval "$work/single.csv" --json > "$work/eval.json"
"$smirl" score "$work/single.csv" --out "$work/single.parquet" > /dev/null
"$smirl" merge "$work/single.parquet" --out "$work/single" --format csv > /dev/null

python3 - "$work" $shards <<'PY'
import csv, glob, json, sys
work, shards = sys.argv[1], int(sys.argv[2])

def rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))

# 1. The shards' sample files, in order, are the single run's file.
single = rows(f"{work}/single.csv")
joined = single[:1]
for i in range(shards):
    part = rows(f"{work}/ray/shards/shard-{i:05d}.samples.csv")
    assert part[0] == single[0], part[0]
    joined += part[1:]
assert joined == single, "the shards' samples are not the single run's"

# 2. The same library: canonical SMILES with their copy counts.
def library(d):
    out = {}
    for path in glob.glob(f"{d}/library/part-*.csv"):
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                assert r["canonical"] not in out, "a molecule in two partitions"
                out[r["canonical"]] = int(r["count"])
    return out
ray_lib, single_lib = library(f"{work}/ray"), library(f"{work}/single")
assert ray_lib == single_lib, f"{len(ray_lib)} vs {len(single_lib)} molecules"

# 3. The metrics: those of `smirl eval` on the single run.
merged = json.load(open(f"{work}/ray/metrics.json"))
evaluated = json.load(open(f"{work}/eval.json"))
assert merged["n"] == evaluated["n"] == len(single) - 1
assert merged["subsample"]["whole_library"]
for key in ["n_valid", "valid", "unique@1000", "unique@10000", "novelty", "filters", "intdiv1",
            "intdiv2", "snn_test", "qed_mean", "sa_mean", "qed_above_0.9_distinct"]:
    a, b = merged[key], evaluated[key]
    assert abs(a - b) <= 1e-6, f"{key}: merged {a} vs eval {b}"
print(f"ray == single process: {len(ray_lib)} distinct molecules, valid {merged['valid']:.4f}, "
      f"IntDiv1 {merged['intdiv1']:.4f}, SNN {merged['snn_test']:.4f}")
PY
