//! Validity: 1 for a molecule RDKit parses and sanitizes, 0 otherwise.

use serde::{Deserialize, Serialize};

use super::{default_weight, Component, MolBatch, ScoringContext};
use crate::scoring::transforms::Transform;

/// Parameters of the `validity` component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidityParams {
    /// Aggregation weight.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Column name in logs (default `validity`).
    #[serde(default)]
    pub name: Option<String>,
    /// Transform of the raw value.
    #[serde(default)]
    pub transform: Transform,
}
super::common_impl!(ValidityParams);

/// The validity component. The scorer zeroes the total of invalid molecules anyway; as a
/// component it only matters for logs and geometric means.
pub struct Validity;

impl Component for Validity {
    fn score(&self, batch: &MolBatch, _ctx: &ScoringContext) -> Vec<f64> {
        (0..batch.len())
            .map(|i| if batch.is_valid(i) { 1.0 } else { 0.0 })
            .collect()
    }
}
