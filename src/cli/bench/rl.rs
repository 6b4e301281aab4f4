//! `smirl bench rl`: REINFORCE steps per second at a given batch, through the `rl` crate's
//! `Trainer` and `Policy` exactly as `smirl tune` runs them, against `bench/rl_peer.py` (a PyTorch
//! REINFORCE loop on a `transformers` GPT-2 holding the same prior's weights), same run, same
//! machine. A step is sampling + scoring + the teacher-forced forward, backward and Adam update.

use std::path::{Path, PathBuf};

use super::super::input::DatasetSmiles;
use anyhow::Context;
use rl::reinforce::Trainer;
use rl::{Policy, PolicyMode, TuneConfig};
use serde_json::{json, Value};

/// Which policy modes to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RlBenchMode {
    /// Deep prefix (10 keys and values per layer, through its MLP), frozen GPT (lr 5e-3).
    Prefix,
    /// One prompt vector in BOS's place, frozen GPT (lr 5e-3).
    SoftPrompt,
    /// Every GPT weight trainable (lr 3e-5).
    Full,
    /// Deep prefix, then full.
    Both,
}

/// Arguments of `smirl bench rl`.
#[derive(Debug, clap::Args)]
pub struct RlBenchArgs {
    /// The prior (a `smirl pretrain` model directory); the peer loads the same weights.
    #[arg(long, default_value = "models/prior")]
    model: PathBuf,
    /// Molecules sampled per step.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Timed steps per mode (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Policy mode(s).
    #[arg(long, value_enum, default_value_t = RlBenchMode::Both)]
    mode: RlBenchMode,
    /// Interleaved rounds (smirl, peer, smirl, peer, ...); the median ratio is reported with its
    /// range.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    #[command(flatten)]
    pub common: super::PeerArgs,
}

/// Learning rate of each mode (configs/qed.toml's for full; the prefix default of the examples).
fn lr(mode: PolicyMode) -> f64 {
    match mode {
        PolicyMode::Full => 3e-5,
        PolicyMode::Lora => 1e-3,
        PolicyMode::Prefix | PolicyMode::SoftPrompt | PolicyMode::DiscretePrompt => 5e-3,
    }
}

/// configs/qed.toml at `batch` molecules per step: QED reward (0 if invalid), γ 0.99 from the end,
/// batch-mean baseline; no replay, diversity filter or KL penalty. All molecules are decoded in
/// one batch, as the peer does.
fn tune_config(mode: PolicyMode, batch: usize, steps: usize) -> anyhow::Result<TuneConfig> {
    let mode_name = mode.name();
    let text = format!(
        "mode = \"{mode_name}\"\nsteps = {steps}\nbatch_size = {batch}\nlr = {lr}\nseed = 0\n\
         [sampling]\ntemperature = 1.0\nmax_len = 100\ndecode_batch = {batch}\n\
         [loss]\ntype = \"reinforce\"\ngamma = 0.99\nbaseline = \"mean\"\n\
         [scoring]\naggregation = \"arithmetic\"\n\
         [[scoring.components]]\ntype = \"qed\"\nweight = 1.0\n",
        lr = lr(mode)
    );
    Ok(TuneConfig::from_toml(
        &text,
        Path::new("."),
        Path::new("<bench rl>"),
    )?)
}

/// One mode: a warm-up step, then `steps` timed steps; mean seconds per phase.
fn bench_mode(args: &RlBenchArgs, mode: PolicyMode) -> anyhow::Result<Value> {
    let cfg = tune_config(mode, args.batch, args.steps + 1)?;
    let refs = DatasetSmiles;
    let policy = Policy::load(&args.model, &cfg, &model::Device::Cpu, &refs)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let trainable: usize = policy.trainable_vars().values().map(|v| v.elem_count()).sum();
    let mut trainer = Trainer::new(cfg, policy, &refs)?;
    trainer.step()?; // warm-up
    let rows = (0..args.steps)
        .map(|_| trainer.step())
        .collect::<rl::Result<Vec<_>>>()?;
    let n = rows.len() as f64;
    let mean = |f: &dyn Fn(&rl::StepLog) -> f64| rows.iter().map(f).sum::<f64>() / n;
    let total: f64 = rows.iter().map(|r| r.seconds).sum();
    Ok(json!({
        "mode": mode.name(),
        "lr": lr(mode),
        "steps": rows.len(),
        "steps_per_s": n / total,
        "seconds_per_step": total / n,
        "sample_seconds": mean(&|r| r.sample_seconds),
        "score_seconds": mean(&|r| r.score_seconds),
        "update_seconds": mean(&|r| r.update_seconds),
        "mean_reward": mean(&|r| r.mean_reward),
        "validity": mean(&|r| r.validity),
        "trainable_params": trainable,
    }))
}

