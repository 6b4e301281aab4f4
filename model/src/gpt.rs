//! A decoder-only GPT over SMILES tokens, the whole model in one file (after nanoGPT's `model.py`).
//!
//! Token + learned position embeddings → `n_layer` pre-LayerNorm blocks (causal self-attention,
//! GELU MLP) → final LayerNorm → output head tied to the token embedding.
//! Two kinds of learned prompt can steer a frozen model:
//! - a *soft prompt*: extra input vectors placed before the tokens, taking the first positions
//!   (the `prefix` argument of [`Gpt::forward`]);
//! - a *deep prefix* ([`Gpt::with_kv_prefix`]): L key/value vectors per layer that every token
//!   attends to, prepended to each layer's keys and values (Li & Liang 2021 §4). They have no
//!   position, so every token keeps the position pretraining gave it, and the first token
//!   (predicted at BOS) is steered too.
//!
//! References:
//! 1. GPT-2: Radford et al. 2019, "Language Models are Unsupervised Multitask Learners".
//! 2. nanoGPT: <https://github.com/karpathy/nanoGPT/blob/master/model.py>.
//! 3. Prefix tuning: Li & Liang 2021; soft prompts: Lester et al. 2021.
//!
//! Training runs through [`crate::ops`]' fused kernels, which (unlike candle 0.11's fused
//! LayerNorm/softmax) have a backward pass.

use crate::ops;
use crate::rng::Rng;
use candle_core::{DType, Device, Module, Result, Tensor, Var, D};
use candle_nn::{var_builder::SimpleBackend, Init, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// Model hyper-parameters; `config.json` of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GptConfig {
    /// Number of token ids, specials included. Resolved from the vocabulary by `pretrain`.
    pub vocab_size: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Attention heads; must divide `n_embd`.
    pub n_head: usize,
    /// Embedding width.
    pub n_embd: usize,
    /// Context length in positions (prefix + BOS + tokens). MOSES SMILES are ≤ 57 chars.
    pub block_size: usize,
    /// Reserved: dropout is not implemented and must be 0 (small SMILES models train without it).
    pub dropout: f64,
    /// LayerNorm epsilon (PyTorch's default).
    pub layer_norm_eps: f64,
}

impl Default for GptConfig {
    fn default() -> Self {
        // ~3.2M parameters: large enough for MOSES, small enough to pretrain on a 2-core CPU.
        Self {
            vocab_size: 0,
            n_layer: 4,
            n_head: 4,
            n_embd: 256,
            block_size: 128,
            dropout: 0.0,
            layer_norm_eps: 1e-5,
        }
    }
}

impl GptConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Checks the values; the error names the first bad field.
    pub fn validate(&self) -> crate::Result<()> {
        use crate::Error;
        let positive = [
            ("vocab_size", self.vocab_size),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
            ("block_size", self.block_size),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(Error::option(field, "must be > 0"));
            }
        }
        if self.n_embd.checked_rem(self.n_head) != Some(0) {
            return Err(Error::option(
                "n_head",
                format!("{} does not divide n_embd {}", self.n_head, self.n_embd),
            ));
        }
        if self.dropout != 0.0 {
            return Err(Error::option("dropout", "dropout is not implemented; use 0.0"));
        }
        Ok(())
    }
}

/// `x @ w.T + b` on the flattened leading dims (one big GEMM instead of one per batch row).
#[derive(Debug, Clone)]
struct Linear {
    w: Tensor, // (out, in)
    b: Tensor, // (out)
}

impl Linear {
    fn new(d_in: usize, d_out: usize, std: f64, vb: VarBuilder) -> Result<Self> {
        let w = vb.get_with_hints(
            (d_out, d_in),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: std,
            },
        )?;
        let b = vb.get_with_hints(d_out, "bias", Init::Const(0.0))?;
        Ok(Self { w, b })
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut dims = xs.dims().to_vec();
        let d_in = dims.pop().unwrap_or(1);
        let n: usize = dims.iter().product();
        let ys = xs
            .reshape((n, d_in))?
            .matmul(&self.w.t()?)?
            .broadcast_add(&self.b)?;
        dims.push(self.w.dim(0)?);
        ys.reshape(dims)
    }
}

