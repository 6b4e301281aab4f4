//! `smirl merge`: the scored shards of a screening library (`smirl score` outputs) into one
//! deduplicated library and the set metrics of their union.
//!
//! Every row is routed by a hash of its canonical SMILES to one of `--partitions` partition files,
//! so all copies of a molecule meet in one partition; each partition is then deduplicated on its
//! own, in parallel, and no step holds the whole library in memory. The metrics that are sums over
//! molecules (validity, uniqueness, novelty, filters, property means) are exact. IntDiv and SNN
//! are quadratic in the library, so they are computed on a seeded subsample of at most
//! `--subsample` distinct molecules (those with the smallest seeded hash, each weighted by its
//! number of copies): when the library is smaller, that is all of it, and every number equals
//! `smirl eval` on the shards concatenated in order.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::json;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::{eval, input, reference, score};

/// Arguments of `smirl merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Scored shards (`smirl score SHARD.csv --out SHARD.parquet`, or their CSV), in shard order.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    /// Output directory: `library/part-NNNNN.parquet` (one row per distinct valid molecule, with
    /// its number of copies and its first occurrence) and `metrics.json`.
    #[arg(long)]
    out: PathBuf,
    /// Hash partitions; each is deduplicated in memory on its own, so a library of M molecules
    /// needs memory for about M / partitions of them.
    #[arg(long, default_value_t = 16)]
    partitions: usize,
    /// Training set for novelty [default: all of MOSES train, embedded as hashes, as `smirl
    /// eval`].
    #[arg(long)]
    train: Option<PathBuf>,
    /// Test set for SNN/Test [default: the embedded 10,000 MOSES test molecules (every 17th), as
    /// `smirl eval`].
    #[arg(long)]
    test: Option<PathBuf>,
    /// Most distinct molecules in the IntDiv/SNN subsample.
    #[arg(long, default_value_t = 30_000)]
    subsample: usize,
    /// Seed of the subsample's hash.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep in the library only the molecules within this TOML file's bounds (e.g.
    /// scale/library_filter.toml); the metrics stay those of the whole union.
    #[arg(long)]
    filter: Option<PathBuf>,
    /// Format of the library parts.
    #[arg(long, value_enum, default_value_t = PartFormat::Parquet)]
    format: PartFormat,
    /// Print the metrics as JSON (they are always written to OUT/metrics.json).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PartFormat {
    Parquet,
    Csv,
}

/// Bounds on library columns, from a TOML file: `qed = { min = 0.6 }`, `sa = { max = 4 }`; flags
/// are 1/0 (`moses_filters = { min = 1 }`). A molecule without a value for a bounded column is
/// left out.
#[derive(Debug, Clone, Default, Deserialize)]
struct LibraryFilter(HashMap<String, Bounds>);

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bounds {
    min: Option<f64>,
    max: Option<f64>,
}

impl LibraryFilter {
    fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let filter: LibraryFilter =
            toml::from_str(&text).with_context(|| format!("{}: not a library filter", path.display()))?;
        anyhow::ensure!(
            !filter.0.is_empty(),
            "{}: bounds no column (write e.g. `qed = {{ min = 0.6 }}`)",
            path.display()
        );
        for (column, b) in &filter.0 {
            anyhow::ensure!(
                b.min.is_some() || b.max.is_some(),
                "{}: `{column}` has neither min nor max",
                path.display()
            );
        }
        Ok(filter)
    }

    /// The (column index, bounds) pairs against a library header; an unknown column is an error.
    fn resolve(&self, header: &[String], path: &Path) -> anyhow::Result<Vec<(usize, Bounds)>> {
        let mut out = Vec::new();
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        for name in names {
            let index = header.iter().position(|h| h == name).with_context(|| {
                format!(
                    "{}: `{name}` is not a library column (columns: {})",
                    path.display(),
                    header.join(",")
                )
            })?;
            out.push((index, self.0[name]));
        }
        Ok(out)
    }
}

