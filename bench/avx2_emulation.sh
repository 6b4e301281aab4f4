#!/usr/bin/env bash
# Runs `smirl bench ARGS...` as on an AVX2-only x86 CPU, on a machine that has AVX-512:
# - smirl built without gemm's AVX-512 kernels (`--no-default-features`: gemm's own run-time
#   choice cannot be capped), copied to target/release/smirl-avx2;
# - its own kernels capped by SMIRL_SIMD=avx2;
# - the PyTorch peer limited the same way: under SMIRL_SIMD=avx2, `smirl bench` starts it with
#   ATEN_CPU_CAPABILITY=avx2, DNNL_MAX_CPU_ISA=AVX2 and MKL_ENABLE_INSTRUCTIONS=AVX2 (it prints
#   PyTorch's CPU capability beside its version).
# The default build is restored afterwards.
#   bench/avx2_emulation.sh model --peer --rounds 5
#   bench/avx2_emulation.sh rl --mode both --rounds 5 --steps 5 --peer
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --no-default-features --quiet
cp target/release/smirl target/release/smirl-avx2
cargo build --release --quiet
SMIRL_SIMD=avx2 target/release/smirl-avx2 bench "$@"
