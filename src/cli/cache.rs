//! smirl's cache of reference data (`$SMIRL_CACHE_DIR`, else `$XDG_CACHE_HOME/smirl`, else
//! `~/.cache/smirl`): canonical training sets and reference-set statistics, keyed by a hash of
//! their source's content. Entries are written under a temporary name and renamed into place, so a
//! killed run leaves none half-written; an unreadable entry is recomputed.

use std::collections::HashSet;
use std::io::{BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chem::{Fingerprint, ReferenceSet};

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
pub fn key_of_file(path: &Path, kind: &str) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!("{kind}-{:016x}", content_hash(&[&bytes])))
}

/// The cache key of SMILES given in memory (the embedded sets).
pub fn key_of_records(records: &[datasets::SmilesRecord], kind: &str) -> String {
    let smiles: Vec<&[u8]> = records.iter().map(|r| r.smiles.as_bytes()).collect();
    format!("{kind}-{:016x}", content_hash(&smiles))
}

/// Writes a file or folder through a temporary name, so that a killed run leaves no half entry.
pub(super) fn write_atomically(
    target: &Path,
    write: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
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
pub fn warn_uncached(what: &str, e: anyhow::Error) {
    eprintln!("note: could not cache the {what} ({e:#}); the next eval computes it again");
}

/// The last line of a cached canonical training set (no SMILES contains a space).
const CACHE_END: &str = "# end";

/// The SMILES of a cached list that `keep` accepts; `None` when the entry is missing or incomplete.
pub fn read_smiles_matching(file: &Path, keep: &dyn Fn(&str) -> bool) -> Option<HashSet<String>> {
    let f = std::fs::File::open(file).ok()?;
    let mut found = HashSet::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.ok()?;
        // The last line marks a complete entry.
        if line == CACHE_END {
            return Some(found);
        }
        if keep(&line) {
            found.insert(line);
        }
    }
    None
}

/// Caches a list of SMILES.
pub fn write_smiles(file: &Path, smiles: &HashSet<String>) -> anyhow::Result<()> {
    std::fs::create_dir_all(file.parent().expect("cache entry in a directory"))?;
    write_atomically(file, |tmp| {
        let mut w = BufWriter::new(std::fs::File::create(tmp)?);
        for s in smiles {
            writeln!(w, "{s}")?;
        }
        writeln!(w, "{CACHE_END}")?;
        w.flush()?;
        Ok(())
    })
}

/// Caches a reference set (and FCD's Gaussian when there is one).
pub fn write_reference(entry: &Path, set: &ReferenceSet, fcd: Option<&fcd::Gaussian>) -> anyhow::Result<()> {
    std::fs::create_dir_all(entry.parent().expect("cache entry in a directory"))?;
    write_atomically(entry, |tmp| write_reference_files(tmp, set, fcd))
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
fn write_reference_files(dir: &Path, set: &ReferenceSet, fcd: Option<&fcd::Gaussian>) -> anyhow::Result<()> {
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

pub fn read_reference(dir: &Path) -> anyhow::Result<(ReferenceSet, Option<fcd::Gaussian>)> {
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
