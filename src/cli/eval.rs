//! `smirl eval`: the MOSES metric table of a sample set, next to the published baselines.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::{input, table};

/// Arguments of `smirl eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Generated samples (CSV/TSV/.smi, optionally .gz), in sampling order.
    samples: PathBuf,
    /// Training set (for novelty), e.g. data/moses/train.csv.gz [default: the embedded 100,000
    /// MOSES train molecules, which makes novelty an upper bound of novelty against all of train].
    #[arg(long)]
    train: Option<PathBuf>,
    /// Test set (for SNN, Frag, Scaf), e.g. data/moses/test.csv.gz [default: the embedded first
    /// 10,000 MOSES test molecules].
    #[arg(long)]
    test: Option<PathBuf>,
    /// Name of the SMILES column of the samples file.
    #[arg(long)]
    smiles_column: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// Runs `smirl eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    // Every file is read before any scoring, so that a bad path fails at once.
    let records = input::read(&args.samples, args.smiles_column.as_deref())?;
    let (train_records, train_name) = input::read_or_embedded(args.train.as_deref(), input::Embedded::Train)
        .context("reading the training set")?;
    let (test_records, test_name) = input::read_or_embedded(args.test.as_deref(), input::Embedded::Test)
        .context("reading the test set")?;
    let smiles: Vec<&str> = records.iter().map(|r| r.smiles.as_str()).collect();
    let scored = input::score_all(&smiles, "samples");
    let train = input::canonical_set_of(&train_records, &train_name);
    if args.train.is_none() || args.test.is_none() {
        eprintln!("reference sets: train = {train_name}; test = {test_name}");
    }
    let test_smiles: Vec<&str> = test_records.iter().map(|r| r.smiles.as_str()).collect();
    let bar = input::progress(test_smiles.len(), "test set");
    let mut test = chem::ReferenceSet::default();
    for chunk in test_smiles.chunks(8192) {
        test.add_smiles(chunk);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let metrics = chem::set_metrics(&scored, Some(&train), Some(&test));
    let means = table::property_means(&scored);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let mut value = table::metrics_json(&metrics, means);
        value["published"] = serde_json::to_value(
            chem::PUBLISHED_BASELINES
                .iter()
                .map(|b| {
                    serde_json::json!({"model": b.model, "valid": b.valid, "unique@10000": b.unique_at_10k,
                        "novelty": b.novelty, "intdiv1": b.int_div1, "intdiv2": b.int_div2,
                        "filters": b.filters, "fcd_test": b.fcd_test, "snn_test": b.snn_test})
                })
                .collect::<Vec<_>>(),
        )?;
        writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        writeln!(stdout, "{}", table::metrics_table(&metrics, means))?;
        let label = args
            .samples
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("samples");
        writeln!(stdout, "{}", table::moses_table(label, &metrics))?;
    }
    Ok(())
}
