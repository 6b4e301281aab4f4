//! QED (Bickerton et al. 2012), computed by chem exactly as RDKit's `QED.qed`.

use serde::{Deserialize, Serialize};

use super::{default_weight, Component, MolBatch, ScoringContext};
use crate::scoring::transforms::Transform;

/// Parameters of the `qed` component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QedParams {
    /// Aggregation weight.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Column name in logs (default `qed`).
    #[serde(default)]
    pub name: Option<String>,
    /// Transform of the raw value (QED is already in (0, 1)).
    #[serde(default)]
    pub transform: Transform,
}
super::common_impl!(QedParams);

/// The QED component.
pub struct Qed;

impl Component for Qed {
    fn score(&self, batch: &MolBatch, _ctx: &ScoringContext) -> Vec<f64> {
        batch.map_f64(|m| m.qed().ok())
    }
}
