//! Incremental decoding for the CPU written out by hand: one position per call for every live
//! row, keys and values in preallocated per-layer caches (after llm.c's inference loop).
//!
//! Why not [`Gpt::forward_cached`]: for one token per row each candle op allocates its output and
//! several need a copy (transposes, cache writes), and the per-op overhead is a large share of a
//! step this small. Here the buffers are reused across steps and the cache is written in place.
//! The maths is [`Gpt::forward`]'s; the tests compare logits with it.
//!
//! The rows are dealt into one shard per thread, and each thread runs whole steps for its shard.
//! Attention over the caches is bound by memory bandwidth and the linear layers by arithmetic;
//! threads that do not meet at a barrier after every operation overlap the two, and the
//! weights' panels are reused across all of a shard's rows.

use crate::cpu::kernels::{axpy, dispatch, dot, layer_norm_rows, softmax_in_place};
use crate::cpu::layout::{
    self, ATTN_B, ATTN_W, FCP_B, FCP_W, FC_B, FC_W, LN1_B, LN1_W, LN2_B, LN2_W, PROJ_B, PROJ_W,
};
use crate::gpt::Gpt;
use crate::packed_linear::PackedLinear;
use crate::train_pass::TrainPass;
use crate::{Error, Result};
use rayon::prelude::*;

/// Fewest rows worth a shard (and a thread) of their own.
const MIN_SHARD_ROWS: usize = 8;

/// The model's weights, laid out for decoding.
struct Weights {
    /// Embeddings and LayerNorm parameters (the matrices are in `linear` and `head`).
    w: Vec<Vec<f32>>,
    /// Per layer: attention input (qkv) and output projections, MLP up and down.
    linear: Vec<[PackedLinear; 4]>,
    /// The tied output head (the token embedding, no bias).
    head: PackedLinear,
    /// The deep prefix `(n_layer, 2, K, C)` (empty without one), copied into every row's cache
    /// ahead of its positions.
    kv_prefix: Vec<f32>,
    /// Deep-prefix keys per layer.
    k: usize,
    c: usize,
    nh: usize,
    v: usize,
    eps: f32,
}

/// Some of the batch's rows, with their caches and work buffers.
#[derive(Default)]
struct Shard {
    rows: usize,
    /// Each row's next position (rows restart at 0 independently: see [`Decoder::restart_rows`]).
    pos: Vec<usize>,
    k: Vec<Vec<f32>>, // per layer (rows, cap, C): a row's keys are one contiguous stream
    val: Vec<Vec<f32>>,
    x: Vec<f32>,      // (rows, C) residual stream
    h: Vec<f32>,      // (rows, C) LayerNorm output / attention output
    qkv: Vec<f32>,    // (rows, 3C)
    x2: Vec<f32>,     // (rows, C)
    act: Vec<f32>,    // (rows, 4C) GELU of the MLP's first layer
    logits: Vec<f32>, // (rows, V)
    scores: Vec<f32>, // one row's attention weights (nh, positions)
}

/// KV-cache buffers of dropped decoders, for the next one. An RL step samples a fresh batch with
/// a fresh decoder, and its caches (about 115 MB at 256 rows, 110 positions, 4 layers of 128)
/// would otherwise be new pages every time: the kernel zeroes each on first touch, which cost
/// more than the decoding they held. At most [`POOL_BYTES`] are kept.
static CACHE_POOL: std::sync::Mutex<Vec<Vec<f32>>> = std::sync::Mutex::new(Vec::new());

/// Most bytes [`CACHE_POOL`] holds.
const POOL_BYTES: usize = 1 << 30;

