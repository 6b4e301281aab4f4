#!/bin/bash
cd "$(dirname "$0")/../.."
T0=$(date +%s)
step() { echo "=== [$(( $(date +%s) - T0 )) s] $*"; }
mkdir -p /tmp/g && python3 -c "import tarfile; tarfile.open('${BUNDLE:-.gpu/bundle.txz}').extractall('/tmp/g')"
export LD_LIBRARY_PATH=/tmp/g/lib:/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib
step pretrain
timeout 330 /tmp/g/smirl pretrain --data data/moses/train.csv.gz --config bench/gpu/prior.toml --out /tmp/gpfull --device cuda 2>&1 | tail -5
cp /tmp/gpfull/log.csv $OUT/gpu_prior_log.csv; cp /tmp/gpfull/config.json /tmp/gpfull/state.json $OUT/ 2>/dev/null
step sample
timeout 60 /tmp/g/smirl sample --model /tmp/gpfull -n 10000 --seed 1 --device cuda --out $OUT/gpu_prior_10k.csv 2>&1 | tail -1
step eval
timeout 100 /tmp/g/smirl eval $OUT/gpu_prior_10k.csv --train data/moses/train.csv.gz > $OUT/gpu_prior_eval.txt 2>&1; head -20 $OUT/gpu_prior_eval.txt
step done
