//! Sparse count fingerprints (Morgan ECFP/FCFP counts and atom pairs), as GuacaMol compares molecules,
//! with RDKit's Tanimoto on count vectors.

/// The fingerprints GuacaMol's similarity objectives use (`guacamol.utils.fingerprints`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CountFingerprintKind {
    /// Morgan counts, radius 2 (`GetMorganFingerprint(m, 2)`).
    Ecfp4,
    /// Morgan counts, radius 3.
    Ecfp6,
    /// Morgan counts on feature invariants, radius 2 (`useFeatures=True`).
    Fcfp4,
    /// Atom-pair counts up to 10 bonds apart (`GetAtomPairFingerprint(m, maxLength=10)`).
    AtomPair,
}

/// A sparse count vector: (key, count) pairs sorted by key, counts positive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountFingerprint {
    entries: Vec<(u32, u32)>,
}

impl CountFingerprint {
    /// From the bridge's packed `key << 32 | count` words, sorted by key.
    pub(crate) fn from_packed(packed: &[u64]) -> Self {
        let mut entries: Vec<(u32, u32)> = packed
            .iter()
            .map(|&w| ((w >> 32) as u32, w as u32))
            .filter(|&(_, count)| count > 0)
            .collect();
        entries.sort_unstable_by_key(|&(key, _)| key);
        CountFingerprint { entries }
    }

    /// From (key, count) pairs in any order; a repeated key adds up.
    pub fn from_counts(pairs: impl IntoIterator<Item = (u32, u32)>) -> Self {
        let mut entries: Vec<(u32, u32)> = pairs.into_iter().filter(|&(_, c)| c > 0).collect();
        entries.sort_unstable_by_key(|&(key, _)| key);
        entries.dedup_by(|later, kept| {
            if later.0 == kept.0 {
                kept.1 += later.1;
                true
            } else {
                false
            }
        });
        CountFingerprint { entries }
    }

    /// The (key, count) pairs, sorted by key.
    pub fn entries(&self) -> &[(u32, u32)] {
        &self.entries
    }

    fn total(&self) -> u64 {
        self.entries.iter().map(|&(_, c)| c as u64).sum()
    }

    /// RDKit's `TanimotoSimilarity` on count vectors: Σ min / (Σ a + Σ b − Σ min); 0 when both are
    /// empty (RDKit's Tversky returns 0 for a denominator under 1e-6).
    pub fn tanimoto(&self, other: &CountFingerprint) -> f64 {
        let (mut i, mut j, mut common) = (0, 0, 0u64);
        let (a, b) = (&self.entries, &other.entries);
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    common += a[i].1.min(b[j].1) as u64;
                    i += 1;
                    j += 1;
                }
            }
        }
        let denominator = (self.total() + other.total() - common) as f64;
        if denominator < 1e-6 {
            0.0
        } else {
            common as f64 / denominator
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanimoto_on_counts_closed_form() {
        let a = CountFingerprint::from_counts([(1, 2), (5, 1), (9, 3)]);
        let b = CountFingerprint::from_counts([(5, 2), (9, 1), (12, 4), (1, 1)]);
        // min: key 1 → 1, key 5 → 1, key 9 → 1: 3; sums 6 and 8: 3 / (6 + 8 − 3).
        assert!((a.tanimoto(&b) - 3.0 / 11.0).abs() < 1e-12);
        assert_eq!(a.tanimoto(&a), 1.0);
        let empty = CountFingerprint::from_counts([]);
        assert_eq!(empty.tanimoto(&empty), 0.0);
        assert_eq!(a.tanimoto(&empty), 0.0);
    }

    #[test]
    fn repeated_keys_add_up() {
        let a = CountFingerprint::from_counts([(3, 1), (3, 2), (1, 1)]);
        assert_eq!(a.entries(), &[(1, 1), (3, 3)]);
    }
}