fn passes(row: &[String], bounds: &[(usize, Bounds)]) -> bool {
    bounds.iter().all(|(i, b)| {
        let value = match row[*i].as_str() {
            "true" => Some(1.0),
            "false" => Some(0.0),
            v => v.parse::<f64>().ok(),
        };
        value.is_some_and(|v| b.min.is_none_or(|m| v >= m) && b.max.is_none_or(|m| v <= m))
    })
}

fn flag(cell: &str) -> bool {
    matches!(cell, "1" | "true")
}

/// The columns of one shard that merge needs, by index into its `values`.
struct ShardColumns {
    names: Vec<String>,
    valid: usize,
    canonical: usize,
    qed: Option<usize>,
    sa: Option<usize>,
    filters: Option<usize>,
}

impl ShardColumns {
    fn of(names: &[String], path: &Path) -> anyhow::Result<Self> {
        let find = |name: &str| names.iter().position(|n| n == name);
        let need = |name: &str| {
            find(name).with_context(|| {
                format!(
                    "{}: no `{name}` column: not a `smirl score` output (columns: {})",
                    path.display(),
                    names.join(",")
                )
            })
        };
        Ok(Self {
            names: names.to_vec(),
            valid: need("valid")?,
            canonical: need("canonical")?,
            qed: find("qed"),
            sa: find("sa"),
            filters: find("moses_filters"),
        })
    }
}

/// What one shard adds to the sums.
#[derive(Debug, Default)]
struct ShardSums {
    n: usize,
    valid: usize,
    filters: usize,
    qed: (f64, usize),
    sa: (f64, usize),
    /// Canonical SMILES of the first valid molecules, for unique@1000 and unique@10000.
    first_valid: Vec<String>,
}

const UNIQUE_AT: usize = 10_000;

fn add_finite(sum: &mut (f64, usize), cell: &str) {
    if let Ok(x) = cell.parse::<f64>() {
        if x.is_finite() {
            sum.0 += x;
            sum.1 += 1;
        }
    }
}

/// The header of the partition files and the library: canonical first, then the shard's
/// columns, the source row, and (library only) the count and novelty.
fn partition_header(columns: &ShardColumns) -> Vec<String> {
    let mut header = vec!["canonical".to_string(), "smiles".to_string(), "name".to_string()];
    header.extend(
        columns
            .names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != columns.valid && *i != columns.canonical)
            .map(|(_, n)| n.clone()),
    );
    header.push("source".to_string());
    header
}

fn partition_of(canonical: &str, partitions: usize) -> usize {
    (xxh3_64(canonical.as_bytes()) % partitions as u64) as usize
}

fn partition_dir(work: &Path, p: usize) -> PathBuf {
    work.join(format!("p{p:05}"))
}

/// Reads shard `index`, adds it to the sums and appends its valid rows to their partitions
/// (`work/pNNNNN/sNNNNNN.csv`).
fn route_shard(
    path: &Path,
    index: usize,
    reference_columns: &[String],
    work: &Path,
    partitions: usize,
) -> anyhow::Result<ShardSums> {
    let table = datasets::read_smiles_table(path, None)?;
    anyhow::ensure!(
        table.columns == reference_columns,
        "{}: its columns ({}) differ from the first shard's ({}): shards must come from the same `smirl score` command",
        path.display(),
        table.columns.join(","),
        reference_columns.join(",")
    );
    let columns = ShardColumns::of(&table.columns, path)?;
    let mut writers: HashMap<usize, csv::Writer<fs::File>> = HashMap::new();
    let header = partition_header(&columns);
    let mut sums = ShardSums::default();
    for (record, values) in table.records.iter().zip(&table.values) {
        sums.n += 1;
        if !flag(&values[columns.valid]) {
            continue;
        }
        let canonical = values[columns.canonical].as_str();
        anyhow::ensure!(
            !canonical.is_empty(),
            "{}:{}: a valid row without a canonical SMILES",
            path.display(),
            record.line
        );
        sums.valid += 1;
        if columns.filters.is_some_and(|i| flag(&values[i])) {
            sums.filters += 1;
        }
        if let Some(i) = columns.qed {
            add_finite(&mut sums.qed, &values[i]);
        }
        if let Some(i) = columns.sa {
            add_finite(&mut sums.sa, &values[i]);
        }
        if sums.first_valid.len() < UNIQUE_AT {
            sums.first_valid.push(canonical.to_string());
        }
        let p = partition_of(canonical, partitions);
        let writer = match writers.entry(p) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let file = partition_dir(work, p).join(format!("s{index:06}.csv"));
                let mut w = csv::Writer::from_path(&file)
                    .with_context(|| format!("{}: cannot create", file.display()))?;
                w.write_record(&header)?;
                e.insert(w)
            }
        };
        let mut row = vec![
            canonical.to_string(),
            record.smiles.clone(),
            record.name.clone().unwrap_or_default(),
        ];
        row.extend(
            values
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != columns.valid && *i != columns.canonical)
                .map(|(_, v)| v.clone()),
        );
        row.push(format!("{}:{}", path.display(), record.line));
        writer.write_record(&row)?;
    }
    for (_, mut w) in writers {
        w.flush()?;
    }
    Ok(sums)
}

