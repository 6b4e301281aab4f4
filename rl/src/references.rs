//! The reference molecules a run reads but rl does not store: the default training set and the
//! files a config names. The caller supplies them (the CLI reads them with `datasets`), so rl
//! reads no molecule files and the crates depend on each other one way only.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

/// Canonical SMILES that answer membership: novelty's training set, held as strings or more
/// compactly (the CLI's default is all of MOSES train as hashes).
pub trait CanonicalSet: Send + Sync {
    /// Whether `canonical` is in the set.
    fn contains(&self, canonical: &str) -> bool;
    /// Molecules held.
    fn len(&self) -> usize;
    /// Whether the set is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CanonicalSet for HashSet<String> {
    fn contains(&self, canonical: &str) -> bool {
        HashSet::contains(self, canonical)
    }

    fn len(&self) -> usize {
        HashSet::len(self)
    }
}

/// Supplies reference SMILES to scoring components and to the prefix initialisation.
pub trait SmilesSource: Send + Sync {
    /// The training set a config means when it names none: the novelty component's reference,
    /// and the real molecules the `prior_kv` prefix initialisation reads.
    fn training_set(&self) -> Result<Vec<String>, String>;

    /// The novelty component's default training set, ready to query, where the source holds one
    /// larger or cheaper than [`training_set`](Self::training_set) canonicalised (the CLI: all of
    /// MOSES train, hashed); `None`, the default: novelty canonicalises `training_set`.
    fn novelty_set(&self) -> Result<Option<Arc<dyn CanonicalSet>>, String> {
        Ok(None)
    }

    /// The SMILES of `path`, a file a config names (e.g. `novelty.training_set`), in file
    /// order. Errors name the file (and line).
    fn read(&self, path: &Path) -> Result<Vec<String>, String>;
}

/// A source with no molecules, for callers that need none (sampling a tuned agent, whose
/// prompt is loaded rather than initialised); any request is an error that says so.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReferences;

impl SmilesSource for NoReferences {
    fn training_set(&self) -> Result<Vec<String>, String> {
        Err("no reference SMILES were supplied (rl::TuneOptions::references)".into())
    }

    fn read(&self, path: &Path) -> Result<Vec<String>, String> {
        Err(format!(
            "{}: no reference SMILES were supplied (rl::TuneOptions::references)",
            path.display()
        ))
    }
}

/// Shared handle to a [`SmilesSource`].
pub type References = Arc<dyn SmilesSource>;

/// The training set of `refs`, as an rl error.
pub(crate) fn training_set(refs: &dyn SmilesSource) -> crate::Result<Vec<String>> {
    refs.training_set().map_err(crate::Error::References)
}

/// The novelty set of `refs`, as an rl error.
pub(crate) fn novelty_set(refs: &dyn SmilesSource) -> crate::Result<Option<Arc<dyn CanonicalSet>>> {
    refs.novelty_set().map_err(crate::Error::References)
}

/// The SMILES of `path` from `refs`, as an rl error.
pub(crate) fn read(refs: &dyn SmilesSource, path: &Path) -> crate::Result<Vec<String>> {
    refs.read(path).map_err(crate::Error::References)
}

/// A training set held in memory (a library caller's own molecules); configs that name a file
/// are refused, naming it.
#[derive(Debug, Clone, Default)]
pub struct InMemorySmiles(pub Vec<String>);

impl SmilesSource for InMemorySmiles {
    fn training_set(&self) -> Result<Vec<String>, String> {
        Ok(self.0.clone())
    }

    fn read(&self, path: &Path) -> Result<Vec<String>, String> {
        Err(format!(
            "{}: this source holds its molecules in memory and reads no files",
            path.display()
        ))
    }
}

/// Test support: the embedded MOSES corpus, the CLI's default training set.
#[cfg(test)]
pub(crate) fn embedded_corpus() -> InMemorySmiles {
    InMemorySmiles(datasets::embedded_corpus())
}
