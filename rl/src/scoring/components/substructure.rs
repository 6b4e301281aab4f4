//! Substructure components: `required_smarts` scores 1 when any of its SMARTS matches (else 0);
//! `forbidden_smarts` scores 0 when any matches (else 1). Matching is RDKit's, screened by pattern
//! fingerprints, on the molecule without added hydrogens.

use super::{Component, MolBatch, ScoringContext};
use crate::{Error, Result};

super::component_params! {
    /// Parameters of the `required_smarts` and `forbidden_smarts` components.
    pub struct SubstructureParams {
        /// SMARTS patterns (at least one).
        pub smarts: Vec<String>,
    }
}

/// A required or forbidden substructure list.
pub struct Substructure {
    patterns: chem::SmartsPattern,
    required: bool,
}

impl Substructure {
    /// Compiles the patterns; an invalid one is an error naming `field.smarts[i]`.
    pub fn new(p: &SubstructureParams, required: bool, field: &str) -> Result<Self> {
        for (i, s) in p.smarts.iter().enumerate() {
            chem::SmartsPattern::new(s).map_err(|e| Error::config(format!("{field}.smarts[{i}]"), e))?;
        }
        Ok(Self {
            patterns: chem::SmartsPattern::any_of(&p.smarts)?,
            required,
        })
    }
}

impl Component for Substructure {
    fn score(&self, batch: &MolBatch, _ctx: &ScoringContext) -> Vec<f64> {
        batch.map_f64(|m| {
            let hit = self.patterns.any_match(m, false).ok()?;
            Some(if hit == self.required { 1.0 } else { 0.0 })
        })
    }
}
