//! The GPT's training pass written out by hand for the CPU: a forward that keeps its activations,
//! then a backward straight into gradient buffers (after llm.c's `train_gpt2.c`).
//!
//! Why not candle's autograd: it allocates and zero-fills a gradient tensor per graph node, adds
//! each contribution with a separate (single-threaded) op, and reduces bias gradients with a
//! strided loop; on a 2-core CPU that was about half of a training step. Here every buffer lives
//! in a reusable [`TrainPass`], each op is one pass over its data, and the matrix products go to
//! the same `gemm` kernels candle uses. The maths is [`Gpt::forward`]'s; the tests check losses and
//! every gradient against candle's autograd on the same weights.
//!
//! The loss is a weighted sum of per-token negative log-likelihoods, `L = Σ_r w_r · (−log p(y_r))`:
//! mean cross-entropy (`w = 1/n_tokens`), REINFORCE (`w = advantage / B`) and REINVENT's squared
//! error (weights from a first forward) are all of this form.

use crate::cpu::kernels::{
    add_to, col_sums, dispatch, gelu_bwd_in_place, gelu_fwd, lane_sum, layer_norm_bwd, layer_norm_fwd,
    linear_fwd, matmul, par_rows, resize, small_matmul, softmax_in_place, View,
};
use crate::cpu::layout::*;
use crate::gpt::Gpt;
use crate::vocab::PAD;
use crate::{Error, Result};
use candle_core::{backprop::GradStore, DType, Tensor};
use rayon::prelude::*;

/// Which gradients [`TrainPass::backward`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradTarget {
    /// Every GPT weight (pretraining, full-mode RL); the prefix too if one was given.
    Weights,
    /// Only the prompts: the soft prompt and the deep prefix (prompt-mode RL: the GPT is frozen,
    /// so no weight gradient is formed).
    PrefixOnly,
}

/// Activations of one block, kept from the forward for the backward.
#[derive(Default)]
struct LayerActs {
    x_in: Vec<f32>, // (N, C) residual stream entering the block
    ln1: Vec<f32>,
    ln1_stats: Vec<(f32, f32)>,
    qkv: Vec<f32>, // (N, 3C)
    att: Vec<f32>, // per batch row (nh, T, K + T) softmax weights (K deep-prefix keys), row t filled up to K + t
    y: Vec<f32>,   // (N, C) heads side by side
    x_mid: Vec<f32>,
    ln2: Vec<f32>,
    ln2_stats: Vec<(f32, f32)>,
    fc: Vec<f32>, // (N, 4C) before GELU
    gelu: Vec<f32>,
}

/// Reusable buffers for forward + backward; keep one per training loop.
#[derive(Default)]
pub struct TrainPass {
    // Set by `forward`.
    params: Vec<Tensor>,
    w: Vec<Vec<f32>>,
    prefix: Option<(Tensor, Vec<f32>, usize, usize)>, // (tensor, data, rows 1 or B, P)
    /// The model's deep prefix `(n_layer, 2, K, C)`: tensor and data.
    kv_prefix: Option<(Tensor, Vec<f32>)>,
    dims: Dims,
    tokens: Vec<u32>,
    targets: Vec<u32>,
    /// Packed layout: batch row `b` holds positions `row_off[b]..row_off[b] + row_len[b]`
    /// (prefix, then tokens up to its last non-PAD target).
    row_len: Vec<usize>,
    row_off: Vec<usize>,
    /// For each packed token position, its index in the `(B, T)` input.
    tok_index: Vec<usize>,
    /// The target of each packed token position.
    packed_targets: Vec<u32>,
    layers: Vec<LayerActs>,
    x_out: Vec<f32>,
    lnf: Vec<f32>, // (n_tok, C) token positions only
    lnf_stats: Vec<(f32, f32)>,
    probs: Vec<f32>, // (n_tok, V) softmax
    ready: bool,
    // Scratch of the backward.
    d_logits: Vec<f32>,
    d_lnf: Vec<f32>,
    dx: Vec<f32>,
    d_small: Vec<f32>, // (N, C)
    d_wide: Vec<f32>,  // (N, 4C)
    d_qkv: Vec<f32>,   // (N, 3C)
}

#[derive(Default, Clone, Copy, Debug)]
struct Dims {
    b: usize,
    t: usize, // token positions per input row
    p: usize, // prefix positions
    k: usize, // deep-prefix keys per layer
    n: usize, // packed positions, Σ row_len
    c: usize,
    nh: usize,
    v: usize,
    n_layer: usize,
    eps: f32,
}

impl TrainPass {
    /// An empty pass; buffers grow on first use and are reused afterwards.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether this pass can run `model` (f32 weights on the CPU); otherwise use candle's autograd.
    pub fn supports(model: &Gpt) -> bool {
        model.device().is_cpu() && model.parameters().iter().all(|(_, t)| t.dtype() == DType::F32)
    }

