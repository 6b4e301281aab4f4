#!/usr/bin/env python3
"""PyTorch peer for `smirl bench rl`: a REINFORCE loop on a `transformers` GPT-2 holding OUR prior's
weights, doing per step the work `smirl tune` does with configs/qed.toml semantics.

Usage: python3 bench/rl_peer.py [--model models/prior] [--batch 256] [--steps 5]
                                [--mode prefix|soft_prompt|full|both] [--threads 2]
                                [--check-csv SAMPLES.csv] [--prefix-init KV.safetensors]
                                [--check-prefix-csv AGENT_SAMPLES.csv]

One step (as rl/src/reinforce.rs `Trainer::step`, without replay, diversity filter or KL):
1. sample `batch` SMILES from the policy with the KV cache: temperature 1, PAD and BOS never drawn,
   each row stops at its own EOS (finished rows leave the batch and the cache), at most 100
   tokens EOS included and never more than the context allows (block_size 100: the last token is
   never fed back);
2. decode and score with RDKit: parse, QED, 0 for a SMILES that is invalid or has no EOS;
3. discounted per-token advantages A_t = 0.99^(T-1-t) * (R - mean R) (T counts EOS), the loss
   -1/B * sum_b sum_t A_t log pi(x_t) from a teacher-forced forward pass over the sampled
   sequences, backward, Adam step (betas 0.9/0.999, eps 1e-8, no weight decay).

Modes, named as smirl names them:
- `full`: every GPT weight trainable, lr 3e-5.
- `prefix`: the deep prefix of rl/src/deep_prefix.rs, GPT frozen, lr 5e-3: L keys and values per
  layer (read from `--prefix-init`, the `kv_prefix` smirl starts from) that every position attends
  to, BOS included, token positions unchanged; trained through the MLP reparameterisation
  kv = init + W2 tanh(emb W1 + b1) + b2 (emb L x 16, W1 16 x 16, W2 and b2 at zero). Here the
  keys and values sit in the transformers KV cache ahead of the tokens, for sampling and for the
  teacher-forced pass alike; the backward runs through the frozen network to the first layer.
- `soft_prompt`: one learnable vector in BOS's place, starting as BOS's embedding, lr 5e-3; the
  first token x_1 is drawn from the frozen prior's BOS distribution and its log-prob carries no
  gradient, exactly as rl/src/policy.rs.
- `both`: prefix, then full.
Phases are timed separately (sampling; scoring; teacher-forced forward + backward + Adam), the
first step is a warm-up and is not timed.

`--check-csv` verifies the weight mapping first: for every complete row of a `smirl sample` CSV
(smiles,log_likelihood,complete) the teacher-forced log-likelihood of [BOS] + chars + [EOS] under
this GPT-2 (plain and through the soft-prompt path) must match smirl's log_likelihood to 1e-3
nats; `--check-prefix-csv` does the same for samples of smirl's agent through the deep prefix
`--prefix-init`.

Prints one JSON object.
"""

import argparse
import csv
import inspect
import json
import math
import os
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.cache_utils import DynamicCache

PAD, BOS, EOS = 0, 1, 2
LR = {"full": 3e-5, "prefix": 5e-3, "soft_prompt": 5e-3}
REPARAM_HIDDEN = 16
GAMMA = 0.99


