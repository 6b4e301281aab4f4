#!/usr/bin/env python3
"""PyTorch peer for `smirl bench model`: a `transformers` GPT-2 of the same size and vocabulary.

Usage: python3 bench/model_peer.py SMILES.smi --n-layer 4 --n-head 4 --n-embd 256 --batch 64
                                   --steps 10 [--sample-batch 256 --new-tokens 60 --sample-repeats 3]
                                   [--threads 2] [--device cpu|cuda]

Training (timed after one warm-up step): forward, backward and an AdamW step on batches of the file's
molecules in file order (cycled), each `[BOS] + characters + [EOS]`, PAD-filled to the longest in the
batch; tokens/s counts the non-pad target tokens, exactly as smirl does on the same batches.
Sampling: `generate` with the KV cache, batch 256 from BOS, a fixed number of new tokens (EOS is not
allowed to stop early), multinomial sampling at temperature 1; the median rate of `--sample-repeats`
timed batches after a warm-up. On a GPU, each timer reads after a
synchronize, and peak memory is the CUDA allocator's peak. Prints one JSON object.
"""

import argparse
import json
import resource
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

PAD, BOS, EOS = 0, 1, 2


def read_smiles(path):
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]


def vocab_of(smiles):
    chars = sorted({c for s in smiles for c in s})
    return {c: i + 3 for i, c in enumerate(chars)}


def batch_rows(seqs, step, batch):
    n = len(seqs)
    return [seqs[(step * batch + i) % n] for i in range(batch)]


def make_batch(rows):
    t = max(len(r) - 1 for r in rows)
    inp = torch.full((len(rows), t), PAD, dtype=torch.long)
    tgt = torch.full((len(rows), t), -100, dtype=torch.long)
    for i, r in enumerate(rows):
        inp[i, : len(r) - 1] = torch.tensor(r[:-1])
        tgt[i, : len(r) - 1] = torch.tensor(r[1:])
    return inp, tgt, int((tgt != -100).sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("smiles")
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=256)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--sample-batch", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=60)
    ap.add_argument("--sample-repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    smiles = read_smiles(args.smiles)
    vocab = vocab_of(smiles)
    seqs = [[BOS] + [vocab[c] for c in s] + [EOS] for s in smiles]
    config = GPT2Config(
        vocab_size=len(vocab) + 3,
        n_positions=args.block_size,
        n_embd=args.n_embd,
        n_layer=args.n_layer,
        n_head=args.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    device = torch.device(args.device)
    model = GPT2LMHeadModel(config).to(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)

    model.train()
    tokens, seconds = 0, 0.0
    for step in range(args.steps + 1):
        inp, tgt, n_tok = make_batch(batch_rows(seqs, step, args.batch))
        sync()
        t0 = time.perf_counter()
        inp, tgt = inp.to(device), tgt.to(device)
        # The targets are already shifted (tgt[t] = inp[t + 1]), so the loss is taken here:
        # `labels=` would shift them a second time.
        logits = model(input_ids=inp).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        dt = time.perf_counter() - t0
        if step > 0:  # step 0 is warm-up
            tokens += n_tok
            seconds += dt

    model.eval()
    start = torch.full((args.sample_batch, 1), BOS, dtype=torch.long, device=device)
    with torch.no_grad():
        model.generate(start, max_new_tokens=2, min_new_tokens=2, do_sample=True, pad_token_id=PAD)  # warm-up
        rates = []
        for _ in range(args.sample_repeats):
            sync()
            t0 = time.perf_counter()
            out = model.generate(
                start,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                use_cache=True,
                pad_token_id=PAD,
            )
            sync()
            rates.append(args.sample_batch / (time.perf_counter() - t0))
    assert out.shape[1] == args.new_tokens + 1, out.shape
    print(json.dumps({
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "n_params": n_params,
        "vocab_size": config.vocab_size,
        "train_tokens_per_s": tokens / seconds,
        "sample_mols_per_s": sorted(rates)[len(rates) // 2],  # the median repeat
        "new_tokens": args.new_tokens,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "device": str(device),
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
    }))


if __name__ == "__main__":
    main()
