//! Morgan fingerprints as packed 1024-bit sets and Tanimoto similarity by popcount, single and bulk
//! (one-vs-many, all pairs), parallel with rayon.

use rayon::prelude::*;

/// A 1024-bit Morgan fingerprint (radius 2), packed in 16 words.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    words: [u64; 16],
}

impl Fingerprint {
    /// Number of bits.
    pub const BITS: usize = 1024;

    /// From packed words, bit i in word i / 64 at position i % 64.
    pub fn from_words(words: &[u64]) -> Self {
        let mut packed = [0u64; 16];
        packed.copy_from_slice(&words[..16]);
        Fingerprint { words: packed }
    }

    /// From 128 bytes, bit i in byte i / 8 at position i % 8 (the words' little-endian bytes).
    pub fn from_le_bytes(bytes: &[u8; 128]) -> Self {
        let mut words = [0u64; 16];
        for (w, b) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        }
        Fingerprint { words }
    }

    /// The packed words.
    pub fn words(&self) -> &[u64; 16] {
        &self.words
    }

    /// Is bit `i` set?
    pub fn bit(&self, i: usize) -> bool {
        self.words[i / 64] >> (i % 64) & 1 == 1
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// Number of bits set in both.
    #[inline]
    pub fn common(&self, other: &Fingerprint) -> u32 {
        let mut n = 0;
        for i in 0..16 {
            n += (self.words[i] & other.words[i]).count_ones();
        }
        n
    }

    /// Tanimoto similarity |a ∧ b| / |a ∨ b|; two empty fingerprints count as identical (1.0), as in RDKit.
    pub fn tanimoto(&self, other: &Fingerprint) -> f64 {
        tanimoto_from_counts(self.common(other), self.count_ones(), other.count_ones())
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({} bits on)", self.count_ones())
    }
}

#[inline]
fn tanimoto_from_counts(common: u32, a: u32, b: u32) -> f64 {
    let union = a + b - common;
    if union == 0 {
        1.0
    } else {
        common as f64 / union as f64
    }
}

/// Tanimoto of one fingerprint against many (`BulkTanimotoSimilarity`), in parallel.
pub fn bulk_tanimoto(query: &Fingerprint, others: &[Fingerprint]) -> Vec<f64> {
    let q = query.count_ones();
    others
        .par_iter()
        .map(|o| tanimoto_from_counts(query.common(o), q, o.count_ones()))
        .collect()
}

/// Runs the loop `$body` compiled with the POPCNT instruction where the CPU has it (every x86-64
/// CPU since about 2009): `u64::count_ones` in the baseline x86-64 target is a bit-twiddling
/// sequence several times slower. Selected at run time, so the binary needs no `target-cpu` flag
/// (which would apply to every crate, and costs the `gemm` kernels about a third of their speed).
macro_rules! with_popcnt {
    ($name:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty, $body:block) => {
        fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "popcnt")]
                unsafe fn fast($($arg: $ty),*) -> $ret $body
                if std::arch::is_x86_feature_detected!("popcnt") {
                    // SAFETY: the CPU supports POPCNT (checked just above).
                    return unsafe { fast($($arg),*) };
                }
            }
            $body
        }
    };
}

/// The most similar reference fingerprint so far, as the fraction `common / union` (compared
/// by cross-multiplication, no division; both ≤ 2048, so the products fit in u32) and its index.
#[derive(Clone, Copy)]
struct Best {
    common: u32,
    union: u32,
    index: usize,
}

impl Best {
    /// Nothing seen yet (any reference, even at similarity 0, replaces it).
    const NONE: Best = Best {
        common: 0,
        union: 1,
        index: usize::MAX,
    };

    /// Keeps reference `index` at `common / union` if it is at least as similar (so the last of
    /// equally similar references wins, as `Iterator::max_by` picks). Two empty fingerprints
    /// (union 0) have similarity 1, as `tanimoto_from_counts` says.
    #[inline(always)]
    fn keep(&mut self, common: u32, union: u32, index: usize) {
        let (c, u) = if union == 0 { (1, 1) } else { (common, union) };
        if c * self.union >= self.common * u {
            *self = Best {
                common: c,
                union: u,
                index,
            };
        }
    }

