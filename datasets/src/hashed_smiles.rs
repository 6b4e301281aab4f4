//! A compact set of canonical SMILES for novelty: each string kept as a 36-bit hash, so all of
//! MOSES train (1.58 million molecules, about 100 MB of SMILES) fits in the binary in 3.6 MB.
//!
//! Why 36 bits: a novel molecule is taken for a training one only when its hash collides with
//! one of the set's n, with chance n / 2^36 (2.3e-5 for MOSES train): novelty reads at most
//! 0.00002 low, below the third decimal that the metrics are compared at.
//!
//! Layout (the whole file gzip-compressed): the magic `SMIRLHS1`, the count n (u64 LE), then one
//! byte per bucket of the hash's high 20 bits giving how many hashes fall in it, then each hash's
//! low 16 bits (u16 LE), bucket by bucket, ascending within a bucket.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::OnceLock;

use crate::DatasetError;

const MAGIC: &[u8; 8] = b"SMIRLHS1";
/// Bits of each kept hash.
pub const HASH_BITS: u32 = 36;
const LOW_BITS: u32 = 16;
const BUCKETS: usize = 1 << (HASH_BITS - LOW_BITS);

/// FNV-1a (64 bits) of `bytes`: the published offset basis and prime, stable across platforms and
/// Rust versions (unlike `std`'s hasher), so a file written once is read the same everywhere.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The kept hash of a SMILES string: FNV-1a, mixed by splitmix64's finaliser (FNV's high bits
/// alone vary little between strings that differ at the end), top [`HASH_BITS`] bits.
pub fn smiles_hash(smiles: &str) -> u64 {
    let mut z = fnv1a64(smiles.as_bytes());
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    z >> (64 - HASH_BITS)
}

/// A set of SMILES strings held as sorted hashes; see the module comment for its false-positive
/// rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedSmiles {
    sorted: Vec<u64>,
}

impl HashedSmiles {
    /// The set of `smiles` (repeats counted once).
    pub fn from_smiles<'a>(smiles: impl IntoIterator<Item = &'a str>) -> Self {
        let mut sorted: Vec<u64> = smiles.into_iter().map(smiles_hash).collect();
        sorted.sort_unstable();
        sorted.dedup();
        Self { sorted }
    }

    /// Whether `smiles` (or a string with the same hash) is in the set.
    pub fn contains(&self, smiles: &str) -> bool {
        self.sorted.binary_search(&smiles_hash(smiles)).is_ok()
    }

    /// Distinct hashes held.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The file form (gzip-compressed; layout in the module comment).
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let mut counts = vec![0u8; BUCKETS];
        for &h in &self.sorted {
            let c = &mut counts[(h >> LOW_BITS) as usize];
            *c = c.checked_add(1).ok_or_else(|| {
                "more than 255 hashes in one bucket: the set is too large for this layout".to_string()
            })?;
        }
        let mut raw = Vec::with_capacity(16 + BUCKETS + 2 * self.sorted.len());
        raw.extend_from_slice(MAGIC);
        raw.extend_from_slice(&(self.sorted.len() as u64).to_le_bytes());
        raw.extend_from_slice(&counts);
        for &h in &self.sorted {
            raw.extend_from_slice(&((h & ((1 << LOW_BITS) - 1)) as u16).to_le_bytes());
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&raw).map_err(|e| e.to_string())?;
        gz.finish().map_err(|e| e.to_string())
    }

    /// Reads the file form; `what` names the source in errors.
    pub fn decode(gz: &[u8], what: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{what}: not a hashed SMILES set ({why})");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut raw)
            .map_err(|e| bad(&e.to_string()))?;
        if raw.len() < 16 + BUCKETS || &raw[..8] != MAGIC {
            return Err(bad("no SMIRLHS1 header"));
        }
        let n = u64::from_le_bytes(raw[8..16].try_into().unwrap()) as usize;
        let (counts, lows) = raw[16..].split_at(BUCKETS);
        if lows.len() != 2 * n || counts.iter().map(|&c| c as usize).sum::<usize>() != n {
            return Err(bad("its counts and its length disagree"));
        }
        let mut sorted = Vec::with_capacity(n);
        let mut low = lows.chunks_exact(2);
        for (bucket, &count) in counts.iter().enumerate() {
            for _ in 0..count {
                let l = low.next().expect("length checked above");
                sorted.push(((bucket as u64) << LOW_BITS) | u64::from(u16::from_le_bytes([l[0], l[1]])));
            }
        }
        if sorted.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("hashes not ascending"));
        }
        Ok(Self { sorted })
    }

    /// Writes the file form to `path`.
    pub fn write(&self, path: &Path) -> Result<(), DatasetError> {
        let write_error = |source| DatasetError::Write {
            path: path.to_path_buf(),
            source,
        };
        let bytes = self.encode().map_err(|e| write_error(std::io::Error::other(e)))?;
        std::fs::write(path, bytes).map_err(write_error)
    }
}

