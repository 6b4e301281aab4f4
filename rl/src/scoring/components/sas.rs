//! Synthetic accessibility as a reward: (10 − SA) / 9, so SA 1 (easy) → 1 and SA 10 → 0. SA is
//! Ertl & Schuffenhauer 2009 as RDKit Contrib's `sascorer.py`, computed by chem.

use super::{Component, MolBatch, ScoringContext};

super::component_params! {
    /// Parameters of the `sas` component.
    pub struct SasParams {
    }
}

/// The SAS component.
pub struct Sas;

/// (10 − SA) / 9, clamped to [0, 1].
pub fn sa_to_reward(sa: f64) -> f64 {
    ((10.0 - sa) / 9.0).clamp(0.0, 1.0)
}

impl Component for Sas {
    fn score(&self, batch: &MolBatch, _ctx: &ScoringContext) -> Vec<f64> {
        batch.map_f64(|m| m.sa_score().ok().map(sa_to_reward))
    }
}

#[cfg(test)]
mod tests {
    /// The SAS mapping at its ends and midpoint.
    #[test]
    fn sas_transform_at_ends() {
        assert_eq!(super::sa_to_reward(1.0), 1.0);
        assert_eq!(super::sa_to_reward(10.0), 0.0);
        assert!((super::sa_to_reward(5.5) - 0.5).abs() < 1e-12);
    }
}
