#!/bin/bash
# One GPU check: the cuda build's tests, the model benchmark against PyTorch on the GPU, and a short
# pretraining run of the full-size config. Runs from the repo root; writes results to $OUT.
cd "$(dirname "$0")/../.."
T0=$(date +%s)
step() { echo "=== [$(( $(date +%s) - T0 )) s] $*"; }
mkdir -p /tmp/g && python3 -c "import tarfile; tarfile.open('${BUNDLE:-.gpu/bundle.txz}').extractall('/tmp/g')"
LIBDIRS=$(find /opt /usr /root -xdev \( -name 'libcublas.so.13*' -o -name 'libcublasLt.so.13*' -o -name 'libcurand.so.1*' -o -name 'libnvrtc.so.13*' \) -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH=/tmp/g/lib:${LIBDIRS}${LD_LIBRARY_PATH:-}
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
nvidia-smi -L
ldd /tmp/g/smirl | grep -E "not found|cuda|cublas|curand|nvrtc"
ldd /tmp/g/cuda_tests | grep -E "not found"
step tests
timeout 120 /tmp/g/cuda_tests --test-threads 1 2>&1 | tee $OUT/tests.log | tail -30
step bench 4x256
timeout 90 /tmp/g/smirl bench model --device cuda --peer --json > $OUT/bench_4x256.json 2> $OUT/bench_4x256.err; tail -3 $OUT/bench_4x256.err
python3 -c "import json;r=json.load(open('$OUT/bench_4x256.json'));print({k:r.get(k) for k in ['device','train_tokens_per_s','sample_mols_per_s','ratio_train','ratio_sample']}, r.get('peer',{}).get('peak_gpu_mb'))"
step bench 8x256 batch 512
timeout 100 /tmp/g/smirl bench model --device cuda --peer --n-layer 8 --n-head 8 --batch 512 --json > $OUT/bench_8x256.json 2> $OUT/bench_8x256.err; tail -3 $OUT/bench_8x256.err
python3 -c "import json;r=json.load(open('$OUT/bench_8x256.json'));print({k:r.get(k) for k in ['device','train_tokens_per_s','sample_mols_per_s','ratio_train','ratio_sample']})"
step pretrain full-size config 300 steps
timeout 120 /tmp/g/smirl pretrain --config configs/prior_gpu.toml --out /tmp/gp --max-steps 300 --checkpoint-interval 100 --device cuda 2>&1 | tail -4
cp /tmp/gp/log.csv $OUT/pretrain_log.csv 2>/dev/null; tail -3 /tmp/gp/log.csv
step sample
timeout 40 /tmp/g/smirl sample --model /tmp/gp -n 1000 --seed 1 --device cuda --out $OUT/gpu_samples.csv 2>&1 | tail -2
timeout 40 /tmp/g/smirl eval $OUT/gpu_samples.csv 2>&1 | tail -15
step done
