//! The candidate table: every distinct valid molecule a run sampled, with the step it first
//! appeared and its best total and component scores (before the diversity filter, which is a
//! training device, not a judgement of the molecule). It is also the run's oracle ledger: each
//! new molecule is one oracle call, numbered in the order the run scored it, and repeats are free
//! (PMO's protocol, Gao et al. 2022).

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
    /// The oracle call that scored it: its rank in discovery order (1-based; 0 in checkpoints
    /// written before calls were counted).
    #[serde(default)]
    pub call: usize,
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
                let call = self.by_smiles.len() + 1;
                self.by_smiles.insert(
                    canonical.to_string(),
                    Candidate {
                        smiles: canonical.to_string(),
                        first_step: step,
                        call,
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

    /// The totals of the first `budget` oracle calls (all without a budget), in call order.
    pub fn totals_by_call(&self, budget: Option<usize>) -> Vec<f64> {
        let mut calls: Vec<(usize, f64)> = self.by_smiles.values().map(|c| (c.call, c.total)).collect();
        calls.sort_by_key(|&(call, _)| call);
        calls.truncate(budget.unwrap_or(usize::MAX));
        calls.into_iter().map(|(_, t)| t).collect()
    }

    /// The run's oracle progress: calls spent (capped at `budget`) and the running top-k means.
    pub fn progress(&self, budget: Option<usize>) -> crate::oracle_budget::OracleProgress {
        crate::oracle_budget::OracleProgress::of(&self.totals_by_call(budget))
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
