#!/usr/bin/env bash
# Makes bench/.venv: the PyTorch peers' interpreter for `smirl bench model|rl --peer` (found there
# by default). Pinned to the versions bench/README.md's figures were measured with. PyPI's torch
# wheel is the CUDA build; it runs on the CPU as well (no GPU is needed or used).
#   bench/peer_env.sh            # once; then: smirl bench model --peer
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check \
  torch==2.15.0 transformers==5.25.0 rdkit==2026.09.1 safetensors numpy
.venv/bin/python -c 'import torch, transformers, rdkit; print("bench/.venv: torch", torch.__version__, "(CPU capability", torch.backends.cpu.get_cpu_capability() + "), transformers", transformers.__version__, "rdkit", rdkit.__version__)'