/// A cache buffer of at least `len` values: a pooled one if one is big enough, else a fresh,
/// zeroed one (calloc-style: no memset of untouched pages). Its contents are stale, which is
/// fine: every position is written before it is read.
fn cache_buffer(len: usize) -> Vec<f32> {
    let mut pool = CACHE_POOL.lock().unwrap_or_else(|e| e.into_inner());
    // The smallest that fits, so that big buffers stay for big batches.
    let best = (0..pool.len())
        .filter(|&i| pool[i].len() >= len)
        .min_by_key(|&i| pool[i].len());
    match best {
        Some(i) => pool.swap_remove(i),
        None => vec![0.0; len],
    }
}

/// Puts `buffers` into [`CACHE_POOL`] while it has room (the largest kept first).
fn return_to_pool(mut buffers: Vec<Vec<f32>>) {
    buffers.retain(|b| !b.is_empty());
    if buffers.is_empty() {
        return;
    }
    buffers.sort_by_key(|b| std::cmp::Reverse(b.len()));
    let mut pool = CACHE_POOL.lock().unwrap_or_else(|e| e.into_inner());
    let mut held: usize = pool.iter().map(|b| b.len() * 4).sum();
    for b in buffers {
        if held + b.len() * 4 <= POOL_BYTES {
            held += b.len() * 4;
            pool.push(b);
        }
    }
}

/// A decoder over a copy of a model's weights; [`Decoder::start`] begins a batch.
pub struct Decoder {
    weights: Weights,
    block: usize,
    /// Steps fed since [`Decoder::start`].
    steps: usize,
    /// Positions the caches hold per row in this batch (≤ `block`).
    cap: usize,
    shards: Vec<Shard>,
    /// Where each row of the batch lives: (shard, row within it), in the caller's row order.
    slots: Vec<(usize, usize)>,
    logits: Vec<f32>, // (rows, V) in the caller's order
}

impl Drop for Decoder {
    fn drop(&mut self) {
        let buffers = self
            .shards
            .iter_mut()
            .flat_map(|s| s.k.drain(..).chain(s.val.drain(..)))
            .collect();
        return_to_pool(buffers);
    }
}

impl Decoder {
    /// Whether the hand-written decoder can run `model` (f32 weights on the CPU).
    pub fn supports(model: &Gpt) -> bool {
        TrainPass::supports(model)
    }

    /// A decoder over a copy of `model`'s current weights.
    pub fn new(model: &Gpt) -> Result<Self> {
        let cfg = model.config();
        let mut w = model
            .parameters()
            .iter()
            .map(|(_, t)| t.flatten_all()?.to_vec1::<f32>())
            .collect::<candle_core::Result<Vec<Vec<f32>>>>()?;
        let (c, v) = (cfg.n_embd, cfg.vocab_size);
        let linear = (0..cfg.n_layer)
            .map(|l| {
                let p = &mut w[layout::block_start(l)..][..layout::PER_LAYER];
                let packed = [
                    PackedLinear::new(&p[ATTN_W], Some(&p[ATTN_B]), 3 * c, c),
                    PackedLinear::new(&p[PROJ_W], Some(&p[PROJ_B]), c, c),
                    PackedLinear::new(&p[FC_W], Some(&p[FC_B]), 4 * c, c),
                    PackedLinear::new(&p[FCP_W], Some(&p[FCP_B]), c, 4 * c),
                ];
                // The packed copies are the ones used; free the originals.
                for i in [2, 3, 4, 5, 8, 9, 10, 11] {
                    p[i] = Vec::new();
                }
                packed
            })
            .collect();
        let head = PackedLinear::new(&w[layout::WTE], None, v, c);
        let kv_prefix = match model.kv_prefix() {
            Some(kv) => kv.flatten_all()?.to_vec1::<f32>()?,
            None => Vec::new(),
        };
        Ok(Self {
            weights: Weights {
                w,
                linear,
                head,
                kv_prefix,
                k: model.kv_prefix_len(),
                c,
                nh: cfg.n_head,
                v,
                eps: cfg.layer_norm_eps as f32,
            },
            block: cfg.block_size,
            steps: 0,
            cap: 0,
            shards: Vec::new(),
            slots: Vec::new(),
            logits: Vec::new(),
        })
    }

