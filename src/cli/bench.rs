//! `smirl bench`: throughput against the Python peers, run on the same machine in the same run.
//! Absolute times are noisy here; the ratio is the figure that counts.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use rayon::prelude::*;
use serde_json::{json, Value};

use super::input;

/// Benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Scoring throughput (parse, canonical SMILES, QED, SA, Morgan fingerprint) and IntDiv time.
    Score(ScoreBenchArgs),
    /// GPT training tokens/s and sampling molecules/s against a same-size PyTorch GPT-2.
    Model(ModelBenchArgs),
    /// REINFORCE steps/s (sample, score, update) against a PyTorch REINFORCE loop on the prior.
    Rl(super::bench_rl::RlBenchArgs),
}

/// Arguments of `smirl bench model`.
#[derive(Debug, clap::Args)]
pub struct ModelBenchArgs {
    /// SMILES whose batches both sides train on (in file order, cycled).
    #[arg(long, default_value = "tests/data/moses_test_sample.smi")]
    input: PathBuf,
    /// Transformer layers.
    #[arg(long, default_value_t = 4)]
    n_layer: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    n_head: usize,
    /// Embedding width.
    #[arg(long, default_value_t = 256)]
    n_embd: usize,
    /// Molecules per training batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Timed training steps (after one warm-up step).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Molecules sampled together.
    #[arg(long, default_value_t = 256)]
    sample_batch: usize,
    /// New tokens per sampled molecule (EOS does not stop early, on both sides).
    #[arg(long, default_value_t = 60)]
    new_tokens: usize,
    /// Timed sampling batches on each side; the median rate is reported, as one batch's time
    /// varies by tens of percent on a shared machine.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    sample_repeats: u32,
    /// Train and decode through candle (autograd, `forward_cached`) instead of the hand-written
    /// CPU passes, for comparison.
    #[arg(long)]
    candle: bool,
    /// Also run the PyTorch peer (bench/model_peer.py) and print ratios.
    #[arg(long)]
    peer: bool,
    /// Python interpreter with torch and transformers for the peer.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: super::device::DeviceArg,
}

/// Arguments of `smirl bench score`.
#[derive(Debug, clap::Args)]
pub struct ScoreBenchArgs {
    /// Molecules to score (the peer scores the same file).
    #[arg(long, default_value = "bench/data/moses_test_10k.smi")]
    input: PathBuf,
    /// Molecules for the large IntDiv timing.
    #[arg(long, default_value = "bench/data/moses_test_30k.smi")]
    intdiv_input: PathBuf,
    /// Also run the RDKit-Python peer (bench/score_peer.py) and print ratios.
    #[arg(long)]
    peer: bool,
    /// Python interpreter with RDKit for the peer.
    #[arg(long, default_value = "/usr/bin/python3")]
    python: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a benchmark.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Score(args) => bench_score(args),
        BenchCommand::Model(args) => bench_model(args),
        BenchCommand::Rl(args) => super::bench_rl::run(args),
    }
}

/// The work the peer does per molecule, no more: parse, canonical SMILES, QED, SA, fingerprint.
fn peer_equivalent(smiles: &str) -> Option<(String, f64, f64, chem::Fingerprint)> {
    let mol = chem::Molecule::parse(smiles)?;
    Some((
        mol.canonical_smiles(),
        mol.qed().ok()?,
        mol.sa_score().ok()?,
        mol.morgan_fingerprint(),
    ))
}

