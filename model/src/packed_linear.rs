//! Linear layers for decoding: `y = x·Wᵀ + b (+ residual)`, optionally through GELU, with the
//! weights packed once into 16-column panels and micro-kernels of 6 rows × 16 columns (AVX2/FMA)
//! and 12 rows × 32 columns (AVX-512).
//!
//! Why not the `gemm` crate (which training uses): a decode step multiplies the same weights by a
//! few hundred rows every time, and `gemm` repacks the weights and allocates a fresh packing
//! buffer on each call; in a profile of sampling at n_embd 256 that was about a tenth of the time
//! (packing plus the kernel zeroing freshly mapped pages). Packing once at load, and folding the
//! bias, residual and GELU into the kernel's write-back, removes those passes.

use crate::cpu::kernels::gelu_fwd;
use fastmath::simd::SimdLevel;

/// Columns per panel: two 8-lane vectors.
const NR: usize = 16;
/// Rows per tile: 12 accumulators, two weight vectors and one broadcast fill 15 of the 16
/// vector registers.
const MR: usize = 6;

/// A linear layer's weights and bias packed for [`PackedLinear::forward`].
pub(crate) struct PackedLinear {
    /// Output features.
    n: usize,
    /// Input features.
    k: usize,
    /// `(panels, k, NR)`: panel `j` holds output features `j·NR ..` for each input feature, with
    /// zeros past `n`.
    panels: Vec<f32>,
    /// The bias, zero-padded to a whole number of panels.
    bias: Vec<f32>,
}

impl PackedLinear {
    /// Packs `w` (`n × k`, row-major: one row per output feature, candle's `Linear` layout) and
    /// an optional bias of `n`.
    pub(crate) fn new(w: &[f32], bias: Option<&[f32]>, n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "PackedLinear: weight is not {n} × {k}");
        let n_panels = n.div_ceil(NR);
        let mut panels = vec![0f32; n_panels * k * NR];
        for (j, panel) in panels.chunks_mut(k * NR).enumerate() {
            for col in 0..NR.min(n - j * NR) {
                let row = &w[(j * NR + col) * k..][..k];
                for (p, &v) in row.iter().enumerate() {
                    panel[p * NR + col] = v;
                }
            }
        }
        let mut padded = vec![0f32; n_panels * NR];
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "PackedLinear: bias is not {n} long");
            padded[..n].copy_from_slice(b);
        }
        Self {
            n,
            k,
            panels,
            bias: padded,
        }
    }

    /// `out (m × n) = [gelu](x (m × k) · Wᵀ + b + resid)`, the residual (`m × n`) optional, on
    /// the calling thread: each panel in turn, and within it every tile of rows, so a panel is
    /// read from memory once and then served from L1.
    pub(crate) fn forward(&self, out: &mut [f32], x: &[f32], resid: Option<&[f32]>, m: usize, gelu: bool) {
        self.forward_at(fastmath::simd::level(), out, x, resid, m, gelu)
    }

    /// [`Self::forward`] on the path `level`, which this CPU must run (tests run each).
    pub(crate) fn forward_at(
        &self,
        level: SimdLevel,
        out: &mut [f32],
        x: &[f32],
        resid: Option<&[f32]>,
        m: usize,
        gelu: bool,
    ) {
        let (n, k) = (self.n, self.k);
        assert!(
            out.len() >= m * n && x.len() >= m * k && resid.is_none_or(|r| r.len() >= m * n),
            "PackedLinear: buffer too small"
        );
        assert!(
            level <= fastmath::simd::detected(),
            "this CPU cannot run the {level} path"
        );
        let (out, x, resid) = (&mut out[..m * n], &x[..m * k], resid.map(|r| &r[..m * n]));
        #[cfg(target_arch = "x86_64")]
        match level {
            // SAFETY: the CPU has the level's features (asserted above).
            SimdLevel::Avx512 => return unsafe { avx512::forward(self, out, x, resid, gelu) },
            SimdLevel::Avx2 => return unsafe { avx2::forward(self, out, x, resid, gelu) },
            SimdLevel::Portable => {}
        }
        self.forward_portable(out, x, resid, gelu)
    }

    /// The same arithmetic without SIMD intrinsics, for CPUs without AVX2/FMA.
    fn forward_portable(&self, out: &mut [f32], x: &[f32], resid: Option<&[f32]>, gelu: bool) {
        let (n, k) = (self.n, self.k);
        let mut pre = vec![0f32; n];
        for (i, (y, x)) in out.chunks_mut(n).zip(x.chunks(k)).enumerate() {
            for (col, p) in pre.iter_mut().enumerate() {
                let panel = &self.panels[(col / NR) * k * NR + col % NR..];
                let dot: f32 = x.iter().enumerate().map(|(q, &a)| a * panel[q * NR]).sum();
                *p = dot + self.bias[col] + resid.map_or(0.0, |r| r[i * n + col]);
            }
            if gelu {
                gelu_fwd(&pre, y);
            } else {
                y.copy_from_slice(&pre);
            }
        }
    }
}

