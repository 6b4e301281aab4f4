//! LoRA (Hu et al. 2021): rank-r updates `W + (α/r)·B·A` on every block's attention and MLP
//! matrices (`attn.c_attn`, `attn.c_proj`, `mlp.c_fc`, `mlp.c_proj`), the prior frozen. A starts
//! as N(0, 1/in) noise and B at zero, so the untuned agent is the prior.
//!
//! The agent is the prior with merged weights, built each step as a graph into A and B: candle's
//! autograd reaches the adapters directly, and the hand-written pass's weight gradients dL/dW'
//! are chained into them as the gradient of Σ W'·dL/dW' (dA = s·Bᵀ·dW', dB = s·dW'·Aᵀ).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor, Var};
use model::rng::Rng;
use model::Gpt;

use crate::config::LoraConfig;
use crate::{Error, Result};

/// The adapted matrices of each block (nanoGPT names after `h.{i}.`).
const TARGETS: [&str; 4] = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"];

/// The adapters of one policy.
pub struct Lora {
    /// Per adapted weight (by its full name): (A (r, in), B (out, r)).
    adapters: Vec<(String, Var, Var)>,
    scale: f64,
}

impl Lora {
    /// Fresh adapters for `prior` (seeded).
    pub fn new(prior: &Gpt, cfg: &LoraConfig, seed: u64) -> Result<Self> {
        let mut rng = Rng::derive(seed, 0x4c4f_5241); // "LORA"
        let r = cfg.rank;
        let mut adapters = Vec::new();
        for (name, w) in prior.parameters() {
            let Some(base) = name.strip_suffix(".weight") else {
                continue;
            };
            if !TARGETS.iter().any(|t| base.ends_with(t)) || !base.starts_with("h.") {
                continue;
            }
            let (out, inp) = w.dims2()?;
            let std = 1.0 / (inp as f64).sqrt();
            let a: Vec<f32> = (0..r * inp).map(|_| (rng.normal() * std) as f32).collect();
            let a = Var::from_tensor(&Tensor::from_vec(a, (r, inp), w.device())?)?;
            let b = Var::from_tensor(&Tensor::zeros((out, r), DType::F32, w.device())?)?;
            adapters.push((name, a, b));
        }
        Ok(Self {
            adapters,
            scale: cfg.alpha / r as f64,
        })
    }

    /// The agent: the prior's weights with the adapters merged in (a graph into A and B unless
    /// `detach`).
    pub fn merged(&self, prior: &Gpt, detach: bool) -> Result<Gpt> {
        let mut ts: HashMap<String, Tensor> = prior.parameters().into_iter().collect();
        for (name, a, b) in &self.adapters {
            let w = ts.get(name).expect("adapters are built from the prior's names");
            let delta = (b.as_tensor().matmul(a.as_tensor())? * self.scale)?;
            let merged = (w + delta)?;
            ts.insert(name.clone(), if detach { merged.detach() } else { merged });
        }
        Ok(Gpt::from_tensors(prior.config(), ts, prior.device())?)
    }

    /// Names of the merged weights (to pick their gradients out of a pass's).
    pub fn adapted(&self) -> impl Iterator<Item = &str> {
        self.adapters.iter().map(|(n, _, _)| n.as_str())
    }

    /// The trainable variables by checkpoint name (`lora.<weight>.a`, `.b`).
    pub fn vars(&self) -> HashMap<String, Var> {
        let mut out = HashMap::new();
        for (name, a, b) in &self.adapters {
            out.insert(format!("lora.{name}.a"), a.clone());
            out.insert(format!("lora.{name}.b"), b.clone());
        }
        out
    }

    /// Restores what [`Self::vars`] saved; errors name the file and tensor.
    pub fn restore(&self, ts: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
        for (key, var) in self.vars() {
            let t = ts.get(&key).ok_or_else(|| {
                Error::checkpoint(
                    path,
                    format!("no {key} tensor (not a LoRA agent, or another rank?)"),
                )
            })?;
            if t.dims() != var.dims() {
                return Err(Error::checkpoint(
                    path,
                    format!(
                        "{key} has shape {:?}, the config wants {:?}",
                        t.dims(),
                        var.dims()
                    ),
                ));
            }
            var.set(&t.to_dtype(DType::F32)?)?;
        }
        Ok(())
    }
}