    /// Starts a batch of `rows` empty sequences that will decode at most `positions` positions
    /// (capped at `block_size`). A deep prefix goes into every row's cache first.
    ///
    /// The caches are sized to `positions`, not `block_size`, and come from [`CACHE_POOL`] when
    /// a dropped decoder left one big enough. Stale values from an earlier batch need no
    /// clearing, as every position is written before it is read.
    pub fn start(&mut self, rows: usize, positions: usize) {
        self.steps = 0;
        let k = self.weights.k;
        self.cap = positions.clamp(1, self.block) + k;
        let n_shards = rayon::current_num_threads().min(rows / MIN_SHARD_ROWS).max(1);
        self.shards.resize_with(n_shards, Shard::default);
        self.slots.clear();
        let (c, layers) = (self.weights.c, self.weights.linear.len());
        for (s, shard) in self.shards.iter_mut().enumerate() {
            let share = rows * (s + 1) / n_shards - rows * s / n_shards;
            self.slots.extend((0..share).map(|r| (s, r)));
            shard.rows = share;
            shard.pos.clear();
            shard.pos.resize(share, 0);
            let cache = share * self.cap * c;
            shard.k.resize_with(layers, Vec::new);
            shard.val.resize_with(layers, Vec::new);
            for buf in shard.k.iter_mut().chain(shard.val.iter_mut()) {
                if buf.len() < cache {
                    let old = std::mem::replace(buf, cache_buffer(cache));
                    return_to_pool(vec![old]);
                }
            }
            if k > 0 {
                let row = self.cap * c;
                for l in 0..layers {
                    let (pk, pv) = self.weights.kv_prefix[l * 2 * k * c..][..2 * k * c].split_at(k * c);
                    for r in 0..share {
                        shard.k[l][r * row..][..k * c].copy_from_slice(pk);
                        shard.val[l][r * row..][..k * c].copy_from_slice(pv);
                    }
                }
            }
        }
    }

    /// Steps fed since [`Decoder::start`] (a row's position is fewer where it restarted).
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Starts the rows `rows` (in the caller's order) over: their next input goes to position 0
    /// (after the deep prefix, which stays), and what they decoded before is never read again.
    /// Refilling a finished row's slot this way keeps a batch full without a second batch.
    pub fn restart_rows(&mut self, rows: &[usize]) -> Result<()> {
        for &r in rows {
            let &(s, local) = self
                .slots
                .get(r)
                .ok_or_else(|| Error::option("rows", "restart_rows: row out of range"))?;
            self.shards[s].pos[local] = 0;
        }
        Ok(())
    }

    /// Feeds one token per row at the next position; returns the next-token logits `(rows, V)`.
    pub fn feed_tokens(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        if tokens.len() != self.slots.len() {
            return Err(Error::option(
                "tokens",
                format!("{} tokens for {} rows", tokens.len(), self.slots.len()),
            ));
        }
        let (c, v) = (self.weights.c, self.weights.v);
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= v) {
            return Err(Error::option(
                "tokens",
                format!("token id {bad} >= vocab_size {v}"),
            ));
        }
        let wte = &self.weights.w[layout::WTE];
        fill_inputs(&mut self.shards, &self.slots, c, |row| {
            &wte[tokens[row] as usize * c..][..c]
        });
        self.step()
    }

    /// Feeds one input vector per row (`vectors` holds `rows` or 1 vectors of `n_embd`, e.g. a
    /// soft prompt) at the next position; returns the next-token logits `(rows, V)`.
    pub fn feed_vectors(&mut self, vectors: &[f32]) -> Result<&[f32]> {
        let (c, rows) = (self.weights.c, self.slots.len());
        if vectors.len() != c && vectors.len() != rows * c {
            return Err(Error::option(
                "prefix",
                format!("{} values are not 1 or {rows} vectors of {c}", vectors.len()),
            ));
        }
        let shared = vectors.len() == c;
        fill_inputs(&mut self.shards, &self.slots, c, |row| {
            &vectors[if shared { 0 } else { row * c }..][..c]
        });
        self.step()
    }

