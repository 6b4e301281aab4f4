//! Fused causal self-attention: one op from the packed `qkv` projection to the re-assembled heads,
//! with a hand-written backward (training), and attention over the KV cache (decoding).
//!
//! Composed of candle ops, attention is ~10 graph nodes per layer (head split copies, two batched
//! GEMMs of B·H tiny matrices, softmax, head merge), each with its own temporaries and gradient
//! buffers. Here every batch row is one task reading its `(T, 3C)` slice in place: no copies,
//! nothing stored for the backward (the probabilities are recomputed, as in FlashAttention).

use crate::ops::{dispatch, dot, exp_fast, fused, slice_f32, with_f32};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

type CResult<T> = candle_core::Result<T>;

/// Shapes of one batch row of a `causal_attention` call.
#[derive(Clone, Copy)]
struct Geo {
    t: usize,
    c: usize,
    h: usize,
    scale: f32,
}

impl Geo {
    fn hd(&self) -> usize {
        self.c / self.h
    }
}

/// `y += a · x`
#[inline(always)]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// Causal softmax probabilities of query `i` of head `hi` into `p[..=i]` (row of `qkv`: `3C`).
#[inline(always)]
fn probs_row(g: &Geo, qkv: &[f32], hi: usize, i: usize, p: &mut [f32]) {
    let (c3, hd) = (3 * g.c, g.hd());
    let q = &qkv[i * c3 + hi * hd..][..hd];
    let mut max = f32::NEG_INFINITY;
    for (j, pj) in p[..=i].iter_mut().enumerate() {
        *pj = dot(q, &qkv[j * c3 + g.c + hi * hd..][..hd]) * g.scale;
        max = max.max(*pj);
    }
    let mut sum = 0f32;
    for pj in &mut p[..=i] {
        *pj = exp_fast(*pj - max);
        sum += *pj;
    }
    let inv = 1.0 / sum;
    p[..=i].iter_mut().for_each(|v| *v *= inv);
}

/// Forward of one batch row: `qkv (T, 3C)` → `y (T, C)` (zeroed).
#[inline(always)]
fn fwd_row_body(g: &Geo, qkv: &[f32], y: &mut [f32]) {
    let (c3, hd) = (3 * g.c, g.hd());
    let mut p = vec![0f32; g.t];
    for hi in 0..g.h {
        for i in 0..g.t {
            probs_row(g, qkv, hi, i, &mut p);
            let o = &mut y[i * g.c + hi * hd..][..hd];
            for (j, &pj) in p[..=i].iter().enumerate() {
                axpy(pj, &qkv[j * c3 + 2 * g.c + hi * hd..][..hd], o);
            }
        }
    }
}

/// Backward of one batch row: `dy (T, C)` → `dqkv (T, 3C)` (zeroed).
#[inline(always)]
fn bwd_row_body(g: &Geo, qkv: &[f32], dy: &[f32], dqkv: &mut [f32]) {
    let (c3, hd) = (3 * g.c, g.hd());
    let (mut p, mut dp) = (vec![0f32; g.t], vec![0f32; g.t]);
    for hi in 0..g.h {
        let (qo, ko, vo) = (hi * hd, g.c + hi * hd, 2 * g.c + hi * hd);
        for i in 0..g.t {
            probs_row(g, qkv, hi, i, &mut p);
            let dyi = &dy[i * g.c + hi * hd..][..hd];
            // dP_ij = dy_i · v_j; dS_ij = scale · P_ij (dP_ij - Σ_k P_ik dP_ik)
            let mut pd = 0f32;
            for j in 0..=i {
                dp[j] = dot(dyi, &qkv[j * c3 + vo..][..hd]);
                pd += p[j] * dp[j];
            }
            for j in 0..=i {
                let ds = g.scale * p[j] * (dp[j] - pd);
                let (row_i, row_j) = (i * c3, j * c3);
                axpy(p[j], dyi, &mut dqkv[row_j + vo..][..hd]); // dv_j += P_ij dy_i
                axpy(ds, &qkv[row_i + qo..][..hd], &mut dqkv[row_j + ko..][..hd]); // dk_j += dS_ij q_i
                dp[j] = ds;
            }
            let dq = &mut dqkv[i * c3 + qo..][..hd];
            for j in 0..=i {
                axpy(dp[j], &qkv[j * c3 + ko..][..hd], dq); // dq_i += dS_ij k_j
            }
        }
    }
}

dispatch!(fwd_row, fwd_row_avx2, fwd_row_body, (g: &Geo, qkv: &[f32], y: &mut [f32]));
dispatch!(bwd_row, bwd_row_avx2, bwd_row_body, (g: &Geo, qkv: &[f32], dy: &[f32], dqkv: &mut [f32]));

struct CausalAttention {
    n_head: usize,
}

