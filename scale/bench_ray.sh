#!/usr/bin/env bash
# Ray's overhead against plain smirl on the same shards, in interleaved rounds (Ray, plain, Ray,
# plain, ...): each round runs scale/ray_library.py --compare-plain, which times the shards under
# a local Ray cluster, merges, then times the same shards as a plain process pool of the same width.
# Prints each round, the median overhead with its min-max, the per-core throughput of sample +
# score, the bytes per molecule of the shard and library Parquet files and merge's phase times.
#   scale/bench_ray.sh [ROUNDS=3]    (N, SHARDS, SEED, BATCH from the environment)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
n=${N:-20000} shards=${SHARDS:-4} seed=${SEED:-0} batch=${BATCH:-256}
smirl=$(realpath "${SMIRL:-target/release/smirl}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
for ((r = 1; r <= rounds; r++)); do
    python3 scale/ray_library.py --address local -n "$n" --shards "$shards" --seed "$seed" \
        --batch "$batch" --model models/prior --out "$work/round$r" --smirl "$smirl" --compare-plain \
        | grep -E '^(shards|merged)'
done
python3 - "$work" "$rounds" <<'PY'
import glob, json, os, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
t = [json.load(open(f"{work}/round{r}/timings.json")) for r in range(1, rounds + 1)]
m = json.load(open(f"{work}/round1/metrics.json"))
over = [x["ray_overhead"] for x in t]
init = [x["ray_init_seconds"] for x in t]
with_init = [(x["ray_shards_seconds"] + x["ray_init_seconds"]) / x["plain_shards_seconds"] - 1 for x in t]
plain = [x["plain_shards_seconds"] for x in t]
n, cpus = t[0]["n"], t[0]["cluster_cpus"]
pct = lambda v: f"{100 * statistics.median(v):+.1f} % ({100 * min(v):+.1f} to {100 * max(v):+.1f})"
print(f"Ray overhead on the shards, median of {rounds}: {pct(over)}; counting ray.init "
      f"({statistics.median(init):.1f} s): {pct(with_init)}")
rate = n / statistics.median(plain) / cpus
print(f"sample + score: {rate:.0f} molecules/s per core (plain, {cpus} cores)")
shard_bytes = sum(os.path.getsize(p) for p in glob.glob(f"{work}/round1/shards/*.scored.parquet"))
lib_bytes = sum(os.path.getsize(p) for p in glob.glob(f"{work}/round1/library/*.parquet"))
print(f"scored shards: {shard_bytes / n:.0f} bytes/molecule; library: {lib_bytes / m['distinct']:.0f} "
      f"bytes/distinct molecule ({m['distinct']} distinct)")
s = m["seconds"]
print(f"merge: route {s['route']:.2f} s, partitions {s['partitions']:.2f} s "
      f"({1e6 * (s['route'] + s['partitions']) / n:.0f} us/molecule), subsample metrics "
      f"{s['subsample_metrics']:.2f} s on {m['subsample']['distinct']} distinct")
PY