    /// Keeps only the rows `keep` (in that order), so finished sequences stop costing compute.
    ///
    /// Each shard compacts its own rows; then rows move from the fullest shard to the emptiest
    /// until they differ by at most one, so no thread is left with most of the work.
    pub fn retain_rows(&mut self, keep: &[usize]) -> Result<()> {
        let mut seen = vec![false; self.slots.len()];
        for &r in keep {
            match seen.get_mut(r) {
                None => return Err(Error::option("rows", "retain_rows: row out of range")),
                Some(true) => return Err(Error::option("rows", "retain_rows: a row is kept twice")),
                Some(seen) => *seen = true,
            }
        }
        let row = self.cap * self.weights.c;
        let mut kept: Vec<Vec<usize>> = vec![Vec::new(); self.shards.len()]; // old local rows
        let wanted: Vec<(usize, usize)> = keep.iter().map(|&r| self.slots[r]).collect();
        for &(s, r) in &wanted {
            kept[s].push(r);
        }
        // Compact each shard: kept rows in ascending order move down (or stay), never up.
        let mut new_local = vec![Vec::new(); self.shards.len()]; // old local -> new local
        for ((shard, order), map_out) in self.shards.iter_mut().zip(&mut kept).zip(&mut new_local) {
            order.sort_unstable();
            let mut map = vec![usize::MAX; shard.rows];
            for (dst, &src) in order.iter().enumerate() {
                for cache in shard.k.iter_mut().chain(shard.val.iter_mut()) {
                    if dst != src {
                        cache.copy_within(src * row..src * row + row, dst * row);
                    }
                }
                shard.pos[dst] = shard.pos[src];
                map[src] = dst;
            }
            shard.rows = order.len();
            shard.pos.truncate(order.len());
            *map_out = map;
        }
        self.slots = wanted.iter().map(|&(s, r)| (s, new_local[s][r])).collect();
        self.rebalance();
        Ok(())
    }

    /// Moves rows (their caches) from the fullest shard to the emptiest until they are even.
    fn rebalance(&mut self) {
        let row = self.cap * self.weights.c;
        loop {
            let by_rows = |a: &(usize, &Shard), b: &(usize, &Shard)| a.1.rows.cmp(&b.1.rows);
            let (Some((big, _)), Some((small, _))) = (
                self.shards.iter().enumerate().max_by(by_rows),
                self.shards.iter().enumerate().min_by(by_rows),
            ) else {
                return;
            };
            if self.shards[big].rows <= self.shards[small].rows + 1 {
                return;
            }
            let from = self.shards[big].rows - 1;
            let to = self.shards[small].rows;
            for l in 0..self.weights.linear.len() {
                let (src_k, src_v) = {
                    let s = &self.shards[big];
                    (
                        s.k[l][from * row..][..row].to_vec(),
                        s.val[l][from * row..][..row].to_vec(),
                    )
                };
                let dst = &mut self.shards[small];
                dst.k[l][to * row..][..row].copy_from_slice(&src_k);
                dst.val[l][to * row..][..row].copy_from_slice(&src_v);
            }
            let pos = self.shards[big].pos.pop().expect("the fullest shard has rows");
            self.shards[small].pos.push(pos);
            self.shards[big].rows -= 1;
            self.shards[small].rows += 1;
            let slot = self
                .slots
                .iter_mut()
                .find(|slot| **slot == (big, from))
                .expect("every shard row has a slot");
            *slot = (small, to);
        }
    }

