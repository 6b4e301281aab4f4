//! Slice kernels shared by the hand-written CPU passes (training, decoding) and the fused candle
//! ops: LayerNorm statistics and backward, branch-free exp/erf/GELU, dot and axpy, and the
//! `gemm` matrix product. Hot loops are compiled twice through [`dispatch`]: for AVX2+FMA when the
//! CPU has them (detected at run time), and for baseline x86-64.

pub(crate) use fastmath::exp_fast;
use rayon::prelude::*;

#[inline(always)]
pub(crate) fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

// Branch-free exp/erf so the GELU loops vectorise, and AVX2+FMA dispatch for the hot loops (the
// crate is built for baseline x86-64; `is_x86_feature_detected!` is cached by std).

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
    // d/dx x·Φ(x) = Φ(x) + x·φ(x)
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    for ((d, &x), &g) in d.iter_mut().zip(x).zip(g) {
        let cdf = 0.5 * (1.0 + erf_fast(x * std::f32::consts::FRAC_1_SQRT_2));
        *d = g * (cdf + x * INV_SQRT_2PI * exp_fast(-0.5 * x * x));
    }
}

/// Defines `$name` running `$body` compiled for AVX2+FMA when the CPU has it.
macro_rules! dispatch {
    ($vis:vis $name:ident, $avx:ident, $body:ident, ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $avx($($arg: $ty),*) {
            $body($($arg),*)
        }
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: the features were detected just above.
                return unsafe { $avx($($arg),*) };
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use dispatch;
dispatch!(pub(crate) gelu_fwd, gelu_fwd_avx2, gelu_fwd_body, (x: &[f32], y: &mut [f32]));
dispatch!(pub(crate) gelu_bwd, gelu_bwd_avx2, gelu_bwd_body, (x: &[f32], g: &[f32], d: &mut [f32]));

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

pub(crate) fn resize(v: &mut Vec<f32>, len: usize) {
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
        .for_each(|(d, x)| {
            let g = d.to_vec();
            gelu_bwd(x, &g, d);
        });
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

pub(crate) fn layer_norm_fwd(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    eps: f32,
    out: &mut [f32],
    stats: &mut [(f32, f32)],
) {
    let c = w.len();
    out.par_chunks_mut(c)
        .zip(x.par_chunks(c))
        .zip(stats.par_iter_mut())
        .for_each(|((y, x), st)| {
            let (mean, rstd) = row_stats(x, eps);
            *st = (mean, rstd);
            for i in 0..c {
                y[i] = (x[i] - mean) * rstd * w[i] + b[i];
            }
        });
}

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
            for (((dx, x), dy), &(mean, rstd)) in dx.chunks_mut(c).zip(x.chunks(c)).zip(dy.chunks(c)).zip(st)
            {
                let (mut m1, mut m2) = (0f32, 0f32);
                for i in 0..c {
                    let xh = (x[i] - mean) * rstd;
                    let dxh = dy[i] * w[i];
                    m1 += dxh;
                    m2 += dxh * xh;
                    part[i] += dy[i] * xh;
                    part[c + i] += dy[i];
                }
                let (m1, m2) = (m1 / c as f32, m2 / c as f32);
                for i in 0..c {
                    let xh = (x[i] - mean) * rstd;
                    let v = rstd * (dy[i] * w[i] - m1 - xh * m2);
                    if acc {
                        dx[i] += v;
                    } else {
                        dx[i] = v;
                    }
                }
            }
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