    /// `(index, similarity)`, `None` when no reference was seen.
    fn get(self) -> Option<(usize, f64)> {
        (self.index != usize::MAX).then(|| (self.index, self.common as f64 / self.union as f64))
    }
}

with_popcnt!(best_tanimotos, (queries: &[Fingerprint], reference: &[Fingerprint], ref_counts: &[u32]) -> Vec<Best>, {
    // The reference is read in tiles that stay in the L2 cache while every query of the block
    // scans them, instead of streaming the whole reference (22 MB for MOSES test) once per query.
    const TILE: usize = 2048;
    let q_counts: Vec<u32> = queries.iter().map(Fingerprint::count_ones).collect();
    let mut best = vec![Best::NONE; queries.len()];
    for (t, (tile, tile_counts)) in reference.chunks(TILE).zip(ref_counts.chunks(TILE)).enumerate() {
        for ((q, &qc), b) in queries.iter().zip(&q_counts).zip(&mut best) {
            for (k, (r, &rc)) in tile.iter().zip(tile_counts).enumerate() {
                let c = q.common(r);
                b.keep(c, qc + rc - c, t * TILE + k);
            }
        }
    }
    best
});

/// `best_tanimotos` with AVX-512 VPOPCNTQ: a pair's common bits in two vector AND + popcounts and
/// one horizontal sum, instead of sixteen scalar ones.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
unsafe fn best_tanimotos_avx512(
    queries: &[Fingerprint],
    reference: &[Fingerprint],
    ref_counts: &[u32],
) -> Vec<Best> {
    use std::arch::x86_64::*;
    const TILE: usize = 2048;
    let load = |f: &Fingerprint, half: usize| {
        // SAFETY: 16 words = two 64-byte vectors; unaligned loads.
        unsafe { _mm512_loadu_si512(f.words.as_ptr().add(8 * half).cast()) }
    };
    let q_counts: Vec<u32> = queries.iter().map(Fingerprint::count_ones).collect();
    let mut best = vec![Best::NONE; queries.len()];
    for (t, (tile, tile_counts)) in reference.chunks(TILE).zip(ref_counts.chunks(TILE)).enumerate() {
        for ((q, &qc), b) in queries.iter().zip(&q_counts).zip(&mut best) {
            let (q0, q1) = (load(q, 0), load(q, 1));
            let mut local = *b;
            for (k, (r, &rc)) in tile.iter().zip(tile_counts).enumerate() {
                let both = _mm512_add_epi64(
                    _mm512_popcnt_epi64(_mm512_and_si512(q0, load(r, 0))),
                    _mm512_popcnt_epi64(_mm512_and_si512(q1, load(r, 1))),
                );
                let c = _mm512_reduce_add_epi64(both) as u32;
                local.keep(c, qc + rc - c, t * TILE + k);
            }
            *b = local;
        }
    }
    best
}

/// For each fingerprint of `queries`, the most similar of `reference` by Tanimoto: its index
/// and similarity (the last of equally similar ones; `None` when `reference` is empty).
pub fn nearest_tanimoto(queries: &[Fingerprint], reference: &[Fingerprint]) -> Vec<Option<(usize, f64)>> {
    let ref_counts: Vec<u32> = reference.iter().map(Fingerprint::count_ones).collect();
    #[cfg(target_arch = "x86_64")]
    let vpopcnt = fastmath::simd::level() == fastmath::simd::SimdLevel::Avx512
        && std::arch::is_x86_feature_detected!("avx512vpopcntdq");
    #[cfg(not(target_arch = "x86_64"))]
    let vpopcnt = false;
    queries
        .par_chunks(32)
        .flat_map_iter(|block| {
            #[cfg(target_arch = "x86_64")]
            if vpopcnt {
                // SAFETY: the CPU has AVX-512F and VPOPCNTDQ (checked above).
                return unsafe { best_tanimotos_avx512(block, reference, &ref_counts) };
            }
            let _ = vpopcnt;
            best_tanimotos(block, reference, &ref_counts)
        })
        .map(Best::get)
        .collect()
}

