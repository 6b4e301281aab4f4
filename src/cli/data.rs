//! `smirl data`: prepare corpora — canonicalise, deduplicate, filter, split, write Parquet or CSV.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context;
use datasets::{CleanOptions, SplitBy, SPLIT_NAMES};

use super::input;

/// Corpus preparation.
#[derive(Debug, clap::Subcommand)]
pub enum DataCommand {
    /// Canonicalise (RDKit), drop invalid molecules, deduplicate, filter by length / characters /
    /// MOSES filters, optionally split train/valid/test with a seed; write Parquet or CSV.
    Clean(CleanArgs),
    /// Write a corpus's RDKit canonical SMILES as a compact hashed set (36-bit hashes, about
    /// 2.3 bytes a molecule): what novelty reads. `datasets/embed_train_hashes.sh` makes the
    /// embedded one from MOSES train.
    HashSet(HashSetArgs),
}

/// Arguments of `smirl data hash-set`.
#[derive(Debug, clap::Args)]
pub struct HashSetArgs {
    /// Input corpus: CSV/TSV (optionally .gz), .smi, or Parquet.
    input: PathBuf,
    /// Output file (gzip-compressed hashed set).
    #[arg(long)]
    out: PathBuf,
    /// Name of the SMILES column of a CSV/TSV/Parquet input.
    #[arg(long)]
    smiles_column: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SplitMode {
    /// Molecules shuffled independently.
    Random,
    /// Whole Bemis–Murcko scaffold groups (no scaffold in two splits).
    Scaffold,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Parquet,
    Csv,
}

/// Arguments of `smirl data clean`.
#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// Input corpus: CSV/TSV (optionally .gz), .smi, or Parquet.
    input: PathBuf,
    /// Output directory (created): clean.<ext>, or train/valid/test.<ext> with --split; and
    /// clean_report.json with every count.
    #[arg(long)]
    out: PathBuf,
    /// Name of the SMILES column of a CSV/TSV/Parquet input.
    #[arg(long)]
    smiles_column: Option<String>,
    /// Shortest canonical SMILES kept (characters).
    #[arg(long, default_value_t = 1)]
    min_len: usize,
    /// Longest canonical SMILES kept (characters).
    #[arg(long, default_value_t = 100)]
    max_len: usize,
    /// Keep only canonical SMILES made of these characters.
    #[arg(long, conflicts_with = "vocab")]
    allowed_chars: Option<String>,
    /// Keep only canonical SMILES made of the characters of this model's vocabulary (a model
    /// directory from `smirl pretrain`, or its vocab.json).
    #[arg(long)]
    vocab: Option<PathBuf>,
    /// Keep only molecules that pass the MOSES filters.
    #[arg(long)]
    moses_filters: bool,
    /// Train,valid,test fractions, e.g. 0.8,0.1,0.1 (no split when absent).
    #[arg(long, value_delimiter = ',')]
    split: Option<Vec<f64>>,
    /// How molecules are assigned to splits.
    #[arg(long, value_enum, default_value_t = SplitMode::Random)]
    split_by: SplitMode,
    /// Seed of the split: the same input, fractions and seed give the same splits.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Parquet)]
    format: OutputFormat,
}

fn vocab_chars(path: &std::path::Path) -> anyhow::Result<BTreeSet<char>> {
    let file = if path.is_dir() {
        path.join("vocab.json")
    } else {
        path.to_path_buf()
    };
    let vocab =
        model::Vocab::load(&file).with_context(|| format!("{}: cannot load vocabulary", file.display()))?;
    // Ids up to EOS are the special tokens (PAD, BOS, EOS), not SMILES text.
    Ok((model::EOS + 1..vocab.len() as u32)
        .filter_map(|id| vocab.token(id))
        .flat_map(|t| t.chars())
        .collect())
}

/// Runs a `smirl data` command.
pub fn run(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Clean(args) => clean(args),
        DataCommand::HashSet(args) => hash_set(args),
    }
}