/// Writes `samples` as a `smirl sample` CSV (smiles, log_likelihood, complete), for the peer to
/// check its weight mapping against.
fn write_check_csv(samples: &[model::Sample], path: &Path) -> anyhow::Result<()> {
    let mut text = String::from("smiles,log_likelihood,complete\n");
    for s in samples {
        text.push_str(&format!(
            "{},{:.6},{}\n",
            s.smiles,
            s.log_likelihood,
            u8::from(s.complete)
        ));
    }
    std::fs::write(path, text).with_context(|| format!("{}: cannot write", path.display()))
}

/// What the peer checks its weight mapping against, in `dir`: 16 samples of the prior, and for
/// the deep prefix the keys and values smirl's prefix mode starts from (the same config and seed
/// as the timed run) with 16 samples of that agent. Returns the peer's arguments for them.
fn write_peer_checks(args: &RlBenchArgs, dir: &Path) -> anyhow::Result<Vec<String>> {
    let opts = model::SampleOptions {
        n: 16,
        batch_size: 16,
        max_len: 100,
        seed: 7,
        ..Default::default()
    };
    let run = model::load_checkpoint(&args.model, &model::Device::Cpu)?;
    let prior_csv = dir.join("prior_samples.csv");
    write_check_csv(&model::sample(&run.model, &run.vocab, None, &opts)?, &prior_csv)?;
    let mut peer_args = vec![format!("--check-csv={}", prior_csv.display())];
    if matches!(args.mode, RlBenchMode::Prefix | RlBenchMode::Both) {
        let cfg = tune_config(PolicyMode::Prefix, args.batch, args.steps + 1)?;
        let policy = Policy::load(&args.model, &cfg, &model::Device::Cpu, &DatasetSmiles)?;
        let kv = dir.join("kv_prefix.safetensors");
        policy.save_agent(&kv)?;
        let agent_csv = dir.join("agent_samples.csv");
        write_check_csv(&policy.sample(&opts)?, &agent_csv)?;
        peer_args.push(format!("--prefix-init={}", kv.display()));
        peer_args.push(format!("--check-prefix-csv={}", agent_csv.display()));
    }
    Ok(peer_args)
}

/// Runs `smirl bench rl`.
pub fn run(args: RlBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.batch > 0 && args.steps > 0 && args.rounds > 0,
        "--batch, --steps and --rounds must be > 0"
    );
    let modes: &[PolicyMode] = match args.mode {
        RlBenchMode::Prefix => &[PolicyMode::Prefix],
        RlBenchMode::SoftPrompt => &[PolicyMode::SoftPrompt],
        RlBenchMode::Full => &[PolicyMode::Full],
        RlBenchMode::Both => &[PolicyMode::Prefix, PolicyMode::Full],
    };
    let dir = std::env::temp_dir().join(format!("smirl-bench-rl-{}", std::process::id()));
    let rounds = if args.common.peer {
        std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        let rounds =
            write_peer_checks(&args, &dir).and_then(|checks| run_rounds(&args, modes, Some(&checks)));
        let _ = std::fs::remove_dir_all(&dir);
        rounds?
    } else {
        run_rounds(&args, modes, None)?
    };
    let mut result = json!({
        "model": args.model.display().to_string(),
        "batch": args.batch,
        "threads": rayon::current_num_threads(),
        "cpu": super::cpu_description(),
        "rounds": rounds.len(),
        // The last round's figures per mode; every round's in `per_round`.
        "modes": rounds.last().map(|r| r.smirl.clone()).unwrap_or_default(),
    });
    if args.common.peer {
        let mut ratios = serde_json::Map::new();
        let mut ranges = serde_json::Map::new();
        for &mode in modes {
            let name = mode.name();
            let per_round: Vec<f64> = rounds
                .iter()
                .filter_map(|r| {
                    Some(
                        r.smirl[name]["steps_per_s"].as_f64()?
                            / r.peer.as_ref()?["modes"][name]["steps_per_s"].as_f64()?,
                    )
                })
                .collect();
            let (lo, hi) = per_round
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                    (lo.min(x), hi.max(x))
                });
            ratios.insert(name.to_string(), json!(super::median(per_round.clone())));
            ranges.insert(
                name.to_string(),
                json!({"min": lo, "max": hi, "per_round": per_round}),
            );
        }
        result["ratio_steps_per_s"] = Value::Object(ratios);
        result["ratio_range"] = Value::Object(ranges);
        result["peer"] = rounds.last().and_then(|r| r.peer.clone()).unwrap_or_default();
    }
    result["per_round"] = json!(rounds
        .iter()
        .map(|r| json!({"smirl": r.smirl, "peer": r.peer.as_ref().map(|p| p["modes"].clone())}))
        .collect::<Vec<_>>());
    args.common.print(&result, print_human)
}