    /// Forward over `tokens (B, T)` (row-major ids, PAD-filled) after an optional `prefix`
    /// `(1 or B, P, n_embd)`, keeping the activations. Returns `log p(targets[r])` for every
    /// token position `r`. With `allowed` (`(B, T, V)` row-major, e.g. a SMILES grammar's masks)
    /// the softmax at each position is over its allowed tokens only, so the log-probs and the
    /// gradient are those of the renormalised distribution grammar-constrained sampling draws
    /// from.
    ///
    /// A row ends at its last non-PAD target: the trailing padding carries no loss and, attention
    /// being causal, cannot change the positions before it, so it is dropped and the rows are
    /// packed end to end (no compute is spent on padding). Its log-probs are returned as 0, and
    /// [`Self::backward`] requires weight 0 there.
    pub fn forward(
        &mut self,
        model: &Gpt,
        tokens: &[u32],
        targets: &[u32],
        batch: usize,
        prefix: Option<&Tensor>,
        allowed: Option<&[bool]>,
    ) -> Result<Vec<f32>> {
        self.ready = false;
        let cfg = model.config();
        if batch == 0 || !tokens.len().is_multiple_of(batch) || targets.len() != tokens.len() {
            return Err(Error::option(
                "batch",
                format!(
                    "{} tokens and {} targets do not form {batch} rows",
                    tokens.len(),
                    targets.len()
                ),
            ));
        }
        let (c, v) = (cfg.n_embd, cfg.vocab_size);
        if let Some(&bad) = tokens.iter().chain(targets).find(|&&id| id as usize >= v) {
            return Err(Error::option(
                "tokens",
                format!("token id {bad} >= vocab_size {v}"),
            ));
        }
        if let Some(allowed) = allowed {
            if allowed.len() != tokens.len() * v {
                return Err(Error::option(
                    "allowed",
                    format!(
                        "{} mask entries for {} positions of {v} tokens",
                        allowed.len(),
                        tokens.len()
                    ),
                ));
            }
            if let Some(i) =
                (0..targets.len()).find(|&i| targets[i] != PAD && !allowed[i * v + targets[i] as usize])
            {
                return Err(Error::option(
                    "allowed",
                    format!("the target at position {i} (token {}) is masked out", targets[i]),
                ));
            }
        }
        self.params = model.parameters().into_iter().map(|(_, t)| t).collect();
        self.w.resize_with(self.params.len(), Vec::new);
        for (dst, t) in self.w.iter_mut().zip(&self.params) {
            crate::cpu::copy_f32_into(t, dst)?;
        }
        self.prefix = match prefix {
            None => None,
            Some(pre) => {
                let (pb, p, pc) = pre.dims3()?;
                if pc != c || (pb != 1 && pb != batch) {
                    return Err(Error::option(
                        "prefix",
                        format!("shape {:?} does not fit batch {batch} and n_embd {c}", pre.dims()),
                    ));
                }
                Some((pre.clone(), pre.flatten_all()?.to_vec1::<f32>()?, pb, p))
            }
        };
        let p = self.prefix.as_ref().map_or(0, |x| x.3);
        self.kv_prefix = match model.kv_prefix() {
            None => None,
            Some(kv) => Some((kv.clone(), kv.flatten_all()?.to_vec1::<f32>()?)),
        };
        let k = model.kv_prefix_len();
        let t = tokens.len() / batch;
        if p + t > cfg.block_size {
            return Err(Error::option(
                "block_size",
                format!(
                    "cannot forward {} positions, block_size is {}",
                    p + t,
                    cfg.block_size
                ),
            ));
        }
        self.row_len.clear();
        self.row_off.clear();
        self.tok_index.clear();
        let mut n = 0;
        for (bi, row) in targets.chunks(t).enumerate() {
            let len = row.iter().rposition(|&y| y != PAD).map_or(0, |i| i + 1);
            self.row_off.push(n);
            self.row_len.push(p + len);
            self.tok_index.extend((0..len).map(|pos| bi * t + pos));
            n += p + len;
        }
        let d = Dims {
            b: batch,
            t,
            p,
            k,
            n,
            c,
            nh: cfg.n_head,
            v,
            n_layer: cfg.n_layer,
            eps: cfg.layer_norm_eps as f32,
        };
        self.dims = d;
        self.tokens.clear();
        self.tokens.extend_from_slice(tokens);
        self.targets.clear();
        self.targets.extend_from_slice(targets);
        self.layers.resize_with(d.n_layer, LayerActs::default);

        // Embeddings: prefix vector or token embedding, plus the position embedding.
        let mut x = std::mem::take(&mut self.layers[0].x_in);
        resize(&mut x, n * c);
        let (wte, wpe) = (&self.w[WTE], &self.w[WPE]);
        for (row, xr) in x.chunks_mut(c).enumerate() {
            let (bi, pos) = self.position(row);
            let src = if pos < p {
                let (_, data, pb, _) = self.prefix.as_ref().expect("p > 0 only with a prefix");
                let pr = if *pb == 1 { 0 } else { bi };
                &data[(pr * p + pos) * c..][..c]
            } else {
                &wte[tokens[bi * t + pos - p] as usize * c..][..c]
            };
            let pe = &wpe[pos * c..][..c];
            for ((o, a), b) in xr.iter_mut().zip(src).zip(pe) {
                *o = a + b;
            }
        }
        self.layers[0].x_in = x;

        for l in 0..d.n_layer {
            let base = block_start(l);
            let w = &self.w[base..base + PER_LAYER];
            let (head, tail) = self.layers.split_at_mut(l + 1);
            let a = &mut head[l];
            resize(&mut a.ln1, n * c);
            a.ln1_stats.resize(n, (0.0, 0.0));
            layer_norm_fwd(&a.x_in, &w[LN1_W], &w[LN1_B], d.eps, &mut a.ln1, &mut a.ln1_stats);
            resize(&mut a.qkv, n * 3 * c);
            linear_fwd(&mut a.qkv, None, &a.ln1, &w[ATTN_W], &w[ATTN_B], n, c, 3 * c);
            resize(
                &mut a.att,
                d.nh * self.row_len.iter().map(|l| l * (d.k + l)).sum::<usize>(),
            );
            resize(&mut a.y, n * c);
            let kv = layer_prefix(&self.kv_prefix, l, d.k, c);
            attention_fwd(&d, &self.row_len, &a.qkv, kv, &mut a.att, &mut a.y);
            resize(&mut a.x_mid, n * c);
            linear_fwd(&mut a.x_mid, Some(&a.x_in), &a.y, &w[PROJ_W], &w[PROJ_B], n, c, c);
            resize(&mut a.ln2, n * c);
            a.ln2_stats.resize(n, (0.0, 0.0));
            layer_norm_fwd(
                &a.x_mid,
                &w[LN2_W],
                &w[LN2_B],
                d.eps,
                &mut a.ln2,
                &mut a.ln2_stats,
            );
            resize(&mut a.fc, n * 4 * c);
            linear_fwd(&mut a.fc, None, &a.ln2, &w[FC_W], &w[FC_B], n, c, 4 * c);
            resize(&mut a.gelu, n * 4 * c);
            par_rows(&a.fc, &mut a.gelu, 4 * c, gelu_fwd);
            let out = match tail.first_mut() {
                Some(next) => &mut next.x_in,
                None => &mut self.x_out,
            };
            resize(out, n * c);
            linear_fwd(out, Some(&a.x_mid), &a.gelu, &w[FCP_W], &w[FCP_B], n, 4 * c, c);
        }

        // Final LayerNorm at the token positions, tied head, log-softmax.
        let nt = self.tok_index.len();
        let x_tok = self.token_rows();
        let (lnf_w, lnf_b) = ln_f(self.w.len());
        let (lnf_w, lnf_b) = (&self.w[lnf_w], &self.w[lnf_b]);
        resize(&mut self.lnf, nt * c);
        self.lnf_stats.resize(nt, (0.0, 0.0));
        layer_norm_fwd(&x_tok, lnf_w, lnf_b, d.eps, &mut self.lnf, &mut self.lnf_stats);
        resize(&mut self.probs, nt * v);
        matmul(
            &mut self.probs,
            &self.lnf,
            false,
            &self.w[WTE],
            true,
            nt,
            v,
            c,
            false,
        );
        self.packed_targets.clear();
        self.packed_targets
            .extend(self.tok_index.iter().map(|&i| targets[i]));
        let packed_targets = &self.packed_targets;
        let mut packed_logp = vec![0f32; nt];
        self.probs
            .par_chunks_mut(v)
            .zip(packed_logp.par_iter_mut())
            .zip(packed_targets.par_iter().zip(self.tok_index.par_iter()))
            .for_each(|((row, lp), (&y, &ti))| {
                if let Some(allowed) = allowed {
                    // A masked-out logit of -inf has probability 0 and, in the backward, no
                    // gradient: the softmax of the allowed tokens alone.
                    for (z, &ok) in row.iter_mut().zip(&allowed[ti * v..(ti + 1) * v]) {
                        if !ok {
                            *z = f32::NEG_INFINITY;
                        }
                    }
                }
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let z_y = row[y as usize] - max;
                let mut sum = 0f32;
                for z in row.iter_mut() {
                    *z = (*z - max).exp();
                    sum += *z;
                }
                *lp = z_y - sum.ln();
                row.iter_mut().for_each(|z| *z /= sum);
            });
        let mut logp = vec![0f32; tokens.len()];
        for (&i, lp) in self.tok_index.iter().zip(packed_logp) {
            logp[i] = lp;
        }
        self.ready = true;
        Ok(logp)
    }