def load_prior(model_dir):
    """GPT2LMHeadModel with our prior's weights, and the vocabulary's tokens."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(model_dir, "vocab.json")) as f:
        vocab = json.load(f)
    assert vocab["mode"] == "char", vocab["mode"]
    tokens = vocab["tokens"]
    assert tokens[:3] == ["<pad>", "<bos>", "<eos>"], tokens[:3]
    config = GPT2Config(
        vocab_size=cfg["vocab_size"],
        n_positions=cfg["block_size"],
        n_embd=cfg["n_embd"],
        n_layer=cfg["n_layer"],
        n_head=cfg["n_head"],
        n_inner=4 * cfg["n_embd"],
        activation_function="gelu",  # exact erf GELU, as our MLP
        layer_norm_epsilon=cfg["layer_norm_eps"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    model = GPT2LMHeadModel(config)
    ours = load_file(os.path.join(model_dir, "model.safetensors"))
    state = {}
    for name, t in ours.items():
        key = "transformer." + name
        # Our Linear weights are (out, in); GPT-2's Conv1D weights are (in, out).
        if name.endswith(".weight") and any(p in name for p in ("c_attn", "c_proj", "c_fc")):
            t = t.t().contiguous()
        state[key] = t
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "lm_head.weight" and not k.endswith(".attn.bias")]
    assert not missing and not unexpected, (missing, unexpected)
    model.tie_weights()
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    model.eval()  # no dropout anywhere (all p = 0); eval only switches off nothing else
    return model, tokens


# transformers 5.x renamed `past_key_values` to `cache` (the old name warns until 5.40).
CACHE_KW = "cache" if "cache" in inspect.signature(GPT2LMHeadModel.forward).parameters else "past_key_values"


def cache_kwargs(cache):
    return {CACHE_KW: cache, "use_cache": True}


class Policy:
    """The agent: the GPT (full), a deep prefix before the frozen GPT (prefix), or a prompt vector
    in BOS's place before the frozen GPT (soft_prompt)."""

    def __init__(self, model, mode, kv_init=None):
        self.model, self.mode = model, mode
        self.wte = model.transformer.wte
        with torch.no_grad():
            bos_logits = model(input_ids=torch.tensor([[BOS]])).logits[0, -1]
        self.first_logp = F.log_softmax(bos_logits.float(), -1)  # the prior's x_1 distribution
        self.prefix = None
        if mode == "full":
            self.params = list(model.parameters())
        else:
            for p in model.parameters():
                p.requires_grad_(False)
        if mode == "soft_prompt":
            self.prefix = torch.nn.Parameter(self.wte.weight[BOS].detach().clone().view(1, 1, -1))
            self.params = [self.prefix]
        if mode == "prefix":
            assert kv_init is not None, "prefix mode needs --prefix-init"
            nl, _, length, c = kv_init.shape
            h = REPARAM_HIDDEN
            self.kv_init = kv_init
            self.emb = torch.nn.Parameter(torch.randn(length, h))
            self.w1 = torch.nn.Parameter(torch.randn(h, h) / math.sqrt(h))
            self.b1 = torch.nn.Parameter(torch.zeros(h))
            self.w2 = torch.nn.Parameter(torch.zeros(h, nl * 2 * c))
            self.b2 = torch.nn.Parameter(torch.zeros(nl * 2 * c))
            self.params = [self.emb, self.w1, self.b1, self.w2, self.b2]
        self.block = model.config.n_positions

    def max_tokens(self):
        return self.block  # soft_prompt: P = 1, the prompt takes BOS's place

    def kv(self):
        """The deep prefix's keys and values (n_layer, 2, L, C), differentiable in the MLP."""
        nl, _, length, c = self.kv_init.shape
        delta = torch.tanh(self.emb @ self.w1 + self.b1) @ self.w2 + self.b2  # (L, nl*2*C)
        return self.kv_init + delta.view(length, nl, 2, c).permute(1, 2, 0, 3)

    def prefix_cache(self, kv, rows):
        """A KV cache holding the prefix's keys and values for `rows` rows, head by head."""
        cfg = self.model.config
        nl, _, length, c = kv.shape
        nh = cfg.n_head
        cache = DynamicCache(config=cfg)
        for layer in range(nl):
            k, v = (kv[layer, i].view(length, nh, c // nh).transpose(0, 1)[None] for i in (0, 1))
            cache.update(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1), layer)
        return cache

    def deep_logits(self, inp, kv, start):
        """Logits of `inp` (B, T) at positions start.. after the deep prefix `kv` (the cache is
        built here for the teacher-forced pass; during sampling `kv` is the live cache)."""
        b, t = inp.shape
        pos = torch.arange(start, start + t)[None].expand(b, t)
        return self.model(input_ids=inp, position_ids=pos, **cache_kwargs(kv)).logits

    @torch.no_grad()
    def sample(self, n, max_len, gen):
        """n sequences of token ids (EOS included when reached) and their completion flags."""
        max_len = min(max_len, self.max_tokens())
        toks = [[] for _ in range(n)]
        done = [False] * n
        cache = DynamicCache(config=self.model.config)
        if self.mode == "full":
            logits = self.model(input_ids=torch.full((n, 1), BOS), **cache_kwargs(cache)).logits[:, -1]
            active = list(range(n))
            pos = 0
        elif self.mode == "prefix":
            cache = self.prefix_cache(self.kv().detach(), n)
            logits = self.deep_logits(torch.full((n, 1), BOS), cache, 0)[:, -1]
            active = list(range(n))
            pos = 0
        else:
            # x_1 from the prior's BOS distribution, then the prompted agent with the cache.
            probs = self.first_logp.exp().clone()
            probs[PAD] = probs[BOS] = 0.0
            first = torch.multinomial(probs.expand(n, -1), 1, generator=gen).squeeze(1).tolist()
            for r, t in enumerate(first):
                toks[r].append(t)
                done[r] = t == EOS
            active = [r for r in range(n) if not done[r]]
            if max_len == 1 or not active:
                return toks, done
            x1 = torch.tensor([toks[r][0] for r in active])
            embeds = torch.cat([self.prefix.detach().expand(len(active), 1, -1), self.wte(x1)[:, None]], 1)
            logits = self.model(inputs_embeds=embeds, **cache_kwargs(cache)).logits[:, -1]
            pos = 1
        while True:
            logits = logits.float()
            logits[:, PAD] = -math.inf
            logits[:, BOS] = -math.inf
            nxt = torch.multinomial(F.softmax(logits, -1), 1, generator=gen).squeeze(1).tolist()
            live = []
            for ci, r in enumerate(active):
                toks[r].append(nxt[ci])
                done[r] = nxt[ci] == EOS
                if not done[r]:
                    live.append(ci)
            pos += 1
            if not live or pos >= max_len:
                break
            if len(live) < len(active):
                cache.batch_select_indices(torch.tensor(live))
            active = [active[ci] for ci in live]
            inp = torch.tensor([nxt[ci] for ci in live])[:, None]
            if self.mode == "prefix":
                logits = self.deep_logits(inp, cache, pos)[:, -1]
            else:
                logits = self.model(input_ids=inp, **cache_kwargs(cache)).logits[:, -1]
        return toks, done

    def token_log_probs(self, seqs):
        """Per-token log pi (B, T) of [BOS] + tokens sequences, zero at padding; differentiable."""
        t = max(len(s) - 1 for s in seqs)
        inp = torch.full((len(seqs), t), PAD)
        tgt = torch.full((len(seqs), t), PAD)
        for i, s in enumerate(seqs):
            inp[i, : len(s) - 1] = torch.tensor(s[:-1])
            tgt[i, : len(s) - 1] = torch.tensor(s[1:])
        mask = (tgt != PAD).float()
        if self.mode == "full":
            logits = self.model(input_ids=inp).logits
            lp = F.log_softmax(logits.float(), -1).gather(-1, tgt[..., None]).squeeze(-1)
        elif self.mode == "prefix":
            logits = self.deep_logits(inp, self.prefix_cache(self.kv(), len(seqs)), 0)
            lp = F.log_softmax(logits.float(), -1).gather(-1, tgt[..., None]).squeeze(-1)
        else:
            first = self.first_logp[tgt[:, :1]]  # (B, 1), the prior's, constant
            if t == 1:
                lp = first
            else:
                embeds = torch.cat([self.prefix.expand(len(seqs), 1, -1), self.wte(inp[:, 1:])], 1)
                logits = self.model(inputs_embeds=embeds).logits[:, 1:]  # token positions x_1..
                rest = F.log_softmax(logits.float(), -1).gather(-1, tgt[:, 1:, None]).squeeze(-1)
                lp = torch.cat([first, rest], 1)
        return lp * mask


def decode(tokens, ids):
    out = []
    for i in ids:
        if i == EOS:
            break
        if i > EOS:
            out.append(tokens[i])
    return "".join(out)


def score(smiles, complete):
    from rdkit import Chem
    from rdkit.Chem import QED

    rewards = []
    for s, c in zip(smiles, complete):
        mol = Chem.MolFromSmiles(s) if c and s else None
        rewards.append(QED.qed(mol) if mol is not None else 0.0)
    return rewards


def advantages(rewards, lens, t):
    """A (B, t): gamma^(T-1-j) * (R - mean R) for j < T, zero after."""
    r = torch.tensor(rewards, dtype=torch.float64)
    adv = r - r.mean()
    lens = torch.tensor(lens, dtype=torch.float64)[:, None]
    j = torch.arange(t, dtype=torch.float64)[None, :]
    a = torch.where(j < lens, GAMMA ** (lens - 1 - j) * adv[:, None], torch.zeros(()))
    return a.float()


def run_mode(model_dir, mode, batch, steps, max_len, seed, kv_init):
    model, tokens = load_prior(model_dir)
    policy = Policy(model, mode, kv_init)
    opt = torch.optim.Adam(policy.params, lr=LR[mode], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        toks, complete = policy.sample(batch, max_len, gen)
        t1 = time.perf_counter()
        smiles = [decode(tokens, s) for s in toks]
        rewards = score(smiles, complete)
        t2 = time.perf_counter()
        seqs = [[BOS] + s for s in toks]
        lens = [len(s) for s in toks]
        lp = policy.token_log_probs(seqs)
        loss = -(lp * advantages(rewards, lens, lp.shape[1])).sum() / batch
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t3 = time.perf_counter()
        rows.append({
            "sample_seconds": t1 - t0,
            "score_seconds": t2 - t1,
            "update_seconds": t3 - t2,
            "seconds": t3 - t0,
            "mean_reward": sum(rewards) / batch,
            "validity": sum(r > 0 for r in rewards) / batch,
            "mean_tokens": sum(lens) / batch,
            "complete": sum(complete) / batch,
            "loss": loss.item(),
        })
    timed = rows[1:]  # step 1 warms up
    mean = lambda k: sum(r[k] for r in timed) / len(timed)
    total = sum(r["seconds"] for r in timed)
    return {
        "mode": mode,
        "lr": LR[mode],
        "steps": len(timed),
        "steps_per_s": len(timed) / total,
        "seconds_per_step": mean("seconds"),
        "sample_seconds": mean("sample_seconds"),
        "score_seconds": mean("score_seconds"),
        "update_seconds": mean("update_seconds"),
        "mean_reward": mean("mean_reward"),
        "validity": mean("validity"),
        "mean_tokens": mean("mean_tokens"),
        "trainable_params": sum(p.numel() for p in policy.params),
    }


def read_check_csv(path, index):
    """[BOS] + chars + [EOS] token sequences and smirl's log-likelihoods of a CSV's complete rows."""
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            if r["complete"] == "1":
                rows.append((r["smiles"], float(r["log_likelihood"])))
    assert rows, f"{path}: no complete rows"
    seqs = [[BOS] + [index[c] for c in s] + [EOS] for s, _ in rows]
    return seqs, torch.tensor([ll for _, ll in rows], dtype=torch.float64)


def check_mapping(model_dir, path, prefix_path=None, kv_init=None):
    """Max |ll_ours - ll_torch| over the complete rows of a `smirl sample` CSV, plain and through the
    soft-prompt path (which starts as the plain model); and over the agent's samples through the
    deep prefix, if given."""
    model, tokens = load_prior(model_dir)
    index = {t: i for i, t in enumerate(tokens)}
    checks = [("full", path), ("soft_prompt", path)]
    if prefix_path:
        checks.append(("prefix", prefix_path))
    out = {}
    with torch.no_grad():
        for mode, csv_path in checks:
            seqs, ours = read_check_csv(csv_path, index)
            lp = Policy(model, mode, kv_init).token_log_probs(seqs).sum(1).double()
            out[f"max_abs_diff_{mode}"] = (lp - ours).abs().max().item()
            out[f"n_{mode}"] = len(seqs)
    out["ok"] = max(v for k, v in out.items() if k.startswith("max_abs_diff")) < 1e-3
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/prior")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--mode", choices=["prefix", "soft_prompt", "full", "both"], default="both")
    ap.add_argument("--max-len", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check-csv", help="a `smirl sample` CSV to verify the weight mapping against")
    ap.add_argument("--prefix-init", help="safetensors with smirl's starting `kv_prefix` (prefix mode)")
    ap.add_argument("--check-prefix-csv", help="samples of smirl's agent through --prefix-init")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from rdkit import RDLogger, rdBase

    RDLogger.DisableLog("rdApp.*")
    import transformers

    transformers.logging.set_verbosity_error()  # the right-padding note of the teacher-forced pass
    result = {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "transformers": transformers.__version__,
        "rdkit_version": rdBase.rdkitVersion,
        "threads": torch.get_num_threads(),
        "batch": args.batch,
    }
    kv_init = load_file(args.prefix_init)["kv_prefix"].float() if args.prefix_init else None
    if args.check_csv:
        result["mapping_check"] = check_mapping(args.model, args.check_csv, args.check_prefix_csv, kv_init)
        if not result["mapping_check"]["ok"]:
            print(json.dumps(result))
            raise SystemExit("the weight mapping check failed")
    modes = ["prefix", "full"] if args.mode == "both" else [args.mode]
    result["modes"] = {
        m: run_mode(args.model, m, args.batch, args.steps, args.max_len, args.seed, kv_init) for m in modes
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