/// For each fingerprint of `queries`, the highest Tanimoto to any of `reference` (0 when empty).
pub fn max_tanimoto(queries: &[Fingerprint], reference: &[Fingerprint]) -> Vec<f64> {
    nearest_tanimoto(queries, reference)
        .into_iter()
        .map(|n| n.map_or(0.0, |(_, sim)| sim))
        .collect()
}

with_popcnt!(block_sums, (fps: &[Fingerprint], counts: &[u32], recip: &[f64], block: usize, n_blocks: usize) -> Vec<[f64; 2]>, {
    let n = fps.len();
    let tanimoto = |common: u32, union: u32| {
        if union == 0 {
            1.0
        } else {
            common as f64 * recip[union as usize]
        }
    };
    let mut col = vec![[0.0f64; 2]; n];
    let mut i = block;
    while i < n {
        let (fi, ci) = (&fps[i], counts[i]);
        let (mut row1, mut row2) = (0.0, 0.0);
        for ((fj, &cj), col_j) in fps[i + 1..].iter().zip(&counts[i + 1..]).zip(&mut col[i + 1..]) {
            let common = fi.common(fj);
            let t = tanimoto(common, ci + cj - common);
            row1 += t;
            row2 += t * t;
            col_j[0] += t;
            col_j[1] += t * t;
        }
        let self_t = tanimoto(ci, ci);
        col[i][0] += row1 + self_t;
        col[i][1] += row2 + self_t * self_t;
        i += n_blocks;
    }
    col
});

/// Per-row sums over all pairs (self pairs included) of T and T², using symmetry: each unordered
/// pair is computed once.
fn all_pairs_row_sums(fps: &[Fingerprint]) -> (Vec<f64>, Vec<f64>) {
    let n = fps.len();
    let counts: Vec<u32> = fps.iter().map(Fingerprint::count_ones).collect();
    // T = common / union with union ≤ 2048: multiplying by a table of reciprocals (L1-resident)
    // instead of dividing makes the inner loop about twice as fast; the sums agree to ~1e-16.
    let recip: Vec<f64> = (0..=2 * Fingerprint::BITS)
        .map(|u| if u == 0 { 0.0 } else { 1.0 / u as f64 })
        .collect();
    // Rows are split into blocks; block b handles rows i with j > i. Rows are interleaved across
    // blocks so the triangle's work is balanced. Each block keeps its own column sums [T, T²].
    let n_blocks = (rayon::current_num_threads() * 8).max(1);
    let sums = (0..n_blocks)
        .into_par_iter()
        .map(|block| block_sums(fps, &counts, &recip, block, n_blocks))
        .reduce(
            || vec![[0.0; 2]; n],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    x[0] += y[0];
                    x[1] += y[1];
                }
                a
            },
        );
    (
        sums.iter().map(|s| s[0]).collect(),
        sums.iter().map(|s| s[1]).collect(),
    )
}

