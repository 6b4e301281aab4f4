#!/usr/bin/env python3
"""molsets peer for `smirl bench eval`: molsets 0.3.1's `get_all_metrics` (FCD through fcd_torch
1.0.7) on a samples file against the full MOSES train/test/test_scaffolds sets it ships, timed.

Usage: python3 bench/moses_peer.py SAMPLES.csv [--smiles-column smiles] [--venv DIR] [--threads 1]

Run by an interpreter that already has molsets, fcd_torch and torch, it uses them. Otherwise the
first run makes its own virtual environment (default: ~/.cache/smirl/moses-peer-venv) and
installs what molsets needs there with pip: numpy < 2, scipy, pandas < 2, rdkit, torch (CPU use),
tqdm, matplotlib, then molsets 0.3.1 and fcd_torch 1.0.7 without their pinned dependencies (molsets pins
versions that no longer install). Then it re-runs itself inside that environment.

Timed: the whole `get_all_metrics(gen, n_jobs=1, device='cpu')` call (it loads the MOSES sets and
molsets' test statistics itself), as a user runs it. Prints one JSON object: {"seconds": ...,
"metrics": {molsets key: value}, "n": samples}.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time

PACKAGES = ["numpy<2", "scipy", "pandas<2", "rdkit", "torch", "tqdm", "matplotlib"]
NO_DEPS = ["molsets==0.3.1", "fcd_torch==1.0.7"]


def ensure_venv(venv):
    """The interpreter to re-run in, or None when this one already has molsets."""
    import importlib.util

    if all(importlib.util.find_spec(m) for m in ("moses", "fcd_torch", "torch")):
        return None
    python = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return None
    if not os.path.exists(os.path.join(venv, ".ready")):
        print(f"moses_peer: installing molsets and its dependencies into {venv} ...", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", venv])
        pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.check_call(pip + PACKAGES)
        subprocess.check_call(pip + ["--no-deps"] + NO_DEPS)
        open(os.path.join(venv, ".ready"), "w").close()
    return python


def read_smiles(path, column):
    with open(path, newline="") as f:
        if path.endswith(".smi"):
            return [line.split()[0] for line in f if line.strip()]
        rows = csv.DictReader(f)
        return [row[column] for row in rows]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("samples")
    p.add_argument("--smiles-column", default="smiles")
    p.add_argument("--venv", default=os.path.expanduser("~/.cache/smirl/moses-peer-venv"))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    python = ensure_venv(args.venv)
    if python is not None:
        os.execv(python, [python] + sys.argv)

    # molsets' SA scorer imports `rdkit.six.iteritems`, which RDKit dropped (2021); give it one.
    import types

    six = types.ModuleType("rdkit.six")
    six.iteritems = lambda d: iter(d.items())
    sys.modules["rdkit.six"] = six
    import torch

    torch.set_num_threads(args.threads)
    from moses.metrics import get_all_metrics

    gen = read_smiles(args.samples, args.smiles_column)
    start = time.perf_counter()
    metrics = get_all_metrics(gen, n_jobs=1, device="cpu")
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "n": len(gen), "threads": args.threads,
                      "metrics": {k: float(v) for k, v in metrics.items()}}))


if __name__ == "__main__":
    main()
