//! A goal-directed objective (GuacaMol / PMO task) as a reward: chem's [`chem::Oracle`], already in
//! [0, 1], so no transform is needed.

use super::{Component, MolBatch, ScoringContext};
use crate::{Error, Result};

super::component_params! {
    /// Parameters of the `oracle` component.
    pub struct OracleParams {
        /// The task id, e.g. `osimertinib_mpo` (`smirl score --help` lists them).
        pub task: String,
    }
}

/// The oracle component.
pub struct OracleComponent {
    oracle: chem::Oracle,
}

impl OracleComponent {
    /// Builds the task's objective; `field` names the component in errors.
    pub fn new(p: &OracleParams, field: &str) -> Result<Self> {
        let oracle =
            chem::Oracle::new(&p.task).map_err(|e| Error::config(format!("{field}.task"), e.to_string()))?;
        Ok(Self { oracle })
    }

    /// The task id as a static string (the component's default log column).
    pub fn static_id(task: &str) -> Option<&'static str> {
        chem::ORACLE_IDS.iter().copied().find(|&id| id == task)
    }
}

impl Component for OracleComponent {
    fn score(&self, batch: &MolBatch, _ctx: &ScoringContext) -> Vec<f64> {
        batch.map_f64(|m| self.oracle.score(m).ok())
    }
}