/// Internal diversity with MOSES semantics for p = 1 and p = 2 at once:
/// IntDiv_p = 1 − mean_i ( mean_j T(i,j)^p )^(1/p), self pairs included. Returns `(IntDiv1, IntDiv2)`;
/// NaN for an empty set.
pub fn internal_diversity(fps: &[Fingerprint]) -> (f64, f64) {
    let n = fps.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let (s1, s2) = all_pairs_row_sums(fps);
    let nf = n as f64;
    let mean1 = s1.iter().map(|s| s / nf).sum::<f64>() / nf;
    let mean2 = s2.iter().map(|s| (s / nf).sqrt()).sum::<f64>() / nf;
    (1.0 - mean1, 1.0 - mean2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_tanimoto_is_the_brute_force_maximum() {
        // Pseudo-random fingerprints of varied density (xorshift), two empty ones, and more
        // references than one tile, against the pairwise definition.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut random = |density: u32| {
            let words: Vec<u64> = (0..16)
                .map(|_| (0..density).fold(!0u64, |w, _| w & next()))
                .collect();
            Fingerprint::from_words(&words)
        };
        let mut reference: Vec<Fingerprint> = (0..2500).map(|i| random(2 + i % 4)).collect();
        reference.push(Fingerprint::from_words(&[0; 16]));
        let mut queries: Vec<Fingerprint> = (0..70).map(|i| random(2 + i % 5)).collect();
        queries.push(Fingerprint::from_words(&[0; 16]));
        // Ties: a query's exact copy twice in the reference, in different tiles.
        queries.push(reference[7]);
        reference.push(reference[7]);
        let got = max_tanimoto(&queries, &reference);
        for (q, g) in queries.iter().zip(&got) {
            let want = reference.iter().map(|r| q.tanimoto(r)).fold(0.0, f64::max);
            assert_eq!(*g, want);
        }
        assert_eq!(got[70], 1.0, "empty against empty is 1");
        // The nearest one's index is the last maximum, as `Iterator::max_by` picks it.
        let nearest = nearest_tanimoto(&queries, &reference);
        for (q, n) in queries.iter().zip(&nearest) {
            let want = reference
                .iter()
                .enumerate()
                .map(|(i, r)| (i, q.tanimoto(r)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            assert_eq!(*n, want);
        }
        assert_eq!(nearest[71], Some((reference.len() - 1, 1.0)));
        // The portable loop too (the vector one runs where the CPU has AVX-512 VPOPCNTDQ).
        let counts: Vec<u32> = reference.iter().map(Fingerprint::count_ones).collect();
        let portable: Vec<_> = best_tanimotos(&queries, &reference, &counts)
            .into_iter()
            .map(Best::get)
            .collect();
        assert_eq!(portable, nearest);
        assert_eq!(max_tanimoto(&queries, &[]), vec![0.0; queries.len()]);
        assert_eq!(nearest_tanimoto(&queries, &[]), vec![None; queries.len()]);
    }

    #[test]
    fn bytes_in_numpy_bit_order() {
        // numpy.packbits(..., bitorder="little") order: bit i in byte i / 8 at position i % 8.
        let mut bytes = [0u8; 128];
        bytes[0] = 0b0000_0101; // bits 0 and 2
        bytes[127] = 0b1000_0000; // bit 1023
        let f = Fingerprint::from_le_bytes(&bytes);
        let set: Vec<usize> = (0..Fingerprint::BITS).filter(|&i| f.bit(i)).collect();
        assert_eq!(set, [0, 2, 1023]);
    }

    fn fp(bits: &[usize]) -> Fingerprint {
        let mut words = [0u64; 16];
        for &b in bits {
            words[b / 64] |= 1 << (b % 64);
        }
        Fingerprint { words }
    }

    #[test]
    fn tanimoto_closed_form() {
        let a = fp(&[1, 2, 3, 700]);
        let b = fp(&[2, 3, 4, 700, 1023]);
        // common 3, union 6
        assert_eq!(a.tanimoto(&b), 0.5);
        assert_eq!(a.tanimoto(&a), 1.0);
        assert_eq!(fp(&[]).tanimoto(&fp(&[])), 1.0);
        assert_eq!(fp(&[5]).tanimoto(&fp(&[6])), 0.0);
    }

    #[test]
    fn intdiv_matches_the_naive_double_loop() {
        let fps: Vec<Fingerprint> = (0..37)
            .map(|i| fp(&[(i * 7) % 1024, (i * 13) % 1024, 5, (i * i) % 1024, 900 + i % 3]))
            .collect();
        let n = fps.len() as f64;
        let (mut m1, mut m2) = (0.0, 0.0);
        for a in &fps {
            let (mut r1, mut r2) = (0.0, 0.0);
            for b in &fps {
                let t = a.tanimoto(b);
                r1 += t;
                r2 += t * t;
            }
            m1 += r1 / n;
            m2 += (r2 / n).sqrt();
        }
        let (d1, d2) = internal_diversity(&fps);
        assert!((d1 - (1.0 - m1 / n)).abs() < 1e-12);
        assert!((d2 - (1.0 - m2 / n)).abs() < 1e-12);
    }
}
