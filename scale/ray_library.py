#!/usr/bin/env python3
"""A screening library on a Ray cluster: one smirl process per shard, then `smirl merge`.

    python3 scale/ray_library.py --address local -n 20000 --shards 4 \
        --model models/prior --out runs/library [--filter scale/library_filter.toml]

Each shard is a Ray task that runs `smirl sample --shard I/K` and `smirl score` (the sharding
contract of the binary: shard I of K is a fixed, disjoint piece of the run with --seed, and the K
pieces in order are the unsharded run), writes into a private directory and renames its files
into place only when both commands succeeded. A task whose worker dies is rerun by Ray
(--max-retries) and, the shard being deterministic, writes the same files. When every shard is
in, the driver runs `smirl merge` on them.

Ray comes from PyPI, pinned, into a virtual environment of its own (scale/.venv, or
$SMIRL_RAY_VENV) that this script makes on first use; nothing is installed elsewhere.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RAY_VERSION = "2.60.0"
HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def ensure_ray():
    """Re-executes this script inside a virtual environment that has Ray."""
    try:
        import ray  # noqa: F401

        return
    except ImportError:
        pass
    venv = Path(os.environ.get("SMIRL_RAY_VENV", HERE / ".venv"))
    python = venv / "bin" / "python"
    if os.environ.get("SMIRL_RAY_BOOTSTRAPPED"):
        sys.exit(f"ray is not importable in {venv} even after installing it")
    if not python.exists():
        print(f"making {venv} with ray=={RAY_VERSION} (once)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run([str(python), "-c", "import ray"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             f"ray=={RAY_VERSION}"],
            check=True,
        )
    env = dict(os.environ, SMIRL_RAY_BOOTSTRAPPED="1")
    os.execve(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]], env)


def die_with_parent():
    """In the child: be killed when the worker that started it dies, so a lost task leaves no
    process behind writing files (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


def shard_commands(smirl, args, i, workdir):
    """The two smirl commands of shard i, writing into workdir."""
    samples = workdir / "samples.csv"
    scored = workdir / "scored.parquet"
    sample = [
        smirl, "sample", "--model", args.model, "-n", str(args.n), "--shard", f"{i}/{args.shards}",
        "--seed", str(args.seed), "--batch", str(args.batch), "--out", str(samples),
    ]
    if args.agent:
        sample += ["--agent", args.agent]
    score = [smirl, "score", str(samples), "--out", str(scored)]
    return [sample, score], {"samples.csv": samples, "scored.parquet": scored}


def run_shard(smirl, args, i, shard_dir, threads):
    """Runs shard i and renames its outputs into shard_dir; returns its timing."""
    start = time.time()
    attempt = uuid.uuid4().hex[:8]
    marks = shard_dir / ".attempts"
    marks.mkdir(parents=True, exist_ok=True)
    (marks / f"{i:05d}-{attempt}").write_text(f"{socket.gethostname()} {os.getpid()}\n")
    workdir = shard_dir / f".work-{i:05d}-{attempt}"
    workdir.mkdir(parents=True)
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    commands, outputs = shard_commands(smirl, args, i, workdir)
    for command in commands:
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              preexec_fn=die_with_parent)
        if done.returncode != 0:
            raise RuntimeError(
                f"shard {i}: {' '.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    for name, path in outputs.items():
        os.replace(path, shard_dir / f"shard-{i:05d}.{name}")
    shutil.rmtree(workdir, ignore_errors=True)
    return {"shard": i, "seconds": time.time() - start, "host": socket.gethostname(),
            "attempt": attempt}


def merge(smirl, args, shard_dir, out):
    scored = [str(shard_dir / f"shard-{i:05d}.scored.parquet") for i in range(args.shards)]
    command = [smirl, "merge", *scored, "--out", str(out), "--format", args.format, "--json"]
    for flag in ("filter", "train", "test"):
        value = getattr(args, flag)
        if value:
            command += [f"--{flag}", value]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"smirl merge failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout)


def run_plain(smirl, args, width, threads):
    """The same shards without Ray: a pool of `width` processes on this machine (the baseline
    of --compare-plain)."""
    shard_dir = Path(args.out) / "plain" / "shards"
    shutil.rmtree(shard_dir, ignore_errors=True)
    shard_dir.mkdir(parents=True)
    start = time.time()
    with ThreadPoolExecutor(max_workers=width) as pool:
        list(pool.map(lambda i: run_shard(smirl, args, i, shard_dir, threads), range(args.shards)))
    return time.time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default="local",
                        help="`local` (start a one-machine cluster), `auto` (join the running "
                             "cluster, as `ray start` left it) or a cluster address")
    parser.add_argument("-n", type=int, required=True, help="molecules in the whole library")
    parser.add_argument("--shards", type=int, required=True)
    parser.add_argument("--model", required=True, help="a smirl model directory (models/prior)")
    parser.add_argument("--agent", help="a tuned run or prompt directory (smirl sample --agent)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=256,
                        help="molecules per batch (a shard is a range of batches)")
    parser.add_argument("--filter", help="library filter TOML (smirl merge --filter)")
    parser.add_argument("--train", help="training set for novelty (smirl merge --train)")
    parser.add_argument("--test", help="test set for SNN (smirl merge --test)")
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    parser.add_argument("--smirl", default=None,
                        help="the smirl binary every node can run [default: target/release/smirl]")
    parser.add_argument("--cpus-per-task", type=int, default=1)
    parser.add_argument("--max-retries", type=int, default=3)
    parser.add_argument("--compare-plain", action="store_true",
                        help="also run the shards without Ray, as many at once, and report "
                             "Ray's overhead")
    args = parser.parse_args()
    if args.shards < 1 or args.n < 1:
        parser.error("-n and --shards must be positive")
    if args.n < args.shards * args.batch:
        # Every shard gets at least one batch.
        args.batch = max(1, args.n // args.shards)
    smirl = str(Path(args.smirl or REPO / "target" / "release" / "smirl").resolve())
    if not Path(smirl).is_file():
        sys.exit(f"{smirl}: no smirl binary (cargo build --release, or give --smirl)")
    for path in (args.model, args.agent, args.filter, args.train, args.test):
        if path and not Path(path).exists():
            sys.exit(f"{path}: no such file or directory")

    ensure_ray()
    import ray

    out = Path(args.out)
    shard_dir = out / "shards"
    shutil.rmtree(shard_dir, ignore_errors=True)
    shard_dir.mkdir(parents=True)

    init_start = time.time()
    if args.address == "local":
        ray.init(include_dashboard=False, logging_level="warning", log_to_driver=False)
    else:
        ray.init(address=args.address, logging_level="warning", log_to_driver=False)
    init_seconds = time.time() - init_start
    cpus = int(ray.cluster_resources().get("CPU", 1))
    width = max(1, cpus // args.cpus_per_task)
    print(f"ray {ray.__version__}: {cpus} CPUs, {width} shards at a time; "
          f"{args.n:,} molecules in {args.shards} shards", flush=True)

    task = ray.remote(num_cpus=args.cpus_per_task, max_retries=args.max_retries,
                      retry_exceptions=True)(run_shard)
    start = time.time()
    pending = [task.remote(smirl, args, i, shard_dir.resolve(), args.cpus_per_task)
               for i in range(args.shards)]
    timings = []
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        result = ray.get(done[0])
        timings.append(result)
        print(f"shard {result['shard']}/{args.shards} done in {result['seconds']:.1f} s on "
              f"{result['host']} ({len(timings)}/{args.shards})", flush=True)
    ray_seconds = time.time() - start
    ray.shutdown()

    attempts = {}
    for mark in (shard_dir / ".attempts").iterdir():
        shard = int(mark.name.split("-")[0])
        attempts[shard] = attempts.get(shard, 0) + 1
    merge_start = time.time()
    metrics = merge(smirl, args, shard_dir, out)
    merge_seconds = time.time() - merge_start
    report = {
        "n": args.n, "shards": args.shards, "seed": args.seed, "batch": args.batch,
        "cluster_cpus": cpus, "ray_init_seconds": init_seconds, "ray_shards_seconds": ray_seconds,
        "merge_seconds": merge_seconds,
        "attempts": {str(k): v for k, v in sorted(attempts.items())},
        "shard_seconds": sorted(timings, key=lambda t: t["shard"]),
    }
    if args.compare_plain:
        report["plain_shards_seconds"] = run_plain(smirl, args, width, args.cpus_per_task)
        report["ray_overhead"] = ray_seconds / report["plain_shards_seconds"] - 1
    (out / "timings.json").write_text(json.dumps(report, indent=2) + "\n")
    retried = {k: v for k, v in attempts.items() if v > 1}
    print(f"shards: {ray_seconds:.1f} s under Ray (+{init_seconds:.1f} s in ray.init)"
          + (f", {report['plain_shards_seconds']:.1f} s plain "
             f"(overhead {100 * report['ray_overhead']:+.1f} %)" if args.compare_plain else "")
          + (f"; rerun after a lost worker: {retried}" if retried else ""))
    print(f"merged in {merge_seconds:.1f} s: {metrics['n']} molecules, valid {metrics['valid']:.4f}, "
          f"{metrics['distinct']} distinct, novelty {metrics['novelty']:.4f}, "
          f"IntDiv1 {metrics['intdiv1']:.4f}; {metrics['library']['rows']} library rows in "
          f"{metrics['library']['dir']}")


if __name__ == "__main__":
    main()
