//! Set metrics with MOSES (molsets 0.3.1) semantics: validity, unique@k, novelty, IntDiv1/2,
//! filters, SNN, Frag (BRICS fragments) and Scaf (Murcko scaffolds with ≥ 2 rings) against the test
//! and scaffold-test sets, and the Wasserstein-1 distances of logP, SA, QED and molecular weight to
//! the test set. FCD needs ChemNet (crate `fcd`); callers fill it in.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use crate::fingerprint::{internal_diversity, max_tanimoto, Fingerprint};
use crate::molecule::Molecule;
use crate::scoring::MoleculeProps;

/// What MOSES compares a generated set with: fingerprints, fragment and scaffold counts and four
/// properties of a reference set (MOSES test or scaffold test).
#[derive(Debug, Default, Clone)]
pub struct ReferenceSet {
    /// Fingerprints of the valid reference molecules.
    pub fingerprints: Vec<Fingerprint>,
    /// BRICS fragment SMILES → count.
    pub fragments: HashMap<String, u64>,
    /// Murcko scaffold SMILES (≥ 2 rings) → count.
    pub scaffolds: HashMap<String, u64>,
    /// logP, SA, QED and molecular weight of every valid reference molecule.
    pub properties: PropertyColumns,
}

/// The four properties MOSES compares distributions of, one value per molecule.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PropertyColumns {
    /// Crippen logP.
    pub logp: Vec<f64>,
    /// SA score.
    pub sa: Vec<f64>,
    /// QED.
    pub qed: Vec<f64>,
    /// Average molecular weight.
    pub weight: Vec<f64>,
}

impl PropertyColumns {
    fn push(&mut self, p: [f64; 4]) {
        self.logp.push(p[0]);
        self.sa.push(p[1]);
        self.qed.push(p[2]);
        self.weight.push(p[3]);
    }

    /// Of scored molecules (invalid ones skipped).
    pub fn of_scored(scored: &[Option<MoleculeProps>]) -> PropertyColumns {
        let mut columns = PropertyColumns::default();
        for p in scored.iter().flatten() {
            let (logp, weight) = p.descriptors.map_or((f64::NAN, f64::NAN), |d| (d.logp, d.mw));
            columns.push([logp, p.sa, p.qed, weight]);
        }
        columns
    }
}

/// Wasserstein-1 distances of the property distributions (molsets' `logP`, `SA`, `QED`, `weight`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PropertyDistances {
    /// logP.
    pub logp: f64,
    /// SA score.
    pub sa: f64,
    /// QED.
    pub qed: f64,
    /// Molecular weight.
    pub weight: f64,
}

/// Wasserstein-1 distance of two empirical distributions with equal weights
/// (`scipy.stats.wasserstein_distance`): the area between their CDFs. NaN values are skipped;
/// NaN when either side is empty.
pub fn wasserstein_1(u: &[f64], v: &[f64]) -> f64 {
    let sorted = |x: &[f64]| {
        let mut x: Vec<f64> = x.iter().copied().filter(|x| !x.is_nan()).collect();
        x.sort_by(f64::total_cmp);
        x
    };
    let (u, v) = (sorted(u), sorted(v));
    if u.is_empty() || v.is_empty() {
        return f64::NAN;
    }
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0, 0);
    let mut area = 0.0;
    let mut x = u[0].min(v[0]);
    // Walk the merged values; between consecutive ones both CDFs are constant.
    while i < u.len() || j < v.len() {
        let next = match (u.get(i), v.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => unreachable!(),
        };
        area += (i as f64 / nu - j as f64 / nv).abs() * (next - x);
        x = next;
        while u.get(i) == Some(&x) {
            i += 1;
        }
        while v.get(j) == Some(&x) {
            j += 1;
        }
    }
    area
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
        let parts: Vec<(Fingerprint, FragScaf, [f64; 4])> = smiles
            .par_iter()
            .filter_map(|s| Molecule::parse(s.as_ref()))
            .map(|m| (m.morgan_fingerprint(), frag_scaf(&m), reference_properties(&m)))
            .collect();
        let mut fs = Vec::with_capacity(parts.len());
        for (fingerprint, frag_scaf, properties) in parts {
            self.fingerprints.push(fingerprint);
            fs.push(frag_scaf);
            self.properties.push(properties);
        }
        let (fragments, scaffolds) = count_frag_scaf(fs);
        for (k, v) in fragments {
            *self.fragments.entry(k).or_insert(0) += v;
        }
        for (k, v) in scaffolds {
            *self.scaffolds.entry(k).or_insert(0) += v;
        }
    }
}

/// logP, SA, QED and molecular weight of one molecule (NaN where RDKit fails).
fn reference_properties(mol: &Molecule) -> [f64; 4] {
    let (qed, logp, weight) = match mol.qed_properties_and_descriptors() {
        Ok((q, d)) => (q.qed(), d.logp, d.mw),
        Err(_) => (f64::NAN, f64::NAN, f64::NAN),
    };
    [logp, mol.sa_score().unwrap_or(f64::NAN), qed, weight]
}

