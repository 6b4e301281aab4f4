//! `smirl bench model`: GPT training tokens/s and sampling molecules/s against a same-size PyTorch
//! GPT-2 (bench/model_peer.py).

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{json, Value};

use super::{peak_rss_mb, run_python_peer};
use crate::cli::input;

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
    /// Interleaved rounds (smirl, peer, smirl, peer, ...); median ratios are reported with their
    /// range.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    #[command(flatten)]
    device: crate::cli::device::DeviceArg,
    #[command(flatten)]
    pub common: super::PeerArgs,
}

/// The ratios reported: (name, key in both sides' JSON).
const RATIOS: [(&str, &str); 3] = [
    ("ratio_train", "train_tokens_per_s"),
    ("ratio_sample", "sample_mols_per_s"),
    ("ratio_peak_memory", "peak_rss_mb"),
];

/// Runs `smirl bench model`: `--rounds` rounds of smirl then the peer.
pub fn run(args: ModelBenchArgs) -> anyhow::Result<()> {
    let mut rounds: Vec<(Value, Option<Value>)> = Vec::new();
    for round in 1..=args.rounds {
        eprintln!("round {round}/{}: smirl ...", args.rounds);
        let ours = measure(&args)?;
        let peer = if args.common.peer {
            eprintln!("round {round}/{}: the peer ...", args.rounds);
            Some(run_peer(&args, &ours)?)
        } else {
            None
        };
        rounds.push((ours, peer));
    }
    let (mut result, peer) = rounds.last().cloned().expect("at least one round");
    result["rounds"] = json!(args.rounds);
    if let Some(peer) = peer {
        for (name, key) in RATIOS {
            let per_round: Vec<f64> = rounds
                .iter()
                .filter_map(|(a, b)| Some(a[key].as_f64()? / b.as_ref()?[key].as_f64()?))
                .collect();
            let (lo, hi) = per_round
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                    (lo.min(x), hi.max(x))
                });
            result[name] = json!(super::median(per_round.clone()));
            result[format!("{name}_range")] = json!({"min": lo, "max": hi, "per_round": per_round});
        }
        result["peer"] = peer;
    }
    result["per_round"] = json!(rounds
        .iter()
        .map(|(a, b)| json!({"smirl": a, "peer": b}))
        .collect::<Vec<_>>());
    print(&args, &result)
}

/// One round of smirl's side: a fresh model, timed training steps, timed sampling batches.
fn measure(args: &ModelBenchArgs) -> anyhow::Result<Value> {
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
    let mut backprop = if args.candle {
        model::train::Backprop::autograd()
    } else {
        model::train::Backprop::for_model(&gpt)
    };
    let (mut tokens, mut seconds) = (0usize, 0f64);
    for step in 0..=args.steps {
        let rows: Vec<&[u32]> = (0..args.batch)
            .map(|i| corpus.seqs[(step * args.batch + i) % n].as_slice())
            .collect();
        let t0 = Instant::now();
        let (_, grads, n_tok) = backprop.loss_and_grads(&gpt, &rows)?;
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
    let mut decoder = if backprop.is_hand_written() {
        Some(model::decode_pass::Decoder::new(&gpt)?)
    } else {
        None
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

    Ok(json!({
        "input": args.input.display().to_string(),
        "threads": rayon::current_num_threads(),
        "cpu": super::cpu_description(),
        "device": format!("{device:?}"),
        "cuda": device.is_cuda(),
        "n_params": gpt.num_params(),
        "vocab_size": cfg.vocab_size,
        "batch": args.batch,
        "passes": if backprop.is_hand_written() { "hand-written" } else { "candle" },
        "train_tokens_per_s": train_tokens_per_s,
        "sample_batch": b,
        "new_tokens": args.new_tokens,
        "sample_mols_per_s": sample_mols_per_s,
        "sample_repeats": args.sample_repeats,
        "peak_rss_mb": peak_rss_mb(),
    }))
}

/// One round of the peer on the same work as `ours`.
fn run_peer(args: &ModelBenchArgs, ours: &Value) -> anyhow::Result<Value> {
    let device = if ours["cuda"].as_bool().unwrap_or(false) {
        "cuda"
    } else {
        "cpu"
    };
    let peer_args: Vec<String> = [
        args.input.display().to_string(),
        format!("--n-layer={}", args.n_layer),
        format!("--n-head={}", args.n_head),
        format!("--n-embd={}", args.n_embd),
        format!("--batch={}", args.batch),
        format!("--steps={}", args.steps),
        format!("--sample-batch={}", args.sample_batch),
        format!("--new-tokens={}", args.new_tokens),
        format!("--sample-repeats={}", args.sample_repeats),
        format!("--threads={}", rayon::current_num_threads()),
        format!("--device={device}"),
    ]
    .into();
    run_python_peer(args.common.torch_python(), "bench/model_peer.py", &peer_args)
}

fn print(args: &ModelBenchArgs, result: &Value) -> anyhow::Result<()> {
    let b = args.sample_batch;
    if args.common.json {
        println!("{}", serde_json::to_string_pretty(result)?);
    } else {
        let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "smirl bench model: {} parameters, vocab {}, {} threads",
            result["n_params"], result["vocab_size"], result["threads"]
        );
        println!("CPU: {}", result["cpu"].as_str().unwrap_or(""));
        println!(
            "  training (batch {}): {:.0} non-pad tokens/s",
            args.batch,
            f(result, "train_tokens_per_s")
        );
        println!(
            "  sampling (batch {b}, {} new tokens): {:.1} molecules/s",
            args.new_tokens,
            f(result, "sample_mols_per_s")
        );
        println!("  peak RSS {:.0} MiB", f(result, "peak_rss_mb"));
        if let Some(peer) = result.get("peer") {
            println!(
                "PyTorch {} ({}) GPT-2 peer: training {:.0} tokens/s, sampling {:.1} molecules/s, peak RSS {:.0} MiB",
                peer["torch"].as_str().unwrap_or("?"),
                peer["cpu_capability"].as_str().unwrap_or("?"),
                f(peer, "train_tokens_per_s"),
                f(peer, "sample_mols_per_s"),
                f(peer, "peak_rss_mb")
            );
            let range = |name: &str| {
                let r = &result[format!("{name}_range")];
                format!("{:.2}-{:.2}", f(r, "min"), f(r, "max"))
            };
            println!(
                "ratios (smirl / PyTorch), median of {} rounds: training {:.2}x ({}), sampling {:.2}x ({}), peak memory {:.2}x ({})",
                result["rounds"],
                f(result, "ratio_train"),
                range("ratio_train"),
                f(result, "ratio_sample"),
                range("ratio_sample"),
                f(result, "ratio_peak_memory"),
                range("ratio_peak_memory"),
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
