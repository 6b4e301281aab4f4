//! Throughput check: `cargo run -p model --release --example bench -- [n_embd] [batch] [steps]`.
//! Trains on the bundled 1,000 MOSES SMILES for a few steps (non-pad tokens/s) and samples a
//! fixed number of new tokens per molecule (molecules/s), like candle_notes.md's comparison.

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use model::{ops, optim, vocab::Corpus, Gpt, GptConfig, TokenMode, PAD};
use std::time::Instant;

fn main() -> model::Result<()> {
    model::configure_cpu_env();
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (n_embd, batch, steps) = (
        *args.first().unwrap_or(&256),
        *args.get(1).unwrap_or(&64),
        *args.get(2).unwrap_or(&10),
    );
    let smiles: Vec<String> = include_str!("../tests/data/moses_test_sample.smi")
        .lines()
        .map(String::from)
        .collect();
    let corpus = Corpus::build(&smiles, None, TokenMode::Char, 127);
    let cfg = GptConfig {
        vocab_size: corpus.vocab.len(),
        n_embd,
        ..Default::default()
    };
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let m = Gpt::init(&cfg, &vm, 0, &dev)?;
    println!("params {}  n_embd {n_embd}  batch {batch}", m.num_params());
    let params = optim::AdamWParams {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let mut opt = optim::AdamW::new(vm.data().lock().unwrap().clone(), params)?;
    let (mut tok, mut secs) = (0usize, 0f64);
    for step in 0..if steps == 0 { 0 } else { steps + 1 } {
        let rows = &corpus.seqs[(step * batch) % 900..][..batch.min(100)];
        let rows: Vec<&Vec<u32>> = rows.iter().cycle().take(batch).collect();
        let t = rows.iter().map(|s| s.len() - 1).max().unwrap();
        let (mut inp, mut tgt) = (vec![PAD; batch * t], vec![PAD; batch * t]);
        for (r, s) in rows.iter().enumerate() {
            inp[r * t..r * t + s.len() - 1].copy_from_slice(&s[..s.len() - 1]);
            tgt[r * t..r * t + s.len() - 1].copy_from_slice(&s[1..]);
        }
        let n_tok = tgt.iter().filter(|&&x| x != PAD).count();
        let t0 = Instant::now();
        let logits = m.forward(&Tensor::from_vec(inp, (batch, t), &dev)?, None)?;
        let loss = ops::cross_entropy(&logits.reshape((batch * t, cfg.vocab_size))?, &tgt, PAD)?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        let norm = opt.grad_norm(&grads)?;
        opt.step(&grads, (1.0 / norm).min(1.0))?;
        let dt = t0.elapsed().as_secs_f64();
        eprintln!(
            "  fwd {:.3}s bwd {:.3}s opt {:.3}s",
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            t2.elapsed().as_secs_f64()
        );
        if step > 0 {
            (tok, secs) = (tok + n_tok, secs + dt); // step 0 is warm-up
        }
        eprintln!(
            "step {step} loss {:.3} {:.0} tok/s",
            loss.to_scalar::<f32>()?,
            n_tok as f64 / dt
        );
    }
    println!("train: {:.0} non-pad tokens/s", tok as f64 / secs);

    // Micro: the two custom inference kernels on decode-sized inputs.
    let x = Tensor::randn(0f32, 1.0, (256, 4 * n_embd), &dev)?;
    let t0 = Instant::now();
    for _ in 0..100 {
        ops::gelu_erf(&x)?;
    }
    println!(
        "gelu (256x{}) x100: {:.3}s",
        4 * n_embd,
        t0.elapsed().as_secs_f64()
    );
    let q = Tensor::randn(0f32, 1.0, (256, 4, 1, n_embd / 4), &dev)?;
    let kv = Tensor::randn(0f32, 1.0, (256, 4, 128, n_embd / 4), &dev)?.narrow(2, 0, 50)?;
    let t0 = Instant::now();
    for _ in 0..100 {
        ops::cached_attention(&q, &kv, &kv, 0.125)?;
    }
    println!("cached attention (S=50) x100: {:.3}s", t0.elapsed().as_secs_f64());
    let w = Tensor::randn(0f32, 1.0, (4 * n_embd, n_embd), &dev)?;
    let xx = Tensor::randn(0f32, 1.0, (256, n_embd), &dev)?;
    let t0 = Instant::now();
    for _ in 0..100 {
        xx.matmul(&w.t()?)?;
    }
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "matmul 256x{n_embd}x{} x100: {dt:.3}s = {:.1} GFLOP/s",
        4 * n_embd,
        100.0 * 2.0 * 256.0 * n_embd as f64 * 4.0 * n_embd as f64 / dt / 1e9
    );

    // Sampling: 99 new tokens for 256 molecules, EOS ignored (untrained model), as in the notes.
    let mut sm = m.detached();
    let (b, new) = (256usize, 99usize);
    let t0 = Instant::now();
    let mut logits = sm.forward_cached(&Tensor::from_vec(vec![model::BOS; b], (b, 1), &dev)?, None, 0)?;
    for i in 0..new - 1 {
        let next = logits.squeeze(1)?.argmax(1)?.unsqueeze(1)?;
        logits = sm.forward_cached(&next, None, i + 1)?;
    }
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "sample (raw decode, {new} tokens, batch {b}): {:.1} molecules/s",
        b as f64 / dt
    );
    let t0 = Instant::now();
    let opts = model::SampleOptions {
        n: b,
        batch_size: b,
        max_len: new,
        ..Default::default()
    };
    let out = model::sample(&m, &corpus.vocab, None, &opts)?;
    let dt = t0.elapsed().as_secs_f64();
    let toks: usize = out.iter().map(|s| s.tokens.len()).sum();
    println!(
        "sample() untrained, stops at EOS: {:.1} molecules/s ({toks} tokens)",
        b as f64 / dt
    );
    Ok(())
}