    /// One position for every row: the shards' `x` hold the input embeddings (without position).
    fn step(&mut self) -> Result<&[f32]> {
        let last = self.shards.iter().flat_map(|s| s.pos.iter().copied()).max();
        if let Some(pos) = last.filter(|&p| p + self.weights.k >= self.cap) {
            return Err(Error::option(
                "positions",
                format!(
                    "cannot decode position {pos}: the batch was started for {} (block_size {})",
                    self.cap - self.weights.k,
                    self.block
                ),
            ));
        }
        let (cap, weights) = (self.cap, &self.weights);
        self.shards
            .par_iter_mut()
            .for_each(|shard| shard.step(weights, cap));
        let v = weights.v;
        self.logits.resize(self.slots.len() * v, 0.0);
        for (out, &(s, r)) in self.logits.chunks_mut(v).zip(&self.slots) {
            out.copy_from_slice(&self.shards[s].logits[r * v..][..v]);
        }
        self.steps += 1;
        Ok(&self.logits)
    }
}

impl Shard {
    /// The decoder's step for this shard's rows, each at its own position, on the calling
    /// thread.
    fn step(&mut self, wt: &Weights, cap: usize) {
        let (n, c) = (self.rows, wt.c);
        for (x, &pos) in self.x.chunks_mut(c).zip(&self.pos) {
            let pe = &wt.w[layout::WPE][pos * c..][..c];
            x.iter_mut().zip(pe).for_each(|(a, b)| *a += b);
        }
        for buf in [&mut self.h, &mut self.x2] {
            buf.resize(n * c, 0.0);
        }
        self.qkv.resize(n * 3 * c, 0.0);
        self.act.resize(n * 4 * c, 0.0);
        for (l, [qkv, proj, fc, fc2]) in wt.linear.iter().enumerate() {
            let p = layout::block(&wt.w, l);
            layer_norm_rows(&self.x, &p[LN1_W], &p[LN1_B], wt.eps, &mut self.h);
            qkv.forward(&mut self.qkv, &self.h, None, n, false);
            let rows = self
                .h
                .chunks_mut(c)
                .zip(self.qkv.chunks(3 * c))
                .zip(self.k[l].chunks_mut(cap * c).zip(self.val[l].chunks_mut(cap * c)))
                .zip(&self.pos);
            for (((y, qkv), (k, v)), &pos) in rows {
                attend_row(c, wt.nh, wt.k + pos, qkv, k, v, &mut self.scores, y);
            }
            proj.forward(&mut self.x2, &self.h, Some(&self.x), n, false);
            layer_norm_rows(&self.x2, &p[LN2_W], &p[LN2_B], wt.eps, &mut self.h);
            fc.forward(&mut self.act, &self.h, None, n, true);
            fc2.forward(&mut self.x, &self.act, Some(&self.x2), n, false);
        }
        let (lnf_w, lnf_b) = layout::ln_f(wt.w.len());
        layer_norm_rows(&self.x, &wt.w[lnf_w], &wt.w[lnf_b], wt.eps, &mut self.h);
        self.logits.resize(n * wt.v, 0.0);
        wt.head.forward(&mut self.logits, &self.h, None, n, false);
        self.pos.iter_mut().for_each(|p| *p += 1);
    }
}

/// Sets each row's input embedding (without position) to `input(row)`, rows in the caller's order.
fn fill_inputs<'a>(
    shards: &mut [Shard],
    slots: &[(usize, usize)],
    c: usize,
    input: impl Fn(usize) -> &'a [f32],
) {
    for shard in shards.iter_mut() {
        shard.x.resize(shard.rows * c, 0.0);
    }
    for (row, &(s, r)) in slots.iter().enumerate() {
        shards[s].x[r * c..][..c].copy_from_slice(input(row));
    }
}

