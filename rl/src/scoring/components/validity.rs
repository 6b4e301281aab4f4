//! Validity: 1 for a molecule RDKit parses and sanitizes, 0 otherwise.

use super::{Component, MolBatch, ScoringContext};

super::component_params! {
    /// Parameters of the `validity` component.
    pub struct ValidityParams {
    }
}

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