    /// `(batch row, position)` of packed row `row`.
    fn position(&self, row: usize) -> (usize, usize) {
        let bi = self.row_off.partition_point(|&o| o <= row) - 1;
        (bi, row - self.row_off[bi])
    }

    /// The final residual stream at the token positions (prefix positions skipped), `(n_tok, C)`.
    fn token_rows(&self) -> Vec<f32> {
        let d = self.dims;
        let x_last = match d.n_layer {
            0 => &self.layers[0].x_in,
            _ => &self.x_out,
        };
        let mut x_tok = Vec::with_capacity(self.tok_index.len() * d.c);
        for (&off, &len) in self.row_off.iter().zip(&self.row_len) {
            x_tok.extend_from_slice(&x_last[(off + d.p) * d.c..(off + len) * d.c]);
        }
        x_tok
    }

    /// Backward of `L = Σ_r weights[r] · (−log p(targets[r]))` through the last [`Self::forward`].
    /// Returns the gradients keyed by the model's weight tensors (and the prefix tensor), ready
    /// for [`crate::optim::AdamW`].
    pub fn backward(&mut self, weights: &[f32], target: GradTarget) -> Result<GradStore> {
        if !self.ready {
            return Err(Error::option("backward", "call forward first"));
        }
        let d = self.dims;
        let (c, v, n, nt) = (d.c, d.v, d.n, self.tok_index.len());
        if weights.len() != d.b * d.t {
            return Err(Error::option(
                "weights",
                format!("{} weights for {} token positions", weights.len(), d.b * d.t),
            ));
        }
        let mut packed_weights = vec![0f32; nt];
        let mut kept = vec![false; weights.len()];
        for (j, &i) in self.tok_index.iter().enumerate() {
            packed_weights[j] = weights[i];
            kept[i] = true;
        }
        if let Some(i) = (0..weights.len()).find(|&i| !kept[i] && weights[i] != 0.0) {
            return Err(Error::option(
                "weights",
                format!(
                    "weight {} on trailing padding (row {}, position {})",
                    weights[i],
                    i / d.t,
                    i % d.t
                ),
            ));
        }
        let packed_targets = &self.packed_targets;
        let want_w = target == GradTarget::Weights;
        let mut g: Vec<Vec<f32>> = if want_w {
            self.w.iter().map(|w| vec![0f32; w.len()]).collect()
        } else {
            vec![Vec::new(); self.w.len()]
        };

        // Head: dlogits = w · (softmax − onehot).
        resize(&mut self.d_logits, nt * v);
        self.d_logits
            .par_chunks_mut(v)
            .zip(self.probs.par_chunks(v))
            .zip(packed_weights.par_iter().zip(packed_targets.par_iter()))
            .for_each(|((dl, p), (&wr, &y))| {
                for (o, &pv) in dl.iter_mut().zip(p) {
                    *o = wr * pv;
                }
                dl[y as usize] -= wr;
            });
        if want_w {
            matmul(
                &mut g[WTE],
                &self.d_logits,
                true,
                &self.lnf,
                false,
                v,
                c,
                nt,
                true,
            );
        }
        resize(&mut self.d_lnf, nt * c);
        matmul(
            &mut self.d_lnf,
            &self.d_logits,
            false,
            &self.w[WTE],
            false,
            nt,
            c,
            v,
            false,
        );

        // Final LayerNorm, scattered back to the token rows of the residual stream.
        let x_tok = self.token_rows();
        let (lnf_w, lnf_b) = ln_f(self.w.len());
        let mut dx_tok = vec![0f32; nt * c];
        let (dlnf_w, dlnf_b) = layer_norm_bwd(
            &x_tok,
            &self.lnf_stats,
            &self.w[lnf_w],
            &self.d_lnf,
            &mut dx_tok,
            false,
        );
        if want_w {
            g[lnf_w] = dlnf_w;
            g[lnf_b] = dlnf_b;
        }
        self.dx.clear();
        resize(&mut self.dx, n * c);
        let mut src = dx_tok.chunks(c);
        for (&off, &len) in self.row_off.iter().zip(&self.row_len) {
            for row in off + d.p..off + len {
                self.dx[row * c..][..c].copy_from_slice(src.next().expect("one per token row"));
            }
        }

        let mut d_kv_prefix = self.kv_prefix.as_ref().map(|(_, data)| vec![0f32; data.len()]);
        let mut reached_embeddings = true;
        for l in (0..d.n_layer).rev() {
            let base = block_start(l);
            let w = &self.w[base..base + PER_LAYER];
            let a = &self.layers[l];
            let gl = &mut g[base..base + PER_LAYER];
            reached_embeddings = l > 0 || want_w || self.prefix.is_some();
            // MLP: x_out = x_mid + gelu(ln2 · Wfc + bfc) · Wfcp + bfcp.
            if want_w {
                col_sums(&self.dx, c, &mut gl[FCP_B]);
                matmul(&mut gl[FCP_W], &self.dx, true, &a.gelu, false, c, 4 * c, n, true);
            }
            resize(&mut self.d_wide, n * 4 * c);
            matmul(
                &mut self.d_wide,
                &self.dx,
                false,
                &w[FCP_W],
                false,
                n,
                4 * c,
                c,
                false,
            );
            gelu_bwd_in_place(&a.fc, &mut self.d_wide, 4 * c);
            if want_w {
                col_sums(&self.d_wide, 4 * c, &mut gl[FC_B]);
                matmul(
                    &mut gl[FC_W],
                    &self.d_wide,
                    true,
                    &a.ln2,
                    false,
                    4 * c,
                    c,
                    n,
                    true,
                );
            }
            resize(&mut self.d_small, n * c);
            matmul(
                &mut self.d_small,
                &self.d_wide,
                false,
                &w[FC_W],
                false,
                n,
                c,
                4 * c,
                false,
            );
            let (dw, db) = layer_norm_bwd(
                &a.x_mid,
                &a.ln2_stats,
                &w[LN2_W],
                &self.d_small,
                &mut self.dx,
                true,
            );
            if want_w {
                gl[LN2_W] = dw;
                gl[LN2_B] = db;
            }
            // Attention: x_mid = x_in + attn(ln1) · Wproj + bproj.
            if want_w {
                col_sums(&self.dx, c, &mut gl[PROJ_B]);
                matmul(&mut gl[PROJ_W], &self.dx, true, &a.y, false, c, c, n, true);
            }
            matmul(
                &mut self.d_small,
                &self.dx,
                false,
                &w[PROJ_W],
                false,
                n,
                c,
                c,
                false,
            );
            resize(&mut self.d_qkv, n * 3 * c);
            let kv = layer_prefix(&self.kv_prefix, l, d.k, c);
            let d_kv = attention_bwd(
                &d,
                &self.row_len,
                &a.qkv,
                kv,
                &a.att,
                &self.d_small,
                &mut self.d_qkv,
            );
            if let Some(dk) = d_kv_prefix.as_mut() {
                dk[l * 2 * d.k * c..][..2 * d.k * c].copy_from_slice(&d_kv);
            }
            // Nothing below the first layer's attention needs a gradient when only a deep
            // prefix is trained.
            if l == 0 && !want_w && self.prefix.is_none() {
                break;
            }
            if want_w {
                col_sums(&self.d_qkv, 3 * c, &mut gl[ATTN_B]);
                matmul(
                    &mut gl[ATTN_W],
                    &self.d_qkv,
                    true,
                    &a.ln1,
                    false,
                    3 * c,
                    c,
                    n,
                    true,
                );
            }
            matmul(
                &mut self.d_small,
                &self.d_qkv,
                false,
                &w[ATTN_W],
                false,
                n,
                c,
                3 * c,
                false,
            );
            let (dw, db) = layer_norm_bwd(
                &a.x_in,
                &a.ln1_stats,
                &w[LN1_W],
                &self.d_small,
                &mut self.dx,
                true,
            );
            if want_w {
                gl[LN1_W] = dw;
                gl[LN1_B] = db;
            }
        }

        // Embeddings: position, token, prefix.
        let mut d_prefix = self.prefix.as_ref().map(|(_, data, _, _)| vec![0f32; data.len()]);
        let embedding_rows = if reached_embeddings { n } else { 0 };
        for (row, dxr) in self.dx.chunks(c).take(embedding_rows).enumerate() {
            let (bi, pos) = self.position(row);
            if want_w {
                add_to(&mut g[WPE][pos * c..][..c], dxr);
            }
            if pos < d.p {
                if let (Some(dp), Some((_, _, pb, _))) = (d_prefix.as_mut(), self.prefix.as_ref()) {
                    let pr = if *pb == 1 { 0 } else { bi };
                    add_to(&mut dp[(pr * d.p + pos) * c..][..c], dxr);
                }
            } else if want_w {
                let tok = self.tokens[bi * d.t + pos - d.p] as usize;
                add_to(&mut g[WTE][tok * c..][..c], dxr);
            }
        }

        let mut store = GradStore::default();
        if want_w {
            for (t, gv) in self.params.iter().zip(g) {
                store.insert(t, Tensor::from_vec(gv, t.shape(), t.device())?);
            }
        }
        if let (Some(dp), Some((t, _, _, _))) = (d_prefix, self.prefix.as_ref()) {
            store.insert(t, Tensor::from_vec(dp, t.shape(), t.device())?);
        }
        if let (Some(dk), Some((t, _))) = (d_kv_prefix, self.kv_prefix.as_ref()) {
            store.insert(t, Tensor::from_vec(dk, t.shape(), t.device())?);
        }
        Ok(store)
    }
}

