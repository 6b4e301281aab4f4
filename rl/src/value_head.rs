//! A learned prefix value for reward-guided decoding, as CD-FUDGE does it (Mudgal et al. 2023,
//! arXiv 2310.17022): a value model predicts the reward a beginning of a SMILES ends with when
//! the prior completes it. It is fitted by least squares to the prior's own molecules: every
//! beginning of a sampled molecule is labelled with that molecule's reward, so the regression's
//! target is E[reward | beginning] under the prior, the value Monte-Carlo rollouts estimate one
//! draw at a time.
//!
//! The value model is a copy of the prior (its backbone, trained along: the prior's own hidden
//! states explain almost none of a QED reward's variance) with a small head. As in FUDGE, the
//! head reads the hidden state that predicted a token and scores every candidate token at once:
//! the value of beginning `x_1..x_t` is `head(h_{t-1})[x_t]`, where `h_{t-1}` is the backbone's
//! final-LayerNorm output at `x_{t-1}` (BOS for t = 1).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use model::optim::{AdamW, AdamWParams};
use model::rng::Rng;
use model::{Gpt, SampleOptions, Vocab, BOS, PAD};

use crate::scoring::Scorer;
use crate::steer::reward_of;
use crate::{Error, Result};

/// Sequences per teacher-forced forward when only values are wanted.
const FORWARD_BATCH: usize = 256;

/// Names of the head's tensors in the saved file; the backbone's keep the GPT's names under
/// `backbone.`.
const HEAD_TENSORS: [&str; 4] = [
    "head.fc.weight",
    "head.fc.bias",
    "head.out.weight",
    "head.out.bias",
];
const BACKBONE: &str = "backbone.";

/// The value model: a GPT backbone and the head `relu(h W1ᵀ + b1) W2ᵀ + b2`, one output per
/// vocabulary entry.
#[derive(Debug, Clone)]
pub struct ValueHead {
    backbone: Gpt,
    /// The backbone's weights by GPT name, as trainable variables.
    backbone_vars: Vec<(String, Var)>,
    /// `fc.weight (hidden, n_embd)`, `fc.bias`, `out.weight (vocab, hidden)`, `out.bias`.
    head: [Var; 4],
}

/// How to fit a value model.
#[derive(Debug, Clone)]
pub struct ValueTraining {
    /// Molecules the prior samples to learn from (a tenth is held out).
    pub molecules: usize,
    /// Width of the head's hidden layer.
    pub hidden: usize,
    /// Passes over the training molecules.
    pub epochs: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Molecules per gradient step (every beginning of each).
    pub batch: usize,
    /// Sampling options of the prior (temperature, max_len, batch size); `n` and `seed` are set
    /// from `molecules` and `seed`.
    pub sampling: SampleOptions,
    /// Seed of the sample, the initial head and the shuffles.
    pub seed: u64,
}

/// How well a fitted value model predicts the rewards of held-out molecules from their
/// beginnings.
#[derive(Debug, Clone)]
pub struct ValueReport {
    /// Beginnings trained on.
    pub train_pairs: usize,
    /// Held-out beginnings.
    pub held_out_pairs: usize,
    /// Mean squared error on the held-out beginnings.
    pub held_out_mse: f64,
    /// The same error for the training set's mean reward, predicted everywhere (the baseline).
    pub constant_mse: f64,
    /// Held-out error after each epoch.
    pub epoch_mse: Vec<f64>,
    /// Held-out error at the last beginning of each molecule (the whole string, whose value is
    /// its own reward), after the last epoch.
    pub whole_mse: f64,
    /// Mean reward of the sampled molecules.
    pub mean_reward: f64,
}

impl ValueReport {
    /// The share of the held-out reward variance the model explains (1 − MSE / constant MSE).
    pub fn explained(&self) -> f64 {
        1.0 - self.held_out_mse / self.constant_mse
    }
}

