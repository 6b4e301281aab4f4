//! Fused CPU kernels **with** a backward pass for the hot spots of training (LayerNorm, causal
//! softmax, erf GELU, cross-entropy), and a fused attention over the KV cache for decoding.
//!
//! candle 0.11's fused `LayerNorm` and `softmax_last_dim` have no backward (gradients are silently
//! lost), and the composed versions allocate a temporary per elementwise op. These custom ops do
//! one pass forward and one pass backward over f32 CPU data. On other devices or dtypes they fall
//! back to candle's composed (differentiable) ops, so the `cuda` build stays correct.

use crate::cpu::kernels::{dispatch, dot, exp_fast, gelu_bwd, gelu_fwd, row_stats};
use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp1, CustomOp3, DType, Layout, Shape, Storage, Tensor, D,
};
use rayon::prelude::*;
use std::sync::Arc;

type CResult<T> = candle_core::Result<T>;

fn fused(xs: &Tensor) -> bool {
    xs.device().is_cpu() && xs.dtype() == DType::F32
}

/// Runs `f` on the f32 data of `t` (made contiguous first).
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> CResult<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let (o1, o2) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("not contiguous".into()))?;
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => Ok(f(&v[o1..o2])),
        _ => candle_core::bail!("fused op: expected f32 CPU storage"),
    }
}

fn slice_f32<'a>(s: &'a CpuStorage, l: &Layout) -> CResult<&'a [f32]> {
    let (o1, o2) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("fused op: input not contiguous".into()))?;
    match s {
        CpuStorage::F32(v) => Ok(&v[o1..o2]),
        _ => candle_core::bail!("fused op: expected f32, got {:?}", s.dtype()),
    }
}

// ---------------------------------------------------------------------------------------------
// Causal softmax: y = softmax(scale * x) over the last dim, keys after the query masked out.

struct CausalSoftmax {
    scale: f32,
}

