//! The candidate table: every distinct valid molecule a run sampled, with the step it first
//! appeared and its best total and component scores (before the diversity filter, which is a
//! training device, not a judgement of the molecule).

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One distinct molecule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Canonical SMILES.
    pub smiles: String,
    /// Step it was first sampled at (1-based).
    pub first_step: usize,
    /// Best total score seen.
    pub total: f64,
    /// Component scores of that best sighting (config order; NaN = failed, stored as null).
    pub components: Vec<Option<f64>>,
}

impl crate::scoring::components::SeenSet for CandidateTable {
    fn contains(&self, canonical: &str) -> bool {
        self.by_smiles.contains_key(canonical)
    }
}

/// Canonical SMILES → candidate.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CandidateTable {
    /// The molecules.
    pub by_smiles: HashMap<String, Candidate>,
}

impl CandidateTable {
    /// Whether `canonical` was sampled before.
    pub fn contains(&self, canonical: &str) -> bool {
        self.by_smiles.contains_key(canonical)
    }

    /// Distinct molecules.
    pub fn len(&self) -> usize {
        self.by_smiles.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.by_smiles.is_empty()
    }

    /// Records a sighting; keeps the first step and the best score.
    pub fn record(&mut self, canonical: &str, step: usize, total: f64, components: Vec<f64>) {
        let comps: Vec<Option<f64>> = components
            .into_iter()
            .map(|v| (!v.is_nan()).then_some(v))
            .collect();
        match self.by_smiles.get_mut(canonical) {
            Some(c) if c.total < total => {
                c.total = total;
                c.components = comps;
            }
            Some(_) => {}
            None => {
                self.by_smiles.insert(
                    canonical.to_string(),
                    Candidate {
                        smiles: canonical.to_string(),
                        first_step: step,
                        total,
                        components: comps,
                    },
                );
            }
        }
    }

    /// The best `n`, by total (ties: earlier first step, then SMILES).
    pub fn top(&self, n: usize) -> Vec<&Candidate> {
        let mut all: Vec<&Candidate> = self.by_smiles.values().collect();
        all.sort_by(|a, b| {
            b.total
                .total_cmp(&a.total)
                .then(a.first_step.cmp(&b.first_step))
                .then_with(|| a.smiles.cmp(&b.smiles))
        });
        all.truncate(n);
        all
    }

    /// Writes the best `n` ranked to a CSV: rank, smiles, first_step, total, one column per
    /// component (empty where it failed).
    pub fn write_csv(&self, path: &Path, names: &[String], n: usize) -> Result<()> {
        let mut w = csv::Writer::from_path(path).map_err(|e| Error::io(path, e.into()))?;
        let mut header: Vec<String> = crate::run_dir::CANDIDATE_COLUMNS.map(String::from).to_vec();
        header.extend(names.iter().cloned());
        w.write_record(&header).map_err(|e| Error::io(path, e.into()))?;
        for (i, c) in self.top(n).into_iter().enumerate() {
            let mut row = vec![
                (i + 1).to_string(),
                c.smiles.clone(),
                c.first_step.to_string(),
                format!("{:.6}", c.total),
            ];
            row.extend(
                c.components
                    .iter()
                    .map(|v| v.map_or(String::new(), |v| format!("{v:.6}"))),
            );
            w.write_record(&row).map_err(|e| Error::io(path, e.into()))?;
        }
        w.flush().map_err(|e| Error::io(path, e))
    }
}
