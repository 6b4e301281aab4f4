//! The reference sets `smirl eval` compares with. A MOSES test split with molsets' statistics file
//! beside it (`test.csv.gz` + `test_stats.npz`, as `datasets/fetch_moses.sh` leaves them) is read
//! from that file, as molsets does. Any other reference set is computed from its SMILES once and
//! cached by the hash of its content, as is the canonical training set for novelty (by default all
//! of MOSES train, which the binary embeds as hashes); so a second
//! `smirl eval` against the same files costs seconds.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Context;
use chem::{Fingerprint, ReferenceSet};

use super::{cache, input};

/// A test set as eval uses it: SNN/Frag/Scaf/property statistics, and FCD's Gaussian when ChemNet
/// is available.
pub struct Reference {
    pub set: ReferenceSet,
    pub fcd: Option<fcd::Gaussian>,
}

/// Novelty's training set as eval and merge query it: a file's canonical SMILES, or all of MOSES
/// train as the binary's hashes (the default), behind the membership trait novelty's reward uses.
pub type TrainingSet = Box<dyn rl::CanonicalSet>;

/// What the training set of `path` is called in reports: the file, or the embedded hashes.
pub fn training_set_name(path: Option<&Path>) -> String {
    path.map_or(datasets::EMBEDDED_TRAIN_HASHES_NAME.to_string(), |p| {
        p.display().to_string()
    })
}

/// The training molecules among `wanted` (canonical SMILES), which is all novelty needs.
///
/// MOSES train as fetch_moses.sh leaves it (`train.csv.gz`, molsets' `test_stats.npz` beside it)
/// is compared as its strings stand, exactly as molsets' `novelty` does (`set(train)`, not
/// canonicalised). Any other training file is canonicalised, once: its canonical SMILES are cached
/// by content hash. With no file, all of MOSES train's canonical SMILES, as the binary's hashes.
pub fn training_matches(
    path: Option<&Path>,
    wanted: &HashSet<&str>,
    name: &str,
) -> anyhow::Result<HashSet<String>> {
    let train = training_set(path, name, &|s: &str| wanted.contains(s))?;
    Ok(wanted
        .iter()
        .filter(|s| train.contains(s))
        .map(|s| s.to_string())
        .collect())
}

/// The training set, compared as [`training_matches`] compares it; of a file, only the molecules
/// for which `keep` holds (`|_| true`: all of them, for callers that meet the generated molecules
/// piece by piece).
pub fn training_set(
    path: Option<&Path>,
    name: &str,
    keep: &dyn Fn(&str) -> bool,
) -> anyhow::Result<TrainingSet> {
    let Some(path) = path else {
        return Ok(Box::new(input::EmbeddedTrainHashes));
    };
    if path.file_name().is_some_and(|n| n == "train.csv.gz")
        && path.with_file_name("test_stats.npz").is_file()
    {
        let records = input::read(path, None).context("reading the training set")?;
        return Ok(Box::new(
            records
                .into_iter()
                .map(|r| r.smiles)
                .filter(|s| keep(s))
                .collect::<HashSet<String>>(),
        ));
    }
    let records = || input::read(path, None).context("reading the training set");
    let Some(dir) = cache::cache_dir() else {
        let all = input::canonical_set_of(&records()?, &name);
        return Ok(Box::new(
            all.into_iter().filter(|s| keep(s)).collect::<HashSet<String>>(),
        ));
    };
    let file = dir.join(format!("{}.txt", cache::key_of_file(path, "train-canonical")?));
    if let Some(found) = cache::read_smiles_matching(&file, &keep) {
        return Ok(Box::new(found));
    }
    let all = input::canonical_set_of(&records()?, &name);
    if let Err(e) = cache::write_smiles(&file, &all) {
        cache::warn_uncached("canonical training set", e);
    }
    Ok(Box::new(
        all.into_iter().filter(|s| keep(s)).collect::<HashSet<String>>(),
    ))
}

