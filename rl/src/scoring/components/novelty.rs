//! Novelty: 1 when the molecule's canonical SMILES is not in the training set, else 0.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Component, MolBatch, ScoringContext};
use crate::references::{self, CanonicalSet, SmilesSource};
use crate::Result;

super::component_params! {
    /// Parameters of the `novelty` component.
    pub struct NoveltyParams {
        /// Training set (.smi/.csv/.tsv, optionally gzipped), relative to the config's folder.
        /// Default: the reference source's novelty set (the CLI's: all 1,584,663 MOSES train
        /// molecules, embedded in the binary as hashes of their canonical SMILES).
        #[serde(default)]
        pub training_set: Option<PathBuf>,
    }
}

/// The novelty component: the canonical training set.
pub struct Novelty {
    train: Arc<dyn CanonicalSet>,
}

impl Novelty {
    /// Reads (through `refs`) and canonicalises the training set (invalid lines are skipped); with
    /// none named, the source's novelty set where it has one.
    pub fn new(p: &NoveltyParams, base_dir: &Path, refs: &dyn SmilesSource) -> Result<Self> {
        let smiles = match &p.training_set {
            Some(path) => references::read(refs, &base_dir.join(path))?,
            None => match references::novelty_set(refs)? {
                Some(train) => return Ok(Self { train }),
                None => references::training_set(refs)?,
            },
        };
        Ok(Self::from_canonical(
            chem::canonicalize_batch(&smiles).into_iter().flatten(),
        ))
    }

    /// A novelty component over already canonical SMILES.
    pub fn from_canonical(train: impl IntoIterator<Item = String>) -> Self {
        Self {
            train: Arc::new(train.into_iter().collect::<HashSet<String>>()),
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