#[derive(Debug, Clone)]
struct LayerNorm {
    w: Tensor,
    b: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn new(n: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let w = vb.get_with_hints(n, "weight", Init::Const(1.0))?;
        let b = vb.get_with_hints(n, "bias", Init::Const(0.0))?;
        Ok(Self { w, b, eps })
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        ops::layer_norm(xs, &self.w, &self.b, self.eps)
    }
}

/// Preallocated keys and values of one layer: `(B, n_head, block_size, head_dim)`, `len` filled.
#[derive(Debug, Clone)]
struct KvCache {
    k: Tensor,
    v: Tensor,
    len: usize,
}

#[derive(Debug, Clone)]
struct CausalSelfAttention {
    c_attn: Linear, // q, k, v projections in one
    c_proj: Linear,
    n_head: usize,
    block_size: usize,
}

impl CausalSelfAttention {
    fn new(cfg: &GptConfig, vb: VarBuilder) -> Result<Self> {
        let c = cfg.n_embd;
        let proj_std = 0.02 / (2.0 * cfg.n_layer as f64).sqrt(); // residual projection, per GPT-2
        Ok(Self {
            c_attn: Linear::new(c, 3 * c, 0.02, vb.pp("c_attn"))?,
            c_proj: Linear::new(c, c, proj_std, vb.pp("c_proj"))?,
            n_head: cfg.n_head,
            block_size: cfg.block_size,
        })
    }

