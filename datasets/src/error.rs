//! Errors of the dataset readers; each names the file (and line where it applies).

use std::path::PathBuf;

/// What can go wrong reading a corpus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// The file does not exist or cannot be opened.
    #[error("{path}: cannot open: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading failed part-way (I/O or gzip error).
    #[error("{path}: read error: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The extension is not one we read.
    #[error("{path}: unknown file type (expected .csv, .tsv or .smi, optionally .gz, or .parquet)")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The SMILES column is not in the header.
    #[error("{path}: no column {wanted} in the header (columns: {available})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// What we looked for.
        wanted: String,
        /// The header's columns, comma-separated.
        available: String,
    },
    /// A line is not valid UTF-8.
    #[error("{path}:{line}: not valid UTF-8")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
    },
    /// A malformed CSV/TSV record.
    #[error("{path}:{line}: malformed {what}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// "CSV" or "TSV".
        what: &'static str,
        /// The parser's message.
        message: String,
    },
    /// The file has no molecules at all.
    #[error("{path}: empty file (no molecules)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A Parquet file polars cannot read or write, or a SMILES column that is not text.
    #[error("{path}: Parquet error: {message}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An output file cannot be created or written.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The output name says neither Parquet nor CSV.
    #[error("{path}: unknown output type (expected .parquet, .csv or .csv.gz)")]
    UnknownOutputFormat {
        /// The file.
        path: PathBuf,
    },
}
