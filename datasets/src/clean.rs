//! The cleaning pipeline: canonicalise with RDKit (through `chem`), drop invalid molecules,
//! deduplicate, filter by length, characters and (optionally) the MOSES filters, then split with a
//! seed. Every dropped molecule is counted under the first rule it failed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use polars::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::DatasetError;
use crate::read::SmilesRecord;

/// What the pipeline keeps.
#[derive(Debug, Clone)]
pub struct CleanOptions {
    /// Shortest canonical SMILES kept, in characters.
    pub min_len: usize,
    /// Longest canonical SMILES kept, in characters.
    pub max_len: usize,
    /// If set, a canonical SMILES with any other character is dropped (e.g. a model's vocabulary).
    pub allowed_chars: Option<BTreeSet<char>>,
    /// Keep only molecules that pass the MOSES filters (MCF, PAINS, charge and atom rules).
    pub moses_filters: bool,
}

impl Default for CleanOptions {
    fn default() -> Self {
        Self {
            min_len: 1,
            max_len: 100,
            allowed_chars: None,
            moses_filters: false,
        }
    }
}

/// One kept molecule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanRow {
    /// RDKit canonical SMILES.
    pub smiles: String,
    /// Where it came from (1-based line or row of the input file).
    pub source_line: u64,
    /// The input's name, if it had one.
    pub name: Option<String>,
}

/// Counts of what the pipeline did, in pipeline order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CleanReport {
    /// Records read.
    pub read: usize,
    /// Not parseable or not sanitisable by RDKit (empty SMILES included).
    pub invalid: usize,
    /// Same canonical SMILES as an earlier record.
    pub duplicates: usize,
    /// Canonical SMILES shorter than `min_len`.
    pub too_short: usize,
    /// Canonical SMILES longer than `max_len`.
    pub too_long: usize,
    /// Canonical SMILES with a character outside `allowed_chars`.
    pub disallowed_chars: usize,
    /// Characters that caused drops, with how many molecules held each.
    pub disallowed_examples: BTreeMap<char, usize>,
    /// Failed the MOSES filters.
    pub failed_filters: usize,
    /// Molecules kept.
    pub kept: usize,
}

/// Per-record outcome of the parallel RDKit stage.
enum Parsed {
    Invalid,
    Valid { canonical: String, passes_filters: bool },
}

fn parse_one(smiles: &str, check_filters: bool) -> Parsed {
    let Some(mol) = chem::Molecule::parse(smiles) else {
        return Parsed::Invalid;
    };
    // A filter evaluation error is treated as a failure: we cannot vouch for the molecule.
    let passes_filters = !check_filters || mol.passes_moses_filters().unwrap_or(false);
    Parsed::Valid {
        canonical: mol.canonical_smiles(),
        passes_filters,
    }
}

/// Runs the pipeline over `records` (in parallel; `progress` is told how many records each finished
/// chunk held). Keeps the first occurrence of each canonical SMILES, in input order.
pub fn clean(
    records: &[SmilesRecord],
    options: &CleanOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> (Vec<CleanRow>, CleanReport) {
    let parsed: Vec<Parsed> = records
        .par_chunks(1024)
        .flat_map_iter(|chunk| {
            let out: Vec<Parsed> = chunk
                .iter()
                .map(|r| parse_one(&r.smiles, options.moses_filters))
                .collect();
            progress(chunk.len());
            out
        })
        .collect();

    let mut report = CleanReport {
        read: records.len(),
        ..Default::default()
    };
    let mut seen = HashSet::with_capacity(records.len());
    let mut rows = Vec::new();
    for (record, parsed) in records.iter().zip(parsed) {
        let Parsed::Valid {
            canonical,
            passes_filters,
        } = parsed
        else {
            report.invalid += 1;
            continue;
        };
        if !seen.insert(canonical.clone()) {
            report.duplicates += 1;
            continue;
        }
        let len = canonical.chars().count();
        if len < options.min_len {
            report.too_short += 1;
            continue;
        }
        if len > options.max_len {
            report.too_long += 1;
            continue;
        }
        if let Some(allowed) = &options.allowed_chars {
            let bad: BTreeSet<char> = canonical.chars().filter(|c| !allowed.contains(c)).collect();
            if !bad.is_empty() {
                report.disallowed_chars += 1;
                for c in bad {
                    *report.disallowed_examples.entry(c).or_default() += 1;
                }
                continue;
            }
        }
        if !passes_filters {
            report.failed_filters += 1;
            continue;
        }
        rows.push(CleanRow {
            smiles: canonical,
            source_line: record.line,
            name: record.name.clone(),
        });
    }
    report.kept = rows.len();
    (rows, report)
}

/// How molecules are assigned to splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitBy {
    /// Each molecule independently (shuffled with the seed).
    Random,
    /// Whole Bemis–Murcko scaffold groups, so no scaffold is in two splits (acyclic molecules are
    /// their own group).
    Scaffold,
}

