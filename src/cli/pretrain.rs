//! `smirl pretrain`: train the SMILES GPT on a corpus, resumable.

use std::path::PathBuf;

use anyhow::Context;
use model::{PretrainOptions, TokenMode};

use super::input;

/// Arguments of `smirl pretrain`.
#[derive(Debug, clap::Args)]
pub struct PretrainArgs {
    /// SMILES corpus (CSV/TSV/.smi, optionally .gz), e.g. data/moses/train.csv.gz; default: the
    /// embedded 100,000-molecule MOSES train subset.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Name of the SMILES column of a CSV/TSV.
    #[arg(long)]
    smiles_column: Option<String>,
    /// Run directory: checkpoints, log.csv, vocab.json, config.json.
    #[arg(long)]
    out: PathBuf,
    /// TOML file with pretraining options (model shape under [model]); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// Total optimizer steps.
    #[arg(long)]
    max_steps: Option<usize>,
    /// Train for this many epochs instead of --max-steps.
    #[arg(long)]
    epochs: Option<f64>,
    /// Molecules per batch.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Checkpoint every this many steps.
    #[arg(long)]
    checkpoint_interval: Option<usize>,
    /// Seed of the split, data order and initialisation.
    #[arg(long)]
    seed: Option<u64>,
    /// Atom-level tokens (Cl, Br, bracket atoms as one token) instead of characters.
    #[arg(long)]
    atom_tokens: bool,
    /// Train on randomized SMILES: each molecule written anew by RDKit (atoms in a seeded random
    /// order) every epoch, instead of as the corpus gives it.
    #[arg(long)]
    randomized_smiles: bool,
    #[command(flatten)]
    device: super::device::DeviceArg,
}

/// Runs `smirl pretrain`.
pub fn run(args: PretrainArgs) -> anyhow::Result<()> {
    let mut opts = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
            toml::from_str::<PretrainOptions>(&text)
                .with_context(|| format!("{}: invalid config", path.display()))?
        }
        None => PretrainOptions::default(),
    };
    opts.out_dir = args.out.clone();
    opts.resume = args.resume;
    if let Some(v) = args.max_steps {
        // An explicit step count wins over an `epochs` from the config file.
        opts.max_steps = v;
        opts.epochs = None;
    }
    if args.epochs.is_some() {
        opts.epochs = args.epochs;
    }
    if let Some(v) = args.batch_size {
        opts.batch_size = v;
    }
    if let Some(v) = args.checkpoint_interval {
        opts.checkpoint_interval = v;
    }
    if let Some(v) = args.seed {
        opts.seed = v;
    }
    if args.atom_tokens {
        opts.tokenizer = TokenMode::Atom;
    }
    opts.randomized_smiles |= args.randomized_smiles;
    let (smiles, source): (Vec<String>, String) = match &args.data {
        Some(path) => {
            let records = input::read(path, args.smiles_column.as_deref())?;
            (
                records.into_iter().map(|r| r.smiles).collect(),
                path.display().to_string(),
            )
        }
        None => (
            datasets::embedded_corpus(),
            datasets::EMBEDDED_CORPUS_NAME.to_string(),
        ),
    };
    eprintln!("pretraining on {} molecules from {source}", smiles.len());
    warn_if_invalid(&smiles, &source);
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} ETA {eta} {msg}",
        )?
        .progress_chars("=> "),
    );
    let rewrite: model::SmilesRewriter = &chem::randomize_smiles;
    let device = args.device.open()?;
    let report = model::pretrain_with_progress(&opts, &smiles, &device, Some(rewrite), &mut |p| {
        bar.set_length(p.total_steps as u64);
        bar.set_position(p.step as u64);
        if let Some(row) = &p.logged {
            let val = p.val_loss.map_or("-".into(), |v| format!("{v:.4}"));
            bar.set_message(format!(
                "loss {:.4} val {val} {:.0} tok/s",
                row.train_loss, row.tokens_per_s
            ));
        }
    });
    bar.abandon(); // leaves the last state on screen, finished or not
    let report = report?;
    let (unknown, too_long, empty) = report.skipped;
    println!(
        "step {}/{} | {} parameters | train {} / val {} molecules | skipped: {unknown} unknown token, {too_long} too long, {empty} empty",
        report.step, report.total_steps, report.n_params, report.n_train, report.n_val
    );
    if opts.randomized_smiles {
        let (rewritten, as_given) = report.rewrites;
        println!(
            "randomized SMILES: {rewritten} molecules trained on as rewritten, {as_given} as given (RDKit could not rewrite them, or the vocabulary or block could not hold the rewrite)"
        );
    }
    if let Some(val) = report.val_loss {
        println!("validation loss {val:.4} | {:.0} tokens/s", report.tokens_per_s);
    }
    println!("checkpoint: {}", report.out_dir.display());
    Ok(())
}

/// The model learns whatever strings it is given; a corpus of invalid SMILES (a wrong column, a
/// broken export) is said so before hours of training. Checks up to 2,000 molecules spread
/// over the corpus.
fn warn_if_invalid(smiles: &[String], source: &str) {
    const CHECKED: usize = 2000;
    let step = smiles.len().div_ceil(CHECKED).max(1);
    let picked: Vec<&str> = smiles.iter().step_by(step).map(String::as_str).collect();
    if picked.is_empty() {
        return;
    }
    let invalid = chem::canonicalize_batch(&picked)
        .iter()
        .filter(|c| c.is_none())
        .count();
    if invalid == picked.len() {
        eprintln!(
            "warning: none of {} molecules checked in {source} is a valid SMILES (RDKit); the model \
             will learn to write invalid strings",
            picked.len()
        );
    } else if invalid * 10 > picked.len() {
        eprintln!(
            "warning: {invalid} of {} molecules checked in {source} are not valid SMILES (RDKit)",
            picked.len()
        );
    }
}
