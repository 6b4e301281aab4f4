//! QED (Bickerton et al. 2012), computed by chem exactly as RDKit's `QED.qed`.

use super::{Component, MolBatch, ScoringContext};

super::component_params! {
    /// Parameters of the `qed` component.
    pub struct QedParams {
    }
}

/// The QED component.
pub struct Qed;

impl Component for Qed {
    fn score(&self, batch: &MolBatch, _ctx: &ScoringContext) -> Vec<f64> {
        batch.map_f64(|m| m.qed().ok())
    }
}