/// One row's attention at cache slot `pos` (deep prefix first): writes its key and value into the row's cache
/// `(cap, C)` and `y = Σ_{s≤pos} softmax_s(q·k_s / √hd) v_s`, heads side by side.
///
/// Decoding a batch reads every row's whole cache at every step, far more than fits in cache,
/// so this loop is bound by memory bandwidth: keys and values are each read once, front to back.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_row_body(
    c: usize,
    nh: usize,
    pos: usize,
    qkv: &[f32],
    k: &mut [f32],
    v: &mut [f32],
    scores: &mut Vec<f32>,
    y: &mut [f32],
) {
    let hd = c / nh;
    let scale = 1.0 / (hd as f32).sqrt();
    let n = pos + 1;
    k[pos * c..][..c].copy_from_slice(&qkv[c..2 * c]);
    v[pos * c..][..c].copy_from_slice(&qkv[2 * c..3 * c]);
    scores.resize(nh * n, 0.0); // (nh, n)
    for (s, ks) in k[..n * c].chunks_exact(c).enumerate() {
        // Keys a few positions ahead, and this position's values for the pass below: more
        // loads in flight than the hardware prefetcher keeps on these short streams.
        prefetch_row(k.as_ptr().wrapping_add((s + 4) * c), c);
        prefetch_row(v.as_ptr().wrapping_add(s * c), c);
        for h in 0..nh {
            scores[h * n + s] = dot(&qkv[h * hd..][..hd], &ks[h * hd..][..hd]) * scale;
        }
    }
    scores.chunks_exact_mut(n).for_each(softmax_in_place);
    y.fill(0.0);
    for (s, vs) in v[..n * c].chunks_exact(c).enumerate() {
        for h in 0..nh {
            axpy(scores[h * n + s], &vs[h * hd..][..hd], &mut y[h * hd..][..hd]);
        }
    }
}