/// A distinct molecule in the running for the subsample.
#[derive(Debug, Clone)]
struct Candidate {
    key: u64,
    canonical: String,
    count: usize,
}

/// What one partition adds.
#[derive(Debug, Default)]
struct PartitionSums {
    distinct: usize,
    novel: usize,
    qed_above_0_9: usize,
    kept: usize,
    candidates: Vec<Candidate>,
}

struct PartitionJob<'a> {
    work: &'a Path,
    library: &'a Path,
    shards: usize,
    header: &'a [String],
    train: &'a reference::TrainingSet,
    bounds: &'a [(usize, Bounds)],
    subsample: usize,
    seed: u64,
    format: PartFormat,
}

/// Deduplicates partition `p` (first occurrence in shard order kept, copies counted), writes its
/// library part and returns its sums.
fn reduce_partition(job: &PartitionJob, p: usize) -> anyhow::Result<PartitionSums> {
    let dir = partition_dir(job.work, p);
    let mut order: Vec<(Vec<String>, usize)> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for shard in 0..job.shards {
        let file = dir.join(format!("s{shard:06}.csv"));
        if !file.exists() {
            continue;
        }
        let mut reader =
            csv::Reader::from_path(&file).with_context(|| format!("{}: cannot read", file.display()))?;
        for row in reader.records() {
            let row = row.with_context(|| format!("{}: unreadable", file.display()))?;
            let canonical = &row[0];
            match seen.get(canonical) {
                Some(&i) => order[i].1 += 1,
                None => {
                    seen.insert(canonical.to_string(), order.len());
                    order.push((row.iter().map(str::to_string).collect(), 1));
                }
            }
        }
    }
    let qed = job.header.iter().position(|h| h == "qed");
    let mut sums = PartitionSums {
        distinct: order.len(),
        ..Default::default()
    };
    let mut rows = Vec::new();
    for (mut row, count) in order {
        let canonical = row[0].clone();
        let novel = !job.train.contains(&canonical);
        sums.novel += usize::from(novel);
        // The library row: the partition row with the count and novelty after `canonical`.
        row.insert(1, count.to_string());
        row.insert(2, if novel { "1" } else { "0" }.to_string());
        if qed.is_some_and(|i| row[i].parse::<f64>().is_ok_and(|q| q > 0.9)) {
            sums.qed_above_0_9 += 1;
        }
        sums.candidates.push(Candidate {
            key: xxh3_64_with_seed(canonical.as_bytes(), job.seed),
            canonical,
            count,
        });
        if passes(&row, job.bounds) {
            rows.push(row);
        }
    }
    sums.kept = rows.len();
    sums.candidates.sort_by_key(|c| c.key);
    sums.candidates.truncate(job.subsample);
    let extension = match job.format {
        PartFormat::Parquet => "parquet",
        PartFormat::Csv => "csv",
    };
    let part = job.library.join(format!("part-{p:05}.{extension}"));
    let header: Vec<&str> = job.header.iter().map(String::as_str).collect();
    score::write_table(&part, &header, &rows).with_context(|| format!("writing {}", part.display()))?;
    fs::remove_dir_all(&dir).with_context(|| format!("{}: cannot remove", dir.display()))?;
    Ok(sums)
}

