//! The default corpus compiled into the binary, so every command has data on a fresh clone.

use std::io::Read;

/// What the embedded corpus is, for logs and reports.
pub const EMBEDDED_CORPUS_NAME: &str =
    "embedded MOSES train subset (100,000 molecules: every 15th of train.csv)";

/// Every 15th molecule of MOSES train (molsets 0.3.1), the first 100,000 of them, gzip-compressed.
static CORPUS_GZ: &[u8] = include_bytes!("../corpus/moses_train_100k.smi.gz");

/// What the embedded test set is.
pub const EMBEDDED_TEST_SET_NAME: &str =
    "embedded MOSES test subset (10,000 molecules: every 17th of test.csv)";

/// Every 17th molecule of MOSES test (molsets 0.3.1; rows 1, 18, 35, …), the first 10,000 of them,
/// gzip-compressed. A stride, not the file's head: test.csv is not in random order, and its first
/// 10,000 molecules sit far from the rest (FCD 3.36 to all of test, against 0.12 for this draw).
static TEST_GZ: &[u8] = include_bytes!("../corpus/moses_test_10k.smi.gz");

fn lines_of(gz: &[u8]) -> Vec<String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .expect("embedded corpora are valid gzip UTF-8");
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The embedded corpus's SMILES, in file order.
pub fn embedded_corpus() -> Vec<String> {
    lines_of(CORPUS_GZ)
}

/// The embedded test set's SMILES, in file order.
pub fn embedded_test_set() -> Vec<String> {
    lines_of(TEST_GZ)
}

#[cfg(test)]
mod tests {
    #[test]
    fn embedded_corpus_has_100k_distinct_molecules() {
        let corpus = super::embedded_corpus();
        assert_eq!(corpus.len(), 100_000);
        let distinct: std::collections::HashSet<&String> = corpus.iter().collect();
        assert_eq!(distinct.len(), 100_000);
        // MOSES test and train are disjoint.
        let test = super::embedded_test_set();
        assert_eq!(test.len(), 10_000);
        assert!(test.iter().all(|s| !distinct.contains(s)));
    }
}
