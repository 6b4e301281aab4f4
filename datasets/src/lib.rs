/*!
SMILES corpora for smirl.

# Brief overview
[`read_smiles`] reads a SMILES file into [`SmilesRecord`]s: `.csv` / `.tsv` (column `smiles` or
`SMILES` by default, or any named column) and `.smi` (SMILES, optionally whitespace and a name), each
optionally gzip-compressed (`.csv.gz`…), and `.parquet` (through polars). Every problem is a [`DatasetError`] naming the file and, where
it applies, the line. An invalid SMILES is not an error here: validity is `chem`'s business.
[`embedded_corpus`] is the default corpus compiled into the binary: 100,000 MOSES training molecules;
[`embedded_train_hashes`] all of MOSES train as a [`HashedSmiles`] set, novelty's default reference;
[`embedded_test_set`] 10,000 molecules of MOSES test (every 17th), the default reference for evaluation.
[`clean`] canonicalises, deduplicates and filters a corpus, [`split`] makes seeded train / valid /
test splits (random or by scaffold), and [`write_rows`] writes Parquet or CSV.
*/

mod clean;
mod embedded;
mod error;
mod hashed_smiles;
mod moses_stats;
mod parquet;
mod read;

pub use clean::{
    clean, rows_to_frame, split, write_rows, CleanOptions, CleanReport, CleanRow, SplitBy, SplitError,
    SPLIT_NAMES,
};
pub use embedded::{embedded_corpus, embedded_test_set, EMBEDDED_CORPUS_NAME, EMBEDDED_TEST_SET_NAME};
pub use error::DatasetError;
pub use hashed_smiles::{embedded_train_hashes, smiles_hash, HashedSmiles, EMBEDDED_TRAIN_HASHES_NAME};
pub use moses_stats::{read_moses_stats, stats_path_for, MosesStats, StatsError};
pub use parquet::{read_parquet, write_parquet, write_text_table, ColumnKind};
pub use read::{read_smiles, read_smiles_table, Format, SmilesRecord, SmilesTable};
