//! Fused causal self-attention: one op from the packed `qkv` projection to the re-assembled heads,
//! with a hand-written backward (training), and attention over the KV cache (decoding).
//!
//! Composed of candle ops, attention is ~10 graph nodes per layer (head split copies, two batched
//! GEMMs of B·H tiny matrices, softmax, head merge), each with its own temporaries and gradient
//! buffers. Here every batch row is one task reading its `(T, 3C)` slice in place: no copies,
//! nothing stored for the backward (the probabilities are recomputed, as in FlashAttention).

use crate::ops::{dispatch, dot, exp_fast, fused, slice_f32, with_f32};
use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor};
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

/// `(B, T, C)` → `(B, h, T, C / h)`, contiguous.
fn split_heads(x: &Tensor, h: usize) -> CResult<Tensor> {
    let (b, t, c) = x.dims3()?;
    x.reshape((b, t, h, c / h))?.transpose(1, 2)?.contiguous()
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

struct CachedAttention {
    scale: f32,
}

/// `softmax(scale · q kᵀ, causal) v` for `q (B, H, T, hd)` against `k, v (B, H, S, hd)` that may
/// be strided views into a preallocated cache; query `i` sees keys `j <= i + S - T`. Inference
/// only: one pass per query row instead of 2·B·H tiny GEMMs, and no gradient.
pub fn cached_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> CResult<Tensor> {
    if fused(q) && k.stride().last() == Some(&1) && v.stride().last() == Some(&1) {
        return q
            .contiguous()?
            .apply_op3_no_bwd(k, v, &CachedAttention { scale: scale as f32 });
    }
    let att = crate::ops::causal_softmax(&q.matmul(&k.t()?)?, scale)?;
    att.matmul(&v.contiguous()?)
}

/// Shapes and strides of one `cached_attention` call.
struct AttnGeo {
    h: usize,
    t: usize,
    hd: usize,
    s: usize,
    ks: [usize; 3],
    vs: [usize; 3],
    ko: usize,
    vo: usize,
    scale: f32,
}

/// Attention of the `t` query rows of batch×head `bh` into `o` (zeroed).
#[inline(always)]
fn attend_body(g: &AttnGeo, bh: usize, q: &[f32], k: &[f32], v: &[f32], o: &mut [f32]) {
    let (bi, hi, hd) = (bh / g.h, bh % g.h, g.hd);
    let kb = g.ko + bi * g.ks[0] + hi * g.ks[1];
    let vb = g.vo + bi * g.vs[0] + hi * g.vs[1];
    let mut p = vec![0f32; g.s];
    for i in 0..g.t {
        let qr = &q[(bh * g.t + i) * hd..][..hd];
        let visible = i + g.s - g.t + 1;
        let mut max = f32::NEG_INFINITY;
        for j in 0..visible {
            p[j] = dot(qr, &k[kb + j * g.ks[2]..][..hd]) * g.scale;
            max = max.max(p[j]);
        }
        let mut sum = 0f32;
        for pj in &mut p[..visible] {
            *pj = exp_fast(*pj - max);
            sum += *pj;
        }
        let orow = &mut o[i * hd..][..hd];
        for j in 0..visible {
            axpy(p[j] / sum, &v[vb + j * g.vs[2]..][..hd], orow);
        }
    }
}
dispatch!(attend, attend_avx2, attend_body, (g: &AttnGeo, bh: usize, q: &[f32], k: &[f32], v: &[f32], o: &mut [f32]));

impl CustomOp3 for CachedAttention {
    fn name(&self) -> &'static str {
        "cached-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let q = slice_f32(s1, l1)?;
        let (CpuStorage::F32(k), CpuStorage::F32(v)) = (s2, s3) else {
            candle_core::bail!("cached_attention: expected f32 keys and values")
        };
        let [b, h, t, hd] = l1.dims() else {
            candle_core::bail!("cached_attention: q must be 4D")
        };
        let (b, h, t, hd) = (*b, *h, *t, *hd);
        let s = l2.dims()[2];
        if l2.dims() != [b, h, s, hd] || l3.dims() != [b, h, s, hd] {
            candle_core::bail!(
                "cached_attention: k/v shapes {:?} {:?} vs q {:?}",
                l2.dims(),
                l3.dims(),
                l1.dims()
            );
        }
        let (ks, vs) = (l2.stride(), l3.stride());
        let (ko, vo) = (l2.start_offset(), l3.start_offset());
        let mut out = vec![0f32; q.len()];
        let geo = AttnGeo {
            h,
            t,
            hd,
            s,
            ks: [ks[0], ks[1], ks[2]],
            vs: [vs[0], vs[1], vs[2]],
            ko,
            vo,
            scale: self.scale,
        };
        out.par_chunks_mut(t * hd)
            .enumerate()
            .with_min_len(16)
            .for_each(|(bh, o)| attend(&geo, bh, q, k, v, o));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
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

    /// Cached attention on strided k/v views equals the matmul path.
    #[test]
    fn cached_attention_matches_matmul_path() {
        let q = randn(&[2, 3, 2, 16], 10);
        let kc = randn(&[2, 3, 9, 16], 11).narrow(2, 0, 6).unwrap();
        let vc = randn(&[2, 3, 9, 16], 12).narrow(2, 0, 6).unwrap();
        let a = cached_attention(&q, &kc, &vc, 0.25).unwrap();
        let r = crate::ops::causal_softmax(&q.matmul(&kc.t().unwrap()).unwrap(), 0.25)
            .unwrap()
            .matmul(&vc.contiguous().unwrap())
            .unwrap();
        assert!(max_diff(&a, &r) < 1e-5);
    }
}