/// Teacher-forcing input `(B, T)` of `seqs` (token ids without BOS, none empty): BOS and every
/// token but the last, PAD after. With the rows of the flattened `(B·T)` positions whose hidden
/// state predicted a token, that token, and its sequence: every beginning, or with `last_only`
/// the whole sequence only.
fn teacher_input(seqs: &[Vec<u32>], last_only: bool) -> (Vec<u32>, usize, Vec<u32>, Vec<u32>, Vec<usize>) {
    let t = seqs.iter().map(Vec::len).max().unwrap_or(1);
    let mut input = vec![PAD; seqs.len() * t];
    let (mut rows, mut next, mut owner) = (Vec::new(), Vec::new(), Vec::new());
    for (b, s) in seqs.iter().enumerate() {
        input[b * t] = BOS;
        input[b * t + 1..b * t + s.len()].copy_from_slice(&s[..s.len() - 1]);
        let positions = if last_only {
            s.len() - 1..s.len()
        } else {
            0..s.len()
        };
        for p in positions {
            rows.push((b * t + p) as u32);
            next.push(s[p]);
            owner.push(b);
        }
    }
    (input, t, rows, next, owner)
}

fn var(rng: &mut Rng, shape: (usize, usize), scale: f64, device: &Device) -> Result<Var> {
    let data: Vec<f32> = (0..shape.0 * shape.1)
        .map(|_| (rng.normal() * scale) as f32)
        .collect();
    Ok(Var::from_tensor(&Tensor::from_vec(data, shape, device)?)?)
}

fn nonempty(seqs: &[Vec<u32>]) -> Result<()> {
    match seqs.iter().position(Vec::is_empty) {
        Some(i) => Err(Error::config("value_head", format!("sequence {i} is empty"))),
        None => Ok(()),
    }
}