/// [`TrainPass`]es over length-sorted chunks of a batch of sequences of different lengths, so
/// that short sequences do not pay for the longest one's padding (RL batches mix lengths; the
/// gradient is a sum over tokens, so chunking leaves it unchanged).
#[derive(Default)]
pub struct ChunkedPass {
    passes: Vec<TrainPass>,
    chunks: Vec<(Vec<usize>, usize)>, // (row indices, padded width)
    lens: Vec<usize>,
}

impl ChunkedPass {
    /// Rows per chunk: big enough for efficient GEMMs, small enough to group similar lengths.
    pub const CHUNK_ROWS: usize = 64;

    /// An empty pass; buffers are reused across calls.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forward over `rows` of `(input, target)` ids (equal lengths within a row, any length
    /// across rows, empty allowed) after an optional prefix `(1, P, n_embd)` shared by all rows.
    /// Returns `log p(target)` per row and token, and keeps every chunk's activations for
    /// [`Self::backward`]. `allowed`: per row, its positions' token masks (`len × V`), as
    /// [`TrainPass::forward`] takes them.
    pub fn forward(
        &mut self,
        model: &Gpt,
        rows: &[(&[u32], &[u32])],
        prefix: Option<&Tensor>,
        allowed: Option<&[Vec<bool>]>,
    ) -> Result<Vec<Vec<f32>>> {
        self.run(model, rows, prefix, allowed, true)
    }

    /// [`Self::forward`] without a backward to follow (e.g. the frozen prior's log-probs): the
    /// chunks take turns in one set of buffers, so memory is one chunk's, not the batch's.
    pub fn log_probs(
        &mut self,
        model: &Gpt,
        rows: &[(&[u32], &[u32])],
        prefix: Option<&Tensor>,
        allowed: Option<&[Vec<bool>]>,
    ) -> Result<Vec<Vec<f32>>> {
        let out = self.run(model, rows, prefix, allowed, false);
        self.chunks.clear(); // nothing to go backward through
        self.lens.clear();
        out
    }