fn bench_score(args: ScoreBenchArgs) -> anyhow::Result<()> {
    let records = input::read(&args.input, None)?;
    let smiles: Vec<&str> = records.iter().map(|r| r.smiles.as_str()).collect();
    // Warm-up outside the clock: the SA fragment table and the SMARTS sets load once per process.
    let _ = chem::score_smiles("c1ccccc1O");

    let t = Instant::now();
    let out: Vec<_> = smiles.par_iter().map(|s| peer_equivalent(s)).collect();
    let score_s = t.elapsed().as_secs_f64();
    let n_valid = out.iter().flatten().count();
    let fps: Vec<chem::Fingerprint> = out.iter().flatten().map(|o| o.3).collect();

    let t = Instant::now();
    let full = chem::score_batch(&smiles);
    let full_s = t.elapsed().as_secs_f64();
    assert_eq!(full.len(), smiles.len());

    let t = Instant::now();
    let (intdiv1, _) = chem::internal_diversity(&fps);
    let intdiv_s = t.elapsed().as_secs_f64();

    let big = input::read(&args.intdiv_input, None)?;
    let big_smiles: Vec<&str> = big.iter().map(|r| r.smiles.as_str()).collect();
    let big_fps: Vec<chem::Fingerprint> = big_smiles
        .par_iter()
        .filter_map(|s| chem::Molecule::parse(s))
        .map(|m| m.morgan_fingerprint())
        .collect();
    let t = Instant::now();
    let (big_intdiv1, _) = chem::internal_diversity(&big_fps);
    let big_intdiv_s = t.elapsed().as_secs_f64();

    let mut result = json!({
        "input": args.input.display().to_string(),
        "threads": rayon::current_num_threads(),
        "n": smiles.len(),
        "valid": n_valid,
        "score_seconds": score_s,
        "mols_per_s": smiles.len() as f64 / score_s,
        "full_score_seconds": full_s,
        "full_mols_per_s": smiles.len() as f64 / full_s,
        "intdiv_n": fps.len(),
        "intdiv_seconds": intdiv_s,
        "intdiv1": intdiv1,
        "intdiv_large_n": big_fps.len(),
        "intdiv_large_seconds": big_intdiv_s,
        "intdiv_large_intdiv1": big_intdiv1,
    });
    if args.peer {
        let peer_args = [args.input.display().to_string(), "--json".to_string()];
        let peer = run_python_peer(&args.python, "bench/score_peer.py", &peer_args)?;
        let ratio = |ours: &str, theirs: &str, higher_is_better: bool| -> Value {
            match (result[ours].as_f64(), peer[theirs].as_f64()) {
                (Some(a), Some(b)) if a > 0.0 && b > 0.0 => {
                    json!(if higher_is_better { a / b } else { b / a })
                }
                _ => Value::Null,
            }
        };
        let scoring = ratio("mols_per_s", "mols_per_s", true);
        let intdiv = ratio("intdiv_seconds", "intdiv_seconds", false);
        result["ratio_scoring"] = scoring;
        result["ratio_intdiv"] = intdiv;
        result["peer"] = peer;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print_human(&result);
    }
    Ok(())
}

/// Runs a Python peer script and returns the JSON object it prints last.
pub(super) fn run_python_peer(python: &str, script: &str, args: &[String]) -> anyhow::Result<Value> {
    let script = PathBuf::from(script);
    anyhow::ensure!(
        script.is_file(),
        "{}: peer script not found (run from the repository root)",
        script.display()
    );
    eprintln!("running the peer ({python} {}) ...", script.display());
    let output = Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {python}"))?;
    anyhow::ensure!(
        output.status.success(),
        "the peer {} failed ({}): {}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("the JSON output of {}", script.display()))
}

fn print_human(r: &Value) {
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "smirl bench score on {} ({} threads)",
        r["input"].as_str().unwrap_or(""),
        r["threads"]
    );
    println!(
        "  scoring (parse, canonical, QED, SA, fingerprint): {:.0} mol/s ({:.2} s for {})",
        f("mols_per_s"),
        f("score_seconds"),
        r["n"]
    );
    println!(
        "  full `smirl score` row (+ scaffold, filters, descriptors): {:.0} mol/s",
        f("full_mols_per_s")
    );
    println!(
        "  IntDiv over {} molecules: {:.3} s (IntDiv1 {:.4})",
        r["intdiv_n"],
        f("intdiv_seconds"),
        f("intdiv1")
    );
    println!(
        "  IntDiv over {} molecules: {:.3} s (IntDiv1 {:.4})",
        r["intdiv_large_n"],
        f("intdiv_large_seconds"),
        f("intdiv_large_intdiv1")
    );
    if let Some(peer) = r.get("peer") {
        let p = |k: &str| peer[k].as_f64().unwrap_or(f64::NAN);
        println!("RDKit-Python peer (single process):");
        println!(
            "  scoring: {:.0} mol/s; IntDiv over {}: {:.2} s (IntDiv1 {:.4})",
            p("mols_per_s"),
            peer["intdiv_n"],
            p("intdiv_seconds"),
            p("intdiv1")
        );
        println!(
            "ratios (smirl / peer, higher is better): scoring {:.2}x, IntDiv {:.1}x",
            f("ratio_scoring"),
            f("ratio_intdiv")
        );
    }
}