/// One round's results: smirl's per mode, and the peer's JSON.
struct Round {
    smirl: serde_json::Map<String, Value>,
    peer: Option<Value>,
}

/// `--rounds` rounds of smirl's modes, each followed by the peer's (given its check arguments).
fn run_rounds(
    args: &RlBenchArgs,
    modes: &[PolicyMode],
    peer_checks: Option<&[String]>,
) -> anyhow::Result<Vec<Round>> {
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        let mut smirl = serde_json::Map::new();
        for &mode in modes {
            eprintln!(
                "round {round}/{}: smirl {mode:?} mode, batch {}, 1 + {} steps ...",
                args.rounds, args.batch, args.steps
            );
            let r = bench_mode(args, mode)?;
            smirl.insert(mode.name().to_string(), r);
        }
        let peer = match peer_checks {
            None => None,
            Some(checks) => {
                // The peer names its modes as smirl does.
                let peer_mode = match args.mode {
                    RlBenchMode::Prefix => "prefix",
                    RlBenchMode::SoftPrompt => "soft_prompt",
                    RlBenchMode::Full => "full",
                    RlBenchMode::Both => "both",
                };
                let mut peer_args: Vec<String> = vec![
                    format!("--model={}", args.model.display()),
                    format!("--batch={}", args.batch),
                    format!("--steps={}", args.steps),
                    format!("--mode={peer_mode}"),
                    format!("--threads={}", rayon::current_num_threads()),
                ];
                peer_args.extend(checks.iter().cloned());
                eprintln!("round {round}/{}: the peer ...", args.rounds);
                Some(super::run_python_peer(
                    args.common.torch_python(),
                    "bench/rl_peer.py",
                    &peer_args,
                )?)
            }
        };
        rounds.push(Round { smirl, peer });
    }
    Ok(rounds)
}

fn print_human(r: &Value) {
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let line = |who: &str, m: &Value| {
        println!(
            "  {who:<8} {:>6.3} steps/s = {:>6.2} s/step: sample {:.2} s, score {:.2} s, \
             update {:.2} s (mean reward {:.3}, validity {:.3})",
            f(m, "steps_per_s"),
            f(m, "seconds_per_step"),
            f(m, "sample_seconds"),
            f(m, "score_seconds"),
            f(m, "update_seconds"),
            f(m, "mean_reward"),
            f(m, "validity"),
        );
    };
    println!(
        "smirl bench rl: {} , batch {}, {} threads",
        r["model"].as_str().unwrap_or(""),
        r["batch"],
        r["threads"]
    );
    println!("CPU: {}", r["cpu"].as_str().unwrap_or(""));
    if let Some(peer) = r.get("peer") {
        println!(
            "peer: PyTorch {} ({}) + transformers {}, RDKit {} ({} threads); weight mapping check: {}",
            peer["torch"].as_str().unwrap_or("?"),
            peer["cpu_capability"].as_str().unwrap_or("?"),
            peer["transformers"].as_str().unwrap_or("?"),
            peer["rdkit_version"].as_str().unwrap_or("?"),
            peer["threads"],
            peer["mapping_check"]
        );
    }
    for (name, m) in r["modes"].as_object().into_iter().flatten() {
        println!("{name} mode (lr {}):", m["lr"]);
        line("smirl", m);
        if let Some(p) = r
            .get("peer")
            .map(|p| &p["modes"][name.as_str()])
            .filter(|p| !p.is_null())
        {
            line("PyTorch", p);
            let range = &r["ratio_range"][name];
            println!(
                "  ratio (smirl / PyTorch steps/s): {:.2}x, median of {} rounds (range {:.2}-{:.2}x)",
                r["ratio_steps_per_s"][name].as_f64().unwrap_or(f64::NAN),
                r["rounds"],
                range["min"].as_f64().unwrap_or(f64::NAN),
                range["max"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
}