    fn run(
        &mut self,
        model: &Gpt,
        rows: &[(&[u32], &[u32])],
        prefix: Option<&Tensor>,
        allowed: Option<&[Vec<bool>]>,
        keep: bool,
    ) -> Result<Vec<Vec<f32>>> {
        let v = model.config().vocab_size;
        if let Some(allowed) = allowed {
            if let Some(r) =
                (0..rows.len()).find(|&r| allowed.get(r).map(Vec::len) != Some(rows[r].0.len() * v))
            {
                return Err(Error::option(
                    "allowed",
                    format!(
                        "row {r}: the mask does not cover its {} positions of {v} tokens",
                        rows[r].0.len()
                    ),
                ));
            }
        }
        if let Some(pre) = prefix {
            if pre.dim(0)? != 1 {
                return Err(Error::option(
                    "prefix",
                    "a chunked pass takes one prefix shared by all rows",
                ));
            }
        }
        self.lens = rows.iter().map(|(i, _)| i.len()).collect();
        let mut order: Vec<usize> = (0..rows.len()).filter(|&r| self.lens[r] > 0).collect();
        order.sort_by_key(|&r| self.lens[r]);
        self.chunks = order
            .chunks(Self::CHUNK_ROWS)
            .map(|c| (c.to_vec(), c.iter().map(|&r| self.lens[r]).max().unwrap_or(0)))
            .collect();
        let needed = if keep { self.chunks.len() } else { 1 };
        if self.passes.len() < needed {
            self.passes.resize_with(needed, TrainPass::new);
        }
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); rows.len()];
        for (i, (idx, t)) in self.chunks.iter().enumerate() {
            let pass = &mut self.passes[if keep { i } else { 0 }];
            let (mut input, mut target) = (vec![PAD; idx.len() * t], vec![PAD; idx.len() * t]);
            // Padding positions allow every token: they carry no target and no loss.
            let mut mask = allowed.map(|_| vec![true; idx.len() * t * v]);
            for (j, &r) in idx.iter().enumerate() {
                let (i, g) = rows[r];
                if g.len() != i.len() {
                    return Err(Error::option(
                        "rows",
                        format!("row {r}: {} inputs, {} targets", i.len(), g.len()),
                    ));
                }
                input[j * t..j * t + i.len()].copy_from_slice(i);
                target[j * t..j * t + i.len()].copy_from_slice(g);
                if let (Some(mask), Some(allowed)) = (mask.as_mut(), allowed) {
                    mask[j * t * v..(j * t + i.len()) * v].copy_from_slice(&allowed[r]);
                }
            }
            let lp = pass.forward(model, &input, &target, idx.len(), prefix, mask.as_deref())?;
            for (j, &r) in idx.iter().enumerate() {
                out[r] = lp[j * t..j * t + self.lens[r]].to_vec();
            }
        }
        Ok(out)
    }

    /// Backward of `Σ_r Σ_t weights[r][t] · (−log p)` through the last [`Self::forward`]; the
    /// chunks' gradients are summed.
    pub fn backward(&mut self, weights: &[Vec<f32>], target: GradTarget) -> Result<GradStore> {
        if weights.len() != self.lens.len() {
            return Err(Error::option(
                "weights",
                format!("{} rows of weights for {} rows", weights.len(), self.lens.len()),
            ));
        }
        let mut total = GradStore::default();
        for ((idx, t), pass) in self.chunks.iter().zip(&mut self.passes) {
            let mut w = vec![0f32; idx.len() * t];
            for (j, &r) in idx.iter().enumerate() {
                let n = self.lens[r].min(weights[r].len());
                w[j * t..j * t + n].copy_from_slice(&weights[r][..n]);
            }
            let grads = pass.backward(&w, target)?;
            for id in grads.get_ids().copied().collect::<Vec<_>>() {
                let g = grads.get_id(id).expect("listed id").clone();
                let sum = match total.get_id(id) {
                    Some(prev) => (prev + g)?,
                    None => g,
                };
                total.insert_id(id, sum);
            }
        }
        Ok(total)
    }
}

/// Splits `buf` into consecutive pieces of `len · width` for each `len` of `lens`.
fn split_rows<'a, T>(mut buf: &'a [T], lens: &[usize], width: impl Fn(usize) -> usize) -> Vec<&'a [T]> {
    lens.iter()
        .map(|&l| {
            let (head, rest) = buf.split_at(width(l));
            buf = rest;
            head
        })
        .collect()
}

/// [`split_rows`] for a mutable buffer.
fn split_rows_mut<'a, T>(
    mut buf: &'a mut [T],
    lens: &[usize],
    width: impl Fn(usize) -> usize,
) -> Vec<&'a mut [T]> {
    lens.iter()
        .map(|&l| {
            let (head, rest) = std::mem::take(&mut buf).split_at_mut(width(l));
            buf = rest;
            head
        })
        .collect()
}

/// Layer `l`'s deep-prefix keys and values, `(K, C)` each, from the `(n_layer, 2, K, C)` data.
fn layer_prefix(kv: &Option<(Tensor, Vec<f32>)>, l: usize, k: usize, c: usize) -> (&[f32], &[f32]) {
    match kv {
        None => (&[], &[]),
        Some((_, data)) => {
            let layer = &data[l * 2 * k * c..][..2 * k * c];
            layer.split_at(k * c)
        }
    }
}

/// Causal attention per batch row (of `lens` positions, packed) and head, after `K` deep-prefix
/// keys and values `kv` seen by every position:
/// `y_t = Σ_{s<K} a_ts pv_s + Σ_{s≤t} a_t(K+s) v_s`, `a_t = softmax(q_t·[pk; k_≤t] / √hd)`.
fn attention_fwd(
    d: &Dims,
    lens: &[usize],
    qkv: &[f32],
    kv: (&[f32], &[f32]),
    att: &mut [f32],
    y: &mut [f32],
) {
    let (c, nh, k) = (d.c, d.nh, d.k);
    split_rows_mut(y, lens, |l| l * c)
        .into_par_iter()
        .zip(split_rows_mut(att, lens, |l| nh * l * (k + l)))
        .zip(split_rows(qkv, lens, |l| l * 3 * c))
        .zip(lens)
        .for_each(|(((y, att), qkv), &tt)| attention_fwd_row(tt, c, nh, k, kv.0, kv.1, qkv, att, y));
}

/// [`attention_fwd`] for one batch row: `qkv (TT, 3C)`, `att (nh, TT, K + TT)`, `y (TT, C)`;
/// `pk, pv (K, C)` the deep prefix.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attention_fwd_row_body(
    tt: usize,
    c: usize,
    nh: usize,
    k: usize,
    pk: &[f32],
    pv: &[f32],
    qkv: &[f32],
    att: &mut [f32],
    y: &mut [f32],
) {
    let hd = c / nh;
    let scale = 1.0 / (hd as f32).sqrt();
    let width = k + tt;
    // Per head, as small matrix products on the heads' columns in place: scores against the
    // prefix's keys and the sequence's, the causal softmax (zeros past each row's last key),
    // then the values. Whole products, masked after, do twice the arithmetic of the causal half
    // and still took a third less CPU than a dot product per (query, key) pair (perf, a batch of
    // 164 × 50 tokens at n_embd 128 and of 64 × 60 at n_embd 256).
    for h in 0..nh {
        let v = HeadViews::new(h, hd, c, k, tt);
        small_matmul(att, v.p_prefix, qkv, v.q, pk, v.prefix_keys.t(), false, scale);
        small_matmul(att, v.p_seq, qkv, v.q, qkv, v.keys.t(), false, scale);
        for t in 0..tt {
            let row = &mut att[v.a0 + t * width..][..width];
            softmax_in_place(&mut row[..=k + t]);
            row[k + t + 1..].fill(0.0);
        }
        small_matmul(y, v.y, att, v.p_prefix, pv, v.prefix_values, false, 1.0);
        small_matmul(y, v.y, att, v.p_seq, qkv, v.values, true, 1.0);
    }
}