/// SNN, Frag and Scaf of a generated set against one reference set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimilarityToReference {
    /// Mean nearest-neighbour Tanimoto similarity.
    pub snn: f64,
    /// Cosine similarity of BRICS fragment counts.
    pub frag: f64,
    /// Cosine similarity of Murcko scaffold counts.
    pub scaf: f64,
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
    /// SNN, Frag and Scaf against the test set.
    pub test: Option<SimilarityToReference>,
    /// SNN, Frag and Scaf against the scaffold test set.
    pub test_scaffolds: Option<SimilarityToReference>,
    /// Property distances to the test set.
    pub property_distances: Option<PropertyDistances>,
    /// FCD/Test (filled by callers that run ChemNet).
    pub fcd_test: Option<f64>,
    /// FCD/TestSF (filled by callers that run ChemNet).
    pub fcd_test_scaffolds: Option<f64>,
}

impl SetMetrics {
    /// The MOSES README's reference-set columns beyond FCD/Test and SNN/Test, in its order:
    /// FCD/TestSF, SNN/TestSF, Frag/Test, Frag/TestSF, Scaf/Test, Scaf/TestSF.
    pub fn reference_columns(&self) -> [Option<f64>; 6] {
        let (t, sf) = (self.test.as_ref(), self.test_scaffolds.as_ref());
        [
            self.fcd_test_scaffolds,
            sf.map(|s| s.snn),
            t.map(|t| t.frag),
            sf.map(|s| s.frag),
            t.map(|t| t.scaf),
            sf.map(|s| s.scaf),
        ]
    }
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

fn similarity_to(
    reference: &ReferenceSet,
    fps: &[Fingerprint],
    fragments: &HashMap<String, u64>,
    scaffolds: &HashMap<String, u64>,
) -> SimilarityToReference {
    let snn = if fps.is_empty() || reference.fingerprints.is_empty() {
        f64::NAN
    } else {
        max_tanimoto(fps, &reference.fingerprints).iter().sum::<f64>() / fps.len() as f64
    };
    SimilarityToReference {
        snn,
        frag: cosine_similarity(&reference.fragments, fragments),
        scaf: cosine_similarity(&reference.scaffolds, scaffolds),
    }
}

/// Computes the set metrics of scored samples (in sampling order; `None` = invalid).
pub fn set_metrics(
    scored: &[Option<MoleculeProps>],
    train: Option<&HashSet<String>>,
    test: Option<&ReferenceSet>,
    test_scaffolds: Option<&ReferenceSet>,
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
    let (fragments, scaffolds) = if test.is_some() || test_scaffolds.is_some() {
        let items: Vec<FragScaf> = canonical
            .par_iter()
            .filter_map(|s| Molecule::parse(s))
            .map(|m| frag_scaf(&m))
            .collect();
        count_frag_scaf(items)
    } else {
        Default::default()
    };
    let similarity = |r: &ReferenceSet| similarity_to(r, &fps, &fragments, &scaffolds);
    let property_distances = test.map(|t| {
        let mine = PropertyColumns::of_scored(scored);
        let r = &t.properties;
        PropertyDistances {
            logp: wasserstein_1(&r.logp, &mine.logp),
            sa: wasserstein_1(&r.sa, &mine.sa),
            qed: wasserstein_1(&r.qed, &mine.qed),
            weight: wasserstein_1(&r.weight, &mine.weight),
        }
    });
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
        test: test.map(similarity),
        test_scaffolds: test_scaffolds.map(similarity),
        property_distances,
        fcd_test: None,
        fcd_test_scaffolds: None,
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
    fn wasserstein_by_definition() {
        // Shifting a distribution by d moves it by d.
        assert!((wasserstein_1(&[0.0, 1.0, 3.0], &[2.0, 3.0, 5.0]) - 2.0).abs() < 1e-12);
        // scipy.stats.wasserstein_distance([0, 1, 3], [5, 6, 8]) = 5; ([0, 1], [0, 0, 1, 1, 1]) = 0.1.
        assert!((wasserstein_1(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]) - 5.0).abs() < 1e-12);
        assert!((wasserstein_1(&[0.0, 1.0], &[0.0, 0.0, 1.0, 1.0, 1.0]) - 0.1).abs() < 1e-12);
        // Unsorted, unequal sizes: 0.8·1/3 + 2.4·1/6 + 2.1·1/2 (scipy agrees: 1.71666…).
        assert!((wasserstein_1(&[3.4, 3.4, 0.2], &[1.0, 5.5]) - 1.716_666_666_666_666_7).abs() < 1e-12);
        assert!(wasserstein_1(&[], &[1.0]).is_nan());
    }

    #[test]
    fn cosine_of_count_vectors() {
        let a: HashMap<String, u64> = [("x".to_string(), 1), ("y".to_string(), 1)].into();
        let b: HashMap<String, u64> = [("x".to_string(), 2)].into();
        assert!((cosine_similarity(&a, &b) - 1.0 / 2f64.sqrt()).abs() < 1e-12);
        assert!(cosine_similarity(&a, &HashMap::new()).is_nan());
    }
}