/// IntDiv1, IntDiv2 and SNN/Test of the subsample, each molecule weighted by its copies.
fn subsample_metrics(chosen: &[Candidate], test: &chem::ReferenceSet) -> (f64, f64, f64) {
    let smiles: Vec<&str> = chosen.iter().map(|c| c.canonical.as_str()).collect();
    let props = input::score_all(&smiles, "subsample");
    let mut fps = Vec::new();
    let mut weighted = Vec::new();
    for (c, p) in chosen.iter().zip(&props) {
        // A canonical SMILES written by RDKit reads back; one that does not is left out.
        if let Some(p) = p {
            fps.extend(std::iter::repeat_n(p.fingerprint, c.count));
            weighted.push((p.fingerprint, c.count));
        }
    }
    // Copies repeated: the same multiset `smirl eval` sees, so the same IntDiv.
    let (int_div1, int_div2) = chem::internal_diversity(&fps);
    let distinct: Vec<chem::Fingerprint> = weighted.iter().map(|w| w.0).collect();
    let nearest = chem::max_tanimoto(&distinct, &test.fingerprints);
    let total: usize = weighted.iter().map(|w| w.1).sum();
    let snn = if total == 0 || test.fingerprints.is_empty() {
        f64::NAN
    } else {
        nearest
            .iter()
            .zip(&weighted)
            .map(|(s, w)| s * w.1 as f64)
            .sum::<f64>()
            / total as f64
    };
    (int_div1, int_div2, snn)
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

fn num(x: f64) -> serde_json::Value {
    if x.is_finite() {
        json!(x)
    } else {
        serde_json::Value::Null
    }
}

/// Runs `smirl merge`.
pub fn run(args: MergeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.partitions > 0, "--partitions must be > 0");
    anyhow::ensure!(args.subsample > 0, "--subsample must be > 0");
    for p in args.shards.iter().chain(&args.train).chain(&args.test) {
        anyhow::ensure!(p.is_file(), "{}: no such file", p.display());
    }
    let filter = match &args.filter {
        Some(path) => Some((LibraryFilter::from_file(path)?, path.clone())),
        None => None,
    };
    let work = args.out.join(".partitions");
    let library = args.out.join("library");
    for dir in [&work, &library] {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("{}: cannot clear", dir.display()))?;
        }
    }
    for p in 0..args.partitions {
        let dir = partition_dir(&work, p);
        fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    fs::create_dir_all(&library).with_context(|| format!("{}: cannot create", library.display()))?;

    // Phase timings go into metrics.json: the per-molecule costs of a merge at scale.
    let clock = std::time::Instant::now();
    // 1. Route every shard's valid rows to their partitions (shards in parallel).
    let first = datasets::read_smiles_table(&args.shards[0], None)?;
    let columns = ShardColumns::of(&first.columns, &args.shards[0])?;
    drop(first);
    let bar = input::progress(args.shards.len(), "shards");
    let sums: Vec<ShardSums> = args
        .shards
        .par_iter()
        .enumerate()
        .map(|(i, path)| {
            let s = route_shard(path, i, &columns.names, &work, args.partitions);
            bar.inc(1);
            s
        })
        .collect::<anyhow::Result<_>>()?;
    bar.finish_and_clear();
    let route_seconds = clock.elapsed().as_secs_f64();

    // 2. Deduplicate each partition.
    let train_name = reference::training_set_name(args.train.as_deref());
    let train = reference::training_set(args.train.as_deref(), &train_name, &|_| true)?;
    let mut header = partition_header(&columns);
    header.insert(1, "count".to_string());
    header.insert(2, "novel".to_string());
    let bounds = match &filter {
        Some((f, path)) => f.resolve(&header, path)?,
        None => Vec::new(),
    };
    let job = PartitionJob {
        work: &work,
        library: &library,
        shards: args.shards.len(),
        header: &header,
        train: &train,
        bounds: &bounds,
        subsample: args.subsample,
        seed: args.seed,
        format: args.format,
    };
    let bar = input::progress(args.partitions, "partitions");
    let parts: Vec<PartitionSums> = (0..args.partitions)
        .into_par_iter()
        .map(|p| {
            let s = reduce_partition(&job, p);
            bar.inc(1);
            s
        })
        .collect::<anyhow::Result<_>>()?;
    bar.finish_and_clear();
    fs::remove_dir_all(&work).with_context(|| format!("{}: cannot remove", work.display()))?;
    let partition_seconds = clock.elapsed().as_secs_f64() - route_seconds;

    // 3. The subsample: the distinct molecules with the smallest seeded hashes.
    let mut chosen: Vec<Candidate> = parts.iter().flat_map(|p| p.candidates.iter().cloned()).collect();
    chosen.sort_by_key(|c| c.key);
    chosen.truncate(args.subsample);
    let (test, test_name) =
        eval::test_reference(args.test.as_deref(), input::Embedded::Test, "test set", None)?;
    let (int_div1, int_div2, snn) = subsample_metrics(&chosen, &test.set);
    let subsample_seconds = clock.elapsed().as_secs_f64() - route_seconds - partition_seconds;

    let n: usize = sums.iter().map(|s| s.n).sum();
    let n_valid: usize = sums.iter().map(|s| s.valid).sum();
    let distinct: usize = parts.iter().map(|p| p.distinct).sum();
    let first_valid: Vec<&str> = sums
        .iter()
        .flat_map(|s| s.first_valid.iter().map(String::as_str))
        .take(UNIQUE_AT)
        .collect();
    let mean = |f: fn(&ShardSums) -> (f64, usize)| {
        let (s, k) = sums.iter().map(f).fold((0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        if k == 0 {
            f64::NAN
        } else {
            s / k as f64
        }
    };
    let kept: usize = parts.iter().map(|p| p.kept).sum();
    let metrics = json!({
        "shards": args.shards.len(),
        "n": n,
        "n_valid": n_valid,
        "valid": num(ratio(n_valid, n)),
        "distinct": distinct,
        "unique": num(ratio(distinct, n_valid)),
        "unique@1000": num(chem::unique_at_k(&first_valid, 1_000)),
        "unique@10000": num(chem::unique_at_k(&first_valid, 10_000)),
        "novelty": num(ratio(parts.iter().map(|p| p.novel).sum(), distinct)),
        "filters": num(ratio(sums.iter().map(|s| s.filters).sum(), n_valid)),
        "qed_mean": num(mean(|s| s.qed)),
        "sa_mean": num(mean(|s| s.sa)),
        "qed_above_0.9_distinct": num(ratio(parts.iter().map(|p| p.qed_above_0_9).sum(), distinct)),
        "intdiv1": num(int_div1),
        "intdiv2": num(int_div2),
        "snn_test": num(snn),
        "subsample": {
            "distinct": chosen.len(),
            "molecules": chosen.iter().map(|c| c.count).sum::<usize>(),
            "seed": args.seed,
            "whole_library": chosen.len() == distinct,
        },
        "train": train_name,
        "test": test_name,
        "library": {
            "dir": library.display().to_string(),
            "partitions": args.partitions,
            "rows": kept,
            "filter": args.filter.as_ref().map(|p| p.display().to_string()),
            "left_out_by_filter": distinct - kept,
        },
        "seconds": {
            "route": route_seconds,
            "partitions": partition_seconds,
            "subsample_metrics": subsample_seconds,
        },
    });
    let text = serde_json::to_string_pretty(&metrics)?;
    let metrics_path = args.out.join("metrics.json");
    fs::write(&metrics_path, &text).with_context(|| format!("{}: cannot write", metrics_path.display()))?;
    if args.json {
        println!("{text}");
    } else {
        println!(
            "{} shards, {n} molecules: {n_valid} valid ({:.4}), {distinct} distinct (unique {:.4}), novelty {:.4}, IntDiv1 {:.4} on {} distinct; {kept} library rows in {} ({})",
            args.shards.len(),
            ratio(n_valid, n),
            ratio(distinct, n_valid),
            ratio(parts.iter().map(|p| p.novel).sum(), distinct),
            int_div1,
            chosen.len(),
            library.display(),
            metrics_path.display()
        );
    }
    Ok(())
}