    /// With `cache`, the new keys/values are written into it and attention sees all cached ones.
    /// `prefix`: this layer's deep-prefix keys and values, each `(1, nh, L, hd)`, seen by every
    /// query before the sequence's own keys (written at the start of a new cache).
    fn forward(
        &self,
        xs: &Tensor,
        cache: Option<&mut Option<KvCache>>,
        prefix: Option<&(Tensor, Tensor)>,
    ) -> Result<Tensor> {
        let (b, t, c) = xs.dims3()?;
        let (h, hd) = (self.n_head, c / self.n_head);
        let qkv = self.c_attn.forward(xs)?; // (B, T, 3C)
        let heads = |i: usize| {
            qkv.narrow(2, i * c, c)?
                .reshape((b, t, h, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?); // (B, nh, T, hs)
        let scale = 1.0 / (hd as f64).sqrt();
        let ys = match cache {
            None => {
                // Prefix keys come first: query i (of T) sees keys j <= i + L, the whole prefix.
                let (k, v) = match prefix {
                    None => (k, v),
                    Some((pk, pv)) => {
                        let l = pk.dim(2)?;
                        let wide = |t: &Tensor| t.broadcast_as((b, h, l, hd))?.contiguous();
                        (
                            Tensor::cat(&[&wide(pk)?, &k], 2)?.contiguous()?,
                            Tensor::cat(&[&wide(pv)?, &v], 2)?.contiguous()?,
                        )
                    }
                };
                let att = q.matmul(&k.t()?)?; // (B, nh, T, L + T)
                let att = ops::causal_softmax(&att, scale)?;
                att.matmul(&v)? // (B, nh, T, hs)
            }
            Some(slot) => {
                let l = prefix.map_or(Ok(0), |(pk, _)| pk.dim(2))?;
                if !matches!(slot, Some(kv) if kv.k.dim(0).ok() == Some(b)) {
                    let zeros = Tensor::zeros((b, h, l + self.block_size, hd), k.dtype(), k.device())?;
                    let mut fresh = KvCache {
                        k: zeros.clone(),
                        v: zeros.zeros_like()?,
                        len: 0,
                    };
                    if let Some((pk, pv)) = prefix {
                        fresh
                            .k
                            .slice_set(&pk.detach().broadcast_as((b, h, l, hd))?.contiguous()?, 2, 0)?;
                        fresh
                            .v
                            .slice_set(&pv.detach().broadcast_as((b, h, l, hd))?.contiguous()?, 2, 0)?;
                        fresh.len = l;
                    }
                    *slot = Some(fresh);
                }
                let kv = slot.as_mut().expect("allocated above");
                if kv.len + t > l + self.block_size {
                    candle_core::bail!(
                        "KV cache full: {} + {t} > block_size {}",
                        kv.len - l,
                        self.block_size
                    );
                }
                kv.k.slice_set(&k.detach(), 2, kv.len)?;
                kv.v.slice_set(&v.detach(), 2, kv.len)?;
                kv.len += t;
                let (k, v) = (kv.k.narrow(2, 0, kv.len)?, kv.v.narrow(2, 0, kv.len)?); // (B, nh, S, hs)
                ops::cached_attention(&q, &k, &v, scale)? // (B, nh, T, hs)
            }
        };
        let ys = ys.transpose(1, 2)?.reshape((b, t, c))?; // re-assemble heads side by side
        self.c_proj.forward(&ys)
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    c_fc: Linear,
    c_proj: Linear,
}

impl Mlp {
    fn new(cfg: &GptConfig, vb: VarBuilder) -> Result<Self> {
        let c = cfg.n_embd;
        let proj_std = 0.02 / (2.0 * cfg.n_layer as f64).sqrt();
        Ok(Self {
            c_fc: Linear::new(c, 4 * c, 0.02, vb.pp("c_fc"))?,
            c_proj: Linear::new(4 * c, c, proj_std, vb.pp("c_proj"))?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        // erf GELU: exact (as nanoGPT and PyTorch), and measured ~30% faster than the tanh form on the CPU.
        self.c_proj.forward(&ops::gelu_erf(&self.c_fc.forward(xs)?)?)
    }
}

#[derive(Debug, Clone)]
struct Block {
    ln_1: LayerNorm,
    attn: CausalSelfAttention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    fn new(cfg: &GptConfig, vb: VarBuilder) -> Result<Self> {
        let eps = cfg.layer_norm_eps;
        Ok(Self {
            ln_1: LayerNorm::new(cfg.n_embd, eps, vb.pp("ln_1"))?,
            attn: CausalSelfAttention::new(cfg, vb.pp("attn"))?,
            ln_2: LayerNorm::new(cfg.n_embd, eps, vb.pp("ln_2"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        cache: Option<&mut Option<KvCache>>,
        prefix: Option<&(Tensor, Tensor)>,
    ) -> Result<Tensor> {
        let xs = (xs + self.attn.forward(&self.ln_1.forward(xs)?, cache, prefix)?)?;
        &xs + self.mlp.forward(&self.ln_2.forward(&xs)?)?
    }
}

/// The GPT. Cloning is cheap (tensors are shared) and gives an independent KV cache.
#[derive(Debug, Clone)]
pub struct Gpt {
    wte: Tensor, // (V, C), also the output head (weight tying, as in GPT-2)
    wpe: Tensor, // (block_size, C)
    h: Vec<Block>,
    ln_f: LayerNorm,
    cfg: GptConfig,
    caches: Vec<Option<KvCache>>, // one per layer, used by `forward_cached` only
    /// Deep prefix `(n_layer, 2, L, n_embd)`: per layer, L keys then L values (heads side by
    /// side, as the attention projection lays them out).
    kv_prefix: Option<Tensor>,
}

impl Gpt {
    /// Builds the model from `vb`: existing weights are used, missing ones get GPT-2 init
    /// (N(0, 0.02); residual projections N(0, 0.02/√(2·n_layer)); LayerNorm 1/0; biases 0).
    /// Weight names follow nanoGPT: `wte.weight`, `h.0.attn.c_attn.weight`, `ln_f.bias`, ….
    pub fn new(cfg: &GptConfig, vb: VarBuilder) -> Result<Self> {
        let normal = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let wte = vb
            .pp("wte")
            .get_with_hints((cfg.vocab_size, cfg.n_embd), "weight", normal)?;
        let wpe = vb
            .pp("wpe")
            .get_with_hints((cfg.block_size, cfg.n_embd), "weight", normal)?;
        let h = (0..cfg.n_layer)
            .map(|i| Block::new(cfg, vb.pp("h").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = LayerNorm::new(cfg.n_embd, cfg.layer_norm_eps, vb.pp("ln_f"))?;
        Ok(Self {
            wte,
            wpe,
            h,
            ln_f,
            cfg: cfg.clone(),
            caches: vec![None; cfg.n_layer],
            kv_prefix: None,
        })
    }

    /// A freshly initialised model whose weights live in `varmap` (trainable `Var`s, savable
    /// with `varmap.save`). The init is a deterministic function of `seed`.
    pub fn init(cfg: &GptConfig, varmap: &VarMap, seed: u64, device: &Device) -> Result<Self> {
        let backend = SeededInit {
            varmap,
            rng: Mutex::new(Rng::new(seed)),
        };
        Self::new(
            cfg,
            VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone()),
        )
    }

    /// A model over given tensors, by nanoGPT name (see [`Gpt::parameters`]); a missing or
    /// misshapen one is an error. Tensors that are part of a graph keep it (e.g. LoRA's merged
    /// weights, so gradients reach the adapters).
    pub fn from_tensors(
        cfg: &GptConfig,
        tensors: std::collections::HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        Self::new(cfg, VarBuilder::from_tensors(tensors, DType::F32, device))
    }

    /// The configuration.
    pub fn config(&self) -> &GptConfig {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.wte.device()
    }

    /// Number of parameters (the tied head counted once).
    pub fn num_params(&self) -> usize {
        let c = self.cfg.n_embd;
        let block = 2 * 2 * c + (c * 3 * c + 3 * c) + (c * c + c) + (c * 4 * c + 4 * c) + (4 * c * c + c);
        self.wte.elem_count() + self.wpe.elem_count() + self.cfg.n_layer * block + 2 * c
    }

    /// Every weight tensor with its nanoGPT name, in a fixed order: `wte`, `wpe`, then per block
    /// `ln_1`, `attn.c_attn`, `attn.c_proj`, `ln_2`, `mlp.c_fc`, `mlp.c_proj` (weight, bias each),
    /// then `ln_f` ([`crate::train_pass`] relies on this order).
    pub fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![
            ("wte.weight".to_string(), self.wte.clone()),
            ("wpe.weight".to_string(), self.wpe.clone()),
        ];
        for (i, blk) in self.h.iter().enumerate() {
            let parts = [
                ("ln_1", &blk.ln_1.w, &blk.ln_1.b),
                ("attn.c_attn", &blk.attn.c_attn.w, &blk.attn.c_attn.b),
                ("attn.c_proj", &blk.attn.c_proj.w, &blk.attn.c_proj.b),
                ("ln_2", &blk.ln_2.w, &blk.ln_2.b),
                ("mlp.c_fc", &blk.mlp.c_fc.w, &blk.mlp.c_fc.b),
                ("mlp.c_proj", &blk.mlp.c_proj.w, &blk.mlp.c_proj.b),
            ];
            for (name, w, b) in parts {
                out.push((format!("h.{i}.{name}.weight"), w.clone()));
                out.push((format!("h.{i}.{name}.bias"), b.clone()));
            }
        }
        out.push(("ln_f.weight".to_string(), self.ln_f.w.clone()));
        out.push(("ln_f.bias".to_string(), self.ln_f.b.clone()));
        out
    }

    /// A copy whose weights are detached constants: no gradient flows into them (e.g. the frozen
    /// prior of prefix tuning, or inference without recording a graph). Shares the storage.
    pub fn detached(&self) -> Self {
        let lin = |l: &Linear| Linear {
            w: l.w.detach(),
            b: l.b.detach(),
        };
        let ln = |l: &LayerNorm| LayerNorm {
            w: l.w.detach(),
            b: l.b.detach(),
            eps: l.eps,
        };
        let h = self.h.iter().map(|blk| Block {
            ln_1: ln(&blk.ln_1),
            attn: CausalSelfAttention {
                c_attn: lin(&blk.attn.c_attn),
                c_proj: lin(&blk.attn.c_proj),
                ..blk.attn.clone()
            },
            ln_2: ln(&blk.ln_2),
            mlp: Mlp {
                c_fc: lin(&blk.mlp.c_fc),
                c_proj: lin(&blk.mlp.c_proj),
            },
        });
        Self {
            wte: self.wte.detach(),
            wpe: self.wpe.detach(),
            h: h.collect(),
            ln_f: ln(&self.ln_f),
            cfg: self.cfg.clone(),
            caches: vec![None; self.cfg.n_layer],
            kv_prefix: self.kv_prefix.as_ref().map(Tensor::detach),
        }
    }

    /// The same weights with a deep prefix `(n_layer, 2, L, n_embd)` (or none): every token of
    /// every layer attends to the prefix's L keys and values before its own context. Gradients
    /// of [`Gpt::forward`] flow into `kv` when it is part of a graph. L = 0 is the plain model.
    pub fn with_kv_prefix(&self, kv: Option<Tensor>) -> Result<Self> {
        if let Some(kv) = &kv {
            let dims = kv.dims();
            let (nl, c) = (self.cfg.n_layer, self.cfg.n_embd);
            if dims.len() != 4 || dims[0] != nl || dims[1] != 2 || dims[3] != c {
                candle_core::bail!("deep prefix shape {dims:?}, the model wants ({nl}, 2, L, {c})");
            }
        }
        let mut out = self.clone();
        out.kv_prefix = kv;
        out.caches = vec![None; self.cfg.n_layer];
        Ok(out)
    }

    /// The deep prefix `(n_layer, 2, L, n_embd)`, if any.
    pub fn kv_prefix(&self) -> Option<&Tensor> {
        self.kv_prefix.as_ref()
    }

    /// Length L of the deep prefix (0 without one).
    pub fn kv_prefix_len(&self) -> usize {
        self.kv_prefix.as_ref().map_or(0, |t| t.dim(2).unwrap_or(0))
    }

    /// Each layer's queries, keys and values `(B, T, n_embd)` for `idx (B, T)` (no prefix): what
    /// a deep prefix is initialised from.
    pub fn layer_qkv(&self, idx: &Tensor) -> Result<Vec<[Tensor; 3]>> {
        let (b, t) = idx.dims2()?;
        let c = self.cfg.n_embd;
        let mut xs = self
            .wte
            .index_select(&idx.flatten_all()?, 0)?
            .reshape((b, t, c))?
            .broadcast_add(&self.wpe.narrow(0, 0, t)?)?;
        let mut out = Vec::with_capacity(self.h.len());
        for block in &self.h {
            let qkv = block.attn.c_attn.forward(&block.ln_1.forward(&xs)?)?;
            let part = |i: usize| qkv.narrow(2, i * c, c)?.contiguous();
            out.push([part(0)?, part(1)?, part(2)?]);
            xs = block.forward(&xs, None, None)?;
        }
        Ok(out)
    }

    /// Layer `l`'s deep-prefix keys and values as `(1, nh, L, hd)` each.
    fn layer_prefix(&self, l: usize) -> Result<Option<(Tensor, Tensor)>> {
        let Some(kv) = &self.kv_prefix else {
            return Ok(None);
        };
        let (nh, hd) = (self.cfg.n_head, self.cfg.head_dim());
        let len = kv.dim(2)?;
        let part = |i: usize| {
            kv.get(l)?
                .get(i)?
                .reshape((1, len, nh, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        Ok(Some((part(0)?, part(1)?)))
    }

    /// Full-sequence forward (training, likelihoods). `idx`: `(B, T)` u32 token ids; `prefix`:
    /// optional `(B or 1, P, n_embd)` input vectors placed before the tokens at positions `0..P`
    /// (they get position embeddings like tokens). Returns logits `(B, T, vocab)` for the token
    /// positions only. Needs `P + T <= block_size`.
    pub fn forward(&self, idx: &Tensor, prefix: Option<&Tensor>) -> Result<Tensor> {
        self.forward_impl(idx, prefix, 0, None)
    }

    /// [`Gpt::forward`] up to the final LayerNorm: hidden states `(B, T, n_embd)` at the token
    /// positions; [`Gpt::head`] turns them into logits. For a head of one's own in between.
    pub fn forward_hidden(&self, idx: &Tensor) -> Result<Tensor> {
        self.forward_layers(idx, None, 0, None)
    }

    /// The tied output head: logits `(B, T, vocab)` of hidden states `(B, T, n_embd)`.
    pub fn head(&self, hidden: &Tensor) -> Result<Tensor> {
        let (b, t, c) = hidden.dims3()?;
        hidden
            .reshape((b * t, c))?
            .matmul(&self.wte.t()?)?
            .reshape((b, t, self.cfg.vocab_size))
    }

    /// Incremental forward for decoding: processes `idx` at positions `seqlen_offset..` using
    /// and extending the per-layer KV cache (preallocated to `block_size`). Pass the prefix on
    /// the first call only (`seqlen_offset` 0); later offsets count it. Inference only: no
    /// gradient flows through cached keys/values.
    pub fn forward_cached(
        &mut self,
        idx: &Tensor,
        prefix: Option<&Tensor>,
        seqlen_offset: usize,
    ) -> Result<Tensor> {
        let mut caches = std::mem::take(&mut self.caches);
        let out = self.forward_impl(idx, prefix, seqlen_offset, Some(&mut caches));
        self.caches = caches;
        out
    }

    /// Keeps only the batch rows `rows` (in that order) in the KV cache, so finished sequences
    /// stop costing compute; the next `forward_cached` call takes `rows.len()` rows.
    pub fn retain_kv_rows(&mut self, rows: &[u32]) -> Result<()> {
        let idx = Tensor::new(rows, self.device())?;
        for kv in self.caches.iter_mut().flatten() {
            kv.k = kv.k.index_select(&idx, 0)?; // (B', nh, block_size, hs), contiguous
            kv.v = kv.v.index_select(&idx, 0)?;
        }
        Ok(())
    }

    /// Empties the KV cache (before decoding a new batch).
    pub fn clear_kv_cache(&mut self) {
        self.caches.iter_mut().for_each(|c| *c = None);
    }

    fn forward_impl(
        &self,
        idx: &Tensor,
        prefix: Option<&Tensor>,
        offset: usize,
        caches: Option<&mut Vec<Option<KvCache>>>,
    ) -> Result<Tensor> {
        self.head(&self.forward_layers(idx, prefix, offset, caches)?)
    }

    /// Embeddings, blocks and the final LayerNorm: `(B, T, C)` at the token positions.
    fn forward_layers(
        &self,
        idx: &Tensor,
        prefix: Option<&Tensor>,
        offset: usize,
        caches: Option<&mut Vec<Option<KvCache>>>,
    ) -> Result<Tensor> {
        let (b, t) = idx.dims2()?;
        let c = self.cfg.n_embd;
        let mut xs = self
            .wte
            .index_select(&idx.flatten_all()?, 0)?
            .reshape((b, t, c))?; // (B, T, C)
        let p = match prefix {
            None => 0,
            Some(pre) => {
                let (pb, p, pc) = pre.dims3()?;
                if pc != c || (pb != 1 && pb != b) {
                    candle_core::bail!(
                        "prefix shape {:?} does not fit batch {b} and n_embd {c}",
                        pre.dims()
                    );
                }
                let pre = pre.broadcast_as((b, p, c))?;
                xs = Tensor::cat(&[&pre, &xs], 1)?; // (B, P + T, C)
                p
            }
        };
        if offset + p + t > self.cfg.block_size {
            candle_core::bail!(
                "cannot forward {} positions, block_size is {}",
                offset + p + t,
                self.cfg.block_size
            );
        }
        xs = xs.broadcast_add(&self.wpe.narrow(0, offset, p + t)?)?;
        match caches {
            None => {
                for (l, block) in self.h.iter().enumerate() {
                    xs = block.forward(&xs, None, self.layer_prefix(l)?.as_ref())?;
                }
            }
            Some(caches) => {
                for (l, (block, cache)) in self.h.iter().zip(caches.iter_mut()).enumerate() {
                    // Written into the cache when it is allocated; its length sizes the cache.
                    let pre = self.layer_prefix(l)?;
                    xs = block.forward(&xs, Some(cache), pre.as_ref())?;
                }
            }
        }
        self.ln_f.forward(&xs.narrow(1, p, t)?) // (B, T, C), token positions only
    }
}

/// Log-probabilities of `targets (B, T)` under `logits (B, T, V)`: `(B, T)`, differentiable
/// (used by the RL losses). Mask padding yourself.
pub fn token_log_probs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let lp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    lp.gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
        .squeeze(D::Minus1)
}

/// A `VarMap` backend that creates missing variables from our seeded RNG, so a model's
/// initialisation is a function of its seed (candle's CPU `randn` cannot be seeded).
struct SeededInit<'a> {
    varmap: &'a VarMap,
    rng: Mutex<Rng>,
}

impl SimpleBackend for SeededInit<'_> {
    fn get(&self, s: candle_core::Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = self.varmap.data().lock().expect("varmap lock");
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                candle_core::bail!("shape mismatch on {name}: {s:?} <> {:?}", v.shape());
            }
            return Ok(v.as_tensor().clone());
        }
        let n = s.elem_count();
        let values: Vec<f32> = match h {
            Init::Const(c) => vec![c as f32; n],
            Init::Randn { mean, stdev } => {
                let mut rng = self.rng.lock().expect("rng lock");
                (0..n).map(|_| (mean + stdev * rng.normal()) as f32).collect()
            }
            other => candle_core::bail!("SeededInit: unsupported init {other:?} for {name}"),
        };
        let var = Var::from_tensor(&Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?)?;
        let t = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        candle_core::bail!("SeededInit: get_unchecked({name}) is not supported")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.data().lock().expect("varmap lock").contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> (Gpt, VarMap) {
        crate::testing::tiny_gpt(11, 16, 24, 1)
    }

    fn ids(rows: &[&[u32]]) -> Tensor {
        Tensor::new(rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>(), &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    fn prefix(p: usize, seed: u64) -> Var {
        let mut r = Rng::new(seed);
        let v: Vec<f32> = (0..p * 16).map(|_| r.normal() as f32 * 0.5).collect();
        Var::from_tensor(&Tensor::from_vec(v, (1, p, 16), &Device::Cpu).unwrap()).unwrap()
    }

    /// Every weight (and a prefix) gets a non-zero gradient: no op on the path drops it.
    #[test]
    fn every_parameter_gets_a_gradient() {
        let (m, vm) = tiny();
        let pre = prefix(3, 9);
        let x = ids(&[&[1, 4, 5, 6, 7], &[1, 8, 9, 10, 0]]);
        let logits = m.forward(&x, Some(pre.as_tensor())).unwrap();
        assert_eq!(logits.dims(), &[2, 5, 11]);
        let targets: Vec<u32> = vec![4, 5, 6, 7, 2, 8, 9, 10, 2, 0];
        let loss = crate::ops::cross_entropy(&logits.reshape((10, 11)).unwrap(), &targets, 0).unwrap();
        let grads = loss.backward().unwrap();
        let data = vm.data().lock().unwrap();
        assert_eq!(data.len(), 2 + 2 * 12 + 2);
        for (name, var) in data.iter() {
            let g = grads.get(var).unwrap_or_else(|| panic!("no gradient for {name}"));
            let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(norm > 0.0, "zero gradient for {name}");
        }
        assert!(grads.get(&pre).is_some_and(|g| g
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            > 0.0));
        assert_eq!(
            m.num_params(),
            data.values().map(|v| v.elem_count()).sum::<usize>()
        );
    }

    /// Changing token t leaves the logits at positions < t unchanged.
    #[test]
    fn attention_is_causal() {
        let (m, _) = tiny();
        let a = m.forward(&ids(&[&[1, 4, 5, 6, 7, 8]]), None).unwrap();
        let b = m.forward(&ids(&[&[1, 4, 5, 9, 7, 8]]), None).unwrap();
        assert!(max_diff(&a.narrow(1, 0, 3).unwrap(), &b.narrow(1, 0, 3).unwrap()) == 0.0);
        assert!(max_diff(&a.narrow(1, 3, 1).unwrap(), &b.narrow(1, 3, 1).unwrap()) > 1e-4);
    }

    /// Decoding token by token through the KV cache gives the full forward's logits, with and
    /// without a prefix, for a batch; and the cache can be cleared and reused.
    #[test]
    fn kv_cache_matches_full_forward() {
        let (mut m, _) = tiny();
        let rows: &[&[u32]] = &[&[1, 4, 5, 6, 7, 8, 9], &[1, 10, 9, 8, 3, 3, 4]];
        let pre = prefix(4, 2);
        for pre in [None, Some(pre.as_tensor())] {
            let full = m.forward(&ids(rows), pre).unwrap();
            for _round in 0..2 {
                m.clear_kv_cache();
                let p = pre.map_or(0, |t| t.dim(1).unwrap());
                // Prefill two tokens, then one at a time.
                let first = m
                    .forward_cached(&ids(rows).narrow(1, 0, 2).unwrap(), pre, 0)
                    .unwrap();
                let mut steps = vec![first];
                for t in 2..7 {
                    steps.push(
                        m.forward_cached(&ids(rows).narrow(1, t, 1).unwrap(), None, p + t)
                            .unwrap(),
                    );
                }
                let inc = Tensor::cat(&steps, 1).unwrap();
                assert!(max_diff(&full, &inc) < 1e-4, "{}", max_diff(&full, &inc));
            }
        }
    }

    fn deep(k: usize, seed: u64) -> Var {
        let mut r = Rng::new(seed);
        let v: Vec<f32> = (0..2 * 2 * k * 16).map(|_| r.normal() as f32 * 0.5).collect();
        Var::from_tensor(&Tensor::from_vec(v, (2, 2, k, 16), &Device::Cpu).unwrap()).unwrap()
    }

    /// A deep prefix steers every position, the first included; length 0 is exactly the plain
    /// model; a wrong shape is refused; the gradient reaches it; decoding through the KV cache
    /// (prefill, then one token at a time, twice) gives the full forward's logits.
    #[test]
    fn deep_prefix_forward_cache_and_gradient() {
        let (m, _) = tiny();
        let x = ids(&[&[1, 4, 5, 6, 7, 8, 9], &[1, 10, 9, 8, 3, 3, 4]]);
        let plain = m.forward(&x, None).unwrap();
        let empty = Tensor::zeros((2, 2, 0, 16), DType::F32, &Device::Cpu).unwrap();
        let zero_len = m.with_kv_prefix(Some(empty)).unwrap().forward(&x, None).unwrap();
        assert_eq!(max_diff(&plain, &zero_len), 0.0);
        assert!(m
            .with_kv_prefix(Some(
                Tensor::zeros((2, 2, 3, 8), DType::F32, &Device::Cpu).unwrap()
            ))
            .is_err());
        let kv = deep(3, 4);
        let mut agent = m.with_kv_prefix(Some(kv.as_tensor().clone())).unwrap();
        assert_eq!(agent.kv_prefix_len(), 3);
        let steered = agent.forward(&x, None).unwrap();
        assert!(max_diff(&plain.narrow(1, 0, 1).unwrap(), &steered.narrow(1, 0, 1).unwrap()) > 1e-3);
        let loss = steered.sqr().unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        let gn: f32 = g
            .get(&kv)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(gn > 0.0);
        // The full block_size is still available to tokens behind the prefix.
        assert!(agent.forward(&ids(&[&[1; 24]]), None).is_ok());
        for _round in 0..2 {
            agent.clear_kv_cache();
            let mut steps = vec![agent
                .forward_cached(&x.narrow(1, 0, 2).unwrap(), None, 0)
                .unwrap()];
            for t in 2..7 {
                steps.push(
                    agent
                        .forward_cached(&x.narrow(1, t, 1).unwrap(), None, t)
                        .unwrap(),
                );
            }
            let inc = Tensor::cat(&steps, 1).unwrap();
            assert!(max_diff(&steered, &inc) < 1e-4, "{}", max_diff(&steered, &inc));
        }
    }

    /// The prefix changes the token logits, and the init is a function of the seed.
    #[test]
    fn prefix_changes_logits_and_init_is_seeded() {
        let (m, _) = tiny();
        let x = ids(&[&[1, 4, 5]]);
        let a = m.forward(&x, None).unwrap();
        let b = m.forward(&x, Some(prefix(2, 3).as_tensor())).unwrap();
        assert_eq!(b.dims(), a.dims());
        assert!(max_diff(&a, &b) > 1e-3);
        let (m2, _) = tiny();
        assert_eq!(max_diff(&a, &m2.forward(&x, None).unwrap()), 0.0);
        assert!(m
            .forward(&ids(&[&[1; 23]]), Some(prefix(2, 3).as_tensor()))
            .is_err()); // > block_size
    }
}