/// `smirl data hash-set`: canonicalise every molecule, hash the distinct canonical SMILES, write.
fn hash_set(args: HashSetArgs) -> anyhow::Result<()> {
    let records = input::read(&args.input, args.smiles_column.as_deref())?;
    let pb = input::progress(records.len(), "canonicalising");
    let mut canonical = Vec::with_capacity(records.len());
    let mut invalid = 0usize;
    for chunk in records.chunks(20_000) {
        let smiles: Vec<&str> = chunk.iter().map(|r| r.smiles.as_str()).collect();
        for c in chem::canonicalize_batch(&smiles) {
            match c {
                Some(c) => canonical.push(c),
                None => invalid += 1,
            }
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    let set = datasets::HashedSmiles::from_smiles(canonical.iter().map(String::as_str));
    set.write(&args.out)?;
    println!(
        "{}: {} molecules, {invalid} invalid (left out), {} distinct hashes -> {}",
        args.input.display(),
        records.len(),
        set.len(),
        args.out.display()
    );
    Ok(())
}

/// `smirl data clean`.
fn clean(args: CleanArgs) -> anyhow::Result<()> {
    if args.min_len > args.max_len {
        anyhow::bail!(
            "--min-len {} is above --max-len {}: no molecule could pass",
            args.min_len,
            args.max_len
        );
    }
    let records = input::read(&args.input, args.smiles_column.as_deref())?;
    let allowed_chars = match (&args.allowed_chars, &args.vocab) {
        (Some(chars), _) => Some(chars.chars().collect()),
        (None, Some(vocab)) => Some(vocab_chars(vocab)?),
        (None, None) => None,
    };
    let options = CleanOptions {
        min_len: args.min_len,
        max_len: args.max_len,
        allowed_chars,
        moses_filters: args.moses_filters,
    };
    let bar = input::progress(records.len(), "cleaning");
    let (rows, report) = datasets::clean(&records, &options, &|n| bar.inc(n as u64));
    bar.finish_and_clear();

    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;
    let ext = match args.format {
        OutputFormat::Parquet => "parquet",
        OutputFormat::Csv => "csv",
    };
    let mut written = Vec::new();
    match &args.split {
        None => {
            let path = args.out.join(format!("clean.{ext}"));
            datasets::write_rows(&path, &rows)?;
            written.push((path, rows.len()));
        }
        Some(fractions) => {
            anyhow::ensure!(
                fractions.len() == 3,
                "--split takes three fractions: train,valid,test"
            );
            let by = match args.split_by {
                SplitMode::Random => SplitBy::Random,
                SplitMode::Scaffold => SplitBy::Scaffold,
            };
            let splits = datasets::split(rows, [fractions[0], fractions[1], fractions[2]], by, args.seed)?;
            for (name, rows) in SPLIT_NAMES.iter().zip(splits.iter()) {
                let path = args.out.join(format!("{name}.{ext}"));
                datasets::write_rows(&path, rows)?;
                written.push((path, rows.len()));
            }
        }
    }

    let summary = serde_json::json!({
        "input": args.input.display().to_string(),
        "counts": report,
        "options": {
            "min_len": args.min_len, "max_len": args.max_len,
            "allowed_chars": options.allowed_chars.as_ref().map(|c| c.iter().collect::<String>()),
            "moses_filters": args.moses_filters, "split": args.split,
            "split_by": format!("{:?}", args.split_by).to_lowercase(), "seed": args.seed,
        },
        "outputs": written.iter().map(|(p, n)| serde_json::json!({"path": p.display().to_string(), "molecules": n})).collect::<Vec<_>>(),
    });
    let report_path = args.out.join("clean_report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(&summary)? + "\n")
        .with_context(|| format!("{}: cannot write", report_path.display()))?;

    let pct = |n: usize| 100.0 * n as f64 / report.read.max(1) as f64;
    println!("read               {:>9}", report.read);
    for (what, n) in [
        ("invalid", report.invalid),
        ("duplicates", report.duplicates),
        ("too short", report.too_short),
        ("too long", report.too_long),
        ("other characters", report.disallowed_chars),
        ("MOSES filters", report.failed_filters),
    ] {
        println!("dropped: {what:<17}{n:>9} ({:.2}%)", pct(n));
    }
    if !report.disallowed_examples.is_empty() {
        let chars: Vec<String> = report
            .disallowed_examples
            .iter()
            .map(|(c, n)| format!("{c:?}×{n}"))
            .collect();
        println!("  characters dropped for: {}", chars.join(" "));
    }
    println!("kept               {:>9} ({:.2}%)", report.kept, pct(report.kept));
    for (path, n) in &written {
        println!("wrote {} ({n} molecules)", path.display());
    }
    println!("counts and options: {}", report_path.display());
    Ok(())
}
