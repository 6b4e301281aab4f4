//! Similarity: the max Tanimoto (Morgan radius 2, 1024 bits) of a molecule to reference
//! molecules, e.g. a drug to look like.

use super::{Component, MolBatch, ScoringContext};
use crate::{Error, Result};

super::component_params! {
    /// Parameters of the `similarity` component.
    pub struct SimilarityParams {
        /// Reference SMILES (at least one).
        pub smiles: Vec<String>,
    }
}

/// The similarity component: reference fingerprints.
pub struct Similarity {
    refs: Vec<chem::Fingerprint>,
}

impl Similarity {
    /// Parses the references; an invalid one is an error naming `field.smiles[i]`.
    pub fn new(p: &SimilarityParams, field: &str) -> Result<Self> {
        let refs = p
            .smiles
            .iter()
            .enumerate()
            .map(|(i, s)| {
                chem::Molecule::parse(s)
                    .map(|m| m.morgan_fingerprint())
                    .ok_or_else(|| {
                        Error::config(format!("{field}.smiles[{i}]"), format!("invalid SMILES {s:?}"))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { refs })
    }
}

impl Component for Similarity {
    fn score(&self, batch: &MolBatch, _ctx: &ScoringContext) -> Vec<f64> {
        batch.map_f64(|m| {
            let fp = m.morgan_fingerprint();
            self.refs.iter().map(|r| fp.tanimoto(r)).reduce(f64::max)
        })
    }
}
