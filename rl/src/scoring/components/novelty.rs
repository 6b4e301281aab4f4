//! Novelty: 1 when the molecule's canonical SMILES is not in the training set, else 0.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{Component, MolBatch, ScoringContext};
use crate::references::{self, SmilesSource};
use crate::Result;

super::component_params! {
    /// Parameters of the `novelty` component.
    pub struct NoveltyParams {
        /// Training set (.smi/.csv/.tsv, optionally gzipped), relative to the config's folder.
        /// Default: the reference source's training set (the CLI's: the corpus embedded in the
        /// binary, 100,000 MOSES train molecules).
        #[serde(default)]
        pub training_set: Option<PathBuf>,
    }
}

/// The novelty component: the canonical training set.
pub struct Novelty {
    train: HashSet<String>,
}

impl Novelty {
    /// Reads (through `refs`) and canonicalises the training set (invalid lines are skipped).
    pub fn new(p: &NoveltyParams, base_dir: &Path, refs: &dyn SmilesSource) -> Result<Self> {
        let smiles = match &p.training_set {
            Some(path) => references::read(refs, &base_dir.join(path))?,
            None => references::training_set(refs)?,
        };
        Ok(Self::from_canonical(
            chem::canonicalize_batch(&smiles).into_iter().flatten(),
        ))
    }

    /// A novelty component over already canonical SMILES.
    pub fn from_canonical(train: impl IntoIterator<Item = String>) -> Self {
        Self {
            train: train.into_iter().collect(),
        }
    }

    /// Whether `canonical` is in the training set.
    pub fn contains(&self, canonical: &str) -> bool {
        self.train.contains(canonical)
    }

    /// Training molecules known.
    pub fn len(&self) -> usize {
        self.train.len()
    }

    /// Whether the training set is empty.
    pub fn is_empty(&self) -> bool {
        self.train.is_empty()
    }
}

impl Component for Novelty {
    fn score(&self, batch: &MolBatch, _ctx: &ScoringContext) -> Vec<f64> {
        batch
            .canonical
            .iter()
            .map(|c| match c {
                Some(c) if self.train.contains(c) => 0.0,
                Some(_) => 1.0,
                None => f64::NAN,
            })
            .collect()
    }
}
