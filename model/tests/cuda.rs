//! The `cuda` build on a GPU agrees with the CPU build: logits, training gradients, cached
//! decoding, sampled likelihoods, and a short pretraining run that memorises a small corpus.
//! The CPU side runs this crate's hand-written passes, the GPU side candle's composed ops and
//! autograd, so each test checks one against the other. Compiled only with `--features cuda`
//! and run where a GPU is: `cargo test --release -p model --features cuda --test cuda`.
#![cfg(feature = "cuda")]

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use model::train::Backprop;
use model::{Gpt, GptConfig, PretrainOptions, SampleOptions, BOS, EOS};

fn gpu() -> Device {
    Device::new_cuda(0).expect("these tests need a CUDA device")
}

fn config() -> GptConfig {
    GptConfig {
        vocab_size: 23,
        n_layer: 2,
        n_head: 4,
        n_embd: 64,
        block_size: 40,
        ..Default::default()
    }
}

/// The same weights (the init is a function of the seed) on both devices.
fn pair() -> (Gpt, Gpt) {
    let (cpu_vars, gpu_vars) = (VarMap::new(), VarMap::new());
    let cpu = Gpt::init(&config(), &cpu_vars, 3, &Device::Cpu).unwrap();
    let gpu = Gpt::init(&config(), &gpu_vars, 3, &gpu()).unwrap();
    (cpu, gpu)
}

fn rows(seed: u64) -> Vec<Vec<u32>> {
    let mut rng = model::rng::Rng::new(seed);
    (0..6)
        .map(|i| {
            let len = 10 + 3 * i;
            let mut r = vec![BOS];
            r.extend((0..len).map(|_| 3 + rng.below(20) as u32));
            r.push(EOS);
            r
        })
        .collect()
}

fn host(t: &Tensor) -> Vec<f32> {
    t.to_device(&Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (host(a), host(b));
    assert_eq!(a.len(), b.len());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn logits_match_the_cpu() {
    let (cpu, gpu_model) = pair();
    let ids: Vec<u32> = rows(1)[5][..20].to_vec();
    let prefix: Vec<f32> = (0..2 * 64).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.05).collect();
    let on = |d: &Device| {
        (
            Tensor::from_vec(ids.clone(), (1, 20), d).unwrap(),
            Tensor::from_vec(prefix.clone(), (1, 2, 64), d).unwrap(),
        )
    };
    let (x, p) = on(&Device::Cpu);
    let (xg, pg) = on(&gpu());
    let a = cpu.forward(&x, Some(&p)).unwrap();
    let b = gpu_model.forward(&xg, Some(&pg)).unwrap();
    assert_eq!(a.dims(), b.dims());
    let d = max_abs_diff(&a, &b);
    assert!(d < 1e-4, "logits differ by {d}");
}

/// Every gradient of the mean cross-entropy: the CPU's hand-written backward against candle's
/// autograd on the GPU.
#[test]
fn training_gradients_match_the_cpu() {
    let (cpu, gpu_model) = pair();
    let seqs = rows(2);
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let (mut on_cpu, mut on_gpu) = (Backprop::for_model(&cpu), Backprop::for_model(&gpu_model));
    assert!(on_cpu.is_hand_written() && !on_gpu.is_hand_written());
    let (loss_cpu, grads_cpu, n_cpu) = on_cpu.loss_and_grads(&cpu, &refs).unwrap();
    let (loss_gpu, grads_gpu, n_gpu) = on_gpu.loss_and_grads(&gpu_model, &refs).unwrap();
    assert_eq!(n_cpu, n_gpu);
    assert!(
        (loss_cpu - loss_gpu).abs() < 1e-4,
        "loss {loss_cpu} vs {loss_gpu}"
    );
    let (pc, pg) = (cpu.parameters(), gpu_model.parameters());
    assert_eq!(pc.len(), pg.len());
    for ((name, tc), (_, tg)) in pc.iter().zip(&pg) {
        let gc = grads_cpu
            .get(tc)
            .unwrap_or_else(|| panic!("no CPU gradient for {name}"));
        let gg = grads_gpu
            .get(tg)
            .unwrap_or_else(|| panic!("no GPU gradient for {name}"));
        let scale = gc
            .abs()
            .unwrap()
            .max_keepdim(0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap();
        let scale: f32 = scale.to_scalar().unwrap();
        let d = max_abs_diff(gc, gg);
        assert!(scale > 0.0, "{name}: zero gradient");
        assert!(
            d <= 1e-3 * scale.max(1e-3),
            "{name}: gradients differ by {d} (scale {scale})"
        );
    }
}

/// Decoding token by token with the KV cache gives the logits of the full forward pass.
#[test]
fn cached_decoding_matches_the_full_forward() {
    let (_, gpu_model) = pair();
    let dev = gpu();
    let seqs: Vec<Vec<u32>> = rows(3).into_iter().map(|r| r[..12].to_vec()).collect();
    let flat: Vec<u32> = seqs.concat();
    let x = Tensor::from_vec(flat, (seqs.len(), 12), &dev).unwrap();
    let full = gpu_model.forward(&x, None).unwrap();
    let mut dec = gpu_model.detached();
    for t in 0..12 {
        let step = dec.forward_cached(&x.narrow(1, t, 1).unwrap(), None, t).unwrap();
        let d = max_abs_diff(&step, &full.narrow(1, t, 1).unwrap());
        assert!(d < 1e-4, "position {t}: cached logits differ by {d}");
    }
}

/// A pretraining run on the GPU memorises 50 molecules, and what it samples there scores the
/// same log-likelihood as the likelihood API gives it.
#[test]
fn pretraining_on_the_gpu_memorises_a_small_corpus() {
    let smiles: Vec<String> = include_str!("../../tests/data/moses_test_sample.smi")
        .lines()
        .take(50)
        .map(str::to_string)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let opts = PretrainOptions {
        model: GptConfig {
            n_layer: 2,
            n_head: 4,
            n_embd: 64,
            block_size: 64,
            ..Default::default()
        },
        out_dir: dir.path().to_path_buf(),
        batch_size: 25,
        max_steps: 300,
        warmup_steps: 20,
        lr: 5e-3,
        min_lr: 5e-4,
        weight_decay: 0.0,
        val_fraction: 0.0,
        eval_interval: 0,
        checkpoint_interval: 1000,
        ..Default::default()
    };
    let rep = model::pretrain(&opts, &smiles, &gpu()).unwrap();
    let tail: f64 = rep.losses[rep.losses.len() - 10..].iter().sum::<f64>() / 10.0;
    assert!(tail < 0.2, "final loss {tail}, first {}", rep.losses[0]);

    let run = model::load_checkpoint(dir.path(), &gpu()).unwrap();
    let mols = model::sample(
        &run.model,
        &run.vocab,
        None,
        &SampleOptions {
            n: 20,
            temperature: 0.2,
            seed: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let hits = mols.iter().filter(|m| smiles.contains(&m.smiles)).count();
    assert!(hits >= 16, "{hits}/20 sampled molecules are training molecules");
    let done: Vec<_> = mols.iter().filter(|m| m.complete).collect();
    let texts: Vec<String> = done.iter().map(|m| m.smiles.clone()).collect();
    let nll = model::likelihood(&run.model, &run.vocab, &texts, None, 8).unwrap();
    for (m, nll) in done.iter().zip(nll) {
        assert!(
            (m.log_likelihood + nll).abs() < 1e-3,
            "{}: sampled {} vs {}",
            m.smiles,
            m.log_likelihood,
            -nll
        );
    }
}