/// Loads a test set: molsets' statistics beside the file when there are some, else the cache,
/// else computed from the SMILES (and cached).
pub fn load_test(
    path: Option<&Path>,
    records: &[datasets::SmilesRecord],
    name: &str,
    chemnet: Option<&fcd::ChemNet>,
) -> anyhow::Result<Reference> {
    if let Some(stats) = path.and_then(datasets::stats_path_for) {
        eprintln!("{name}: molsets' statistics from {}", stats.display());
        return moses_reference(&stats);
    }
    let dir = cache::cache_dir();
    let entry = match (&dir, path) {
        (Some(dir), Some(p)) => Some(dir.join(cache::key_of_file(p, "reference")?)),
        (Some(dir), None) => Some(dir.join(cache::key_of_records(records, "reference"))),
        (None, _) => None,
    };
    let cached = entry.as_deref().and_then(|e| cache::read_reference(e).ok());
    let mut changed = cached.is_none();
    let (set, mut fcd) = match cached {
        Some((set, fcd)) => (set, fcd),
        None => (compute_set(records, name), None),
    };
    if fcd.is_none() {
        if let Some(net) = chemnet {
            fcd = compute_gaussian(net, records, name);
            changed = true;
        }
    }
    if let (Some(entry), true) = (entry, changed) {
        if let Err(e) = cache::write_reference(&entry, &set, fcd.as_ref()) {
            cache::warn_uncached("reference set", e);
        }
    }
    Ok(Reference { set, fcd })
}

/// molsets' statistics of a MOSES test split, through the cache (reading the pickled .npz takes
/// seconds and hundreds of MB; the cached form loads in a fraction of that).
fn moses_reference(stats: &Path) -> anyhow::Result<Reference> {
    let entry = match cache::cache_dir() {
        Some(dir) => Some(dir.join(cache::key_of_file(stats, "moses-stats")?)),
        None => None,
    };
    if let Some(Ok((set, Some(fcd)))) = entry.as_deref().map(cache::read_reference) {
        return Ok(Reference { set, fcd: Some(fcd) });
    }
    let s = datasets::read_moses_stats(stats)?;
    let fcd = fcd::Gaussian::from_row_major(s.fcd_mu, &s.fcd_sigma);
    let set = ReferenceSet {
        fingerprints: s.fingerprints.iter().map(Fingerprint::from_le_bytes).collect(),
        fragments: s.fragments,
        scaffolds: s.scaffolds,
        properties: chem::PropertyColumns {
            logp: s.logp,
            sa: s.sa,
            qed: s.qed,
            weight: s.weight,
        },
    };
    if let Some(entry) = entry {
        if let Err(e) = cache::write_reference(&entry, &set, Some(&fcd)) {
            cache::warn_uncached("test statistics", e);
        }
    }
    Ok(Reference { set, fcd: Some(fcd) })
}

fn compute_set(records: &[datasets::SmilesRecord], name: &str) -> ReferenceSet {
    let smiles: Vec<&str> = records.iter().map(|r| r.smiles.as_str()).collect();
    let bar = input::progress(smiles.len(), name);
    let mut set = ReferenceSet::default();
    for chunk in smiles.chunks(8192) {
        set.add_smiles(chunk);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    set
}

/// FCD's Gaussian of a reference set: ChemNet on its canonical SMILES (invalid ones left out, as
/// molsets' `remove_invalid` does before its own statistics).
fn compute_gaussian(
    net: &fcd::ChemNet,
    records: &[datasets::SmilesRecord],
    name: &str,
) -> Option<fcd::Gaussian> {
    let smiles: Vec<&str> = records.iter().map(|r| r.smiles.as_str()).collect();
    let canonical: Vec<String> = chem::canonicalize_batch(&smiles).into_iter().flatten().collect();
    chemnet_gaussian(net, &canonical, name)
}

/// The Gaussian of ChemNet's activations of canonical SMILES, with a progress bar.
pub fn chemnet_gaussian<S: AsRef<str> + Sync>(
    net: &fcd::ChemNet,
    canonical: &[S],
    name: &str,
) -> Option<fcd::Gaussian> {
    let bar = input::progress(canonical.len(), &format!("{name} FCD"));
    let mut activations = Vec::with_capacity(canonical.len() * fcd::ACTIVATION_DIM);
    for chunk in canonical.chunks(2048) {
        activations.extend(net.activations(chunk));
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    fcd::Gaussian::fit(&activations, fcd::ACTIVATION_DIM)
}
