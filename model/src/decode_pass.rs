//! Incremental decoding for the CPU written out by hand: one position per call for every live
//! row, keys and values in preallocated per-layer caches (after llm.c's inference loop).
//!
//! Why not [`Gpt::forward_cached`]: for one token per row each candle op allocates its output and
//! several need a copy (transposes, cache writes), and the per-op overhead is a large share of a
//! step this small. Here the buffers are reused across steps and the cache is written in place.
//! The maths is [`Gpt::forward`]'s; the tests compare logits with it.

use crate::gpt::Gpt;
use crate::ops::{dispatch, dot, gelu_fwd};
use crate::train_pass::{axpy, layer_norm_fwd, linear_fwd, par_rows, TrainPass};
use crate::{Error, Result};
use rayon::prelude::*;

/// Parameter tensors per block, in [`Gpt::parameters`] order.
const PER_LAYER: usize = 12;

/// A decoder over a copy of a model's weights; [`Decoder::start`] begins a batch.
pub struct Decoder {
    w: Vec<Vec<f32>>,
    c: usize,
    nh: usize,
    v: usize,
    block: usize,
    eps: f32,
    n_layer: usize,
    rows: usize,
    len: usize,
    /// Positions the caches hold per row in this batch (≤ `block`).
    cap: usize,
    k: Vec<Vec<f32>>, // per layer (rows, nh, cap, hd)
    val: Vec<Vec<f32>>,
    x: Vec<f32>, // (rows, C) residual stream
    h: Vec<f32>, // (rows, C) LayerNorm output / attention output
    stats: Vec<(f32, f32)>,
    qkv: Vec<f32>, // (rows, 3C)
    x2: Vec<f32>,  // (rows, C)
    fc: Vec<f32>,  // (rows, 4C)
    act: Vec<f32>,
    logits: Vec<f32>, // (rows, V)
}

impl Decoder {
    /// Whether the hand-written decoder can run `model` (f32 weights on the CPU).
    pub fn supports(model: &Gpt) -> bool {
        TrainPass::supports(model)
    }

