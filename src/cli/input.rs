//! Reading SMILES inputs and scoring them with a progress bar.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Context;
use chem::MoleculeProps;
use datasets::SmilesRecord;
use indicatif::{ProgressBar, ProgressStyle};

/// Reads a SMILES file (CSV/TSV/.smi, optionally gzip).
pub fn read(path: &Path, column: Option<&str>) -> anyhow::Result<Vec<SmilesRecord>> {
    Ok(datasets::read_smiles(path, column)?)
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} ({per_sec}, ETA {eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

const CHUNK: usize = 2048;

/// Scores molecules in parallel, in chunks so the progress bar moves.
pub fn score_all(smiles: &[&str], what: &str) -> Vec<Option<MoleculeProps>> {
    let too_long = smiles.iter().filter(|s| s.len() > chem::MAX_SMILES_LEN).count();
    if too_long > 0 {
        eprintln!(
            "note: {too_long} SMILES longer than {} characters are counted invalid without parsing",
            chem::MAX_SMILES_LEN
        );
    }
    let bar = progress(smiles.len(), what);
    let mut out = Vec::with_capacity(smiles.len());
    for chunk in smiles.chunks(CHUNK) {
        out.extend(chem::score_batch(chunk));
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    out
}

/// Reads a training set and returns its canonical SMILES (invalid entries are counted and reported).
pub fn canonical_set(path: &Path, column: Option<&str>) -> anyhow::Result<HashSet<String>> {
    let records = read(path, column).with_context(|| "reading the training set")?;
    Ok(canonical_set_of(&records, &path.display()))
}

/// Canonical SMILES of already-read training records (invalid entries are counted and reported).
pub fn canonical_set_of(records: &[SmilesRecord], source: &dyn std::fmt::Display) -> HashSet<String> {
    let smiles: Vec<&str> = records.iter().map(|r| r.smiles.as_str()).collect();
    let bar = progress(smiles.len(), "train");
    let mut set = HashSet::with_capacity(smiles.len());
    let mut invalid = 0usize;
    for chunk in smiles.chunks(CHUNK * 8) {
        for c in chem::canonicalize_batch(chunk) {
            match c {
                Some(c) => {
                    set.insert(c);
                }
                None => invalid += 1,
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    if invalid > 0 {
        eprintln!(
            "note: {invalid} of {} molecules in {} are invalid and were left out",
            smiles.len(),
            source
        );
    }
    set
}

/// The reference sets compiled into the binary, used when no file is given.
#[derive(Debug, Clone, Copy)]
pub enum Embedded {
    /// 100,000 MOSES training molecules.
    Train,
    /// 10,000 MOSES test molecules (every 17th).
    Test,
}

/// Reads `path`, or, when there is none, the embedded set; returns the records and what they are.
pub fn read_or_embedded(
    path: Option<&Path>,
    embedded: Embedded,
) -> anyhow::Result<(Vec<SmilesRecord>, String)> {
    if let Some(path) = path {
        return Ok((read(path, None)?, path.display().to_string()));
    }
    let (smiles, name) = match embedded {
        Embedded::Train => (datasets::embedded_corpus(), datasets::EMBEDDED_CORPUS_NAME),
        Embedded::Test => (datasets::embedded_test_set(), datasets::EMBEDDED_TEST_SET_NAME),
    };
    let records = smiles
        .into_iter()
        .enumerate()
        .map(|(i, smiles)| SmilesRecord {
            smiles,
            name: None,
            line: i as u64 + 1,
        })
        .collect();
    Ok((records, name.to_string()))
}

/// The reference molecules `smirl tune` hands to rl: all of MOSES train (embedded as hashes) as
/// novelty's default training set, the embedded 100,000-molecule subset where real SMILES are
/// needed (the prefix initialisation), and `datasets`' reader for files a config names.
pub struct DatasetSmiles;

impl DatasetSmiles {
    /// As rl's shared handle.
    pub fn handle() -> rl::References {
        std::sync::Arc::new(DatasetSmiles)
    }
}

/// All of MOSES train, as the hashes `datasets` embeds, answering membership queries (novelty's
/// reward, eval and merge).
pub struct EmbeddedTrainHashes;

impl rl::CanonicalSet for EmbeddedTrainHashes {
    fn contains(&self, canonical: &str) -> bool {
        datasets::embedded_train_hashes().contains(canonical)
    }

    fn len(&self) -> usize {
        datasets::embedded_train_hashes().len()
    }
}

impl rl::SmilesSource for DatasetSmiles {
    fn training_set(&self) -> Result<Vec<String>, String> {
        Ok(datasets::embedded_corpus())
    }

    fn novelty_set(&self) -> Result<Option<std::sync::Arc<dyn rl::CanonicalSet>>, String> {
        Ok(Some(std::sync::Arc::new(EmbeddedTrainHashes)))
    }

    fn read(&self, path: &Path) -> Result<Vec<String>, String> {
        datasets::read_smiles(path, None)
            .map(|rows| rows.into_iter().map(|r| r.smiles).collect())
            .map_err(|e| e.to_string())
    }
}