/// Where head `h`'s matrices lie in one batch row's buffers, for the attention's forward and
/// backward alike: its probabilities in `att (nh, TT, K + TT)` (from `a0`; the prefix's `K`
/// columns, then the sequence's `TT`), its queries, keys and values in `qkv (TT, 3C)`, the
/// deep prefix's keys and values in `pk, pv (K, C)`, and its output columns in `y (TT, C)`
/// (the backward reads `dy` there).
struct HeadViews {
    a0: usize,
    p_prefix: View,
    p_seq: View,
    q: View,
    prefix_keys: View,
    keys: View,
    prefix_values: View,
    values: View,
    y: View,
}

impl HeadViews {
    fn new(h: usize, hd: usize, c: usize, k: usize, tt: usize) -> Self {
        let (a0, width, col) = (h * tt * (k + tt), k + tt, h * hd);
        Self {
            a0,
            p_prefix: View::rows(a0, tt, k, width),
            p_seq: View::rows(a0 + k, tt, tt, width),
            q: View::rows(col, tt, hd, 3 * c),
            prefix_keys: View::rows(col, k, hd, c),
            keys: View::rows(c + col, tt, hd, 3 * c),
            prefix_values: View::rows(col, k, hd, c),
            values: View::rows(2 * c + col, tt, hd, 3 * c),
            y: View::rows(col, tt, hd, c),
        }
    }
}

/// Backward of [`attention_fwd`]: `dy (N, C)` → `dqkv (N, 3C)`; returns the deep prefix's
/// gradient `(2, K, C)` (keys, then values), summed over the rows.
#[allow(clippy::too_many_arguments)]
fn attention_bwd(
    d: &Dims,
    lens: &[usize],
    qkv: &[f32],
    kv: (&[f32], &[f32]),
    att: &[f32],
    dy: &[f32],
    dqkv: &mut [f32],
) -> Vec<f32> {
    let (c, nh, k) = (d.c, d.nh, d.k);
    let w = (2 * k * c).max(1); // one partial per row, summed below (chunks cannot be empty)
    let mut d_kv = vec![0f32; lens.len() * w];
    split_rows_mut(dqkv, lens, |l| l * 3 * c)
        .into_par_iter()
        .zip(split_rows(att, lens, |l| nh * l * (k + l)))
        .zip(
            split_rows(qkv, lens, |l| l * 3 * c)
                .into_par_iter()
                .zip(split_rows(dy, lens, |l| l * c)),
        )
        .zip(lens.par_iter().zip(d_kv.par_chunks_mut(w)))
        .for_each(|(((dqkv, att), (qkv, dy)), (&tt, d_kv))| {
            attention_bwd_row(tt, c, nh, k, kv.0, kv.1, qkv, att, dy, dqkv, d_kv)
        });
    let mut total = vec![0f32; 2 * k * c];
    for part in d_kv.chunks(w) {
        add_to(&mut total, part);
    }
    total
}

/// [`attention_bwd`] for one batch row; `d_kv (2, K, C)` receives the prefix's gradient.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attention_bwd_row_body(
    tt: usize,
    c: usize,
    nh: usize,
    k: usize,
    pk: &[f32],
    pv: &[f32],
    qkv: &[f32],
    att: &[f32],
    dy: &[f32],
    dqkv: &mut [f32],
    d_kv: &mut [f32],
) {
    let hd = c / nh;
    let scale = 1.0 / (hd as f32).sqrt();
    let width = k + tt;
    let (d_pk, d_pv) = d_kv.split_at_mut(k * c);
    // The forward's products, backwards: dP = dY·Vᵀ, the softmax's backward dS, then
    // dQ = dS·K, dK = dSᵀ·Q, dV = Pᵀ·dY, each over the prefix's keys and the sequence's. P is 0
    // past each row's last key, so dS is too and the whole products stay causal.
    let mut ds = vec![0f32; tt * width];
    let (ds_prefix, ds_seq) = (View::rows(0, tt, k, width), View::rows(k, tt, tt, width));
    for h in 0..nh {
        let v = HeadViews::new(h, hd, c, k, tt);
        small_matmul(&mut ds, ds_prefix, dy, v.y, pv, v.prefix_values.t(), false, 1.0);
        small_matmul(&mut ds, ds_seq, dy, v.y, qkv, v.values.t(), false, 1.0);
        for t in 0..tt {
            let p = &att[v.a0 + t * width..][..=k + t];
            let row = &mut ds[t * width..][..width];
            let weighted = lane_sum(p.len(), |s| p[s] * row[s]);
            for (d, &p) in row.iter_mut().zip(p) {
                *d = p * (*d - weighted) * scale;
            }
            row[k + t + 1..].fill(0.0);
        }
        small_matmul(dqkv, v.q, &ds, ds_prefix, pk, v.prefix_keys, false, 1.0);
        small_matmul(dqkv, v.q, &ds, ds_seq, qkv, v.keys, true, 1.0);
        small_matmul(dqkv, v.keys, &ds, ds_seq.t(), qkv, v.q, false, 1.0);
        small_matmul(dqkv, v.values, att, v.p_seq.t(), dy, v.y, false, 1.0);
        small_matmul(d_pk, v.prefix_keys, &ds, ds_prefix.t(), qkv, v.q, false, 1.0);
        small_matmul(d_pv, v.prefix_values, att, v.p_prefix.t(), dy, v.y, false, 1.0);
    }
}

dispatch!(attention_fwd_row, attention_fwd_row_at, attention_fwd_row_body,
    (tt: usize, c: usize, nh: usize, k: usize, pk: &[f32], pv: &[f32], qkv: &[f32], att: &mut [f32], y: &mut [f32]));