impl ValueHead {
    /// A value model whose backbone starts as a trainable copy of `prior` and whose head has
    /// `hidden` units, He-initialised from `seed`.
    pub fn new(prior: &Gpt, hidden: usize, seed: u64) -> Result<Self> {
        if hidden == 0 {
            return Err(Error::config("hidden", "must be > 0"));
        }
        let (c, v, device) = (prior.config().n_embd, prior.config().vocab_size, prior.device());
        let backbone_vars = prior
            .parameters()
            .into_iter()
            .map(|(name, t)| Ok((name, Var::from_tensor(&t.detach().copy()?)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut rng = Rng::new(seed);
        let head = [
            var(&mut rng, (hidden, c), (2.0 / c as f64).sqrt(), device)?,
            Var::zeros(hidden, DType::F32, device)?,
            var(&mut rng, (v, hidden), (1.0 / hidden as f64).sqrt(), device)?,
            Var::zeros(v, DType::F32, device)?,
        ];
        Self::assemble(prior, backbone_vars, head)
    }

    fn assemble(prior: &Gpt, backbone_vars: Vec<(String, Var)>, head: [Var; 4]) -> Result<Self> {
        let tensors = backbone_vars
            .iter()
            .map(|(name, v)| (name.clone(), v.as_tensor().clone()))
            .collect();
        let backbone = Gpt::from_tensors(prior.config(), tensors, prior.device())?;
        Ok(Self {
            backbone,
            backbone_vars,
            head,
        })
    }

    fn vars(&self) -> HashMap<String, Var> {
        let head = HEAD_TENSORS
            .iter()
            .map(|n| n.to_string())
            .zip(self.head.iter().cloned());
        let backbone = self
            .backbone_vars
            .iter()
            .map(|(n, v)| (format!("{BACKBONE}{n}"), v.clone()));
        head.chain(backbone).collect()
    }

    /// Values `(pairs,)` of hidden states `(pairs, n_embd)`, each read at its next token.
    fn read(&self, feats: &Tensor, next: &Tensor) -> Result<Tensor> {
        let [fc_w, fc_b, out_w, out_b] = &self.head;
        let h = feats.matmul(&fc_w.t()?)?.broadcast_add(fc_b)?.relu()?;
        let out = h.matmul(&out_w.t()?)?.broadcast_add(out_b)?;
        Ok(out.gather(&next.unsqueeze(1)?, 1)?.squeeze(1)?)
    }

    /// Values of the beginnings `teacher_input` picks from `seqs`, with their owners; `backbone`
    /// is the trainable one or a detached copy.
    fn forward(&self, backbone: &Gpt, seqs: &[Vec<u32>], last_only: bool) -> Result<(Tensor, Vec<usize>)> {
        let device = backbone.device();
        let c = backbone.config().n_embd;
        let (input, t, rows, next, owner) = teacher_input(seqs, last_only);
        let input = Tensor::from_vec(input, (seqs.len(), t), device)?;
        let hidden = backbone.forward_hidden(&input)?.reshape((seqs.len() * t, c))?;
        let feats = hidden.index_select(&Tensor::new(rows.as_slice(), device)?, 0)?;
        let values = self.read(&feats, &Tensor::new(next.as_slice(), device)?)?;
        Ok((values, owner))
    }

    /// The value of each of `seqs` (token ids without BOS, at least one each): the reward the
    /// prior's completions of that beginning are expected to earn.
    pub fn values(&self, seqs: &[Vec<u32>]) -> Result<Vec<f64>> {
        nonempty(seqs)?;
        let frozen = self.backbone.detached();
        let mut out = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(FORWARD_BATCH) {
            let (v, _) = self.forward(&frozen, chunk, true)?;
            out.extend(v.to_vec1::<f32>()?.into_iter().map(f64::from));
        }
        Ok(out)
    }

    /// Mean squared error of every beginning of `seqs` (or with `last_only` of each whole
    /// sequence) against its sequence's reward.
    fn mse(&self, seqs: &[Vec<u32>], rewards: &[f64], last_only: bool) -> Result<f64> {
        let frozen = self.backbone.detached();
        let (mut sum, mut count) = (0.0, 0);
        for (at, chunk) in seqs.chunks(FORWARD_BATCH).enumerate() {
            let (v, owner) = self.forward(&frozen, chunk, last_only)?;
            for (v, b) in v.to_vec1::<f32>()?.into_iter().zip(owner) {
                sum += (v as f64 - rewards[at * FORWARD_BATCH + b]).powi(2);
                count += 1;
            }
        }
        Ok(sum / count.max(1) as f64)
    }

    /// Fits a value model to `prior`'s own molecules scored by `scorer`; `progress` gets each
    /// epoch's held-out error.
    pub fn train(
        prior: &Gpt,
        vocab: &Vocab,
        scorer: &Scorer,
        opts: &ValueTraining,
        progress: &mut dyn FnMut(usize, f64),
    ) -> Result<(Self, ValueReport)> {
        for (field, value) in [("epochs", opts.epochs), ("batch", opts.batch)] {
            if value == 0 {
                return Err(Error::config(field, "must be > 0"));
            }
        }
        if opts.molecules < 10 {
            return Err(Error::config("molecules", "at least 10 (a tenth is held out)"));
        }
        let samples = model::sample(
            &prior.detached(),
            vocab,
            None,
            &SampleOptions {
                n: opts.molecules,
                seed: opts.seed,
                ..opts.sampling.clone()
            },
        )?;
        let rewards = reward_of(scorer, &samples)?;
        // Every tenth molecule, all its beginnings, is held out; an empty draw has no beginning.
        let (mut train, held): (Vec<usize>, Vec<usize>) = (0..samples.len())
            .filter(|&i| !samples[i].tokens.is_empty())
            .partition(|&i| i % 10 != 9);
        let pick = |ids: &[usize]| -> (Vec<Vec<u32>>, Vec<f64>) {
            ids.iter()
                .map(|&i| (samples[i].tokens.clone(), rewards[i]))
                .unzip()
        };
        let (held_seqs, held_rewards) = pick(&held);
        let train_mean = train.iter().map(|&i| rewards[i]).sum::<f64>() / train.len().max(1) as f64;
        let held_pairs: usize = held_seqs.iter().map(Vec::len).sum();
        let constant_mse = held_seqs
            .iter()
            .zip(&held_rewards)
            .map(|(s, r)| s.len() as f64 * (r - train_mean).powi(2))
            .sum::<f64>()
            / held_pairs.max(1) as f64;
        let model = Self::new(prior, opts.hidden, opts.seed)?;
        let mut adam = AdamW::new(
            model.vars(),
            AdamWParams {
                lr: opts.lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            },
        )?;
        let mut rng = Rng::derive(opts.seed, 1);
        let mut epoch_mse = Vec::new();
        for epoch in 0..opts.epochs {
            rng.shuffle(&mut train);
            for ids in train.chunks(opts.batch) {
                let (seqs, r) = pick(ids);
                let (values, owner) = model.forward(&model.backbone, &seqs, false)?;
                let y: Vec<f32> = owner.iter().map(|&b| r[b] as f32).collect();
                let y = Tensor::new(y.as_slice(), prior.device())?;
                let loss = (values - y)?.sqr()?.mean_all()?;
                adam.step(&loss.backward()?, 1.0)?;
            }
            let mse = model.mse(&held_seqs, &held_rewards, false)?;
            progress(epoch + 1, mse);
            epoch_mse.push(mse);
        }
        let report = ValueReport {
            train_pairs: train.iter().map(|&i| samples[i].tokens.len()).sum(),
            held_out_pairs: held_pairs,
            held_out_mse: *epoch_mse.last().expect("epochs > 0"),
            constant_mse,
            epoch_mse,
            whole_mse: model.mse(&held_seqs, &held_rewards, true)?,
            mean_reward: rewards.iter().sum::<f64>() / rewards.len() as f64,
        };
        Ok((model, report))
    }

    /// Writes the value model as safetensors: the head (`head.fc.weight`, …) and the backbone
    /// (`backbone.` and the GPT's names).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: HashMap<String, Tensor> = self
            .vars()
            .into_iter()
            .map(|(name, v)| (name, v.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&tensors, path)
            .map_err(|e| Error::checkpoint(path, format!("cannot write the value model: {e}")))
    }

    /// Reads a value model [`ValueHead::save`] wrote for `prior` (the backbone has its shape).
    pub fn load(path: &Path, prior: &Gpt) -> Result<Self> {
        let bad = |msg: String| Error::checkpoint(path, msg);
        let mut tensors = candle_core::safetensors::load(path, prior.device())
            .map_err(|e| bad(format!("not a readable safetensors file: {e}")))?;
        let mut take = |name: &str| -> Result<Var> {
            let t = tensors
                .remove(name)
                .ok_or_else(|| bad(format!("no tensor `{name}`: not a value model")))?;
            Ok(Var::from_tensor(&t.to_dtype(DType::F32)?)?)
        };
        let head = [
            take(HEAD_TENSORS[0])?,
            take(HEAD_TENSORS[1])?,
            take(HEAD_TENSORS[2])?,
            take(HEAD_TENSORS[3])?,
        ];
        let backbone_vars = prior
            .parameters()
            .into_iter()
            .map(|(name, want)| {
                let v = take(&format!("{BACKBONE}{name}"))?;
                if v.dims() != want.dims() {
                    return Err(bad(format!(
                        "`{BACKBONE}{name}` is {:?}, the prior's is {:?}: trained for another model",
                        v.dims(),
                        want.dims()
                    )));
                }
                Ok((name, v))
            })
            .collect::<Result<Vec<_>>>()?;
        let (c, v) = (prior.config().n_embd, prior.config().vocab_size);
        let hidden = head[0].dim(0)?;
        let shapes_fit = head[0].dims() == [hidden, c]
            && head[1].dims() == [hidden]
            && head[2].dims() == [v, hidden]
            && head[3].dims() == [v];
        if !shapes_fit {
            return Err(bad(format!(
                "head shapes {:?}, {:?} do not fit this model (n_embd {c}, vocab {v})",
                head[0].dims(),
                head[2].dims()
            )));
        }
        Self::assemble(prior, backbone_vars, head)
    }
}