impl CausalAttention {
    fn geo(&self, dims: &[usize]) -> CResult<(usize, Geo)> {
        let [b, t, c3] = dims else {
            candle_core::bail!("causal_attention: qkv must be (B, T, 3C), got {dims:?}")
        };
        let c = c3 / 3;
        if c3 % 3 != 0 || c % self.n_head != 0 {
            candle_core::bail!("causal_attention: 3C = {c3} does not fit {} heads", self.n_head);
        }
        let scale = 1.0 / ((c / self.n_head) as f32).sqrt();
        Ok((
            *b,
            Geo {
                t: *t,
                c,
                h: self.n_head,
                scale,
            },
        ))
    }
}

/// Causal multi-head self-attention of packed `qkv (B, T, 3C)` (queries, keys, values side by
/// side, heads side by side within each): `softmax(q kᵀ / √hd, causal) v` per head, returned with
/// the heads side by side as `(B, T, C)`. Differentiable in `qkv`.
pub fn causal_attention(qkv: &Tensor, n_head: usize) -> CResult<Tensor> {
    if fused(qkv) {
        return qkv.contiguous()?.apply_op1(CausalAttention { n_head });
    }
    let (b, t, c3) = qkv.dims3()?;
    let c = c3 / 3;
    let heads = |i: usize| split_heads(&qkv.narrow(2, i * c, c)?, n_head);
    let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?); // (B, nh, T, hd)
    let att = crate::ops::causal_softmax(&q.matmul(&k.t()?)?, 1.0 / ((c / n_head) as f64).sqrt())?;
    att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, c))
}

impl CustomOp1 for CausalAttention {
    fn name(&self) -> &'static str {
        "causal-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let qkv = slice_f32(s, l)?;
        let (b, g) = self.geo(l.dims())?;
        let mut y = vec![0f32; b * g.t * g.c];
        y.par_chunks_mut(g.t * g.c)
            .zip(qkv.par_chunks(g.t * 3 * g.c))
            .for_each(|(y, x)| fwd_row(&g, x, y));
        Ok((CpuStorage::F32(y), Shape::from((b, g.t, g.c))))
    }

    fn bwd(&self, qkv: &Tensor, _y: &Tensor, dy: &Tensor) -> CResult<Option<Tensor>> {
        let (_, g) = self.geo(qkv.dims())?;
        let dqkv = with_f32(qkv, |x| {
            with_f32(dy, |dy| {
                let mut dqkv = vec![0f32; x.len()];
                dqkv.par_chunks_mut(g.t * 3 * g.c)
                    .zip(x.par_chunks(g.t * 3 * g.c).zip(dy.par_chunks(g.t * g.c)))
                    .for_each(|(d, (x, dy))| bwd_row(&g, x, dy, d));
                dqkv
            })
        })??;
        Ok(Some(Tensor::from_vec(dqkv, qkv.shape(), qkv.device())?))
    }
}

// ---------------------------------------------------------------------------------------------
// Attention over a KV cache, for decoding (no backward).

/// `(B, T, C)` → `(B, h, T, C / h)`, contiguous.
fn split_heads(x: &Tensor, h: usize) -> CResult<Tensor> {
    let (b, t, c) = x.dims3()?;
    x.reshape((b, t, h, c / h))?.transpose(1, 2)?.contiguous()
}

struct CachedAttention {
    n_head: usize,
    len: usize,
}

/// Decoding attention of the `T` new positions of packed `qkv (B, T, 3C)` against the first `len`
/// positions of `kv (B, block_size, 2C)` (keys then values, heads side by side), the new ones
/// included as its last `T`: query `i` sees positions `j <= i + len - T`. Returns `(B, T, C)`.
/// Inference only: one pass per batch row reading everything in place, no gradient.
pub fn cached_attention(qkv: &Tensor, kv: &Tensor, len: usize, n_head: usize) -> CResult<Tensor> {
    if fused(qkv) && kv.is_contiguous() {
        return qkv
            .contiguous()?
            .apply_op2_no_bwd(kv, &CachedAttention { n_head, len });
    }
    let (b, t, c3) = qkv.dims3()?;
    let c = c3 / 3;
    let q = split_heads(&qkv.narrow(2, 0, c)?, n_head)?;
    let k = split_heads(&kv.narrow(1, 0, len)?.narrow(2, 0, c)?, n_head)?;
    let v = split_heads(&kv.narrow(1, 0, len)?.narrow(2, c, c)?, n_head)?;
    let att = crate::ops::causal_softmax(&q.matmul(&k.t()?)?, 1.0 / ((c / n_head) as f64).sqrt())?;
    att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, c))
}

/// Shapes of one batch row of a `cached_attention` call.
struct CacheGeo {
    t: usize,
    c: usize,
    h: usize,
    len: usize,
    scale: f32,
}