/// Asks for the cache lines of `len` floats at `p` (a hint: addresses past the end are harmless).
#[inline(always)]
fn prefetch_row(p: *const f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for i in (0..len).step_by(16) {
        // SAFETY: a prefetch never faults, whatever the address.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(i) as *const i8);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

dispatch!(attend_row, attend_row_at, attend_row_body,
    (c: usize, nh: usize, pos: usize, qkv: &[f32], k: &mut [f32], v: &mut [f32], scores: &mut Vec<f32>, y: &mut [f32]));

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Decoding position by position (after one soft-prompt vector, with rows dropped on the
    /// way) gives the logits of the full forward pass.
    #[test]
    fn decoder_matches_full_forward() {
        // Head sizes 8 and 12 (whole 8-lane vectors and a remainder), up to 13 positions; one
        // shard of 3 rows.
        for (c, t) in [(16, 6), (24, 12)] {
            decoder_matches(c, t, 3, &[(3, vec![0, 2])]);
        }
        // 20 rows: two shards given two threads. Dropping most of the first shard's rows moves
        // rows between shards; a later drop keeps rows out of their order.
        let (first, second) = (vec![0, 2, 10, 11, 13, 14, 15, 16, 17, 19], vec![9, 0, 4, 5, 1]);
        decoder_matches(24, 8, 20, &[(2, first), (5, second)]);
    }

    /// The same with a deep prefix of 3 keys per layer (and rows moved between shards).
    #[test]
    fn decoder_matches_full_forward_with_deep_prefix() {
        decoder_matches_with(16, 6, 3, &[(3, vec![0, 2])], 3);
        decoder_matches_with(24, 8, 20, &[(2, vec![0, 2, 10, 11, 13, 14, 15, 16, 17, 19])], 3);
    }

    /// Pooled caches hold an earlier batch's values: poisoned with NaN, they must never be read
    /// (every position is written before it is read), so the logits still match.
    #[test]
    fn stale_pooled_caches_are_never_read() {
        return_to_pool((0..16).map(|_| vec![f32::NAN; 20 * 14 * 24]).collect());
        decoder_matches_with(24, 8, 20, &[(2, vec![0, 2, 10, 11, 13, 14, 15, 16, 17, 19])], 3);
        decoder_matches(16, 6, 3, &[(3, vec![0, 2])]);
        let pooled = CACHE_POOL.lock().unwrap().len();
        assert!(pooled > 0, "dropped decoders return their caches");
    }

    /// A row's logits are bit for bit the same whatever rows share its batch (and its shard):
    /// sampling relies on it to make molecules independent of the batch size.
    #[test]
    fn rows_do_not_depend_on_their_neighbours() {
        let (c, t, v) = (24, 6, 11);
        let (model, _) = crate::testing::tiny_gpt(v, c, t, 5);
        let token = |r: usize, pos: usize| ((r * 7 + pos * 3 + 1) % v) as u32;
        let decode = |rows: &[usize]| {
            let mut dec = Decoder::new(&model).unwrap();
            dec.start(rows.len(), t);
            (0..t)
                .map(|pos| {
                    let toks: Vec<u32> = rows.iter().map(|&r| token(r, pos)).collect();
                    dec.feed_tokens(&toks).unwrap().to_vec()
                })
                .collect::<Vec<_>>()
        };
        // 25 rows make several tiles and two shards; row 13 alone is one partial tile.
        let together = decode(&(0..25).collect::<Vec<_>>());
        let alone = decode(&[13]);
        let beside_two = decode(&[4, 13, 20]);
        for pos in 0..t {
            let row13 = &together[pos][13 * v..14 * v];
            assert_eq!(row13, &alone[pos][..], "position {pos}");
            assert_eq!(row13, &beside_two[pos][v..2 * v], "position {pos}");
        }
    }

    /// Rows started over mid-batch (with a deep prefix, rows dropped and moved between shards
    /// on the way) decode their new sequences as a fresh batch would: each row at its own
    /// position, its earlier cache never read again.
    #[test]
    fn restarted_rows_decode_from_position_zero() {
        let (c, t, b, k, v) = (24, 8, 20, 3, 11);
        let (model, _) = crate::testing::tiny_gpt(v, c, 2 * t, 5);
        let kv: Vec<f32> = (0..2 * 2 * k * c).map(|i| (i as f32 * 0.43).sin()).collect();
        let model = model
            .with_kv_prefix(Some(Tensor::from_vec(kv, (2, 2, k, c), &Device::Cpu).unwrap()))
            .unwrap();
        // Row r's first sequence, and the second one it restarts with at step 3 + r % 4.
        let first: Vec<u32> = (0..b * t).map(|i| ((i * 7 + 2) % v) as u32).collect();
        let second: Vec<u32> = (0..b * t).map(|i| ((i * 5 + 3) % v) as u32).collect();
        let logits_of = |tokens: &[u32]| {
            let idx = Tensor::from_vec(tokens.to_vec(), (b, t), &Device::Cpu).unwrap();
            model.forward(&idx, None).unwrap().to_vec3::<f32>().unwrap()
        };
        let (full1, full2) = (logits_of(&first), logits_of(&second));
        let restart_at = |r: usize| 3 + r % 4;

        let mut dec = Decoder::new(&model).unwrap();
        dec.start(b, t);
        assert!(dec.restart_rows(&[b]).is_err(), "a row that does not exist");
        let mut rows: Vec<usize> = (0..b).collect();
        let mut pos = vec![0usize; b]; // per original row: position within its current sequence
        let mut second_run = vec![false; b];
        for step in 0..t + 6 {
            if step == 5 {
                // Drop the first shard's rows but two: rows move between shards.
                let keep: Vec<usize> = (0..rows.len()).filter(|&j| !(2..10).contains(&j)).collect();
                rows = keep.iter().map(|&j| rows[j]).collect();
                dec.retain_rows(&keep).unwrap();
            }
            let restart: Vec<usize> = (0..rows.len())
                .filter(|&j| !second_run[rows[j]] && step == restart_at(rows[j]))
                .collect();
            for &j in &restart {
                second_run[rows[j]] = true;
                pos[rows[j]] = 0;
            }
            // Rows whose second sequence is over restart at every step on a dummy token.
            let over: Vec<usize> = (0..rows.len()).filter(|&j| pos[rows[j]] >= t).collect();
            dec.restart_rows(&[restart, over].concat()).unwrap();
            let toks: Vec<u32> = rows
                .iter()
                .map(|&r| {
                    let seq = if second_run[r] { &second } else { &first };
                    seq.get(r * t + pos[r])
                        .copied()
                        .filter(|_| pos[r] < t)
                        .unwrap_or(0)
                })
                .collect();
            let logits = dec.feed_tokens(&toks).unwrap().to_vec();
            for (j, &r) in rows.iter().enumerate() {
                if pos[r] < t {
                    let full = if second_run[r] { &full2 } else { &full1 };
                    for (a, e) in logits[j * v..(j + 1) * v].iter().zip(&full[r][pos[r]]) {
                        assert!((a - e).abs() < 1e-4, "row {r} pos {}: {a} vs {e}", pos[r]);
                    }
                }
                pos[r] = (pos[r] + 1).min(t);
            }
        }
        assert!(rows.iter().all(|&r| second_run[r]), "every kept row restarted");
        // The cache holds t positions: past them, a row is refused.
        let toks = vec![0u32; rows.len()];
        assert!((0..=t).any(|_| dec.feed_tokens(&toks).is_err()));
    }

    /// `drops`: before decoding position `pos`, keep only these of the current rows.
    fn decoder_matches(c: usize, t: usize, b: usize, drops: &[(usize, Vec<usize>)]) {
        decoder_matches_with(c, t, b, drops, 0)
    }

    /// [`decoder_matches`] with a deep prefix of `k` keys per layer (none for 0).
    fn decoder_matches_with(c: usize, t: usize, b: usize, drops: &[(usize, Vec<usize>)], k: usize) {
        let (model, _) = crate::testing::tiny_gpt(11, c, t + 6, 5);
        let model = if k > 0 {
            let kv: Vec<f32> = (0..2 * 2 * k * c).map(|i| (i as f32 * 0.71).cos()).collect();
            let kv = Tensor::from_vec(kv, (2, 2, k, c), &Device::Cpu).unwrap();
            model.with_kv_prefix(Some(kv)).unwrap()
        } else {
            model
        };
        let tokens: Vec<u32> = (0..b * t).map(|i| ((i * 7 + 2) % 11) as u32).collect();
        let prefix: Vec<f32> = (0..c).map(|i| (i as f32 * 0.37).sin()).collect();
        let pre = Tensor::from_vec(prefix.clone(), (1, 1, c), &Device::Cpu).unwrap();
        let idx = Tensor::from_vec(tokens.clone(), (b, t), &Device::Cpu).unwrap();
        let full = model.forward(&idx, Some(&pre)).unwrap().to_vec3::<f32>().unwrap(); // (B, T, V)

        let mut dec = Decoder::new(&model).unwrap();
        dec.start(b, t + 1);
        dec.feed_vectors(&prefix).unwrap();
        // Refused, and nothing changes: a row kept twice, a row that does not exist.
        assert!(dec.retain_rows(&[0, 0]).is_err());
        assert!(dec.retain_rows(&[b]).is_err());
        let mut rows: Vec<usize> = (0..b).collect();
        for pos in 0..t {
            if let Some((_, keep)) = drops.iter().find(|(at, _)| *at == pos) {
                rows = keep.iter().map(|&i| rows[i]).collect();
                dec.retain_rows(keep).unwrap();
            }
            let toks: Vec<u32> = rows.iter().map(|&r| tokens[r * t + pos]).collect();
            let logits = dec.feed_tokens(&toks).unwrap().to_vec();
            for (j, &r) in rows.iter().enumerate() {
                for (a, e) in logits[j * 11..(j + 1) * 11].iter().zip(&full[r][pos]) {
                    assert!((a - e).abs() < 1e-4, "n_embd {c}, row {r} pos {pos}: {a} vs {e}");
                }
            }
        }
        assert_eq!(dec.steps(), t + 1);
    }
}
