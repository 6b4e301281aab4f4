//! Slice kernels shared by the hand-written CPU passes (training, decoding) and the fused candle
//! ops: LayerNorm statistics and backward, branch-free exp/erf/GELU, dot and axpy, and the
//! `gemm` matrix product. Hot loops are compiled three times through [`dispatch`]: for AVX-512,
//! for AVX2+FMA and for baseline x86-64, and run on the widest the CPU has (detected at run
//! time, capped by `SMIRL_SIMD`; see [`fastmath::simd`]).

pub(crate) use fastmath::exp_fast;
use rayon::prelude::*;

/// Σ f(i) for i in 0..n, in 16 interleaved partial sums: one chain of additions is bound by the
/// adder's latency (the compiler may not reorder float sums), 16 independent ones vectorise.
/// The order is fixed, so every SIMD path gives the same result.
#[inline(always)]
pub(crate) fn lane_sum(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let full = n / LANES * LANES;
    for base in (0..full).step_by(LANES) {
        for (lane, a) in acc.iter_mut().enumerate() {
            *a += f(base + lane);
        }
    }
    let tail: f32 = (full..n).map(&f).sum();
    acc.iter().sum::<f32>() + tail
}

/// max over `x` (−∞ when empty) in 16 interleaved partial maxima, so that it vectorises; a max is
/// exact, so the result is the sequential one.
#[inline(always)]
pub(crate) fn lane_max(x: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &a| m.max(a));
    for chunk in chunks {
        for (m, &a) in acc.iter_mut().zip(chunk) {
            *m = m.max(a);
        }
    }
    acc.iter().fold(tail, |m, &a| m.max(a))
}

/// `x ← softmax(x)` in three vectorised passes (max, exponentials, scale) and a lane-wise sum: a
/// running sum inside the exponential loop would keep that loop scalar.
#[inline(always)]
pub(crate) fn softmax_in_place(x: &mut [f32]) {
    let max = lane_max(x);
    x.iter_mut().for_each(|a| *a = exp_fast(*a - max));
    let inv = 1.0 / lane_sum(x.len(), |i| x[i]);
    x.iter_mut().for_each(|a| *a *= inv);
}