    /// A decoder over a copy of `model`'s current weights.
    pub fn new(model: &Gpt) -> Result<Self> {
        let cfg = model.config();
        let w = model
            .parameters()
            .iter()
            .map(|(_, t)| t.flatten_all()?.to_vec1::<f32>())
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            w,
            c: cfg.n_embd,
            nh: cfg.n_head,
            v: cfg.vocab_size,
            block: cfg.block_size,
            eps: cfg.layer_norm_eps as f32,
            n_layer: cfg.n_layer,
            rows: 0,
            len: 0,
            cap: 0,
            k: vec![Vec::new(); cfg.n_layer],
            val: vec![Vec::new(); cfg.n_layer],
            x: Vec::new(),
            h: Vec::new(),
            stats: Vec::new(),
            qkv: Vec::new(),
            x2: Vec::new(),
            fc: Vec::new(),
            act: Vec::new(),
            logits: Vec::new(),
        })
    }

    /// Starts a batch of `rows` empty sequences that will decode at most `positions` positions
    /// (capped at `block_size`).
    ///
    /// The caches are sized to `positions`, not `block_size`: a fresh allocation is zero pages the
    /// kernel maps on first touch, so a batch only pays for the positions it writes. Stale values
    /// from an earlier batch need no clearing, as every position is written before it is read.
    pub fn start(&mut self, rows: usize, positions: usize) {
        self.rows = rows;
        self.len = 0;
        self.cap = positions.clamp(1, self.block);
        let cache = rows * self.cap * self.c;
        for buf in self.k.iter_mut().chain(self.val.iter_mut()) {
            if buf.len() < cache {
                *buf = vec![0.0; cache]; // calloc-style: no memset of untouched pages
            }
        }
    }

    /// Positions decoded so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was decoded since [`Decoder::start`].
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Feeds one token per row at the next position; returns the next-token logits `(rows, V)`.
    pub fn feed_tokens(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        if tokens.len() != self.rows {
            return Err(Error::option(
                "tokens",
                format!("{} tokens for {} rows", tokens.len(), self.rows),
            ));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.v) {
            return Err(Error::option(
                "tokens",
                format!("token id {bad} >= vocab_size {}", self.v),
            ));
        }
        let (c, wte) = (self.c, &self.w[0]);
        self.x.resize(self.rows * c, 0.0);
        for (x, &t) in self.x.chunks_mut(c).zip(tokens) {
            x.copy_from_slice(&wte[t as usize * c..][..c]);
        }
        self.step()
    }

    /// Feeds one input vector per row (`vectors` holds `rows` or 1 vectors of `n_embd`, e.g. a
    /// soft prompt) at the next position; returns the next-token logits `(rows, V)`.
    pub fn feed_vectors(&mut self, vectors: &[f32]) -> Result<&[f32]> {
        let c = self.c;
        if vectors.len() != c && vectors.len() != self.rows * c {
            return Err(Error::option(
                "prefix",
                format!(
                    "{} values are not 1 or {} vectors of {c}",
                    vectors.len(),
                    self.rows
                ),
            ));
        }
        self.x.resize(self.rows * c, 0.0);
        for (r, x) in self.x.chunks_mut(c).enumerate() {
            let src = if vectors.len() == c { 0 } else { r };
            x.copy_from_slice(&vectors[src * c..][..c]);
        }
        self.step()
    }

    /// Keeps only the rows `keep` (in that order), so finished sequences stop costing compute.
    pub fn retain_rows(&mut self, keep: &[usize]) -> Result<()> {
        if keep.iter().any(|&r| r >= self.rows) {
            return Err(Error::option("rows", "retain_rows: row out of range"));
        }
        let row = self.cap * self.c;
        for cache in self.k.iter_mut().chain(self.val.iter_mut()) {
            for (dst, &src) in keep.iter().enumerate() {
                if dst != src {
                    cache.copy_within(src * row..src * row + row, dst * row);
                }
            }
        }
        self.rows = keep.len();
        Ok(())
    }

    /// One position for every row: `self.x` holds the input embeddings (without position).
    fn step(&mut self) -> Result<&[f32]> {
        if self.len >= self.cap {
            return Err(Error::option(
                "positions",
                format!(
                    "cannot decode position {}: the batch was started for {} (block_size {})",
                    self.len, self.cap, self.block
                ),
            ));
        }
        let (n, c, pos) = (self.rows, self.c, self.len);
        let pe = &self.w[1][pos * c..][..c];
        self.x
            .par_chunks_mut(c)
            .for_each(|x| x.iter_mut().zip(pe).for_each(|(a, b)| *a += b));
        for buf in [&mut self.h, &mut self.x2] {
            buf.resize(n * c, 0.0);
        }
        self.stats.resize(n, (0.0, 0.0));
        self.qkv.resize(n * 3 * c, 0.0);
        self.fc.resize(n * 4 * c, 0.0);
        self.act.resize(n * 4 * c, 0.0);
        for l in 0..self.n_layer {
            let w = &self.w[2 + l * PER_LAYER..][..PER_LAYER];
            layer_norm_fwd(&self.x, &w[0], &w[1], self.eps, &mut self.h, &mut self.stats);
            linear_fwd(&mut self.qkv, None, &self.h, &w[2], &w[3], n, c, 3 * c);
            let (nh, cap) = (self.nh, self.cap);
            self.h
                .par_chunks_mut(c)
                .zip(self.qkv.par_chunks(3 * c))
                .zip(
                    self.k[l]
                        .par_chunks_mut(cap * c)
                        .zip(self.val[l].par_chunks_mut(cap * c)),
                )
                .for_each(|((y, qkv), (k, v))| attend_row(c, nh, cap, pos, qkv, k, v, y));
            linear_fwd(&mut self.x2, Some(&self.x), &self.h, &w[4], &w[5], n, c, c);
            layer_norm_fwd(&self.x2, &w[6], &w[7], self.eps, &mut self.h, &mut self.stats);
            linear_fwd(&mut self.fc, None, &self.h, &w[8], &w[9], n, c, 4 * c);
            par_rows(&self.fc, &mut self.act, 4 * c, |x, y| gelu_fwd(x, y));
            linear_fwd(
                &mut self.x,
                Some(&self.x2),
                &self.act,
                &w[10],
                &w[11],
                n,
                4 * c,
                c,
            );
        }
        let nw = self.w.len();
        layer_norm_fwd(
            &self.x,
            &self.w[nw - 2],
            &self.w[nw - 1],
            self.eps,
            &mut self.h,
            &mut self.stats,
        );
        self.logits.resize(n * self.v, 0.0);
        crate::train_pass::matmul(
            &mut self.logits,
            &self.h,
            false,
            &self.w[0],
            true,
            n,
            self.v,
            c,
            false,
        );
        self.len += 1;
        Ok(&self.logits)
    }
}

