//! Command-line interface: one subcommand per run mode.

mod bench;
mod cache;
mod data;
mod demo;
mod device;
mod eval;
mod export;
mod input;
mod merge;
mod pretrain;
mod reference;
mod report;
mod sample;
mod score;
mod table;
mod tune;
mod value_head;

use clap::{Parser, Subcommand};

/// smirl — SMILES GPT + REINFORCE for drug-like molecules, chemistry on RDKit.
#[derive(Debug, Parser)]
#[command(name = "smirl", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job end to end on the shipped prior: sample, tune, sample, evaluate, report.
    Demo(demo::DemoArgs),
    /// Pretrain the SMILES GPT on a corpus (resumable, checkpointed).
    Pretrain(pretrain::PretrainArgs),
    /// Sample molecules from a trained model, with their log-likelihoods.
    Sample(sample::SampleArgs),
    /// Tune a model with REINFORCE on chemistry rewards (resumable, checkpointed).
    Tune(tune::TuneArgs),
    /// Fit a prefix value head on a prior's own molecules, for `smirl sample --steer --value-head`.
    ValueHead(value_head::ValueHeadArgs),
    /// Score molecules: validity, canonical SMILES, QED, SA, scaffold, MOSES filters, set metrics.
    Score(score::ScoreArgs),
    /// Merge scored shards into one deduplicated library with the set metrics of their union.
    Merge(merge::MergeArgs),
    /// The MOSES metric table of a sample set against train/test sets, next to published baselines.
    Eval(eval::EvalArgs),
    /// Write molecules as an SD file (2D or ETKDG/MMFF 3D coordinates, every score column as a tag).
    Export(export::ExportArgs),
    /// Write a self-contained HTML report for a samples file or a run directory.
    Report(report::ReportArgs),
    /// Prepare corpora: clean, deduplicate, filter, split; Parquet or CSV out.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Throughput benchmarks against the Python peers.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// For the long training commands: the first Ctrl-C asks the loop to checkpoint after the current
/// step and stop (exit status 130); a second quits at once.
fn checkpoint_on_ctrl_c() {
    let installed = ctrlc::set_handler(|| {
        if model::stop_requested() {
            std::process::exit(130);
        }
        model::request_stop();
        eprintln!("\nstopping after this step to save a checkpoint (Ctrl-C again quits without one)");
    });
    if let Err(e) = installed {
        eprintln!("note: Ctrl-C will not save a checkpoint ({e})");
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    check_simd_request()?;
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Pretrain(args) => {
            checkpoint_on_ctrl_c();
            pretrain::run(args)
        }
        Command::Sample(args) => sample::run(args),
        Command::Tune(args) => {
            checkpoint_on_ctrl_c();
            tune::run(args)
        }
        Command::Report(args) => report::run(args),
        Command::ValueHead(args) => value_head::run(args),
        Command::Score(args) => score::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Export(args) => export::run(args),
        Command::Data(cmd) => data::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
    }
}

/// Rejects a `SMIRL_SIMD` the CPU cannot honour before any work starts, and says when it cannot
/// cap the `gemm` crate's matrix products (which pick their own path).
fn check_simd_request() -> anyhow::Result<()> {
    let Some(want) = fastmath::simd::requested().map_err(anyhow::Error::msg)? else {
        return Ok(());
    };
    let gemm = model::gemm_simd_level();
    if gemm > want {
        eprintln!(
            "note: {}={want} caps smirl's own kernels; the gemm crate's matrix products still run {gemm}{}",
            fastmath::simd::ENV,
            if gemm == fastmath::simd::SimdLevel::Avx512 {
                " (a build with --no-default-features leaves out its AVX-512 kernels)"
            } else {
                ""
            }
        );
    }
    Ok(())
}