/// Errors of [`split`].
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// Fractions negative or not summing to 1.
    #[error("split fractions must be >= 0 and sum to 1 (got {0:?})")]
    BadFractions([f64; 3]),
}

/// The names of the three splits, in order.
pub const SPLIT_NAMES: [&str; 3] = ["train", "valid", "test"];

/// Splits `rows` into train / valid / test with the given fractions. The same rows, fractions and
/// seed always give the same splits; each split keeps input order.
pub fn split(
    rows: Vec<CleanRow>,
    fractions: [f64; 3],
    by: SplitBy,
    seed: u64,
) -> Result<[Vec<CleanRow>; 3], SplitError> {
    if fractions.iter().any(|f| f.is_nan() || *f < 0.0) || (fractions.iter().sum::<f64>() - 1.0).abs() > 1e-6
    {
        return Err(SplitError::BadFractions(fractions));
    }
    let n = rows.len();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // Groups of row indices that must stay together.
    let mut groups: Vec<Vec<usize>> = match by {
        SplitBy::Random => (0..n).map(|i| vec![i]).collect(),
        SplitBy::Scaffold => {
            let keys: Vec<Option<String>> = rows
                .par_iter()
                .map(|r| {
                    let mol = chem::Molecule::parse(&r.smiles)?;
                    mol.murcko_scaffold().ok().filter(|s| !s.is_empty())
                })
                .collect();
            let mut by_key: HashMap<String, usize> = HashMap::new();
            let mut groups: Vec<Vec<usize>> = Vec::new();
            for (i, key) in keys.into_iter().enumerate() {
                match key {
                    Some(key) => {
                        let g = *by_key.entry(key).or_insert_with(|| {
                            groups.push(Vec::new());
                            groups.len() - 1
                        });
                        groups[g].push(i);
                    }
                    None => groups.push(vec![i]),
                }
            }
            groups
        }
    };
    groups.shuffle(&mut rng);
    let n_train = (fractions[0] * n as f64).round() as usize;
    let n_valid = (fractions[1] * n as f64).round() as usize;
    let mut assignment = vec![0u8; n];
    let mut filled = [0usize; 3];
    for group in groups {
        let target = if filled[0] < n_train {
            0
        } else if filled[1] < n_valid {
            1
        } else {
            2
        };
        filled[target] += group.len();
        for i in group {
            assignment[i] = target as u8;
        }
    }
    let mut out: [Vec<CleanRow>; 3] = Default::default();
    for (row, target) in rows.into_iter().zip(assignment) {
        out[target as usize].push(row);
    }
    Ok(out)
}

/// The rows as a table with columns `smiles`, `source_line` and `name`.
pub fn rows_to_frame(rows: &[CleanRow]) -> DataFrame {
    let smiles: Vec<&str> = rows.iter().map(|r| r.smiles.as_str()).collect();
    let lines: Vec<u64> = rows.iter().map(|r| r.source_line).collect();
    let names: Vec<Option<&str>> = rows.iter().map(|r| r.name.as_deref()).collect();
    DataFrame::new(
        rows.len(),
        vec![
            Column::new("smiles".into(), smiles),
            Column::new("source_line".into(), lines),
            Column::new("name".into(), names),
        ],
    )
    .expect("three columns of equal length")
}