/// Peak resident memory of this process so far, in MiB.
fn peak_rss_mb() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

fn bench_model(args: ModelBenchArgs) -> anyhow::Result<()> {
    use model::{optim, Corpus, Gpt, GptConfig, Tensor, TokenMode, BOS};

    let records = input::read(&args.input, None)?;
    let smiles: Vec<String> = records.into_iter().map(|r| r.smiles).collect();
    let corpus = Corpus::build(&smiles, None, TokenMode::Char, 127);
    let cfg = GptConfig {
        vocab_size: corpus.vocab.len(),
        n_layer: args.n_layer,
        n_head: args.n_head,
        n_embd: args.n_embd,
        ..Default::default()
    };
    let device = args.device.open()?;
    let varmap = candle_nn::VarMap::new();
    let gpt = Gpt::init(&cfg, &varmap, 0, &device)?;
    let params = optim::AdamWParams {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let mut opt = optim::AdamW::new(varmap.data().lock().expect("varmap lock").clone(), params)?;

    // Training: the same batches as the peer (molecule step * batch + i, cycled), step 0 warms up.
    let n = corpus.seqs.len();
    let mut pass = (!args.candle && model::train_pass::TrainPass::supports(&gpt))
        .then(model::train_pass::TrainPass::new);
    let (mut tokens, mut seconds) = (0usize, 0f64);
    for step in 0..=args.steps {
        let rows: Vec<&[u32]> = (0..args.batch)
            .map(|i| corpus.seqs[(step * args.batch + i) % n].as_slice())
            .collect();
        let t0 = Instant::now();
        let (_, grads, n_tok) = model::train::loss_and_grads(&gpt, &rows, pass.as_mut())?;
        opt.clip_and_step(&grads, 1.0)?;
        device.synchronize()?;
        if step > 0 {
            tokens += n_tok;
            seconds += t0.elapsed().as_secs_f64();
        }
    }
    let train_tokens_per_s = tokens as f64 / seconds;

    // Sampling: a fixed number of new tokens from BOS with the KV cache, multinomial at T = 1.
    // Each repeat is one timed batch; setting up the decoder (like loading the peer's model) is
    // not timed.
    let b = args.sample_batch;
    let mut rng = model::rng::Rng::new(0);
    let v = cfg.vocab_size;
    let mut decoder = match pass {
        Some(_) => Some(model::decode_pass::Decoder::new(&gpt)?),
        None => None,
    };
    let mut rates = Vec::new();
    for _ in 0..args.sample_repeats {
        let t0 = Instant::now();
        if let Some(decoder) = decoder.as_mut() {
            decoder.start(b, args.new_tokens);
            let mut next = vec![BOS; b];
            for i in 0..args.new_tokens {
                let logits = decoder.feed_tokens(&next)?;
                next = logits.chunks(v).map(|row| sample_row(row, &mut rng)).collect();
                if i + 1 == args.new_tokens {
                    break;
                }
            }
        } else {
            let mut sampler = gpt.detached();
            let first = Tensor::from_vec(vec![BOS; b], (b, 1), &device)?;
            let mut logits = sampler.forward_cached(&first, None, 0)?;
            for i in 0..args.new_tokens {
                let rows = logits.squeeze(1)?.to_vec2::<f32>()?;
                let next: Vec<u32> = rows.iter().map(|row| sample_row(row, &mut rng)).collect();
                if i + 1 == args.new_tokens {
                    break;
                }
                let next = Tensor::from_vec(next, (b, 1), &device)?;
                logits = sampler.forward_cached(&next, None, i + 1)?;
            }
        }
        device.synchronize()?;
        rates.push(b as f64 / t0.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let sample_mols_per_s = rates[rates.len() / 2];

    let mut result = json!({
        "input": args.input.display().to_string(),
        "threads": rayon::current_num_threads(),
        "device": format!("{device:?}"),
        "n_params": gpt.num_params(),
        "vocab_size": cfg.vocab_size,
        "batch": args.batch,
        "passes": if pass.is_some() { "hand-written" } else { "candle" },
        "train_tokens_per_s": train_tokens_per_s,
        "sample_batch": b,
        "new_tokens": args.new_tokens,
        "sample_mols_per_s": sample_mols_per_s,
        "sample_repeats": args.sample_repeats,
        "peak_rss_mb": peak_rss_mb(),
    });
    if args.peer {
        let peer_args: Vec<String> = [
            args.input.display().to_string(),
            format!("--n-layer={}", args.n_layer),
            format!("--n-head={}", args.n_head),
            format!("--n-embd={}", args.n_embd),
            format!("--batch={}", args.batch),
            format!("--steps={}", args.steps),
            format!("--sample-batch={b}"),
            format!("--new-tokens={}", args.new_tokens),
            format!("--sample-repeats={}", args.sample_repeats),
            format!("--threads={}", rayon::current_num_threads()),
            format!("--device={}", if device.is_cuda() { "cuda" } else { "cpu" }),
        ]
        .into();
        let peer = run_python_peer(&args.python, "bench/model_peer.py", &peer_args)?;
        let ratio = |key: &str| match (result[key].as_f64(), peer[key].as_f64()) {
            (Some(a), Some(b)) if b > 0.0 => json!(a / b),
            _ => Value::Null,
        };
        let (train, sample, memory) = (
            ratio("train_tokens_per_s"),
            ratio("sample_mols_per_s"),
            ratio("peak_rss_mb"),
        );
        result["ratio_train"] = train;
        result["ratio_sample"] = sample;
        result["ratio_peak_memory"] = memory;
        result["peer"] = peer;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "smirl bench model: {} parameters, vocab {}, {} threads",
            result["n_params"], result["vocab_size"], result["threads"]
        );
        println!(
            "  training (batch {}): {:.0} non-pad tokens/s",
            args.batch,
            f(&result, "train_tokens_per_s")
        );
        println!(
            "  sampling (batch {b}, {} new tokens): {:.1} molecules/s",
            args.new_tokens,
            f(&result, "sample_mols_per_s")
        );
        println!("  peak RSS {:.0} MiB", f(&result, "peak_rss_mb"));
        if let Some(peer) = result.get("peer") {
            println!(
                "PyTorch {} GPT-2 peer: training {:.0} tokens/s, sampling {:.1} molecules/s, peak RSS {:.0} MiB",
                peer["torch"].as_str().unwrap_or("?"),
                f(peer, "train_tokens_per_s"),
                f(peer, "sample_mols_per_s"),
                f(peer, "peak_rss_mb")
            );
            println!(
                "ratios (smirl / PyTorch): training {:.2}x, sampling {:.2}x, peak memory {:.2}x",
                f(&result, "ratio_train"),
                f(&result, "ratio_sample"),
                f(&result, "ratio_peak_memory")
            );
        }
    }
    Ok(())
}

/// Draws a token from softmax(logits) (inverse CDF).
fn sample_row(logits: &[f32], rng: &mut model::rng::Rng) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = logits.iter().map(|&x| ((x - max) as f64).exp()).collect();
    let mut u = rng.next_f64() * weights.iter().sum::<f64>();
    for (i, w) in weights.iter().enumerate() {
        u -= w;
        if u <= 0.0 {
            return i as u32;
        }
    }
    (weights.len() - 1) as u32
}
