#!/usr/bin/env python3
"""Pretrain a smirl prior with PyTorch on a lent GPU and write it as a smirl model directory.

smirl's own `smirl pretrain --device cuda` runs candle's stock kernels at about a quarter of
PyTorch's training speed (bench/gpu/README.md), too slow for the 15 minutes of GPU a session may be
lent. This script trains the same network — smirl's GPT is GPT-2's block (pre-LayerNorm, exact-erf
GELU, tied embeddings; dropout only in training, by `--dropout`), which bench/rl_peer.py already maps weight for weight — with the
same tokens and objective as `smirl pretrain`: each SMILES as BOS, its characters, EOS, next-token
cross-entropy with padding ignored; AdamW (β 0.9/0.95, weight decay on matrices), linear warmup
then cosine decay, gradient clipping at 1. It then writes the weights under smirl's names, stored
as float16 so that no file exceeds 16 MiB (smirl converts them to float32 when it loads them).

    python3 bench/gpu/train_prior_torch.py --train data/moses/train.csv.gz --vocab models/prior/vocab.json \\
        --out OUT_DIR [--n-layer 8 --n-head 8 --n-embd 256 --epochs 3 --train-seconds 420]

`--train-seconds` bounds the run: timed on steps 100-300, the schedule is set to the epochs asked for
or to what fits in that time, whichever is shorter.
"""
import argparse
import csv
import gzip
import json
import math
import os
import platform
import random
import time

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

PAD, BOS, EOS = 0, 1, 2


def read_smiles(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        reader = csv.reader(f)
        header = next(reader)
        col = header.index("SMILES") if "SMILES" in header else header.index("smiles")
        return [row[col] for row in reader if row]


def encode(smiles, ids, block_size):
    """Token ids with BOS and EOS, or None when a character is not in the vocabulary or the
    molecule does not fit the block (the same molecules `smirl pretrain` skips)."""
    out = [BOS]
    for ch in smiles:
        if ch not in ids:
            return None
        out.append(ids[ch])
    out.append(EOS)
    return out if 0 < len(smiles) and len(out) - 1 <= block_size else None


def pack(seqs, block_size):
    """All sequences in one PAD-filled uint8 matrix (one row each, BOS first) and their lengths, so
    that a batch is one index operation on the GPU rather than a Python loop."""
    data = torch.full((len(seqs), block_size + 1), PAD, dtype=torch.uint8)
    for r, s in enumerate(seqs):
        data[r, : len(s)] = torch.tensor(s, dtype=torch.uint8)
    return data, torch.tensor([len(s) for s in seqs])


def batch_tensors(data, lengths, idx):
    """Inputs (the rows without their last token) and targets (shifted by one, padding -100) of the
    rows `idx`, cut to the longest of them."""
    t = int(lengths[idx].max()) - 1
    rows = data[idx, : t + 1].long()
    x, y = rows[:, :t], rows[:, 1:].clone()
    y[y == PAD] = -100
    return x, y


def lr_at(step, total, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, total - args.warmup))
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * progress))


def smirl_state(model, dtype):
    """The weights under smirl's (nanoGPT's) names: GPT-2's Conv1D matrices transposed to (out, in),
    the causal-mask buffers and the tied head left out."""
    out = {}
    for name, t in model.transformer.state_dict().items():
        if name.endswith(".attn.bias") and t.dim() == 4 or name.endswith(".attn.masked_bias"):
            continue
        t = t.detach().float().cpu()
        if name.endswith(".weight") and any(p in name for p in ("c_attn", "c_proj", "c_fc")):
            t = t.t()
        out[name] = t.contiguous().to(dtype)
    return out