/// `gelu(x) = x · Φ(x)` and the `exp` it needs, on one vector register, written once for the AVX2
/// and AVX-512 paths (each passes its register type, features and intrinsics): the vector form of
/// `ops::gelu_fwd`, Abramowitz & Stegun 7.1.26 for erf and Cephes' polynomial for exp (as
/// `fastmath::exp_fast`), so the MLP's activation is applied in registers.
#[cfg(target_arch = "x86_64")]
macro_rules! vector_gelu {
    (
        $v:ty, $features:literal, $floor:ident, castsi_ps: $castsi_ps:ident,
        set1: $set1:ident, add: $add:ident, sub: $sub:ident, mul: $mul:ident,
        div: $div:ident, and: $and:ident, andnot: $andnot:ident, or: $or:ident,
        fmadd: $fmadd:ident, fnmadd: $fnmadd:ident, min: $min:ident, max: $max:ident,
        cvtps_epi32: $cvtps_epi32:ident, add_epi32: $add_epi32:ident,
        set1_epi32: $set1_epi32:ident, slli_epi32: $slli_epi32:ident
    ) => {
        #[target_feature(enable = $features)]
        unsafe fn gelu(x: $v) -> $v {
            let set = $set1;
            let z = $mul(x, set(std::f32::consts::FRAC_1_SQRT_2));
            let sign = $and(z, set(-0.0));
            let a = $andnot(set(-0.0), z);
            let t = $div(set(1.0), $fmadd(set(0.327_591_1), a, set(1.0)));
            let mut poly = $fmadd(set(1.061_405_4), t, set(-1.453_152_1));
            poly = $fmadd(poly, t, set(1.421_413_8));
            poly = $fmadd(poly, t, set(-0.284_496_74));
            poly = $fmadd(poly, t, set(0.254_829_6));
            poly = $mul(poly, t);
            let e = exp($sub(set(0.0), $mul(a, a)));
            let erf = $or($fnmadd(poly, e, set(1.0)), sign);
            $mul($mul(set(0.5), x), $add(set(1.0), erf))
        }

        /// Cephes `expf`: `2^n · e^r` with `n = round(x·log2 e)` and a degree-5 polynomial in r.
        #[target_feature(enable = $features)]
        unsafe fn exp(x: $v) -> $v {
            let set = $set1;
            let x = $min($max(x, set(-87.0)), set(88.0));
            let n = $floor($fmadd(x, set(std::f32::consts::LOG2_E), set(0.5)));
            let r = $fnmadd(n, set(0.693_359_4), x);
            let r = $fnmadd(n, set(-2.121_944_4e-4), r);
            let mut p = $fmadd(set(1.987_569_1e-4), r, set(1.398_199_9e-3));
            p = $fmadd(p, r, set(8.333_452e-3));
            p = $fmadd(p, r, set(4.166_579_6e-2));
            p = $fmadd(p, r, set(0.166_666_65));
            p = $fmadd(p, r, set(0.5));
            let r2 = $mul(r, r);
            let y = $add($fmadd(p, r2, r), set(1.0));
            let pow2 = $slli_epi32::<23>($add_epi32($cvtps_epi32(n), $set1_epi32(127)));
            $mul(y, $castsi_ps(pow2))
        }
    };
}
#[cfg(target_arch = "x86_64")]
use vector_gelu;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{PackedLinear, MR, NR};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward(
        w: &PackedLinear,
        out: &mut [f32],
        x: &[f32],
        resid: Option<&[f32]>,
        gelu: bool,
    ) {
        let (n, k) = (w.n, w.k);
        let m = x.len() / k;
        let panels = n.div_ceil(NR);
        // The weights come from memory (a step's KV-cache reads evict them), so each tile also
        // prefetches its share of the next panel, 16 floats to a cache line.
        let lines_per_tile = (k * NR / 16).div_ceil(m.div_ceil(MR).max(1));
        for j in 0..panels {
            let mut r0 = 0;
            while r0 < m {
                if j + 1 < panels {
                    // SAFETY: panel j + 1 exists, and its lines lie inside `w.panels`.
                    let next = w.panels.as_ptr().add((j + 1) * k * NR);
                    let first = r0 / MR * lines_per_tile;
                    for line in first..(first + lines_per_tile).min(k * NR / 16) {
                        _mm_prefetch::<_MM_HINT_T0>(next.add(line * 16) as *const i8);
                    }
                }
                let tile = Tile {
                    x: &x[r0 * k..],
                    k,
                    panel: &w.panels[j * k * NR..][..k * NR],
                    bias: &w.bias[j * NR..][..NR],
                    resid: resid.map(|r| &r[r0 * n + j * NR..]),
                    out: &mut out[r0 * n + j * NR..],
                    n,
                    cols: NR.min(n - j * NR),
                    gelu,
                };
                let rows = MR.min(m - r0);
                match rows {
                    6 => tile.run::<6>(),
                    5 => tile.run::<5>(),
                    4 => tile.run::<4>(),
                    3 => tile.run::<3>(),
                    2 => tile.run::<2>(),
                    _ => tile.run::<1>(),
                }
                r0 += rows;
            }
        }
    }

    /// One tile: up to [`MR`] rows of `x` against one panel, written to `out` with the epilogue.
    struct Tile<'a> {
        x: &'a [f32],
        k: usize,
        panel: &'a [f32],
        bias: &'a [f32],
        resid: Option<&'a [f32]>,
        /// From the tile's first output on; rows `n` apart.
        out: &'a mut [f32],
        /// Row stride of `out` and `resid`.
        n: usize,
        /// Valid columns of this panel (`NR` but in the last one).
        cols: usize,
        gelu: bool,
    }

    impl Tile<'_> {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn run<const R: usize>(self) {
            let k = self.k;
            assert!(self.x.len() >= (R - 1) * k + k && self.panel.len() >= k * NR);
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            // SAFETY: the assert above bounds every read: rows `< R` of `k` values of `x`, and
            // `k` steps of `NR` values of the panel.
            let a: [*const f32; R] = std::array::from_fn(|r| self.x.as_ptr().add(r * k));
            let mut b = self.panel.as_ptr();
            for p in 0..k {
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                b = b.add(NR);
                for (acc, a) in acc.iter_mut().zip(&a) {
                    let ar = _mm256_broadcast_ss(&*a.add(p));
                    acc[0] = _mm256_fmadd_ps(ar, b0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(ar, b1, acc[1]);
                }
            }
            let bias = [
                _mm256_loadu_ps(self.bias.as_ptr()),
                _mm256_loadu_ps(self.bias.as_ptr().add(8)),
            ];
            let mut buf = [0f32; NR];
            for (r, acc) in acc.iter().enumerate() {
                let mut y = [_mm256_add_ps(acc[0], bias[0]), _mm256_add_ps(acc[1], bias[1])];
                let dst = &mut self.out[r * self.n..][..self.cols];
                if let Some(res) = self.resid {
                    let res = &res[r * self.n..][..self.cols];
                    if self.cols == NR {
                        y[0] = _mm256_add_ps(y[0], _mm256_loadu_ps(res.as_ptr()));
                        y[1] = _mm256_add_ps(y[1], _mm256_loadu_ps(res.as_ptr().add(8)));
                    } else {
                        buf[..self.cols].copy_from_slice(res);
                        y[0] = _mm256_add_ps(y[0], _mm256_loadu_ps(buf.as_ptr()));
                        y[1] = _mm256_add_ps(y[1], _mm256_loadu_ps(buf.as_ptr().add(8)));
                    }
                }
                if self.gelu {
                    y = [gelu(y[0]), gelu(y[1])];
                }
                if self.cols == NR {
                    _mm256_storeu_ps(dst.as_mut_ptr(), y[0]);
                    _mm256_storeu_ps(dst.as_mut_ptr().add(8), y[1]);
                } else {
                    _mm256_storeu_ps(buf.as_mut_ptr(), y[0]);
                    _mm256_storeu_ps(buf.as_mut_ptr().add(8), y[1]);
                    dst.copy_from_slice(&buf[..self.cols]);
                }
            }
        }
    }

    /// `_mm256_floor_ps` under the name the shared GELU expects.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn floor(x: __m256) -> __m256 {
        _mm256_floor_ps(x)
    }

    super::vector_gelu! {
        __m256, "avx2,fma", floor, castsi_ps: _mm256_castsi256_ps,
        set1: _mm256_set1_ps, add: _mm256_add_ps, sub: _mm256_sub_ps, mul: _mm256_mul_ps,
        div: _mm256_div_ps, and: _mm256_and_ps, andnot: _mm256_andnot_ps, or: _mm256_or_ps,
        fmadd: _mm256_fmadd_ps, fnmadd: _mm256_fnmadd_ps, min: _mm256_min_ps, max: _mm256_max_ps,
        cvtps_epi32: _mm256_cvtps_epi32, add_epi32: _mm256_add_epi32,
        set1_epi32: _mm256_set1_epi32, slli_epi32: _mm256_slli_epi32
    }
}