/// One row's attention at position `pos`: writes its key and value into the row's cache
/// `(nh, cap, hd)` and `y = Σ_{s≤pos} softmax_s(q·k_s / √hd) v_s`, heads side by side.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_row_body(
    c: usize,
    nh: usize,
    cap: usize,
    pos: usize,
    qkv: &[f32],
    k: &mut [f32],
    v: &mut [f32],
    y: &mut [f32],
) {
    let hd = c / nh;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut scores = vec![0f32; pos + 1];
    for h in 0..nh {
        let (kh, vh) = (
            &mut k[h * cap * hd..][..cap * hd],
            &mut v[h * cap * hd..][..cap * hd],
        );
        kh[pos * hd..][..hd].copy_from_slice(&qkv[c + h * hd..][..hd]);
        vh[pos * hd..][..hd].copy_from_slice(&qkv[2 * c + h * hd..][..hd]);
        let q = &qkv[h * hd..][..hd];
        let sc = &mut scores[..=pos];
        let mut max = f32::NEG_INFINITY;
        for (s, a) in sc.iter_mut().enumerate() {
            *a = dot(q, &kh[s * hd..][..hd]) * scale;
            max = max.max(*a);
        }
        let mut sum = 0f32;
        for a in sc.iter_mut() {
            *a = (*a - max).exp();
            sum += *a;
        }
        let out = &mut y[h * hd..][..hd];
        out.fill(0.0);
        for (s, a) in sc.iter().enumerate() {
            axpy(a / sum, &vh[s * hd..][..hd], out);
        }
    }
}

dispatch!(attend_row, attend_row_avx2, attend_row_body,
    (c: usize, nh: usize, cap: usize, pos: usize, qkv: &[f32], k: &mut [f32], v: &mut [f32], y: &mut [f32]));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt::GptConfig;
    use candle_core::{Device, Tensor};
    use candle_nn::VarMap;

    /// Decoding position by position (after one soft-prompt vector, with a row dropped halfway)
    /// gives the logits of the full forward pass.
    #[test]
    fn decoder_matches_full_forward() {
        // Head sizes 8 and 12 (whole 8-lane vectors and a remainder), up to 13 positions.
        for (c, t) in [(16, 6), (24, 12)] {
            decoder_matches(c, t);
        }
    }

    fn decoder_matches(c: usize, t: usize) {
        let cfg = GptConfig {
            vocab_size: 11,
            n_layer: 2,
            n_head: 2,
            n_embd: c,
            block_size: t + 6,
            ..Default::default()
        };
        let varmap = VarMap::new();
        let model = Gpt::init(&cfg, &varmap, 5, &Device::Cpu).unwrap();
        let b = 3;
        let tokens: Vec<u32> = (0..b * t).map(|i| ((i * 7 + 2) % 11) as u32).collect();
        let prefix: Vec<f32> = (0..c).map(|i| (i as f32 * 0.37).sin()).collect();
        let pre = Tensor::from_vec(prefix.clone(), (1, 1, c), &Device::Cpu).unwrap();
        let idx = Tensor::from_vec(tokens.clone(), (b, t), &Device::Cpu).unwrap();
        let full = model.forward(&idx, Some(&pre)).unwrap().to_vec3::<f32>().unwrap(); // (B, T, V)

        let mut dec = Decoder::new(&model).unwrap();
        dec.start(b, t + 1);
        dec.feed_vectors(&prefix).unwrap();
        let mut rows: Vec<usize> = (0..b).collect();
        for pos in 0..t {
            if pos == 3 {
                rows = vec![0, 2];
                dec.retain_rows(&[0, 2]).unwrap();
            }
            let toks: Vec<u32> = rows.iter().map(|&r| tokens[r * t + pos]).collect();
            let logits = dec.feed_tokens(&toks).unwrap().to_vec();
            for (j, &r) in rows.iter().enumerate() {
                for (a, e) in logits[j * 11..(j + 1) * 11].iter().zip(&full[r][pos]) {
                    assert!((a - e).abs() < 1e-4, "n_embd {c}, row {r} pos {pos}: {a} vs {e}");
                }
            }
        }
        assert_eq!(dec.len(), t + 1);
    }
}
