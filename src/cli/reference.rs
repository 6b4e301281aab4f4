//! The reference sets `smirl eval` compares with. A MOSES test split with molsets' statistics file
//! beside it (`test.csv.gz` + `test_stats.npz`, as `datasets/fetch_moses.sh` leaves them) is read
//! from that file, as molsets does. Any other reference set is computed from its SMILES once and
//! cached by the hash of its content, as is the canonical training set for novelty; so a second
//! `smirl eval` against the same files costs seconds.

use std::collections::HashSet;
use std::io::{BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chem::{Fingerprint, ReferenceSet};

use super::input;

/// A test set as eval uses it: SNN/Frag/Scaf/property statistics, and FCD's Gaussian when ChemNet
/// is available.
pub struct Reference {
    pub set: ReferenceSet,
    pub fcd: Option<fcd::Gaussian>,
}

/// FNV-1a, 64 bit: a content hash for cache keys (not for security).
fn content_hash(chunks: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for chunk in chunks {
        for &b in *chunk {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `$SMIRL_CACHE_DIR`, else `$XDG_CACHE_HOME/smirl`, else `~/.cache/smirl`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SMIRL_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("smirl"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("smirl"))
}

/// The cache key of a file: its kind and the hash of its bytes.
fn key_of_file(path: &Path, kind: &str) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!("{kind}-{:016x}", content_hash(&[&bytes])))
}

/// The cache key of SMILES given in memory (the embedded sets).
fn key_of_records(records: &[datasets::SmilesRecord], kind: &str) -> String {
    let smiles: Vec<&[u8]> = records.iter().map(|r| r.smiles.as_bytes()).collect();
    format!("{kind}-{:016x}", content_hash(&smiles))
}

/// Writes a cache entry through a temporary name, so that a killed run leaves no half entry.
fn write_atomically(target: &Path, write: impl FnOnce(&Path) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let tmp = target.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_file(&tmp);
    write(&tmp)?;
    if target.is_dir() {
        std::fs::remove_dir_all(target)?;
    }
    std::fs::rename(&tmp, target).with_context(|| format!("renaming {} into place", tmp.display()))?;
    Ok(())
}

/// Tells the user a cache could not be written; eval goes on without it.
fn warn_uncached(what: &str, e: anyhow::Error) {
    eprintln!("note: could not cache the {what} ({e:#}); the next eval computes it again");
}

/// The training molecules among `wanted` (canonical SMILES), which is all novelty needs.
///
/// A MOSES train split from the molsets wheel (molsets' `test_stats.npz` beside it) is compared as
/// its strings stand, exactly as molsets' `novelty` does (`set(train)`, not canonicalised). Any
/// other training set is canonicalised, once: its canonical SMILES are cached by content hash.
pub fn training_matches(
    path: Option<&Path>,
    wanted: &HashSet<&str>,
    name: &str,
) -> anyhow::Result<HashSet<String>> {
    let keep = |s: &str| wanted.contains(s);
    if let Some(p) = path.filter(|p| p.with_file_name("test_stats.npz").is_file()) {
        let records = input::read(p, None).context("reading the training set")?;
        return Ok(records
            .into_iter()
            .map(|r| r.smiles)
            .filter(|s| keep(s))
            .collect());
    }
    let records = || -> anyhow::Result<Vec<datasets::SmilesRecord>> {
        Ok(input::read_or_embedded(path, input::Embedded::Train)
            .context("reading the training set")?
            .0)
    };
    let Some(dir) = cache_dir() else {
        let all = input::canonical_set_of(&records()?, &name);
        return Ok(all.into_iter().filter(|s| keep(s)).collect());
    };
    let key = match path {
        Some(p) => key_of_file(p, "train-canonical")?,
        None => key_of_records(&records()?, "train-canonical"),
    };
    let file = dir.join(format!("{key}.txt"));
    if let Ok(f) = std::fs::File::open(&file) {
        let mut found = HashSet::new();
        let mut complete = false;
        for line in std::io::BufReader::new(f).lines() {
            let Ok(line) = line else { break };
            // The last line marks a complete entry.
            if line == CACHE_END {
                complete = true;
                break;
            }
            if keep(&line) {
                found.insert(line);
            }
        }
        if complete {
            return Ok(found);
        }
    }
    let all = input::canonical_set_of(&records()?, &name);
    let saved = std::fs::create_dir_all(&dir)
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            write_atomically(&file, |tmp| {
                let mut w = BufWriter::new(std::fs::File::create(tmp)?);
                for s in &all {
                    writeln!(w, "{s}")?;
                }
                writeln!(w, "{CACHE_END}")?;
                w.flush()?;
                Ok(())
            })
        });
    if let Err(e) = saved {
        warn_uncached("canonical training set", e);
    }
    Ok(all.into_iter().filter(|s| keep(s)).collect())
}

/// The last line of a cached canonical training set (no SMILES contains a space).
const CACHE_END: &str = "# end";

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
    let dir = cache_dir();
    let entry = match (&dir, path) {
        (Some(dir), Some(p)) => Some(dir.join(key_of_file(p, "reference")?)),
        (Some(dir), None) => Some(dir.join(key_of_records(records, "reference"))),
        (None, _) => None,
    };
    let cached = entry.as_deref().and_then(|e| read_reference(e).ok());
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
        let saved = std::fs::create_dir_all(entry.parent().expect("entry in a directory"))
            .map_err(anyhow::Error::from)
            .and_then(|()| write_atomically(&entry, |tmp| write_reference(tmp, &set, fcd.as_ref())));
        if let Err(e) = saved {
            warn_uncached("reference set", e);
        }
    }
    Ok(Reference { set, fcd })
}

