//! `smirl value-head`: fits the value head that reward-guided decoding can use instead of
//! rollouts (CD-FUDGE), on the prior's own molecules scored by a tune config's reward.

use std::path::PathBuf;

use anyhow::Context;

/// Arguments of `smirl value-head`.
#[derive(Debug, clap::Args)]
pub struct ValueHeadArgs {
    /// Run directory of the prior the head reads (from `smirl pretrain`).
    #[arg(long)]
    model: PathBuf,
    /// Tune config whose `[scoring]` is the reward to predict.
    #[arg(long)]
    reward: PathBuf,
    /// Molecules the prior samples to learn from (a tenth is held out to measure the fit).
    #[arg(short = 'n', long, default_value_t = 10_000)]
    n: usize,
    /// Units in the hidden layer of the head on the backbone (a trainable copy of the prior).
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Passes over the sampled molecules.
    #[arg(long, default_value_t = 4)]
    epochs: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Sampling temperature of the prior (steer at the same one).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Seed of the sample, the initial weights and the shuffles.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output safetensors file.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    device: super::device::DeviceArg,
}

/// Runs `smirl value-head`.
pub fn run(args: ValueHeadArgs) -> anyhow::Result<()> {
    let scorer = super::sample::reward_of_config(&args.reward)?;
    let device = args.device.open()?;
    let run = model::load_checkpoint(&args.model, &device)?;
    let opts = rl::value_head::ValueTraining {
        molecules: args.n,
        hidden: args.hidden,
        epochs: args.epochs,
        lr: args.lr,
        batch: 64,
        sampling: model::SampleOptions {
            temperature: args.temperature,
            max_len: run.config.block_size,
            ..Default::default()
        },
        seed: args.seed,
    };
    let t0 = std::time::Instant::now();
    let bar = super::input::progress(args.epochs, "fitting the value head");
    let (head, report) =
        rl::value_head::ValueHead::train(&run.model, &run.vocab, &scorer, &opts, &mut |epoch, mse| {
            bar.set_position(epoch as u64);
            bar.set_message(format!("held-out MSE {mse:.4}"));
        })?;
    bar.finish_and_clear();
    head.save(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let epochs: Vec<String> = report.epoch_mse.iter().map(|m| format!("{m:.5}")).collect();
    println!(
        "value head written to {}: {} molecules (mean reward {:.4}), {} beginnings trained on, {} held out; \
         held-out MSE {:.5} against {:.5} for the mean reward (explains {:.1} % of the variance), {:.5} on whole molecules; \
         per epoch {}; {:.1} s",
        args.out.display(),
        args.n,
        report.mean_reward,
        report.train_pairs,
        report.held_out_pairs,
        report.held_out_mse,
        report.constant_mse,
        100.0 * report.explained(),
        report.whole_mse,
        epochs.join(", "),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