/// `softmax(scale * xs)` over the last dim of attention scores `(…, T, S)`, where query `i`
/// (of the last `T` positions of `S`) only sees keys `j <= i + S - T`; masked weights are 0.
pub fn causal_softmax(xs: &Tensor, scale: f64) -> CResult<Tensor> {
    if fused(xs) {
        return xs.contiguous()?.apply_op1(CausalSoftmax { scale: scale as f32 });
    }
    let (t, s) = (xs.dim(D::Minus2)?, xs.dim(D::Minus1)?);
    let mask: Vec<u8> = (0..t)
        .flat_map(|i| (0..s).map(move |j| u8::from(j > i + s - t)))
        .collect();
    let mask = Tensor::from_vec(mask, (t, s), xs.device())?.broadcast_as(xs.shape())?;
    let ninf = Tensor::new(f32::NEG_INFINITY, xs.device())?
        .to_dtype(xs.dtype())?
        .broadcast_as(xs.shape())?;
    candle_nn::ops::softmax(&mask.where_cond(&ninf, &(xs * scale)?)?, D::Minus1)
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let xs = slice_f32(s, l)?;
        let dims = l.dims();
        let (t, n) = (dims[dims.len() - 2], dims[dims.len() - 1]);
        let mut out = vec![0f32; xs.len()];
        out.par_chunks_mut(n)
            .zip(xs.par_chunks(n))
            .enumerate()
            .for_each(|(r, (y, x))| {
                let visible = (r % t) + n - t + 1;
                let (x, yv) = (&x[..visible], &mut y[..visible]);
                let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let mut sum = 0f32;
                for (yi, &xi) in yv.iter_mut().zip(x) {
                    *yi = ((xi - max) * self.scale).exp();
                    sum += *yi;
                }
                let inv = 1.0 / sum;
                yv.iter_mut().for_each(|v| *v *= inv);
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> CResult<Option<Tensor>> {
        // dx = scale * y * (g - Σ_j g_j y_j); masked entries have y = 0 and get 0.
        let n = y.dim(D::Minus1)?;
        let dx = with_f32(y, |y| {
            with_f32(g, |g| {
                let mut dx = vec![0f32; y.len()];
                dx.par_chunks_mut(n)
                    .zip(y.par_chunks(n).zip(g.par_chunks(n)))
                    .for_each(|(d, (y, g))| {
                        let dot: f32 = y.iter().zip(g).map(|(a, b)| a * b).sum();
                        for ((d, &y), &g) in d.iter_mut().zip(y).zip(g) {
                            *d = self.scale * y * (g - dot);
                        }
                    });
                dx
            })
        })??;
        Ok(Some(Tensor::from_vec(dx, y.shape(), y.device())?))
    }
}

// ---------------------------------------------------------------------------------------------
// LayerNorm over the last dim with affine weight and bias.

struct LayerNormOp {
    eps: f32,
}

/// LayerNorm over the last dim: `(x - mean) / sqrt(var + eps) * w + b`, differentiable in all three.
pub fn layer_norm(xs: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> CResult<Tensor> {
    if fused(xs) {
        return xs.contiguous()?.apply_op3(w, b, LayerNormOp { eps: eps as f32 });
    }
    candle_nn::ops::layer_norm_slow(xs, w, b, eps as f32)
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "layer-norm-fused"
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
        let (xs, w, b) = (slice_f32(s1, l1)?, slice_f32(s2, l2)?, slice_f32(s3, l3)?);
        let n = w.len();
        let mut out = vec![0f32; xs.len()];
        out.par_chunks_mut(n).zip(xs.par_chunks(n)).for_each(|(y, x)| {
            let (mean, rstd) = row_stats(x, self.eps);
            for i in 0..n {
                y[i] = (x[i] - mean) * rstd * w[i] + b[i];
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = w.dim(0)?;
        let (dx, dwb) = with_f32(x, |x| {
            with_f32(w, |w| {
                with_f32(g, |g| {
                    let stats: Vec<(f32, f32)> = x.par_chunks(n).map(|x| row_stats(x, self.eps)).collect();
                    let mut dx = vec![0f32; x.len()];
                    let (mut dw, db) = crate::cpu::kernels::layer_norm_bwd(x, &stats, w, g, &mut dx, false);
                    dw.extend(db);
                    (dx, dw)
                })
            })
        })???;
        let dev = x.device();
        let dw = Tensor::from_slice(&dwb[..n], n, dev)?;
        let db = Tensor::from_slice(&dwb[n..], n, dev)?;
        Ok((Some(Tensor::from_vec(dx, x.shape(), dev)?), Some(dw), Some(db)))
    }
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy with an ignore index, mean over the counted rows.

struct CrossEntropy {
    targets: Arc<Vec<u32>>,
    ignore: u32,
}

/// Mean next-token cross-entropy of `logits (N, V)` against `targets` (length N), skipping rows
/// whose target is `ignore`. Returns a scalar; 0 when every row is ignored.
pub fn cross_entropy(logits: &Tensor, targets: &[u32], ignore: u32) -> CResult<Tensor> {
    let (n, v) = logits.dims2()?;
    if targets.len() != n {
        candle_core::bail!("cross_entropy: {n} rows but {} targets", targets.len());
    }
    if fused(logits) {
        let op = CrossEntropy {
            targets: Arc::new(targets.to_vec()),
            ignore,
        };
        return logits.contiguous()?.apply_op1(op);
    }
    let mask: Vec<f32> = targets
        .iter()
        .map(|&t| f32::from(u8::from(t != ignore)))
        .collect();
    let count = mask.iter().sum::<f32>().max(1.0);
    let dev = logits.device();
    let idx: Vec<u32> = targets
        .iter()
        .map(|&t| if t == ignore { 0 } else { t.min(v as u32 - 1) })
        .collect();
    let idx = Tensor::from_vec(idx, (n, 1), dev)?;
    let lp = candle_nn::ops::log_softmax(logits, D::Minus1)?
        .gather(&idx, 1)?
        .squeeze(1)?;
    let mask = Tensor::from_vec(mask, n, dev)?.to_dtype(logits.dtype())?;
    (lp * mask)?.sum_all()?.affine(-1.0 / count as f64, 0.0)
}

impl CrossEntropy {
    fn count(&self) -> f32 {
        self.targets.iter().filter(|&&t| t != self.ignore).count().max(1) as f32
    }
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy-fused"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let xs = slice_f32(s, l)?;
        let v = l.dims()[1];
        let per_row: Vec<f64> = xs
            .par_chunks(v)
            .zip(self.targets.par_iter())
            .map(|(x, &t)| {
                if t == self.ignore {
                    return 0.0;
                }
                let max = x.iter().fold(f32::NEG_INFINITY, |m, &a| m.max(a));
                let lse = max + x.iter().map(|a| (a - max).exp()).sum::<f32>().ln();
                (lse - x[t as usize]) as f64
            })
            .collect();
        let total: f64 = per_row.iter().sum(); // in order: deterministic
        Ok((
            CpuStorage::F32(vec![(total / self.count() as f64) as f32]),
            Shape::from(()),
        ))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> CResult<Option<Tensor>> {
        let v = x.dim(1)?;
        let scale = g.to_dtype(DType::F32)?.to_scalar::<f32>()? / self.count();
        let dx = with_f32(x, |x| {
            let mut dx = vec![0f32; x.len()];
            dx.par_chunks_mut(v)
                .zip(x.par_chunks(v).zip(self.targets.par_iter()))
                .for_each(|(d, (x, &t))| {
                    if t == self.ignore {
                        return;
                    }
                    let max = x.iter().fold(f32::NEG_INFINITY, |m, &a| m.max(a));
                    let mut sum = 0f32;
                    for (d, &a) in d.iter_mut().zip(x) {
                        *d = (a - max).exp();
                        sum += *d;
                    }
                    d.iter_mut().for_each(|d| *d *= scale / sum);
                    d[t as usize] -= scale;
                });
            dx
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

// ---------------------------------------------------------------------------------------------
// GELU (erf form) with a one-pass backward.

struct GeluErf;

/// `x · Φ(x)` (exact GELU); the backward is one pass instead of candle's chain of elementwise ops.
pub fn gelu_erf(xs: &Tensor) -> CResult<Tensor> {
    if fused(xs) {
        return xs.contiguous()?.apply_op1(GeluErf);
    }
    xs.gelu_erf()
}

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf-fused"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let xs = slice_f32(s, l)?;
        let mut out = vec![0f32; xs.len()];
        out.par_chunks_mut(8192)
            .zip(xs.par_chunks(8192))
            .for_each(|(y, x)| gelu_fwd(x, y));
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> CResult<Option<Tensor>> {
        let dx = with_f32(x, |x| {
            with_f32(g, |g| {
                let mut dx = vec![0f32; x.len()];
                dx.par_chunks_mut(8192)
                    .zip(x.par_chunks(8192).zip(g.par_chunks(8192)))
                    .for_each(|(d, (x, g))| gelu_bwd(x, g, d));
                dx
            })
        })??;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
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
    let att = causal_softmax(&q.matmul(&k.t()?)?, scale)?;
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
            let w = p[j] / sum;
            for (od, &vd) in orow.iter_mut().zip(&v[vb + j * g.vs[2]..][..hd]) {
                *od += w * vd;
            }
        }
    }
}
dispatch!(attend, attend_at, attend_body, (g: &AttnGeo, bh: usize, q: &[f32], k: &[f32], v: &[f32], o: &mut [f32]));

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
    use candle_core::{Device, Var};

    fn randn(shape: &[usize], seed: u64) -> Tensor {
        let mut r = crate::rng::Rng::new(seed);
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| r.normal() as f32).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
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

    /// Each fused op must match candle's composed reference in value and in gradient.
    #[test]
    fn fused_ops_match_composed_reference() {
        // Causal softmax with T < S (KV-cache shape) and T == S.
        for (t, s) in [(5, 5), (3, 7)] {
            let x = Var::from_tensor(&randn(&[2, 3, t, s], 1)).unwrap();
            let w = randn(&[2, 3, t, s], 2);
            let y = causal_softmax(x.as_tensor(), 0.7).unwrap();
            let mask: Vec<f32> = (0..t)
                .flat_map(|i| (0..s).map(move |j| if j > i + s - t { -1e9 } else { 0.0 }))
                .collect();
            let mask = Tensor::from_vec(mask, (t, s), &Device::Cpu).unwrap();
            let yr = candle_nn::ops::softmax(
                &(x.as_tensor() * 0.7).unwrap().broadcast_add(&mask).unwrap(),
                D::Minus1,
            )
            .unwrap();
            assert!(max_diff(&y, &yr) < 1e-6);
            let g1 = (y * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (yr * &w).unwrap().sum_all().unwrap().backward().unwrap();
            assert!(max_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-5);
        }
        // LayerNorm, gradients for x, w, b.
        let x = Var::from_tensor(&randn(&[4, 3, 8], 3)).unwrap();
        let w = Var::from_tensor(&randn(&[8], 4)).unwrap();
        let b = Var::from_tensor(&randn(&[8], 5)).unwrap();
        let c = randn(&[4, 3, 8], 6);
        let y = layer_norm(&x, &w, &b, 1e-5).unwrap();
        let yr = candle_nn::ops::layer_norm_slow(&x, &w, &b, 1e-5).unwrap();
        assert!(max_diff(&y, &yr) < 1e-5);
        let g1 = (y * &c).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (yr * &c).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &w, &b] {
            assert!(max_diff(g1.get(v).unwrap(), g2.get(v).unwrap()) < 1e-4);
        }
        // Cross-entropy with ignored rows.
        let l = Var::from_tensor(&randn(&[6, 5], 7)).unwrap();
        let tg = [1u32, 0, 4, 3, 0, 2];
        let a = cross_entropy(&l, &tg, 0).unwrap();
        let lp = candle_nn::ops::log_softmax(&l, D::Minus1).unwrap();
        let rows: Vec<Tensor> = [0usize, 2, 3, 5]
            .iter()
            .map(|&i| lp.get(i).unwrap().get(tg[i] as usize).unwrap())
            .collect();
        let r = (Tensor::stack(&rows, 0).unwrap().sum_all().unwrap() * (-1.0 / 4.0)).unwrap();
        assert!(max_diff(&a, &r) < 1e-5);
        let g1 = (a * 3.0).unwrap().backward().unwrap();
        let g2 = (r * 3.0).unwrap().backward().unwrap();
        assert!(max_diff(g1.get(&l).unwrap(), g2.get(&l).unwrap()) < 1e-5);
        // GELU.
        let x = Var::from_tensor(&(randn(&[3, 50], 8) * 3.0).unwrap()).unwrap();
        let c = randn(&[3, 50], 9);
        let (y, yr) = (gelu_erf(&x).unwrap(), x.as_tensor().gelu_erf().unwrap());
        assert!(max_diff(&y, &yr) < 1e-5);
        let g1 = (y * &c).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (yr * &c).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(max_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-4);
        // Cached attention on strided k/v views equals the matmul path.
        let q = randn(&[2, 3, 2, 16], 10);
        let kc = randn(&[2, 3, 9, 16], 11).narrow(2, 0, 6).unwrap();
        let vc = randn(&[2, 3, 9, 16], 12).narrow(2, 0, 6).unwrap();
        let a = cached_attention(&q, &kc, &vc, 0.25).unwrap();
        let r = causal_softmax(&q.matmul(&kc.t().unwrap()).unwrap(), 0.25)
            .unwrap()
            .matmul(&vc.contiguous().unwrap())
            .unwrap();
        assert!(max_diff(&a, &r) < 1e-5);
    }
}