/// One batch row: `qkv (T, 3C)`, `kv (block_size, 2C)` → `y (T, C)` (zeroed). Positions outer,
/// heads inner: each cached key and value row is read once, front to back (the cache is far
/// larger than the caches of the CPU, so this pass is bound by memory, not arithmetic).
#[inline(always)]
fn attend_body(g: &CacheGeo, qkv: &[f32], kv: &[f32], y: &mut [f32]) {
    let (c, h, len, hd) = (g.c, g.h, g.len, g.c / g.h);
    let mut p = vec![0f32; h * len]; // (head, position)
    for i in 0..g.t {
        let q = &qkv[i * 3 * c..][..c];
        let visible = i + len - g.t + 1;
        for j in 0..visible {
            let k = &kv[j * 2 * c..][..c];
            for hi in 0..h {
                p[hi * len + j] = dot(&q[hi * hd..][..hd], &k[hi * hd..][..hd]) * g.scale;
            }
        }
        for ph in p.chunks_mut(len) {
            let ph = &mut ph[..visible];
            let max = ph.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let mut sum = 0f32;
            for v in ph.iter_mut() {
                *v = exp_fast(*v - max);
                sum += *v;
            }
            let inv = 1.0 / sum;
            ph.iter_mut().for_each(|v| *v *= inv);
        }
        let o = &mut y[i * c..][..c];
        for j in 0..visible {
            let v = &kv[j * 2 * c + c..][..c];
            for hi in 0..h {
                axpy(p[hi * len + j], &v[hi * hd..][..hd], &mut o[hi * hd..][..hd]);
            }
        }
    }
}
dispatch!(attend, attend_avx2, attend_body, (g: &CacheGeo, qkv: &[f32], kv: &[f32], y: &mut [f32]));

impl CustomOp2 for CachedAttention {
    fn name(&self) -> &'static str {
        "cached-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (qkv, kv) = (slice_f32(s1, l1)?, slice_f32(s2, l2)?);
        let ([b, t, c3], [kb, block, c2]) = (l1.dims(), l2.dims()) else {
            candle_core::bail!(
                "cached_attention: qkv {:?} and kv {:?} must be 3D",
                l1.dims(),
                l2.dims()
            )
        };
        let (b, t, c) = (*b, *t, c3 / 3);
        if *kb != b || *c2 != 2 * c || self.len > *block || t > self.len || c % self.n_head != 0 {
            candle_core::bail!(
                "cached_attention: qkv {:?}, kv {:?}, len {}",
                l1.dims(),
                l2.dims(),
                self.len
            );
        }
        let g = CacheGeo {
            t,
            c,
            h: self.n_head,
            len: self.len,
            scale: 1.0 / ((c / self.n_head) as f32).sqrt(),
        };
        let mut y = vec![0f32; b * t * c];
        y.par_chunks_mut(t * c)
            .zip(qkv.par_chunks(t * 3 * c).zip(kv.par_chunks(block * 2 * c)))
            .for_each(|(y, (x, kv))| attend(&g, x, kv, y));
        Ok((CpuStorage::F32(y), Shape::from((b, t, c))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::tests::{max_diff, randn};
    use candle_core::{Var, D};

    /// The fused op equals the composed reference (head split, matmuls, causal softmax) in
    /// value and in gradient, for several shapes.
    #[test]
    fn causal_attention_matches_composed_reference() {
        for (b, t, h, hd) in [(2, 5, 2, 8), (3, 17, 4, 16), (1, 1, 1, 4)] {
            let c = h * hd;
            let x = Var::from_tensor(&randn(&[b, t, 3 * c], 1)).unwrap();
            let w = randn(&[b, t, c], 2);
            let fused = causal_attention(x.as_tensor(), h).unwrap();
            let heads = |i: usize| split_heads(&x.as_tensor().narrow(2, i * c, c).unwrap(), h).unwrap();
            let (q, k, v) = (heads(0), heads(1), heads(2));
            let mask: Vec<f32> = (0..t)
                .flat_map(|i| (0..t).map(move |j| if j > i { -1e9 } else { 0.0 }))
                .collect();
            let mask = Tensor::from_vec(mask, (t, t), &candle_core::Device::Cpu).unwrap();
            let s = (q.matmul(&k.t().unwrap()).unwrap() / (hd as f64).sqrt()).unwrap();
            let att = candle_nn::ops::softmax(&s.broadcast_add(&mask).unwrap(), D::Minus1).unwrap();
            let reference = att
                .matmul(&v)
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .reshape((b, t, c))
                .unwrap();
            assert!(max_diff(&fused, &reference) < 1e-5);
            let g1 = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (reference * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let d = max_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap());
            assert!(d < 1e-4, "{d}");
        }
    }

    /// Cached attention equals the full causal attention on the last `T` positions.
    #[test]
    fn cached_attention_matches_full_attention() {
        let (b, s, t, h, c) = (2, 6, 2, 2, 16);
        let qkv = randn(&[b, s, 3 * c], 10);
        let full = causal_attention(&qkv, h).unwrap().narrow(1, s - t, t).unwrap();
        let kv = Tensor::cat(
            &[&qkv.narrow(2, c, 2 * c).unwrap(), &randn(&[b, 3, 2 * c], 11)],
            1,
        )
        .unwrap();
        let a = cached_attention(&qkv.narrow(1, s - t, t).unwrap(), &kv, s, h).unwrap();
        assert!(max_diff(&a, &full) < 1e-5, "{}", max_diff(&a, &full));
    }
}