/// What the embedded training hashes are, for logs and reports.
pub const EMBEDDED_TRAIN_HASHES_NAME: &str =
    "all of MOSES train (1,584,663 molecules, canonical SMILES held as 36-bit hashes)";

/// `datasets/embed_train_hashes.sh` writes it from molsets' train.csv.gz.
static TRAIN_HASHES_GZ: &[u8] = include_bytes!("../corpus/moses_train_canonical.hashes.gz");

/// Every MOSES train molecule's RDKit canonical SMILES, hashed: novelty's default training set.
/// Decoded once (about 50 ms) and shared.
pub fn embedded_train_hashes() -> &'static HashedSmiles {
    static SET: OnceLock<HashedSmiles> = OnceLock::new();
    SET.get_or_init(|| {
        HashedSmiles::decode(TRAIN_HASHES_GZ, "the embedded MOSES train hashes")
            .expect("the embedded MOSES train hashes are well formed")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FNV-1a 64 test vectors from the FNV reference (Fowler, Noll, Vo; draft-eastlake-fnv).
    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn encode_then_decode_is_the_same_set() {
        let smiles = ["CCO", "c1ccccc1", "CC(=O)O", "CCO", "N#N"];
        let set = HashedSmiles::from_smiles(smiles);
        assert_eq!(set.len(), 4);
        let back = HashedSmiles::decode(&set.encode().unwrap(), "t").unwrap();
        assert_eq!(back, set);
        assert!(back.contains("c1ccccc1") && !back.contains("c1ccncc1"));
        let err = HashedSmiles::decode(b"not gzip", "broken.gz").unwrap_err();
        assert!(err.starts_with("broken.gz: "), "{err}");
    }

    /// The embedded set holds every molecule of the embedded 100,000 (MOSES train, canonicalised
    /// by RDKit here), and of the 10,000 MOSES test molecules (disjoint from train) at most the
    /// handful that chance allows (expected 10,000 · 1.58e6 / 2^36 ≈ 0.23).
    #[test]
    fn embedded_hashes_hold_train_and_not_test() {
        let set = embedded_train_hashes();
        // 1,584,663 molecules less the ~18 pairs that share a hash by chance (n² / 2^37).
        assert!((1_584_600..=1_584_663).contains(&set.len()), "{}", set.len());
        let train = crate::embedded_corpus();
        let canonical = chem::canonicalize_batch(&train);
        let missing = canonical.iter().flatten().filter(|c| !set.contains(c)).count();
        assert_eq!(missing, 0);
        assert!(canonical.iter().flatten().count() > 99_900);
        let test = chem::canonicalize_batch(&crate::embedded_test_set());
        let found = test.iter().flatten().filter(|c| set.contains(c)).count();
        assert!(found <= 3, "{found} test molecules look like train ones");
    }
}
