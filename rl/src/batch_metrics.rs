//! What `log.csv` says about one sampled batch, the same way in every run mode: validity,
//! uniqueness, novelty, IntDiv1 and each component's mean.

use std::collections::HashSet;

use crate::scoring::components::{MolBatch, Novelty};

/// Metrics of a sampled batch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BatchMetrics {
    /// Fraction of samples that are valid (complete and parsed by RDKit).
    pub validity: f64,
    /// Distinct canonical SMILES / valid samples.
    pub uniqueness: f64,
    /// Fraction of distinct valid samples not in the training set.
    pub novelty: f64,
    /// IntDiv1 of the valid samples (Morgan r2, 1024 bits).
    pub int_div1: f64,
    /// Mean of each component column over the valid molecules, NaNs left out (NaN if none).
    pub components: Vec<f64>,
}

impl BatchMetrics {
    /// Metrics of `batch`, whose scores per component are `component_cols[c][i]`; novelty against
    /// `training`. Ratios with a zero denominator are NaN.
    pub fn of(batch: &MolBatch, component_cols: &[Vec<f64>], training: &Novelty) -> Self {
        let valid: Vec<usize> = (0..batch.len()).filter(|&i| batch.is_valid(i)).collect();
        let components = component_cols
            .iter()
            .map(|col| {
                let (sum, count) = valid
                    .iter()
                    .map(|&i| col[i])
                    .filter(|v| !v.is_nan())
                    .fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
                ratio(sum, count)
            })
            .collect();
        let distinct: HashSet<&str> = valid
            .iter()
            .filter_map(|&i| batch.canonical[i].as_deref())
            .collect();
        let novel = distinct.iter().filter(|c| !training.contains(c)).count();
        let fps: Vec<chem::Fingerprint> = batch.fingerprints().into_iter().flatten().collect();
        Self {
            validity: ratio(valid.len() as f64, batch.len()),
            uniqueness: ratio(distinct.len() as f64, valid.len()),
            novelty: ratio(novel as f64, distinct.len()),
            int_div1: chem::internal_diversity(&fps).0,
            components,
        }
    }
}

fn ratio(a: f64, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::components::NoveltyParams;

    /// Counted by hand on a batch with an invalid, a cut-off and a repeated molecule.
    #[test]
    fn counts_by_hand() {
        let smiles: Vec<String> = ["CCO", "OCC", "c1ccccc1", "C1CC", "CCN", "CCCC"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let complete = [true, true, true, true, true, false];
        let batch = MolBatch::new(&smiles, Some(&complete));
        let training = Novelty::new(
            &NoveltyParams {
                weight: 1.0,
                name: None,
                transform: Default::default(),
                training_set: None,
            },
            std::path::Path::new("."),
            &crate::references::embedded_corpus(),
        )
        .unwrap();
        let qed = vec![0.4, 0.4, 0.5, f64::NAN, 0.6, f64::NAN];
        let m = BatchMetrics::of(&batch, &[qed], &training);
        assert_eq!(m.validity, 4.0 / 6.0);
        assert_eq!(m.uniqueness, 3.0 / 4.0); // ethanol twice
        assert!((m.components[0] - (0.4 + 0.4 + 0.5 + 0.6) / 4.0).abs() < 1e-15);
        let fps: Vec<_> = ["CCO", "CCO", "c1ccccc1", "CCN"]
            .iter()
            .map(|s| chem::Molecule::parse(s).unwrap().morgan_fingerprint())
            .collect();
        let mut sim = 0.0;
        for a in &fps {
            for b in &fps {
                sim += a.tanimoto(b);
            }
        }
        assert!((m.int_div1 - (1.0 - sim / 16.0)).abs() < 1e-12);
        assert!((0.0..=1.0).contains(&m.novelty));

        let empty = MolBatch::new(&[], None);
        let m = BatchMetrics::of(&empty, &[vec![]], &training);
        assert!(m.validity.is_nan() && m.uniqueness.is_nan() && m.components[0].is_nan());
    }
}
