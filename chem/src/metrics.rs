//! Set metrics with MOSES (molsets 0.3.1) semantics: validity, unique@k, novelty, IntDiv1/2,
//! filters, SNN/Test, Frag/Test (BRICS fragments), Scaf/Test (Murcko scaffolds with ≥ 2 rings).

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use crate::fingerprint::{internal_diversity, max_tanimoto, Fingerprint};
use crate::molecule::Molecule;
use crate::scoring::MoleculeProps;

/// Fragment and scaffold counts and fingerprints of a reference set (MOSES test).
#[derive(Debug, Default, Clone)]
pub struct ReferenceSet {
    /// Fingerprints of the valid reference molecules.
    pub fingerprints: Vec<Fingerprint>,
    /// BRICS fragment SMILES → count.
    pub fragments: HashMap<String, u64>,
    /// Murcko scaffold SMILES (≥ 2 rings) → count.
    pub scaffolds: HashMap<String, u64>,
}

struct FragScaf {
    fragments: Vec<String>,
    scaffold: Option<String>,
}

fn frag_scaf(mol: &Molecule) -> FragScaf {
    // MOSES compute_scaffold(min_rings=2): scaffolds with fewer rings, or empty, are not counted.
    let scaffold = match (mol.murcko_scaffold(), mol.murcko_scaffold_rings()) {
        (Ok(s), Ok(r)) if !s.is_empty() && r >= 2 => Some(s),
        _ => None,
    };
    FragScaf {
        fragments: mol.brics_fragments().unwrap_or_default(),
        scaffold,
    }
}

fn count_frag_scaf(items: Vec<FragScaf>) -> (HashMap<String, u64>, HashMap<String, u64>) {
    let mut fragments = HashMap::new();
    let mut scaffolds = HashMap::new();
    for item in items {
        for f in item.fragments {
            *fragments.entry(f).or_insert(0) += 1;
        }
        if let Some(s) = item.scaffold {
            *scaffolds.entry(s).or_insert(0) += 1;
        }
    }
    (fragments, scaffolds)
}

impl ReferenceSet {
    /// Builds the reference from SMILES (invalid ones are skipped, as MOSES does).
    pub fn from_smiles<S: AsRef<str> + Sync>(smiles: &[S]) -> ReferenceSet {
        let mut reference = ReferenceSet::default();
        reference.add_smiles(smiles);
        reference
    }

    /// Adds molecules to the reference (invalid ones are skipped); lets callers show progress.
    pub fn add_smiles<S: AsRef<str> + Sync>(&mut self, smiles: &[S]) {
        let parts: Vec<(Fingerprint, FragScaf)> = smiles
            .par_iter()
            .filter_map(|s| Molecule::parse(s.as_ref()))
            .map(|m| (m.morgan_fingerprint(), frag_scaf(&m)))
            .collect();
        let (fingerprints, fs): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
        self.fingerprints.extend(fingerprints);
        let (fragments, scaffolds) = count_frag_scaf(fs);
        for (k, v) in fragments {
            *self.fragments.entry(k).or_insert(0) += v;
        }
        for (k, v) in scaffolds {
            *self.scaffolds.entry(k).or_insert(0) += v;
        }
    }
}

/// The MOSES metric table of a generated set. Metrics that need a training or test set are `None`
/// without one; metrics over an empty valid set are NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct SetMetrics {
    /// Number of samples.
    pub n: usize,
    /// Number of valid samples.
    pub n_valid: usize,
    /// Fraction valid.
    pub valid: f64,
    /// Unique@1000 among valid samples.
    pub unique_at_1k: f64,
    /// Unique@10000 among valid samples.
    pub unique_at_10k: f64,
    /// Fraction of distinct valid samples not in the training set.
    pub novelty: Option<f64>,
    /// Internal diversity, p = 1.
    pub int_div1: f64,
    /// Internal diversity, p = 2.
    pub int_div2: f64,
    /// Fraction of valid samples passing the MOSES filters.
    pub filters: f64,
    /// Mean nearest-neighbour Tanimoto to the test set.
    pub snn_test: Option<f64>,
    /// Cosine similarity of BRICS fragment counts to the test set.
    pub frag_test: Option<f64>,
    /// Cosine similarity of Murcko scaffold counts to the test set.
    pub scaf_test: Option<f64>,
}