#[inline(always)]
pub(crate) fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = lane_sum(x.len(), |i| x[i]) / n;
    let var = lane_sum(x.len(), |i| (x[i] - mean) * (x[i] - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

// Branch-free exp/erf so the GELU loops vectorise, and run-time dispatch for the hot loops (the
// crate is built for baseline x86-64).

/// Abramowitz & Stegun 7.1.26: |error| < 1.5e-7.
#[inline(always)]
pub(crate) fn erf_fast(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let y = 1.0
        - (((((1.061_405_4 * t - 1.453_152_1) * t) + 1.421_413_8) * t - 0.284_496_74) * t + 0.254_829_6)
            * t
            * exp_fast(-a * a);
    y.copysign(x)
}

#[inline(always)]
pub(crate) fn gelu_fwd_body(x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = 0.5 * x * (1.0 + erf_fast(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[inline(always)]
pub(crate) fn gelu_bwd_body(x: &[f32], g: &[f32], d: &mut [f32]) {
    for ((d, &x), &g) in d.iter_mut().zip(x).zip(g) {
        *d = g * gelu_grad(x);
    }
}

/// `d ← d · gelu'(x)`: the backward with the incoming gradient in place of the result.
#[inline(always)]
fn gelu_bwd_in_place_body(x: &[f32], d: &mut [f32]) {
    for (d, &x) in d.iter_mut().zip(x) {
        *d *= gelu_grad(x);
    }
}

/// d/dx x·Φ(x) = Φ(x) + x·φ(x).
#[inline(always)]
fn gelu_grad(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let cdf = 0.5 * (1.0 + erf_fast(x * std::f32::consts::FRAC_1_SQRT_2));
    cdf + x * INV_SQRT_2PI * exp_fast(-0.5 * x * x)
}

/// Defines `$name`, running `$body` on the path [`fastmath::simd::level`] picks, and `$at`, the
/// same on a given path (tests run each one the CPU has). `$body` is `#[inline(always)]` plain
/// Rust; each path compiles it with its target features, so the loops vectorise to that width.
macro_rules! dispatch {
    ($vis:vis $name:ident, $at:ident, $body:ident, ($($arg:ident: $ty:ty),*)) => {
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            $at(fastmath::simd::level(), $($arg),*)
        }
        /// On the path `level`, which this CPU must run (panics otherwise).
        #[allow(clippy::too_many_arguments, dead_code)]
        $vis fn $at(level: fastmath::simd::SimdLevel, $($arg: $ty),*) {
            assert!(level <= fastmath::simd::detected(), "this CPU cannot run the {level} path");
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                match level {
                    // SAFETY: the CPU has the level's features (asserted above).
                    fastmath::simd::SimdLevel::Avx512 => return unsafe { avx512($($arg),*) },
                    fastmath::simd::SimdLevel::Avx2 => return unsafe { avx2($($arg),*) },
                    fastmath::simd::SimdLevel::Portable => {}
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use dispatch;
dispatch!(pub(crate) gelu_fwd, gelu_fwd_at, gelu_fwd_body, (x: &[f32], y: &mut [f32]));
dispatch!(pub(crate) gelu_bwd, gelu_bwd_at, gelu_bwd_body, (x: &[f32], g: &[f32], d: &mut [f32]));
dispatch!(gelu_bwd_rows_in_place, gelu_bwd_rows_in_place_at, gelu_bwd_in_place_body, (x: &[f32], d: &mut [f32]));

#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators so the compiler can vectorise the reduction.
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += a · x`.
#[inline(always)]
pub(crate) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

/// Sets a reused buffer's length to `len`. Its contents are about to be overwritten, so a buffer
/// that must grow is not copied, and it grows to `len` plus a quarter: an RL batch's shapes vary
/// from step to step by a few percent, and `Vec`'s doubling would otherwise map (and the kernel
/// zero) twice the memory on the first slightly longer batch.
pub(crate) fn resize(v: &mut Vec<f32>, len: usize) {
    if len > v.capacity() {
        *v = Vec::with_capacity(len + len / 4);
    }
    v.resize(len, 0.0);
}

#[inline(always)]
pub(crate) fn add_to(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(a, b)| *a += b);
}

/// Applies `f` to matching `width`-wide rows of `x` and `y` in parallel.
pub(crate) fn par_rows(x: &[f32], y: &mut [f32], width: usize, f: impl Fn(&[f32], &mut [f32]) + Sync) {
    const ROWS: usize = 16;
    y.par_chunks_mut(width * ROWS)
        .zip(x.par_chunks(width * ROWS))
        .for_each(|(y, x)| f(x, y));
}

/// `d ← d · gelu'(x)`.
pub(crate) fn gelu_bwd_in_place(x: &[f32], d: &mut [f32], width: usize) {
    const ROWS: usize = 16;
    d.par_chunks_mut(width * ROWS)
        .zip(x.par_chunks(width * ROWS))
        .for_each(|(d, x)| gelu_bwd_rows_in_place(x, d));
}

/// `dst += Σ_rows m` for a row-major `m` of `width` columns.
pub(crate) fn col_sums(m: &[f32], width: usize, dst: &mut [f32]) {
    for row in m.chunks(width) {
        add_to(dst, row);
    }
}

/// `C (m×n) = A (m×k) · B (k×n)`, or `C +=` with `acc`. `ta`: A is stored as its transpose
/// (k×m, row-major); `tb`: B is stored as its transpose (n×k). All row-major, contiguous.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    c: &mut [f32],
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    acc: bool,
) {
    assert!(
        c.len() >= m * n && a.len() >= m * k && b.len() >= k * n,
        "matmul: buffer too small"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let (a_rs, a_cs) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (b_rs, b_cs) = if tb { (1, k as isize) } else { (n as isize, 1) };
    let threads = rayon::current_num_threads();
    let par = if threads > 1 && m * n * k >= 1 << 18 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every index the strides reach inside the slices, and `c`
    // does not alias `a` or `b` (distinct borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            acc,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// A matrix inside a slice: element `(i, j)` at `offset + i·row_stride + j·col_stride`.
#[derive(Clone, Copy)]
pub(crate) struct View {
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl View {
    /// Rows of `cols` contiguous elements, `row_stride` apart.
    pub(crate) fn rows(offset: usize, rows: usize, cols: usize, row_stride: usize) -> Self {
        Self {
            offset,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose, in the same memory.
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Panics unless every element lies inside a slice of `len`.
    fn check(&self, len: usize, what: &str) {
        if self.rows > 0 && self.cols > 0 {
            let last = self.offset + (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride;
            assert!(last < len, "small_matmul: {what} reaches {last}, past {len}");
        }
    }
}

/// `dst = [dst +] scale · lhs · rhs` on strided views (the small per-head products of attention,
/// which read the heads' columns out of the `(T, 3C)` projections in place), on the calling
/// thread: the callers run one batch row per thread.
#[allow(clippy::too_many_arguments)]
pub(crate) fn small_matmul(
    dst: &mut [f32],
    d: View,
    lhs: &[f32],
    l: View,
    rhs: &[f32],
    r: View,
    acc: bool,
    scale: f32,
) {
    assert!(
        l.cols == r.rows && d.rows == l.rows && d.cols == r.cols,
        "small_matmul: shapes do not match"
    );
    d.check(dst.len(), "dst");
    l.check(lhs.len(), "lhs");
    r.check(rhs.len(), "rhs");
    if d.rows == 0 || d.cols == 0 {
        return;
    }
    if l.cols == 0 {
        if !acc {
            for i in 0..d.rows {
                for j in 0..d.cols {
                    dst[d.offset + i * d.row_stride + j * d.col_stride] = 0.0;
                }
            }
        }
        return;
    }
    // SAFETY: `check` keeps every element the views reach inside their slices, and `dst` does not
    // alias `lhs` or `rhs` (a unique borrow beside shared ones).
    unsafe {
        gemm::gemm(
            d.rows,
            d.cols,
            l.cols,
            dst.as_mut_ptr().add(d.offset),
            d.col_stride as isize,
            d.row_stride as isize,
            acc,
            lhs.as_ptr().add(l.offset),
            l.col_stride as isize,
            l.row_stride as isize,
            rhs.as_ptr().add(r.offset),
            r.col_stride as isize,
            r.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `out (n×d_out) = [resid +] x (n×d_in) · Wᵀ + bias`, with `W` stored `(d_out, d_in)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_fwd(
    out: &mut [f32],
    resid: Option<&[f32]>,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    n: usize,
    d_in: usize,
    d_out: usize,
) {
    match resid {
        Some(r) => out
            .par_chunks_mut(d_out)
            .zip(r.par_chunks(d_out))
            .for_each(|(o, r)| o.iter_mut().zip(r).zip(bias).for_each(|((o, r), b)| *o = r + b)),
        None => out.par_chunks_mut(d_out).for_each(|o| o.copy_from_slice(bias)),
    }
    matmul(out, x, false, w, true, n, d_out, d_in, true);
}

/// LayerNorm over rows of `w.len()` columns: `out = (x − mean) · rstd · w + b`, and each row's
/// `(mean, rstd)` into `stats` for the backward.
pub(crate) fn layer_norm_fwd(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    eps: f32,
    out: &mut [f32],
    stats: &mut [(f32, f32)],
) {
    let c = w.len();
    const ROWS: usize = 16;
    out.par_chunks_mut(c * ROWS)
        .zip(x.par_chunks(c * ROWS))
        .zip(stats.par_chunks_mut(ROWS))
        .for_each(|((y, x), st)| layer_norm_fwd_rows(x, w, b, eps, y, st));
}

/// One row of LayerNorm, `y = (x - mean) * rstd * w + b`; returns the row's `(mean, rstd)`.
#[inline(always)]
fn layer_norm_row(x: &[f32], w: &[f32], b: &[f32], eps: f32, y: &mut [f32]) -> (f32, f32) {
    let (mean, rstd) = row_stats(x, eps);
    // Zipped, not indexed: bounds checks inside the loop would keep it scalar.
    for (((y, &x), &w), &b) in y.iter_mut().zip(x).zip(w).zip(b) {
        *y = (x - mean) * rstd * w + b;
    }
    (mean, rstd)
}

#[inline(always)]
fn layer_norm_fwd_rows_body(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    eps: f32,
    out: &mut [f32],
    stats: &mut [(f32, f32)],
) {
    let c = w.len();
    for ((y, x), st) in out.chunks_mut(c).zip(x.chunks(c)).zip(stats) {
        *st = layer_norm_row(x, w, b, eps, y);
    }
}
dispatch!(layer_norm_fwd_rows, layer_norm_fwd_rows_at, layer_norm_fwd_rows_body,
    (x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32], stats: &mut [(f32, f32)]));

/// Row-wise LayerNorm of `x` into `out`, without the statistics a backward needs (the decoder's).
#[inline(always)]
fn layer_norm_rows_body(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    let c = w.len();
    for (y, x) in out.chunks_mut(c).zip(x.chunks(c)) {
        layer_norm_row(x, w, b, eps, y);
    }
}
dispatch!(pub(crate) layer_norm_rows, layer_norm_rows_at, layer_norm_rows_body,
    (x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]));

/// LayerNorm backward: writes (or with `acc` adds) dx, returns (dw, db). Partial sums of dw/db per
/// fixed group of rows are added in order: deterministic.
pub(crate) fn layer_norm_bwd(
    x: &[f32],
    stats: &[(f32, f32)],
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    acc: bool,
) -> (Vec<f32>, Vec<f32>) {
    let c = w.len();
    const ROWS: usize = 32;
    let parts: Vec<Vec<f32>> = dx
        .par_chunks_mut(c * ROWS)
        .zip(x.par_chunks(c * ROWS).zip(dy.par_chunks(c * ROWS)))
        .zip(stats.par_chunks(ROWS))
        .map(|((dx, (x, dy)), st)| {
            let mut part = vec![0f32; 2 * c];
            layer_norm_bwd_rows(x, st, w, dy, dx, acc, &mut part);
            part
        })
        .collect();
    let mut dwb = vec![0f32; 2 * c];
    for p in &parts {
        add_to(&mut dwb, p);
    }
    let db = dwb.split_off(c);
    (dwb, db)
}

/// Rows of [`layer_norm_bwd`]: dx (written, or added with `acc`), and dw, db added into `part`.
#[inline(always)]
fn layer_norm_bwd_rows_body(
    x: &[f32],
    stats: &[(f32, f32)],
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    acc: bool,
    part: &mut [f32],
) {
    let c = w.len();
    for (((dx, x), dy), &(mean, rstd)) in dx.chunks_mut(c).zip(x.chunks(c)).zip(dy.chunks(c)).zip(stats) {
        let (x, dy) = (&x[..c], &dy[..c]);
        let xh = |i: usize| (x[i] - mean) * rstd;
        let m1 = lane_sum(c, |i| dy[i] * w[i]) / c as f32;
        let m2 = lane_sum(c, |i| dy[i] * w[i] * xh(i)) / c as f32;
        let (dw, db) = part.split_at_mut(c);
        for (((dw, db), &x), &dy) in dw.iter_mut().zip(db).zip(x).zip(dy) {
            *dw += dy * ((x - mean) * rstd);
            *db += dy;
        }
        // Zipped, not indexed, and `acc` outside the loop, so that both loops vectorise.
        let grads = x
            .iter()
            .zip(dy)
            .zip(w)
            .map(|((&x, &dy), &w)| rstd * (dy * w - m1 - (x - mean) * rstd * m2));
        if acc {
            dx.iter_mut().zip(grads).for_each(|(dx, v)| *dx += v);
        } else {
            dx.iter_mut().zip(grads).for_each(|(dx, v)| *dx = v);
        }
    }
}
dispatch!(layer_norm_bwd_rows, layer_norm_bwd_rows_at, layer_norm_bwd_rows_body,
    (x: &[f32], stats: &[(f32, f32)], w: &[f32], dy: &[f32], dx: &mut [f32], acc: bool, part: &mut [f32]));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use fastmath::simd::available;

    fn randn(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| rng.normal() as f32 * scale).collect()
    }

    /// Φ(x) in f64 from its series (|x| < 3) or erfc's continued fraction, independent of erf_fast.
    fn cdf(x: f64) -> f64 {
        let z = x / std::f64::consts::SQRT_2;
        let erf = if z.abs() < 3.0 {
            let (mut term, mut sum) = (z, z);
            for i in 1..200 {
                term *= -z * z / i as f64;
                sum += term / (2 * i + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let a = z.abs();
            let mut f = 0.0;
            for i in (1..60).rev() {
                f = (i as f64 / 2.0) / (a + f);
            }
            (1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f)) * z.signum()
        };
        0.5 * (1.0 + erf)
    }

    /// GELU and its derivative on every path this CPU runs, against f64 (x·Φ(x), Φ(x) + x·φ(x)).
    #[test]
    fn gelu_every_path_matches_f64() {
        fastmath::simd::note_skipped("gelu");
        let mut rng = Rng::new(11);
        let x = randn(&mut rng, 1003, 3.0);
        let g = randn(&mut rng, 1003, 1.0);
        for level in available() {
            let (mut y, mut d) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
            gelu_fwd_at(level, &x, &mut y);
            gelu_bwd_at(level, &x, &g, &mut d);
            let mut d_in_place = g.clone();
            gelu_bwd_rows_in_place_at(level, &x, &mut d_in_place);
            assert_eq!(d, d_in_place, "{level}: gelu' in place differs from gelu'");
            for i in 0..x.len() {
                let xf = x[i] as f64;
                let want_y = xf * cdf(xf);
                let pdf = (-0.5 * xf * xf).exp() / (2.0 * std::f64::consts::PI).sqrt();
                let want_d = g[i] as f64 * (cdf(xf) + xf * pdf);
                assert!(
                    (y[i] as f64 - want_y).abs() < 2e-6 * (1.0 + want_y.abs()),
                    "{level} gelu({})",
                    x[i]
                );
                assert!(
                    (d[i] as f64 - want_d).abs() < 2e-6 * (1.0 + want_d.abs()),
                    "{level} gelu'({})",
                    x[i]
                );
            }
        }
    }

    /// LayerNorm forward and backward rows on every path this CPU runs, against f64 sums, for a
    /// width that is not a multiple of any vector length.
    #[test]
    fn layer_norm_every_path_matches_f64() {
        fastmath::simd::note_skipped("layer_norm");
        let (rows, c, eps) = (5, 37, 1e-5f32);
        let mut rng = Rng::new(5);
        let x = randn(&mut rng, rows * c, 2.0);
        let (w, b) = (randn(&mut rng, c, 1.0), randn(&mut rng, c, 1.0));
        let dy = randn(&mut rng, rows * c, 1.0);
        // f64 reference: y, and dx = rstd·(dy·w − mean(dy·w) − x̂·mean(dy·w·x̂)), dw = Σ dy·x̂, db = Σ dy.
        let (mut want_y, mut want_dx, mut want_dwb) =
            (vec![0f64; rows * c], vec![0f64; rows * c], vec![0f64; 2 * c]);
        for r in 0..rows {
            let xr: Vec<f64> = x[r * c..][..c].iter().map(|&v| v as f64).collect();
            let mean = xr.iter().sum::<f64>() / c as f64;
            let var = xr.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / c as f64;
            let rstd = 1.0 / (var + eps as f64).sqrt();
            let xh: Vec<f64> = xr.iter().map(|v| (v - mean) * rstd).collect();
            let dxh: Vec<f64> = (0..c).map(|i| dy[r * c + i] as f64 * w[i] as f64).collect();
            let m1 = dxh.iter().sum::<f64>() / c as f64;
            let m2 = dxh.iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>() / c as f64;
            for i in 0..c {
                want_y[r * c + i] = xh[i] * w[i] as f64 + b[i] as f64;
                want_dx[r * c + i] = rstd * (dxh[i] - m1 - xh[i] * m2);
                want_dwb[i] += dy[r * c + i] as f64 * xh[i];
                want_dwb[c + i] += dy[r * c + i] as f64;
            }
        }
        let close = |a: f32, e: f64| (a as f64 - e).abs() < 1e-4 * (1.0 + e.abs());
        for level in available() {
            let (mut y, mut stats) = (vec![f32::NAN; rows * c], vec![(0f32, 0f32); rows]);
            layer_norm_fwd_rows_at(level, &x, &w, &b, eps, &mut y, &mut stats);
            let (mut dx, mut part) = (vec![f32::NAN; rows * c], vec![0f32; 2 * c]);
            layer_norm_bwd_rows_at(level, &x, &stats, &w, &dy, &mut dx, false, &mut part);
            for i in 0..rows * c {
                assert!(
                    close(y[i], want_y[i]),
                    "{level} y[{i}]: {} vs {}",
                    y[i],
                    want_y[i]
                );
                assert!(
                    close(dx[i], want_dx[i]),
                    "{level} dx[{i}]: {} vs {}",
                    dx[i],
                    want_dx[i]
                );
            }
            for i in 0..2 * c {
                assert!(close(part[i], want_dwb[i]), "{level} dw/db[{i}]");
            }
        }
    }
}
