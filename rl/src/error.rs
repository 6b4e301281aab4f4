//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `rl`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model crate failed (sampling, likelihoods, checkpoints).
    #[error("model: {0}")]
    Model(#[from] model::Error),
    /// A tensor operation failed inside candle.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// RDKit rejected something (a SMARTS pattern, a reference SMILES).
    #[error("chem: {0}")]
    Chem(#[from] chem::ChemError),
    /// Reference SMILES (a training set, a file a config names) could not be read.
    #[error("reference SMILES: {0}")]
    References(String),
    /// A config value is out of range or inconsistent; names the field.
    #[error("invalid config `{field}`: {msg}")]
    InvalidConfig {
        /// The field, dotted from the config root (e.g. `scoring.components[1].weight`).
        field: String,
        /// Why it is invalid.
        msg: String,
    },
    /// A config file is not valid TOML for [`crate::TuneConfig`].
    #[error("{}: {msg}", path.display())]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        msg: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A run checkpoint is missing, corrupt or belongs to another config.
    #[error("checkpoint {}: {msg}", path.display())]
    Checkpoint {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// Aggregation got component columns of different lengths.
    #[error("component `{name}` has {got} scores for {expected} molecules")]
    LengthMismatch {
        /// The component.
        name: String,
        /// Scores it returned.
        got: usize,
        /// Molecules in the batch.
        expected: usize,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn config(field: impl Into<String>, msg: impl std::fmt::Display) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            msg: msg.to_string(),
        }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        Error::Checkpoint {
            path: path.into(),
            msg: msg.to_string(),
        }
    }
}