dispatch!(attention_bwd_row, attention_bwd_row_at, attention_bwd_row_body,
    (tt: usize, c: usize, nh: usize, k: usize, pk: &[f32], pv: &[f32], qkv: &[f32], att: &[f32], dy: &[f32], dqkv: &mut [f32], d_kv: &mut [f32]));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use candle_core::{Device, Var};
    use candle_nn::VarMap;

    fn tiny(prefix_rows: Option<usize>) -> (Gpt, VarMap, Option<Var>) {
        let (model, varmap) = crate::testing::tiny_gpt(11, 16, 16, 7);
        let mut rng = Rng::new(3);
        crate::testing::perturb(&varmap, 0.3, &mut rng);
        let prefix = prefix_rows.map(|rows| {
            let data: Vec<f32> = (0..rows * 2 * 16).map(|_| (rng.normal() * 0.5) as f32).collect();
            Var::from_tensor(&Tensor::from_vec(data, (rows, 2, 16), &Device::Cpu).unwrap()).unwrap()
        });
        (model, varmap, prefix)
    }

    /// Three rows of 5 positions; rows 1 and 2 end early (trailing PAD targets, weight 0), and
    /// row 0 has a PAD target mid-row, which must be kept.
    fn batch() -> (Vec<u32>, Vec<u32>, Vec<f32>) {
        let (b, t) = (3, 5);
        let tokens: Vec<u32> = (0..b * t).map(|i| ((i * 7 + 3) % 11) as u32).collect();
        let mut targets: Vec<u32> = (0..b * t).map(|i| (i * 5 + 1) as u32 % 10 + 1).collect();
        targets[2] = PAD;
        // Uneven weights, some zero, some negative (REINFORCE advantages).
        let mut weights: Vec<f32> = (0..b * t).map(|i| [0.3, -0.7, 0.0, 1.1, 0.5][i % 5]).collect();
        for i in [t + 3, t + 4, 2 * t + 4] {
            targets[i] = PAD;
            weights[i] = 0.0;
        }
        (tokens, targets, weights)
    }

    fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let scale = a.iter().map(|x| x.abs()).fold(1e-3, f32::max);
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / scale
    }

    /// A deep prefix `(2 layers, 2, K, 16)` of noise, as a variable.
    fn deep_prefix(k: usize) -> Var {
        let mut rng = Rng::new(11);
        let data: Vec<f32> = (0..2 * 2 * k * 16).map(|_| (rng.normal() * 0.8) as f32).collect();
        Var::from_tensor(&Tensor::from_vec(data, (2, 2, k, 16), &Device::Cpu).unwrap()).unwrap()
    }

    /// Forward and every gradient agree with candle's autograd through `Gpt::forward`.
    fn check(prefix_rows: Option<usize>, target: GradTarget) {
        check_with(prefix_rows, None, target)
    }

    /// [`check`] with a deep prefix of `deep` keys per layer.
    fn check_with(prefix_rows: Option<usize>, deep: Option<usize>, target: GradTarget) {
        let (model, varmap, prefix) = tiny(prefix_rows);
        let kv = deep.map(deep_prefix);
        let model = model
            .with_kv_prefix(kv.as_ref().map(|v| v.as_tensor().clone()))
            .unwrap();
        let (tokens, targets, weights) = batch();
        let b = 3;
        let t = tokens.len() / b;
        let pre = prefix.as_ref().map(Var::as_tensor);

        let mut pass = TrainPass::new();
        let logp = pass.forward(&model, &tokens, &targets, b, pre, None).unwrap();
        let grads = pass.backward(&weights, target).unwrap();

        let dev = Device::Cpu;
        let idx = Tensor::from_vec(tokens.clone(), (b, t), &dev).unwrap();
        let tg = Tensor::from_vec(targets.clone(), (b, t), &dev).unwrap();
        let lp_ref = crate::gpt::token_log_probs(&model.forward(&idx, pre).unwrap(), &tg).unwrap();
        // Trailing padding is dropped: its log-prob comes back as 0.
        let lp_ref_v = lp_ref.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (i, (&a, &e)) in logp.iter().zip(&lp_ref_v).enumerate() {
            let trailing = targets[i] == PAD && targets[i..(i / t + 1) * t].iter().all(|&y| y == PAD);
            let expected = if trailing { 0.0 } else { e };
            assert!(
                (a - expected).abs() < 1e-5 * e.abs().max(1.0),
                "log-prob {i}: {a} vs {expected}"
            );
        }
        let w = Tensor::from_vec(weights, (b, t), &dev).unwrap();
        let loss = (lp_ref * w).unwrap().sum_all().unwrap().neg().unwrap();
        let reference = loss.backward().unwrap();

        let mut checked = 0;
        if target == GradTarget::Weights {
            for (name, var) in varmap.data().lock().unwrap().iter() {
                let r = reference.get(var).expect("reference gradient");
                let ours = grads.get(var).unwrap_or_else(|| panic!("no gradient for {name}"));
                let diff = max_rel_diff(r, ours);
                assert!(diff < 1e-4, "{name}: gradient differs by {diff}");
                checked += 1;
            }
        } else {
            for var in varmap.all_vars() {
                assert!(
                    grads.get(&var).is_none(),
                    "prefix-only pass formed a weight gradient"
                );
            }
        }
        if let Some(p) = &prefix {
            let diff = max_rel_diff(reference.get(p).unwrap(), grads.get(p).expect("prefix gradient"));
            assert!(diff < 1e-4, "prefix gradient differs by {diff}");
            checked += 1;
        }
        if let Some(kv) = &kv {
            let r = reference.get(kv).expect("reference deep-prefix gradient");
            let norm: f32 = r.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(norm > 1e-3, "the deep prefix gets no gradient");
            let diff = max_rel_diff(r, grads.get(kv).expect("deep-prefix gradient"));
            assert!(diff < 1e-4, "deep-prefix gradient differs by {diff}");
            checked += 1;
        }
        assert!(checked > 0);
    }

    #[test]
    fn deep_prefix_gradient_matches_autograd() {
        check_with(None, Some(3), GradTarget::PrefixOnly);
        check_with(None, Some(1), GradTarget::Weights);
        check_with(Some(1), Some(2), GradTarget::Weights);
    }

    /// With a token mask, log-probs and every weight gradient are those of the softmax over the
    /// allowed tokens: candle's autograd on logits pushed to -1e9 where masked.
    #[test]
    fn masked_softmax_matches_autograd() {
        let (model, varmap, _) = tiny(None);
        let (tokens, targets, weights) = batch();
        let (b, t, v) = (3, 5, 11);
        let allowed: Vec<bool> = (0..b * t * v)
            .map(|j| ((j / v) * 3 + (j % v) * 5) % 4 != 0 || j % v == targets[j / v] as usize)
            .collect();
        let mut pass = TrainPass::new();
        let logp = pass
            .forward(&model, &tokens, &targets, b, None, Some(&allowed))
            .unwrap();
        let grads = pass.backward(&weights, GradTarget::Weights).unwrap();
        let plain = TrainPass::new()
            .forward(&model, &tokens, &targets, b, None, None)
            .unwrap();

        let dev = Device::Cpu;
        let idx = Tensor::from_vec(tokens.clone(), (b, t), &dev).unwrap();
        let tg = Tensor::from_vec(targets.clone(), (b, t), &dev).unwrap();
        let add: Vec<f32> = allowed.iter().map(|&ok| if ok { 0.0 } else { -1e9 }).collect();
        let add = Tensor::from_vec(add, (b, t, v), &dev).unwrap();
        let logits = (model.forward(&idx, None).unwrap() + add).unwrap();
        let lp_ref = crate::gpt::token_log_probs(&logits, &tg).unwrap();
        let lp_ref_v = lp_ref.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut moved = 0;
        for (i, (&a, &e)) in logp.iter().zip(&lp_ref_v).enumerate() {
            let trailing = targets[i] == PAD && targets[i..(i / t + 1) * t].iter().all(|&y| y == PAD);
            if trailing {
                continue;
            }
            assert!(
                (a - e).abs() < 1e-5 * e.abs().max(1.0),
                "log-prob {i}: {a} vs {e}"
            );
            moved += usize::from((a - plain[i]).abs() > 1e-3);
        }
        assert!(moved > 3, "the mask changed only {moved} log-probs");
        let w = Tensor::from_vec(weights, (b, t), &dev).unwrap();
        let reference = (lp_ref * w)
            .unwrap()
            .sum_all()
            .unwrap()
            .neg()
            .unwrap()
            .backward()
            .unwrap();
        for (name, var) in varmap.data().lock().unwrap().iter() {
            let diff = max_rel_diff(reference.get(var).unwrap(), grads.get(var).unwrap());
            assert!(diff < 1e-4, "{name}: gradient differs by {diff}");
        }
        // A target the mask forbids is an error, not a log-prob of -inf.
        let mut forbid = allowed.clone();
        forbid[targets[0] as usize] = false;
        let err = pass
            .forward(&model, &tokens, &targets, b, None, Some(&forbid))
            .unwrap_err();
        assert!(err.to_string().contains("masked out"), "{err}");
    }

    /// A deep prefix of length 0 is the plain model, bit for bit.
    #[test]
    fn empty_deep_prefix_is_the_plain_model() {
        let (model, _, _) = tiny(None);
        let (tokens, targets, _) = batch();
        let plain = TrainPass::new()
            .forward(&model, &tokens, &targets, 3, None, None)
            .unwrap();
        let empty = Tensor::zeros((2, 2, 0, 16), DType::F32, &Device::Cpu).unwrap();
        let with = model.with_kv_prefix(Some(empty)).unwrap();
        let mut pass = TrainPass::new();
        assert_eq!(
            pass.forward(&with, &tokens, &targets, 3, None, None).unwrap(),
            plain
        );
        let (_, _, weights) = batch();
        let grads = pass.backward(&weights, GradTarget::PrefixOnly).unwrap();
        assert!(grads
            .get_ids()
            .all(|id| grads.get_id(*id).unwrap().elem_count() == 0));
    }

    #[test]
    fn gradients_match_autograd() {
        check(None, GradTarget::Weights);
    }

    #[test]
    fn gradients_match_autograd_with_shared_prefix() {
        check(Some(1), GradTarget::Weights);
    }

    #[test]
    fn prefix_only_gradient_matches_autograd_per_row_prefix() {
        check(Some(3), GradTarget::PrefixOnly);
    }

    /// Chunks of sorted lengths give the unchunked pass's log-probs and summed gradients.
    #[test]
    fn chunked_pass_matches_one_padded_batch() {
        let (model, varmap, _) = tiny(None);
        let n = ChunkedPass::CHUNK_ROWS + 9; // two chunks
        let seqs: Vec<Vec<u32>> = (0..n)
            .map(|r| {
                (0..1 + r % 7)
                    .map(|i| ((r * 3 + i * 5) % 10 + 1) as u32)
                    .collect()
            })
            .collect();
        let rows: Vec<(&[u32], &[u32])> = seqs.iter().map(|s| (&s[..s.len() - 1], &s[1..])).collect();
        let weights: Vec<Vec<f32>> = rows
            .iter()
            .enumerate()
            .map(|(r, (i, _))| vec![0.1 + (r % 3) as f32 * 0.2; i.len()])
            .collect();
        let mut chunked = ChunkedPass::new();
        let lp_only = chunked.log_probs(&model, &rows, None, None).unwrap();
        let lp = chunked.forward(&model, &rows, None, None).unwrap();
        assert_eq!(lp_only, lp, "forward-only log-probs differ");
        let grads = chunked.backward(&weights, GradTarget::Weights).unwrap();

        let t = 6;
        let (mut input, mut target, mut w) = (vec![0u32; n * t], vec![0u32; n * t], vec![0f32; n * t]);
        for (r, (i, g)) in rows.iter().enumerate() {
            input[r * t..r * t + i.len()].copy_from_slice(i);
            target[r * t..r * t + i.len()].copy_from_slice(g);
            w[r * t..r * t + i.len()].copy_from_slice(&weights[r]);
        }
        let mut pass = TrainPass::new();
        let lp_ref = pass.forward(&model, &input, &target, n, None, None).unwrap();
        let reference = pass.backward(&w, GradTarget::Weights).unwrap();
        for (r, row) in lp.iter().enumerate() {
            assert_eq!(row.len(), rows[r].0.len());
            for (k, v) in row.iter().enumerate() {
                assert!((v - lp_ref[r * t + k]).abs() < 1e-5);
            }
        }
        for var in varmap.all_vars() {
            let diff = max_rel_diff(reference.get(&var).unwrap(), grads.get(&var).unwrap());
            assert!(diff < 1e-4, "chunked gradient differs by {diff}");
        }
    }

    /// A weight on dropped trailing padding is a caller's mistake, reported, not ignored.
    #[test]
    fn weight_on_trailing_padding_is_an_error() {
        let (model, _, _) = tiny(None);
        let (tokens, targets, mut weights) = batch();
        let mut pass = TrainPass::new();
        pass.forward(&model, &tokens, &targets, 3, None, None).unwrap();
        weights[5 + 4] = 0.5;
        let err = pass
            .backward(&weights, GradTarget::Weights)
            .unwrap_err()
            .to_string();
        assert!(err.contains("trailing padding"), "{err}");
    }

    #[test]
    fn backward_before_forward_is_an_error() {
        assert!(TrainPass::new().backward(&[], GradTarget::Weights).is_err());
    }
}
