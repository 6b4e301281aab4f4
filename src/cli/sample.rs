//! `smirl sample`: molecules from a trained model, with their log-likelihoods.

use std::path::PathBuf;

use anyhow::Context;
use model::SampleOptions;

/// Arguments of `smirl sample`.
#[derive(Debug, clap::Args)]
pub struct SampleArgs {
    /// Run directory of a trained model (from `smirl pretrain`).
    #[arg(long)]
    model: PathBuf,
    /// Sample from the tuned agent of this `smirl tune` run directory (tuned from --model).
    #[arg(long)]
    agent: Option<PathBuf>,
    /// Number of molecules.
    #[arg(short = 'n', long, default_value_t = 1000)]
    n: usize,
    /// Softmax temperature (0 = greedy).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Keep the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Most tokens per molecule.
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    /// Seed: the same seed, batch size and model give the same molecules.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Molecules decoded together.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Continue this SMILES beginning (fragment-constrained generation): every molecule starts
    /// with it.
    #[arg(long)]
    prompt: Option<String>,
    /// Output CSV: smiles,log_likelihood,complete.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    device: super::device::DeviceArg,
}

/// Runs `smirl sample`.
pub fn run(args: SampleArgs) -> anyhow::Result<()> {
    let opts = SampleOptions {
        n: args.n,
        batch_size: args.batch,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        max_len: args.max_len,
        seed: args.seed,
    };
    let device = args.device.open()?;
    let encode = |vocab: &model::Vocab| -> anyhow::Result<Vec<Vec<u32>>> {
        match &args.prompt {
            None => Ok(Vec::new()),
            Some(p) if p.is_empty() => anyhow::bail!("--prompt is empty"),
            Some(p) => Ok(vec![vocab
                .encode(p)
                .with_context(|| format!("--prompt {p:?} does not fit the model's vocabulary"))?]),
        }
    };
    let samples = match &args.agent {
        None => {
            let run = model::load_checkpoint(&args.model, &device)?;
            let starts = encode(&run.vocab)?;
            model::sample_continuing(&run.model, &run.vocab, None, &opts, &starts)?
        }
        Some(run_dir) => {
            if args.top_k != 0 || args.top_p < 1.0 {
                eprintln!("note: --top-k/--top-p are not applied to a tuned agent (it samples at --temperature only)");
            }
            let policy = rl::load_tuned_policy(run_dir, &args.model, &device)
                .with_context(|| format!("loading the tuned agent of {}", run_dir.display()))?;
            let starts = encode(policy.vocab())?;
            policy.sample_continuing(&opts, &starts)?
        }
    };
    let file =
        std::fs::File::create(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(file));
    writer.write_record(["smiles", "log_likelihood", "complete"])?;
    for s in &samples {
        writer.write_record([
            s.smiles.as_str(),
            &format!("{:.6}", s.log_likelihood),
            if s.complete { "1" } else { "0" },
        ])?;
    }
    writer
        .flush()
        .with_context(|| format!("{}: write failed", args.out.display()))?;
    let complete = samples.iter().filter(|s| s.complete).count();
    println!(
        "{} molecules ({} ended with EOS) written to {}",
        samples.len(),
        complete,
        args.out.display()
    );
    Ok(())
}
