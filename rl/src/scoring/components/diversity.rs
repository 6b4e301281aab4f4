//! Diversity: rewards molecules the run has not produced yet.
//!
//! `unique` (default): 1 when the canonical SMILES appears neither earlier in this batch nor in
//! an earlier step of the run, else 0. `tanimoto`: 1 − max Tanimoto (Morgan r2, 1024 bits) to the
//! run's memory of top-scored molecules (1 while the memory is empty).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{Component, MolBatch, ScoringContext};

/// How diversity is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DiversityMode {
    /// Exact duplicates (canonical SMILES) in the batch or the run score 0.
    #[default]
    Unique,
    /// 1 − max Tanimoto to the memory.
    Tanimoto,
}

super::component_params! {
    /// Parameters of the `diversity` component.
    pub struct DiversityParams {
        /// `unique` or `tanimoto`.
        #[serde(default)]
        pub mode: DiversityMode,
    }
}

/// The diversity component.
pub struct Diversity {
    /// How diversity is measured.
    pub mode: DiversityMode,
}

impl Component for Diversity {
    fn score(&self, batch: &MolBatch, ctx: &ScoringContext) -> Vec<f64> {
        match self.mode {
            DiversityMode::Unique => {
                let mut batch_seen = HashSet::new();
                batch
                    .canonical
                    .iter()
                    .map(|c| match c {
                        None => f64::NAN,
                        Some(c) => {
                            let old = ctx.seen.is_some_and(|s| s.contains(c));
                            if batch_seen.insert(c.as_str()) && !old {
                                1.0
                            } else {
                                0.0
                            }
                        }
                    })
                    .collect()
            }
            DiversityMode::Tanimoto => {
                let fps = batch.fingerprints();
                let valid: Vec<chem::Fingerprint> = fps.iter().flatten().copied().collect();
                let max = if ctx.memory.is_empty() {
                    vec![0.0; valid.len()]
                } else {
                    chem::max_tanimoto(&valid, ctx.memory)
                };
                let mut it = max.into_iter();
                fps.iter()
                    .map(|f| match f {
                        Some(_) => 1.0 - it.next().unwrap_or(0.0),
                        None => f64::NAN,
                    })
                    .collect()
            }
        }
    }
}
