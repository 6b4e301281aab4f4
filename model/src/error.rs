//! The crate's error type: candle errors wrapped at the edge, plus our own failure modes.

use std::path::PathBuf;

/// Everything that can go wrong in `model`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A SMILES contains a token (character, or atom in atom mode) that the vocabulary lacks.
    #[error("token {token:?} in SMILES {smiles:?} is not in the vocabulary")]
    UnknownToken {
        /// The offending token.
        token: String,
        /// The SMILES it occurred in.
        smiles: String,
    },
    /// A token sequence is longer than the model's context.
    #[error("sequence of {len} positions does not fit block_size {block_size}")]
    TooLong {
        /// Positions needed (prefix + tokens).
        len: usize,
        /// The model's context length.
        block_size: usize,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint file is missing, truncated, corrupt or inconsistent with the others.
    #[error("checkpoint file {}: {msg}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// An option or config value is out of range; names the field.
    #[error("invalid option `{field}`: {msg}")]
    InvalidOption {
        /// The field name.
        field: &'static str,
        /// Why it is invalid.
        msg: String,
    },
    /// The user asked the run to stop (Ctrl-C); a checkpoint of the last step was saved.
    #[error("interrupted: checkpoint saved in {} at step {step}; continue with --resume", dir.display())]
    Interrupted {
        /// The run directory.
        dir: PathBuf,
        /// The step checkpointed.
        step: usize,
    },
    /// The training corpus has no usable molecule.
    #[error("no usable molecule in the corpus ({skipped} skipped)")]
    EmptyCorpus {
        /// How many molecules were skipped.
        skipped: usize,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
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
    pub(crate) fn option(field: &'static str, msg: impl std::fmt::Display) -> Self {
        Error::InvalidOption {
            field,
            msg: msg.to_string(),
        }
    }
}
