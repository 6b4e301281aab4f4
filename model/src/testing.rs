//! The tiny models the unit tests share (test builds only).

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use crate::gpt::{Gpt, GptConfig};
use crate::rng::Rng;

/// A 2-layer, 2-head GPT of width `n_embd`, initialised from `seed`, with its weights.
pub(crate) fn tiny_gpt(vocab_size: usize, n_embd: usize, block_size: usize, seed: u64) -> (Gpt, VarMap) {
    let cfg = GptConfig {
        vocab_size,
        n_layer: 2,
        n_head: 2,
        n_embd,
        block_size,
        ..Default::default()
    };
    let varmap = VarMap::new();
    let model = Gpt::init(&cfg, &varmap, seed, &Device::Cpu).unwrap();
    (model, varmap)
}

/// Adds N(0, std²) noise to every weight: LayerNorm's 1/0 and zero biases would hide mistakes
/// in a gradient.
pub(crate) fn perturb(varmap: &VarMap, std: f64, rng: &mut Rng) {
    for var in varmap.all_vars() {
        let noise: Vec<f32> = (0..var.elem_count())
            .map(|_| (rng.normal() * std) as f32)
            .collect();
        let noise = Tensor::from_vec(noise, var.shape(), &Device::Cpu).unwrap();
        var.set(&(var.as_tensor() + noise).unwrap()).unwrap();
    }
}
