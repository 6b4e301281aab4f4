//! Scaffold diversity filter (REINVENT 4's `IdenticalMurckoScaffold`): molecules are bucketed
//! by Bemis–Murcko scaffold; once a bucket holds `bucket_size` hits (molecules scoring at least
//! `min_score`), further molecules with that scaffold score 0, pushing the policy elsewhere.
//! Acyclic molecules share the empty scaffold.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::DiversityFilterConfig;

/// Scaffold → hits so far.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DiversityFilter {
    /// Hits per scaffold.
    pub buckets: BTreeMap<String, usize>,
}

impl DiversityFilter {
    /// Applies the filter in place: `scores[i]` becomes 0 for a hit whose scaffold bucket is
    /// full; other hits are counted. `scaffolds[i]` is `None` for invalid molecules.
    /// Returns how many molecules were zeroed.
    pub fn apply(
        &mut self,
        cfg: &DiversityFilterConfig,
        scaffolds: &[Option<String>],
        scores: &mut [f64],
    ) -> usize {
        let mut zeroed = 0;
        for (scaf, s) in scaffolds.iter().zip(scores.iter_mut()) {
            let Some(scaf) = scaf else { continue };
            if *s < cfg.min_score {
                continue;
            }
            let n = self.buckets.entry(scaf.clone()).or_insert(0);
            if *n >= cfg.bucket_size {
                *s = 0.0;
                zeroed += 1;
            } else {
                *n += 1;
            }
        }
        zeroed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The (bucket_size + 1)-th hit of a scaffold scores 0; low scores are not counted.
    #[test]
    fn full_bucket_zeroes() {
        let cfg = DiversityFilterConfig {
            enabled: true,
            bucket_size: 2,
            min_score: 0.4,
        };
        let mut f = DiversityFilter::default();
        let scaf: Vec<Option<String>> = ["c1ccccc1", "c1ccccc1", "c1ccccc1", "c1ccccc1", "", "C1CC1"]
            .iter()
            .map(|s| Some(s.to_string()))
            .collect();
        let mut s = vec![0.9, 0.3, 0.8, 0.7, 0.5, 0.1];
        assert_eq!(f.apply(&cfg, &scaf, &mut s), 1);
        assert_eq!(s, vec![0.9, 0.3, 0.8, 0.0, 0.5, 0.1]);
        let mut s2 = vec![0.9];
        f.apply(&cfg, &scaf[..1], &mut s2);
        assert_eq!(s2, vec![0.0]);
    }
}
