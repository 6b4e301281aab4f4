/*!
SMILES corpora for smirl.

# Brief overview
[`read_smiles`] reads a SMILES file into [`SmilesRecord`]s: `.csv` / `.tsv` (column `smiles` or
`SMILES` by default, or any named column) and `.smi` (SMILES, optionally whitespace and a name), each
optionally gzip-compressed (`.csv.gz`…). Every problem is a [`DatasetError`] naming the file and, where
it applies, the line. An invalid SMILES is not an error here: validity is `chem`'s business.
[`embedded_corpus`] is the default corpus compiled into the binary: 100,000 MOSES training molecules.
*/

mod embedded;
mod error;
mod read;

pub use embedded::{embedded_corpus, EMBEDDED_CORPUS_NAME};
pub use error::DatasetError;
pub use read::{read_smiles, Format, SmilesRecord};
