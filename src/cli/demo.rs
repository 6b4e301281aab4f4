//! `smirl demo`: the main job end to end on the shipped defaults — sample the shipped prior, tune it
//! briefly on drug-likeness, sample the tuned agent, evaluate both sets, write the HTML report;
//! then sample the shipped drug-likeness prompt (`prompts/drug_like`, a full-length run) to show
//! where a longer tuning gets.
//! Each step is an ordinary smirl command, printed before it runs, so a user can rerun any of them.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Arguments of `smirl demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where everything goes (its `tune` run is replaced on every demo).
    #[arg(long, default_value = "demo")]
    out: PathBuf,
    /// The prior (the shipped one by default).
    #[arg(long, default_value = "models/prior")]
    model: PathBuf,
    /// The tuning config (a short drug_like run by default).
    #[arg(long, default_value = "configs/demo.toml")]
    config: PathBuf,
    /// Molecules sampled before and after tuning.
    #[arg(short = 'n', long, default_value_t = 1000)]
    n: usize,
    /// A shipped prompt for --model, sampled at the end (skipped when it is not there).
    #[arg(long, default_value = "prompts/drug_like")]
    shipped_prompt: PathBuf,
}

fn step(index: usize, args: &[String]) -> anyhow::Result<()> {
    println!("\n[{index}/6] smirl {}", args.join(" "));
    let argv = std::iter::once("smirl".to_string()).chain(args.iter().cloned());
    super::run(super::Cli::try_parse_from(argv)?)
}

/// Runs `smirl demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let t0 = std::time::Instant::now();
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let path = |name: &str| out.join(name).display().to_string();
    let model = args.model.display().to_string();
    let tune_dir = out.join("tune");
    // A previous demo's run would make `tune` ask for --resume; only a directory that is a
    // smirl run (it has run.json) is removed.
    if tune_dir.join(rl::run_dir::RUN_INFO_FILE).is_file() {
        std::fs::remove_dir_all(&tune_dir)
            .with_context(|| format!("{}: cannot remove", tune_dir.display()))?;
    }
    let n = args.n.to_string();
    let s = |x: &str| x.to_string();
    step(
        1,
        &[
            s("sample"),
            s("--model"),
            model.clone(),
            s("-n"),
            n.clone(),
            s("--seed"),
            s("0"),
            s("--out"),
            path("prior_samples.csv"),
        ],
    )?;
    step(
        2,
        &[
            s("tune"),
            s("--model"),
            model.clone(),
            s("--config"),
            args.config.display().to_string(),
            s("--out"),
            path("tune"),
        ],
    )?;
    step(
        3,
        &[
            s("sample"),
            s("--model"),
            model.clone(),
            s("--agent"),
            path("tune"),
            s("-n"),
            n.clone(),
            s("--seed"),
            s("1"),
            s("--out"),
            path("tuned_samples.csv"),
        ],
    )?;
    println!("\nbefore tuning (samples of the prior):");
    step(4, &[s("eval"), path("prior_samples.csv")])?;
    println!("\nafter tuning (samples of the tuned agent):");
    step(4, &[s("eval"), path("tuned_samples.csv")])?;
    step(
        5,
        &[
            s("report"),
            path("tune"),
            s("--samples"),
            path("tuned_samples.csv"),
            s("--out"),
            path("report.html"),
        ],
    )?;
    let shipped = &args.shipped_prompt;
    if shipped.join(rl::run_dir::AGENT_FILE).is_file() {
        println!(
            "\nthe shipped prompt {} (a full-length run of its config):",
            shipped.display()
        );
        step(
            6,
            &[
                s("sample"),
                s("--model"),
                model.clone(),
                s("--agent"),
                shipped.display().to_string(),
                s("-n"),
                n,
                s("--seed"),
                s("1"),
                s("--out"),
                path("shipped_prompt_samples.csv"),
            ],
        )?;
        step(6, &[s("eval"), path("shipped_prompt_samples.csv")])?;
    } else {
        println!("\n[6/6] skipped: no shipped prompt at {}", shipped.display());
    }
    println!(
        "\ndemo finished in {:.0} s; open {} in a browser (top candidates: {})",
        t0.elapsed().as_secs_f64(),
        path("report.html"),
        path("tune/candidates.csv")
    );
    Ok(())
}
