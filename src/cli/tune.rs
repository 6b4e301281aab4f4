//! `smirl tune`: REINFORCE tuning of a pretrained model on chemistry rewards (the `rl` crate).

use std::path::PathBuf;

use anyhow::Context;

/// Arguments of `smirl tune`.
#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    /// Run directory of the pretrained prior (from `smirl pretrain`).
    #[arg(long)]
    model: PathBuf,
    /// Tuning config (TOML; see configs/qed.toml). Relative paths in it resolve against its folder.
    #[arg(long)]
    config: PathBuf,
    /// Run directory: config.toml, log.csv, candidates.csv and .sdf, checkpoint/.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    device: super::device::DeviceArg,
}

/// Runs `smirl tune`.
pub fn run(args: TuneArgs) -> anyhow::Result<()> {
    let cfg = rl::TuneConfig::from_file(&args.config)
        .with_context(|| format!("reading config {}", args.config.display()))?;
    let opts = rl::TuneOptions {
        model_dir: args.model.clone(),
        out_dir: args.out.clone(),
        resume: args.resume,
        interrupt_after: None,
        device: args.device.open()?,
        references: super::input::DatasetSmiles::handle(),
    };
    let pb = indicatif::ProgressBar::new(cfg.steps as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} ETA {eta} {msg}",
        )?
        .progress_chars("=> "),
    );
    let report = rl::run_tune(&cfg, &opts, &mut |row: &rl::StepLog| {
        pb.set_position(row.step as u64);
        let calls = match cfg.max_oracle_calls {
            Some(budget) => format!(
                " calls {}/{budget} top-10 {:.3}",
                row.oracle.oracle_calls, row.oracle.top10
            ),
            None => String::new(),
        };
        pb.set_message(format!(
            "reward {:.3} valid {:.2} unique {:.2}{calls}",
            row.mean_reward, row.validity, row.uniqueness
        ));
    })
    .with_context(|| format!("tuning {} into {}", args.model.display(), args.out.display()))?;
    pb.finish();
    let candidates = args.out.join(rl::run_dir::CANDIDATES_FILE);
    let sdf = args.out.join(rl::run_dir::CANDIDATES_SDF_FILE);
    if report.candidates == 0 {
        // No valid molecule yet: candidates.csv is a header alone, and so is the SD file.
        std::fs::write(&sdf, "").with_context(|| format!("writing {}", sdf.display()))?;
    } else if candidates.is_file() {
        let table = datasets::read_smiles_table(&candidates, None)?;
        super::export::write_sdf(&table, &candidates, &sdf, chem::Coordinates::Flat)
            .with_context(|| format!("writing {}", sdf.display()))?;
    }
    let last = report.mean_rewards.last().copied().unwrap_or(f64::NAN);
    let (trainable, prior) = report.trainable;
    println!(
        "{} mode: {trainable} trainable parameters ({:.2} % of the prior's {prior})",
        cfg.mode.name(),
        100.0 * trainable as f64 / prior.max(1) as f64
    );
    if report.step == report.start_step {
        // A resumed run that had already reached the config's `steps`: nothing new to report.
        println!(
            "nothing to run: {} already holds {} steps (raise `steps` in the config to go on); \
             {} distinct valid molecules in {}/candidates.csv (.sdf)",
            args.out.display(),
            report.step,
            report.candidates,
            args.out.display()
        );
        return Ok(());
    }
    println!(
        "steps {}..{} ({:.2} steps/s), last mean reward {:.3}, {} distinct valid molecules; \
         see {}/log.csv and {}/candidates.csv (.sdf)",
        report.start_step,
        report.step,
        report.steps_per_s,
        last,
        report.candidates,
        args.out.display(),
        args.out.display()
    );
    Ok(())
}