/// The AVX-512 path: tiles of up to [`avx512::MR`] rows × two panels (32 columns) in 24 of the 32
/// vector registers; partial panels are written through masks. Each output is the same ordered
/// sum of FMAs as on the AVX2 path.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{PackedLinear, NR};
    use std::arch::x86_64::*;

    /// Rows per tile: 12 rows × 2 panels = 24 accumulators, two weight vectors, one broadcast.
    pub(super) const MR: usize = 12;

    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub(super) unsafe fn forward(
        w: &PackedLinear,
        out: &mut [f32],
        x: &[f32],
        resid: Option<&[f32]>,
        gelu: bool,
    ) {
        let (n, k) = (w.n, w.k);
        let m = x.len() / k;
        let panels = n.div_ceil(NR);
        let mut j = 0;
        while j < panels {
            let pair = (panels - j).min(2);
            let mut r0 = 0;
            while r0 < m {
                let rows = MR.min(m - r0);
                let tile = Tile {
                    x: &x[r0 * k..],
                    k,
                    panels: &w.panels[j * k * NR..][..pair * k * NR],
                    bias: &w.bias[j * NR..][..pair * NR],
                    resid: resid.map(|r| &r[r0 * n + j * NR..]),
                    out: &mut out[r0 * n + j * NR..],
                    n,
                    cols: (n - j * NR).min(pair * NR),
                    gelu,
                };
                if pair == 2 {
                    tile.run_rows::<2>(rows);
                } else {
                    tile.run_rows::<1>(rows);
                }
                r0 += rows;
            }
            j += pair;
        }
    }

    /// One tile: up to [`MR`] rows of `x` against `P` adjacent panels.
    struct Tile<'a> {
        x: &'a [f32],
        k: usize,
        /// `P` panels of `k × NR`, one after the other.
        panels: &'a [f32],
        bias: &'a [f32],
        resid: Option<&'a [f32]>,
        /// From the tile's first output on; rows `n` apart.
        out: &'a mut [f32],
        n: usize,
        /// Valid columns of the `P · NR`.
        cols: usize,
        gelu: bool,
    }

    impl Tile<'_> {
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
        unsafe fn run_rows<const P: usize>(self, rows: usize) {
            match rows {
                12 => self.run::<12, P>(),
                11 => self.run::<11, P>(),
                10 => self.run::<10, P>(),
                9 => self.run::<9, P>(),
                8 => self.run::<8, P>(),
                7 => self.run::<7, P>(),
                6 => self.run::<6, P>(),
                5 => self.run::<5, P>(),
                4 => self.run::<4, P>(),
                3 => self.run::<3, P>(),
                2 => self.run::<2, P>(),
                _ => self.run::<1, P>(),
            }
        }

        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
        unsafe fn run<const R: usize, const P: usize>(self) {
            let (k, n) = (self.k, self.n);
            assert!(self.x.len() >= (R - 1) * k + k && self.panels.len() >= P * k * NR);
            assert!(self.out.len() >= (R - 1) * n + self.cols);
            assert!(self.resid.is_none_or(|r| r.len() >= (R - 1) * n + self.cols));
            // One accumulator array per panel, indexed by constants only once unrolled, so that
            // all 24 stay in registers.
            let mut acc0 = [_mm512_setzero_ps(); R];
            let mut acc1 = [_mm512_setzero_ps(); R];
            // SAFETY: the asserts above bound every read: rows `< R` of `k` values of `x`, and
            // `k` steps of `NR` values in each of the `P` panels.
            let x = self.x.as_ptr();
            let b = self.panels.as_ptr();
            for p in 0..k {
                let b0 = _mm512_loadu_ps(b.add(p * NR));
                let b1 = if P == 2 {
                    _mm512_loadu_ps(b.add(k * NR + p * NR))
                } else {
                    b0
                };
                for r in 0..R {
                    let ar = _mm512_set1_ps(*x.add(r * k + p));
                    acc0[r] = _mm512_fmadd_ps(ar, b0, acc0[r]);
                    if P == 2 {
                        acc1[r] = _mm512_fmadd_ps(ar, b1, acc1[r]);
                    }
                }
            }
            let acc: [&[__m512; R]; 2] = [&acc0, &acc1];
            for q in 0..P {
                let c0 = q * NR;
                if c0 >= self.cols {
                    break;
                }
                let valid = (self.cols - c0).min(NR);
                let mask: __mmask16 = ((1u32 << valid) - 1) as u16;
                let bias = _mm512_loadu_ps(self.bias.as_ptr().add(c0));
                for (r, acc) in acc[q].iter().enumerate() {
                    let mut y = _mm512_add_ps(*acc, bias);
                    if let Some(res) = self.resid {
                        // Masked: lanes past the valid columns are neither read nor written.
                        y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, res.as_ptr().add(r * n + c0)));
                    }
                    if self.gelu {
                        y = gelu(y);
                    }
                    _mm512_mask_storeu_ps(self.out.as_mut_ptr().add(r * n + c0), mask, y);
                }
            }
        }
    }

    /// Rounding towards −∞ (AVX-512 has no `floor_ps`), under the name the shared GELU expects.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    unsafe fn floor(x: __m512) -> __m512 {
        _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(x)
    }

    super::vector_gelu! {
        __m512, "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma", floor, castsi_ps: _mm512_castsi512_ps,
        set1: _mm512_set1_ps, add: _mm512_add_ps, sub: _mm512_sub_ps, mul: _mm512_mul_ps,
        div: _mm512_div_ps, and: _mm512_and_ps, andnot: _mm512_andnot_ps, or: _mm512_or_ps,
        fmadd: _mm512_fmadd_ps, fnmadd: _mm512_fnmadd_ps, min: _mm512_min_ps, max: _mm512_max_ps,
        cvtps_epi32: _mm512_cvtps_epi32, add_epi32: _mm512_add_epi32,
        set1_epi32: _mm512_set1_epi32, slli_epi32: _mm512_slli_epi32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn reference(
        w: &[f32],
        b: &[f32],
        x: &[f32],
        r: Option<&[f32]>,
        m: usize,
        n: usize,
        k: usize,
    ) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k).map(|p| x[i * k + p] as f64 * w[j * k + p] as f64).sum();
                y[i * n + j] = (dot + b[j] as f64 + r.map_or(0.0, |r| r[i * n + j] as f64)) as f32;
            }
        }
        y
    }

    /// Every shape class (partial tiles and panels), with and without the residual and GELU, on
    /// every path this CPU runs, against a plain f64 triple loop and an independent erf.
    #[test]
    fn matches_plain_matmul() {
        fastmath::simd::note_skipped("PackedLinear");
        let mut rng = Rng::new(3);
        for (m, n, k) in [
            (1, 5, 3),
            (7, 16, 8),
            (13, 28, 24),
            (20, 80, 200),
            (131, 33, 70),
            (25, 48, 17),
        ] {
            let mut rand = |len: usize| (0..len).map(|_| rng.normal() as f32).collect::<Vec<_>>();
            let (w, b, x, r) = (rand(n * k), rand(n), rand(m * k), rand(m * n));
            let lin = PackedLinear::new(&w, Some(&b), n, k);
            for resid in [None, Some(&r[..])] {
                let want = reference(&w, &b, &x, resid, m, n, k);
                for level in fastmath::simd::available() {
                    let mut out = vec![f32::NAN; m * n];
                    lin.forward_at(level, &mut out, &x, resid, m, false);
                    for (a, e) in out.iter().zip(&want) {
                        assert!(
                            (a - e).abs() < 1e-4 * (1.0 + e.abs()),
                            "{level} {m}×{n}×{k}: {a} vs {e}"
                        );
                    }
                    let mut act = vec![f32::NAN; m * n];
                    lin.forward_at(level, &mut act, &x, resid, m, true);
                    for (a, e) in act.iter().zip(&want) {
                        let e = 0.5 * e * (1.0 + libm_erf(e / std::f32::consts::SQRT_2));
                        assert!(
                            (a - e).abs() < 1e-4 * (1.0 + e.abs()),
                            "{level} gelu {m}×{n}×{k}: {a} vs {e}"
                        );
                    }
                }
            }
        }
    }

    /// erf to double precision by its Maclaurin series (|x| small) or the continued fraction of
    /// erfc (|x| large), independent of the kernel's approximation.
    fn libm_erf(x: f32) -> f32 {
        let x = x as f64;
        if x.abs() < 3.0 {
            let (mut term, mut sum) = (x, x);
            for i in 1..200 {
                term *= -x * x / i as f64;
                sum += term / (2 * i + 1) as f64;
            }
            (sum * 2.0 / std::f64::consts::PI.sqrt()) as f32
        } else {
            let a = x.abs();
            let mut f = 0.0;
            for i in (1..60).rev() {
                f = (i as f64 / 2.0) / (a + f);
            }
            let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f);
            ((1.0 - erfc) * x.signum()) as f32
        }
    }
}