/// Unique@k: distinct canonical SMILES among the first k valid samples, divided by their number.
pub fn unique_at_k(valid_canonical: &[&str], k: usize) -> f64 {
    let first = &valid_canonical[..k.min(valid_canonical.len())];
    if first.is_empty() {
        return f64::NAN;
    }
    first.iter().collect::<HashSet<_>>().len() as f64 / first.len() as f64
}

/// Novelty: fraction of distinct valid samples whose canonical SMILES is not in `train`.
pub fn novelty(valid_canonical: &[&str], train: &HashSet<String>) -> f64 {
    let distinct: HashSet<&str> = valid_canonical.iter().copied().collect();
    if distinct.is_empty() {
        return f64::NAN;
    }
    distinct.iter().filter(|s| !train.contains(**s)).count() as f64 / distinct.len() as f64
}

/// Cosine similarity of two count vectors over the union of their keys (NaN when either is empty).
pub fn cosine_similarity(a: &HashMap<String, u64>, b: &HashMap<String, u64>) -> f64 {
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    let dot: f64 = a
        .iter()
        .map(|(k, &x)| x as f64 * b.get(k).copied().unwrap_or(0) as f64)
        .sum();
    let norm = |m: &HashMap<String, u64>| m.values().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Computes the set metrics of scored samples (in sampling order; `None` = invalid).
pub fn set_metrics(
    scored: &[Option<MoleculeProps>],
    train: Option<&HashSet<String>>,
    test: Option<&ReferenceSet>,
) -> SetMetrics {
    let valid: Vec<&MoleculeProps> = scored.iter().flatten().collect();
    let canonical: Vec<&str> = valid.iter().map(|p| p.canonical.as_str()).collect();
    let fps: Vec<Fingerprint> = valid.iter().map(|p| p.fingerprint).collect();
    let n_valid = valid.len();
    let (int_div1, int_div2) = internal_diversity(&fps);
    let filters = if n_valid == 0 {
        f64::NAN
    } else {
        valid.iter().filter(|p| p.passes_filters == Some(true)).count() as f64 / n_valid as f64
    };
    let (snn_test, frag_test, scaf_test) = match test {
        None => (None, None, None),
        Some(test) => {
            let snn = if n_valid == 0 || test.fingerprints.is_empty() {
                f64::NAN
            } else {
                max_tanimoto(&fps, &test.fingerprints).iter().sum::<f64>() / n_valid as f64
            };
            let items: Vec<FragScaf> = canonical
                .par_iter()
                .filter_map(|s| Molecule::parse(s))
                .map(|m| frag_scaf(&m))
                .collect();
            let (fragments, scaffolds) = count_frag_scaf(items);
            (
                Some(snn),
                Some(cosine_similarity(&test.fragments, &fragments)),
                Some(cosine_similarity(&test.scaffolds, &scaffolds)),
            )
        }
    };
    SetMetrics {
        n: scored.len(),
        n_valid,
        valid: if scored.is_empty() {
            f64::NAN
        } else {
            n_valid as f64 / scored.len() as f64
        },
        unique_at_1k: unique_at_k(&canonical, 1_000),
        unique_at_10k: unique_at_k(&canonical, 10_000),
        novelty: train.map(|t| novelty(&canonical, t)),
        int_div1,
        int_div2,
        filters,
        snn_test,
        frag_test,
        scaf_test,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_and_novelty_by_definition() {
        let c = ["CC", "CO", "CC", "CN"];
        assert_eq!(unique_at_k(&c, 1000), 0.75);
        assert_eq!(unique_at_k(&c, 2), 1.0);
        let train: HashSet<String> = ["CC".to_string()].into();
        assert!((novelty(&c, &train) - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn cosine_of_count_vectors() {
        let a: HashMap<String, u64> = [("x".to_string(), 1), ("y".to_string(), 1)].into();
        let b: HashMap<String, u64> = [("x".to_string(), 2)].into();
        assert!((cosine_similarity(&a, &b) - 1.0 / 2f64.sqrt()).abs() < 1e-12);
        assert!(cosine_similarity(&a, &HashMap::new()).is_nan());
    }
}
