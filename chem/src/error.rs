//! The chemistry crate's error type.

/// What can go wrong in `chem`. An invalid SMILES is not an error of the crate's functions that
/// score batches: it is counted as an invalid molecule. It is an error only where a caller asked for
/// one specific molecule (`Molecule::from_smiles`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChemError {
    /// RDKit could not parse or sanitize the SMILES.
    #[error("invalid SMILES: {0:?}")]
    InvalidSmiles(String),
    /// RDKit could not parse a SMARTS pattern.
    #[error("invalid SMARTS: {0:?}")]
    InvalidSmarts(String),
    /// An RDKit call raised a C++ exception.
    #[error("RDKit failed in {what}: {message}")]
    Rdkit {
        /// The operation that failed.
        what: &'static str,
        /// RDKit's exception text.
        message: String,
    },
    /// No goal-directed task has this id.
    #[error("unknown oracle {0:?}: the tasks are guacamol, pmo, all or any of {ids}", ids = crate::ORACLE_IDS.join(", "))]
    UnknownOracle(String),
    /// The SA fragment table could not be read.
    #[error("cannot read the SA fragment table: {0}")]
    FragmentTable(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, ChemError>;

pub(crate) fn rdkit(what: &'static str) -> impl FnOnce(cxx::Exception) -> ChemError {
    move |e| ChemError::Rdkit {
        what,
        message: e.what().to_string(),
    }
}