/// molsets' statistics of a MOSES test split, through the cache (reading the pickled .npz takes
/// seconds and hundreds of MB; the cached form loads in a fraction of that).
fn moses_reference(stats: &Path) -> anyhow::Result<Reference> {
    let entry = match cache_dir() {
        Some(dir) => Some(dir.join(key_of_file(stats, "moses-stats")?)),
        None => None,
    };
    if let Some(Ok((set, Some(fcd)))) = entry.as_deref().map(read_reference) {
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
        let saved = std::fs::create_dir_all(entry.parent().expect("entry in a directory"))
            .map_err(anyhow::Error::from)
            .and_then(|()| write_atomically(&entry, |tmp| write_reference(tmp, &set, Some(&fcd))));
        if let Err(e) = saved {
            warn_uncached("test statistics", e);
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

fn write_f64s(path: &Path, values: impl IntoIterator<Item = f64>) -> anyhow::Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    for v in values {
        w.write_all(&v.to_le_bytes())?;
    }
    w.flush()?;
    Ok(())
}

fn read_f64s(path: &Path) -> anyhow::Result<Vec<f64>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    anyhow::ensure!(bytes.len() % 8 == 0, "{}: truncated", path.display());
    Ok(bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect())
}

fn write_counts(path: &Path, counts: &std::collections::HashMap<String, u64>) -> anyhow::Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    for (k, v) in counts {
        writeln!(w, "{v}\t{k}")?;
    }
    w.flush()?;
    Ok(())
}

fn read_counts(path: &Path) -> anyhow::Result<std::collections::HashMap<String, u64>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .map(|line| {
            let (n, k) = line
                .split_once('\t')
                .with_context(|| format!("{}: bad line {line:?}", path.display()))?;
            Ok((k.to_string(), n.parse()?))
        })
        .collect()
}

/// A cache entry: a directory of plain little-endian and tab-separated files.
fn write_reference(dir: &Path, set: &ReferenceSet, fcd: Option<&fcd::Gaussian>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut w = BufWriter::new(std::fs::File::create(dir.join("fingerprints.bin"))?);
    for fp in &set.fingerprints {
        for word in fp.words() {
            w.write_all(&word.to_le_bytes())?;
        }
    }
    w.flush()?;
    write_counts(&dir.join("fragments.tsv"), &set.fragments)?;
    write_counts(&dir.join("scaffolds.tsv"), &set.scaffolds)?;
    let p = &set.properties;
    let columns = [&p.logp, &p.sa, &p.qed, &p.weight];
    write_f64s(
        &dir.join("properties.bin"),
        columns.iter().flat_map(|c| c.iter().copied()),
    )?;
    if let Some(g) = fcd {
        // mu, then sigma row by row.
        let (mu, sigma) = g.to_row_major();
        write_f64s(&dir.join("fcd.bin"), mu.into_iter().chain(sigma))?;
    }
    Ok(())
}

fn read_reference(dir: &Path) -> anyhow::Result<(ReferenceSet, Option<fcd::Gaussian>)> {
    let mut bytes = Vec::new();
    std::fs::File::open(dir.join("fingerprints.bin"))?.read_to_end(&mut bytes)?;
    anyhow::ensure!(bytes.len() % 128 == 0, "truncated fingerprints");
    let fingerprints: Vec<Fingerprint> = bytes
        .chunks_exact(128)
        .map(|fp| Fingerprint::from_le_bytes(fp.try_into().expect("128 bytes")))
        .collect();
    let n = fingerprints.len();
    let props = read_f64s(&dir.join("properties.bin"))?;
    anyhow::ensure!(props.len() == 4 * n, "properties do not match the fingerprints");
    let column = |i: usize| props[i * n..(i + 1) * n].to_vec();
    let set = ReferenceSet {
        fingerprints,
        fragments: read_counts(&dir.join("fragments.tsv"))?,
        scaffolds: read_counts(&dir.join("scaffolds.tsv"))?,
        properties: chem::PropertyColumns {
            logp: column(0),
            sa: column(1),
            qed: column(2),
            weight: column(3),
        },
    };
    let d = fcd::ACTIVATION_DIM;
    let fcd = match read_f64s(&dir.join("fcd.bin")) {
        Ok(v) if v.len() == d + d * d => Some(fcd::Gaussian::from_row_major(v[..d].to_vec(), &v[d..])),
        _ => None,
    };
    Ok((set, fcd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_of_known_strings() {
        // FNV-1a 64 test vectors (Fowler/Noll/Vo): "" and "a", before the chunk separator.
        let plain = |s: &[u8]| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for &b in s {
                h ^= b as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            h
        };
        assert_eq!(plain(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(plain(b"a"), 0xaf63_dc4c_8601_ec8c);
        // Chunk boundaries matter: ["ab"] and ["a", "b"] differ.
        assert_ne!(content_hash(&[b"ab"]), content_hash(&[b"a", b"b"]));
    }
}