@torch.no_grad()
def val_loss(model, val, args, device):
    model.eval()
    data, lengths = val
    total, tokens = 0.0, 0
    for i in range(0, len(lengths), args.batch):
        x, y = batch_tensors(data, lengths, torch.arange(i, min(i + args.batch, len(lengths)), device=data.device))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100, reduction="sum"
        )
        total += loss.item()
        tokens += (y != -100).sum().item()
    model.train()
    return total / max(1, tokens)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True)
    p.add_argument("--vocab", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--n-layer", type=int, default=8)
    p.add_argument("--n-head", type=int, default=8)
    p.add_argument("--n-embd", type=int, default=256)
    p.add_argument("--block-size", type=int, default=100)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--train-seconds", type=float, default=420.0)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--min-lr", type=float, default=6e-5)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.0, help="dropout on embeddings, attention and residuals")
    p.add_argument("--val-molecules", type=int, default=20000)
    p.add_argument("--limit", type=int, default=0, help="use only the first N molecules (a smoke test)")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()

    t_start = time.time()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with open(args.vocab) as f:
        vocab = json.load(f)
    assert vocab["mode"] == "char" and vocab["tokens"][:3] == ["<pad>", "<bos>", "<eos>"], "a char vocabulary"
    ids = {tok: i for i, tok in enumerate(vocab["tokens"]) if i > 2}
    smiles = read_smiles(args.train)
    if args.limit:
        smiles = smiles[: args.limit]
    seqs = [s for s in (encode(m, ids, args.block_size) for m in smiles) if s is not None]
    skipped = len(smiles) - len(seqs)
    rng.shuffle(seqs)
    n_val = min(args.val_molecules, len(seqs) // 10)
    val, train = seqs[:n_val], seqs[n_val:]
    # Sorting the validation set by length keeps its padding small.
    val.sort(key=len)
    print(f"{len(train)} training and {len(val)} validation molecules ({skipped} skipped) on {device}", flush=True)
    n_train, n_val = len(train), len(val)
    train = tuple(t.to(device) for t in pack(train, args.block_size))
    val = tuple(t.to(device) for t in pack(val, args.block_size))

    config = GPT2Config(
        vocab_size=len(vocab["tokens"]), n_positions=args.block_size, n_embd=args.n_embd, n_layer=args.n_layer,
        n_head=args.n_head, n_inner=4 * args.n_embd, activation_function="gelu", layer_norm_epsilon=1e-5,
        resid_pdrop=args.dropout, embd_pdrop=args.dropout, attn_pdrop=args.dropout, tie_word_embeddings=True,
        bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
    )
    model = GPT2LMHeadModel(config).to(device)
    model.train()
    n_params = sum(t.numel() for t in smirl_state(model, torch.float32).values())
    decay = [q for n, q in model.named_parameters() if q.dim() >= 2]
    no_decay = [q for n, q in model.named_parameters() if q.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if device.type == "cuda" else {}),
    )
    steps_per_epoch = n_train // args.batch
    total = max(1, int(args.epochs * steps_per_epoch))
    os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(args.out, "log.csv"), "w")
    log.write("step,train_loss,val_loss,lr,tokens_per_s\n")

    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed)
    order, pos, epoch = None, n_train, 0
    step, win_loss, win_steps, win_tokens, t_win = 0, 0.0, 0, 0, time.time()
    t_train = time.time()
    while step < total:
        if pos + args.batch > n_train:
            order = torch.randperm(n_train, generator=gen, device=device)
            pos, epoch = 0, epoch + 1
        x, y = batch_tensors(*train, order[pos : pos + args.batch])
        pos += args.batch
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total, args)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        win_loss += loss.item() if step % 10 == 0 or step == total else 0.0
        win_steps += 1 if step % 10 == 0 or step == total else 0
        win_tokens += x.numel()
        if step == 100:
            t_100 = time.time()
        if step == 300:
            # Fit the schedule into the time bound, timed on steps 100-300 (the first ones are slow
            # while the GPU's kernels are chosen).
            per_step = (time.time() - t_100) / 200
            fits = int((args.train_seconds - (time.time() - t_train)) / per_step) + step
            if fits < total:
                total = max(step + 1, fits)
            print(f"{per_step * 1000:.1f} ms/step: {total} steps ({total / steps_per_epoch:.2f} epochs)", flush=True)
        if step % 500 == 0 or step == total:
            vl = val_loss(model, val, args, device) if step % 2000 == 0 or step == total else None
            now = time.time()
            # tokens/s counts padded positions (what the GPU computes).
            row = (step, win_loss / max(1, win_steps), vl, lr_at(step - 1, total, args), win_tokens / (now - t_win))
            log.write(f"{row[0]},{row[1]:.6f},{'' if vl is None else f'{vl:.6f}'},{row[3]:.3e},{row[4]:.0f}\n")
            log.flush()
            print(f"step {step}/{total} loss {row[1]:.4f} val {vl} {row[4]:.0f} tok/s", flush=True)
            win_loss, win_steps, win_tokens, t_win = 0.0, 0, 0, now
    train_seconds = time.time() - t_train
    final_val = val_loss(model, val, args, device)

    save_file(smirl_state(model, torch.float16), os.path.join(args.out, "model.safetensors"))
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump({"vocab_size": len(vocab["tokens"]), "n_layer": args.n_layer, "n_head": args.n_head,
                   "n_embd": args.n_embd, "block_size": args.block_size,
                   # Dropout is a training device (train.json records it); smirl samples without.
                   "dropout": 0.0, "layer_norm_eps": 1e-5},
                  f, indent=2)
    with open(os.path.join(args.out, "vocab.json"), "w") as f:
        json.dump(vocab, f, indent=2)
    with open(os.path.join(args.out, "train.json"), "w") as f:
        json.dump({
            "trainer": "bench/gpu/train_prior_torch.py", "args": vars(args), "steps": step,
            "epochs": step / max(1, steps_per_epoch), "parameters": n_params, "train_molecules": n_train,
            "val_molecules": n_val, "skipped": skipped, "final_val_loss": final_val,
            "train_seconds": train_seconds, "wall_seconds": time.time() - t_start,
            "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor(),
            "torch": torch.__version__, "weights_dtype": "float16",
        }, f, indent=2)
    print(f"done: {step} steps, val loss {final_val:.4f}, {train_seconds:.0f} s training; wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