/// Writes rows as Parquet (`.parquet`, through polars) or CSV (`.csv`, `.csv.gz`), by file name, with
/// columns `smiles`, `source_line`, `name`.
pub fn write_rows(path: &Path, rows: &[CleanRow]) -> Result<(), DatasetError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let write_error = |source: std::io::Error| DatasetError::Write {
        path: path.to_path_buf(),
        source,
    };
    if name.ends_with(".parquet") {
        return crate::parquet::write_parquet(path, &mut rows_to_frame(rows));
    }
    let gz = name.ends_with(".csv.gz");
    if !gz && !name.ends_with(".csv") {
        return Err(DatasetError::UnknownOutputFormat {
            path: path.to_path_buf(),
        });
    }
    let file = std::fs::File::create(path).map_err(write_error)?;
    if gz {
        let encoder = write_csv(
            flate2::write::GzEncoder::new(file, flate2::Compression::default()),
            rows,
        )
        .map_err(write_error)?;
        // finish() reports a failed final write, which dropping the encoder would swallow.
        encoder.finish().map_err(write_error)?;
    } else {
        write_csv(file, rows).map_err(write_error)?;
    }
    Ok(())
}

fn write_csv<W: Write>(sink: W, rows: &[CleanRow]) -> std::io::Result<W> {
    let mut csv = csv::Writer::from_writer(sink);
    csv.write_record(["smiles", "source_line", "name"])?;
    for row in rows {
        let line = row.source_line.to_string();
        csv.write_record([
            row.smiles.as_str(),
            line.as_str(),
            row.name.as_deref().unwrap_or(""),
        ])?;
    }
    csv.into_inner().map_err(|e| e.into_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(smiles: &[&str]) -> Vec<SmilesRecord> {
        smiles
            .iter()
            .enumerate()
            .map(|(i, s)| SmilesRecord {
                smiles: s.to_string(),
                name: None,
                line: i as u64 + 1,
            })
            .collect()
    }

    #[test]
    fn counts_every_drop_under_its_first_rule() {
        let input = records(&[
            "OCC",                  // kept as CCO
            "C(O)C",                // duplicate of CCO
            "C1CC",                 // unclosed ring: invalid
            "",                     // empty: invalid
            "c1ccccc1",             // kept
            "C",                    // too short (min_len 2)
            "CCCCCCCCCCCCCCCCCCCC", // too long (max_len 15)
            "CCBr",                 // 'B', 'r' not allowed
            "CC(=O)O",              // kept
        ]);
        let options = CleanOptions {
            min_len: 2,
            max_len: 15,
            allowed_chars: Some("CcON()=1".chars().collect()),
            moses_filters: false,
        };
        let (rows, report) = clean(&input, &options, &|_| {});
        let kept: Vec<&str> = rows.iter().map(|r| r.smiles.as_str()).collect();
        assert_eq!(kept, ["CCO", "c1ccccc1", "CC(=O)O"]);
        assert_eq!(rows.iter().map(|r| r.source_line).collect::<Vec<_>>(), [1, 5, 9]);
        assert_eq!(
            (
                report.read,
                report.invalid,
                report.duplicates,
                report.too_short,
                report.too_long
            ),
            (9, 2, 1, 1, 1)
        );
        assert_eq!(report.disallowed_chars, 1);
        assert_eq!(report.disallowed_examples, BTreeMap::from([('B', 1), ('r', 1)]));
        assert_eq!(report.kept, 3);
    }

    #[test]
    fn moses_filters_drop_charged_molecules() {
        // MOSES keeps neutral molecules only; acetate is charged.
        let (rows, report) = clean(
            &records(&["CC(=O)[O-]", "CC(=O)O"]),
            &CleanOptions {
                moses_filters: true,
                ..Default::default()
            },
            &|_| {},
        );
        assert_eq!(report.failed_filters, 1);
        assert_eq!(rows[0].smiles, "CC(=O)O");
    }

    fn row(smiles: &str, line: u64) -> CleanRow {
        CleanRow {
            smiles: smiles.to_string(),
            source_line: line,
            name: None,
        }
    }

    #[test]
    fn random_split_is_seeded_disjoint_and_sized() {
        let rows: Vec<CleanRow> = (0..1000).map(|i| row(&"C".repeat(i % 7 + 1), i as u64)).collect();
        let a = split(rows.clone(), [0.8, 0.1, 0.1], SplitBy::Random, 7).unwrap();
        let b = split(rows.clone(), [0.8, 0.1, 0.1], SplitBy::Random, 7).unwrap();
        let c = split(rows.clone(), [0.8, 0.1, 0.1], SplitBy::Random, 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!([a[0].len(), a[1].len(), a[2].len()], [800, 100, 100]);
        let mut lines: Vec<u64> = a.iter().flatten().map(|r| r.source_line).collect();
        lines.sort_unstable();
        assert_eq!(lines, (0..1000).collect::<Vec<u64>>());
        assert!(split(rows, [0.8, 0.3, 0.1], SplitBy::Random, 7).is_err());
    }

    #[test]
    fn scaffold_split_keeps_each_scaffold_in_one_split() {
        // 5 ring scaffolds with 20 acyclic decorations each (side chains are not part of a scaffold).
        let cores = ["c1ccccc1", "C1CCCCC1", "c1ccncc1", "C1CCNCC1", "c1ccoc1"];
        let links = ["", "C", "CC", "CCC"];
        let decorations = ["C", "CC", "O", "N", "F"];
        let mut rows = Vec::new();
        for core in cores {
            for link in links {
                for d in decorations {
                    let smiles = format!("{d}{link}{core}");
                    let mol = chem::Molecule::parse(&smiles).unwrap();
                    rows.push(row(&mol.canonical_smiles(), rows.len() as u64));
                }
            }
        }
        let splits = split(rows, [0.6, 0.2, 0.2], SplitBy::Scaffold, 1).unwrap();
        let scaffolds = |rows: &Vec<CleanRow>| -> HashSet<String> {
            rows.iter()
                .map(|r| {
                    chem::Molecule::parse(&r.smiles)
                        .unwrap()
                        .murcko_scaffold()
                        .unwrap()
                })
                .collect()
        };
        let sets: Vec<HashSet<String>> = splits.iter().map(scaffolds).collect();
        for i in 0..3 {
            assert!(!splits[i].is_empty());
            for j in i + 1..3 {
                assert!(
                    sets[i].is_disjoint(&sets[j]),
                    "splits {i} and {j} share a scaffold"
                );
            }
        }
        assert_eq!(splits.iter().map(Vec::len).sum::<usize>(), 100);
    }

    #[test]
    fn writes_parquet_and_csv_that_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![
            row("CCO", 3),
            CleanRow {
                name: Some("benzene".into()),
                ..row("c1ccccc1", 9)
            },
        ];
        for name in ["out.parquet", "out.csv", "out.csv.gz"] {
            let path = dir.path().join(name);
            write_rows(&path, &rows).unwrap();
            let back = crate::read_smiles(&path, None).unwrap();
            assert_eq!(
                back.iter().map(|r| r.smiles.as_str()).collect::<Vec<_>>(),
                ["CCO", "c1ccccc1"],
                "{name}"
            );
        }
        let parquet = crate::read_smiles(&dir.path().join("out.parquet"), None).unwrap();
        assert_eq!(parquet[1].name.as_deref(), Some("benzene"));
        assert_eq!(parquet[1].line, 2);
        let e = write_rows(&dir.path().join("out.xlsx"), &rows)
            .unwrap_err()
            .to_string();
        assert!(e.contains("out.xlsx") && e.contains("unknown output type"), "{e}");
    }
}
