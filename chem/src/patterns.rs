//! Compiled SMARTS patterns (one or a list), matched with RDKit's substructure search.

use cxx::UniquePtr;

use crate::error::{rdkit, ChemError, Result};
use crate::ffi::bridge;
use crate::molecule::Molecule;

/// One or more SMARTS queries compiled once and shared read-only between threads.
pub struct SmartsPattern {
    set: UniquePtr<bridge::PatternSet>,
}

impl SmartsPattern {
    /// Compiles one SMARTS.
    pub fn new(smarts: &str) -> Result<Self> {
        Self::any_of(&[smarts])
    }

    /// Compiles a list of SMARTS; a molecule matches when any of them matches.
    pub fn any_of<S: AsRef<str>>(smarts: &[S]) -> Result<Self> {
        crate::init();
        let list: Vec<String> = smarts.iter().map(|s| s.as_ref().to_string()).collect();
        if let Some(bad) = list.iter().find(|s| s.is_empty() || s.contains('\0')) {
            return Err(ChemError::InvalidSmarts(bad.clone()));
        }
        let set = bridge::pattern_set_new(&list).map_err(|e| {
            let msg = e.what().to_string();
            ChemError::InvalidSmarts(msg.trim_start_matches("invalid SMARTS: ").to_string())
        })?;
        Ok(SmartsPattern { set })
    }

    /// Number of queries in the list.
    pub fn len(&self) -> usize {
        bridge::pattern_set_len(&self.set)
    }

    /// True when the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn inner(&self) -> &bridge::PatternSet {
        &self.set
    }

    /// Does any query match? With `add_hs`, explicit hydrogens are added first (MOSES filters).
    /// Queries are screened with RDKit pattern fingerprints before the full match.
    pub fn any_match(&self, mol: &Molecule, add_hs: bool) -> Result<bool> {
        mol.with(|m| bridge::pattern_set_any_match(&self.set, m, add_hs, true))
            .map_err(rdkit("substructure match"))
    }

    /// [`SmartsPattern::any_match`] without the fingerprint screen: the plain RDKit answer, kept to
    /// test that the screen never changes a result.
    #[doc(hidden)]
    pub fn any_match_unscreened(&self, mol: &Molecule, add_hs: bool) -> Result<bool> {
        mol.with(|m| bridge::pattern_set_any_match(&self.set, m, add_hs, false))
            .map_err(rdkit("substructure match"))
    }

    /// How many of the queries match at least once (screened like [`SmartsPattern::any_match`]).
    pub fn count_matching(&self, mol: &Molecule, add_hs: bool) -> Result<usize> {
        mol.with(|m| bridge::pattern_set_count_matching(&self.set, m, add_hs, true))
            .map_err(rdkit("substructure match"))
    }

    /// [`SmartsPattern::count_matching`] without the screen (for tests).
    #[doc(hidden)]
    pub fn count_matching_unscreened(&self, mol: &Molecule, add_hs: bool) -> Result<usize> {
        mol.with(|m| bridge::pattern_set_count_matching(&self.set, m, add_hs, false))
            .map_err(rdkit("substructure match"))
    }
}
