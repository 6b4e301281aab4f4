//! The policy being tuned: the pretrained GPT with either a learnable soft prompt (prefix mode,
//! every GPT weight frozen) or all weights trainable (full mode), plus a frozen copy of the prior
//! for KL and REINVENT's augmented likelihood.
//!
//! # The soft prompt takes BOS's place
//! `Gpt::forward` puts P prefix vectors at positions 0..P and the tokens after them. A prior
//! pretrained without prompts has only ever seen BOS at position 0 and the first SMILES character
//! at position 1; shifting every token by P positions wrecks it (a tiny test prior went from
//! ~100 % to ~2 % valid with a single extra vector). So here the *last* prefix vector stands in
//! for BOS: the input is `[prefix_0 .. prefix_{P−1}, x_1, x_2, …]`, and with P = 1 (the default)
//! every token sits exactly where pretraining put it. That vector starts as BOS's embedding, so
//! the untuned agent *is* the prior (KL 0 at step 1); the others (P > 1) start from token
//! embeddings or noise and shift tokens by P − 1 positions.
//!
//! `Gpt::forward` returns logits for token positions only, so the distribution of the first
//! token x_1 (read at the BOS position) is the prior's, unaffected by the prompt: log π(x_1) is
//! the prior's and carries no gradient; sampling draws it from the prior too
//! (`model::sample` with `Prompt::InBosPlace`).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
use candle_nn::VarMap;
use model::rng::Rng;
use model::sample::Prompt;
use model::train_pass::{ChunkedPass, GradTarget};
use model::{Gpt, Sample, SampleOptions, Vocab, BOS, EOS, PAD};

use crate::config::{PolicyMode, PrefixConfig, PrefixInit};
use crate::{Error, Result};

/// Name of the prefix variable in checkpoints.
pub const PREFIX_VAR: &str = "prefix";

/// The agent (prefix + frozen GPT, or a trainable GPT) and its frozen prior.
pub struct Policy {
    mode: PolicyMode,
    /// Prefix mode: the prior's detached weights; full mode: the trainable weights of `varmap`.
    agent: Gpt,
    prior: Gpt,
    prior_varmap: VarMap,
    varmap: VarMap,
    prefix: Option<Var>,
    vocab: Vocab,
}

impl Policy {
    /// Loads the prior from a model directory (`smirl pretrain` output). Prefix mode builds P
    /// prefix vectors as `prefix` says (seeded); full mode loads the weights a second time as
    /// the trainable agent (the optimizer updates `Var`s in place, so the prior needs its own).
    pub fn load(
        model_dir: &Path,
        mode: PolicyMode,
        prefix: &PrefixConfig,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let prior_run = model::load_checkpoint(model_dir, device)?;
        let prior = prior_run.model.detached();
        let vocab = prior_run.vocab;
        match mode {
            PolicyMode::Prefix => {
                let c = prior_run.config.n_embd;
                let p = prefix.length;
                if p + 1 > prior_run.config.block_size {
                    return Err(Error::config(
                        "prefix.length",
                        format!("{p} leaves no room in block_size {}", prior_run.config.block_size),
                    ));
                }
                let mut rng = Rng::derive(seed, 0x5052_4546); // "PREF"
                let wte = prior_run
                    .varmap
                    .data()
                    .lock()
                    .map_err(|_| Error::config("model", "poisoned varmap"))?
                    .get("wte.weight")
                    .map(|v| v.as_tensor().detach())
                    .ok_or_else(|| Error::config("model", "checkpoint has no wte.weight"))?;
                let bos = wte.narrow(0, BOS as usize, 1)?; // (1, C): the vector standing in for BOS
                let init = if p == 1 {
                    bos
                } else {
                    let extra = match prefix.init {
                        PrefixInit::Tokens => {
                            let n_special = EOS as usize + 1;
                            let n_tok = vocab.len().saturating_sub(n_special).max(1);
                            let ids: Vec<u32> = (0..p - 1)
                                .map(|_| (n_special + rng.below(n_tok)) as u32)
                                .collect();
                            wte.index_select(&Tensor::new(ids.as_slice(), device)?, 0)?
                        }
                        PrefixInit::Noise => {
                            let xs: Vec<f32> = (0..(p - 1) * c)
                                .map(|_| (rng.normal() * prefix.init_std) as f32)
                                .collect();
                            Tensor::from_vec(xs, (p - 1, c), device)?
                        }
                    };
                    Tensor::cat(&[&extra, &bos], 0)?
                };
                let var = Var::from_tensor(&init.to_dtype(DType::F32)?.reshape((1, p, c))?)?;
                Ok(Self {
                    mode,
                    agent: prior.clone(),
                    prior,
                    prior_varmap: prior_run.varmap,
                    varmap: VarMap::new(),
                    prefix: Some(var),
                    vocab,
                })
            }
            PolicyMode::Full => {
                let agent_run = model::load_checkpoint(model_dir, device)?;
                Ok(Self {
                    mode,
                    agent: agent_run.model,
                    prior,
                    prior_varmap: prior_run.varmap,
                    varmap: agent_run.varmap,
                    prefix: None,
                    vocab,
                })
            }
        }
    }

    /// Prefix or full.
    pub fn mode(&self) -> PolicyMode {
        self.mode
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The agent GPT (in prefix mode: the frozen prior's weights).
    pub fn agent(&self) -> &Gpt {
        &self.agent
    }

    /// The frozen prior.
    pub fn prior(&self) -> &Gpt {
        &self.prior
    }

    /// The soft prompt `(1, P, n_embd)`, prefix mode only; gradients flow into it.
    pub fn prefix(&self) -> Option<&Tensor> {
        self.prefix.as_ref().map(Var::as_tensor)
    }

    /// The variables the optimizer trains, by name.
    pub fn trainable_vars(&self) -> HashMap<String, Var> {
        match &self.prefix {
            Some(v) => HashMap::from([(PREFIX_VAR.to_string(), v.clone())]),
            None => self.varmap.data().lock().map(|m| m.clone()).unwrap_or_default(),
        }
    }

    /// The GPT's weights by name: the agent's (in prefix mode the same tensors as the prior's) or
    /// the frozen prior's. For checks that tuning left what it must not touch bit-for-bit intact.
    pub fn gpt_weights(&self, agent: bool) -> HashMap<String, Tensor> {
        let vm = if agent && self.mode == PolicyMode::Full {
            &self.varmap
        } else {
            &self.prior_varmap
        };
        vm.data()
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Samples molecules from the agent. In prefix mode the prompt takes BOS's place and x_1 is
    /// drawn from the prior's distribution after BOS (see the module docs).
    pub fn sample(&self, opts: &SampleOptions) -> Result<Vec<Sample>> {
        let prompt_and_first = match self.prefix() {
            None => None,
            Some(prefix) => Some((prefix.detach(), self.first_token_log_probs()?)),
        };
        let prompt = prompt_and_first
            .as_ref()
            .map(|(prefix, first_log_probs)| Prompt::InBosPlace {
                prefix,
                first_log_probs,
            });
        Ok(model::sample(&self.agent, &self.vocab, prompt, opts)?)
    }

    /// Most tokens a sequence may have (EOS included) behind the prefix.
    pub fn max_tokens(&self) -> usize {
        let block = self.agent.config().block_size;
        match self.prefix() {
            None => block,
            Some(p) => block + 1 - p.dim(1).unwrap_or(1),
        }
    }

    /// The agent's per-token log-probabilities of `seqs` (`[BOS] + tokens`, EOS included when
    /// present), keeping what [`Policy::agent_gradients`] needs: in `pass` (the hand-written CPU
    /// pass) or as a candle graph. In prefix mode the first token's is the prior's (module docs).
    pub fn agent_log_probs(
        &self,
        seqs: &[Vec<u32>],
        pass: Option<&mut ChunkedPass>,
    ) -> Result<AgentLogProbs> {
        let lens: Vec<usize> = seqs.iter().map(|s| s.len().saturating_sub(1)).collect();
        let Some(pass) = pass else {
            let lp = self.candle_log_probs(seqs, true)?;
            return Ok(AgentLogProbs {
                rows: rows_of(&lp, &lens)?,
                graph: Some(lp),
                skip: 0,
            });
        };
        check_seqs(seqs)?;
        let to_f64 = |lp: Vec<Vec<f32>>| -> Vec<Vec<f64>> {
            lp.into_iter()
                .map(|r| r.into_iter().map(f64::from).collect())
                .collect()
        };
        match self.prefix() {
            None => Ok(AgentLogProbs {
                rows: to_f64(pass.forward(&self.agent, &teacher_rows(seqs, 0), None)?),
                graph: None,
                skip: 0,
            }),
            Some(prefix) => {
                // x_1 from the prior (one BOS forward); the prompt stands in for BOS after it.
                let first = self.first_token_log_probs()?;
                let rest = to_f64(pass.forward(&self.agent, &teacher_rows(seqs, 1), Some(prefix))?);
                let rows = seqs
                    .iter()
                    .zip(rest)
                    .map(|(s, rest)| std::iter::once(first[s[1] as usize]).chain(rest).collect())
                    .collect();
                Ok(AgentLogProbs {
                    rows,
                    graph: None,
                    skip: 1,
                })
            }
        }
    }

    /// Gradients of the surrogate `−Σ_b Σ_t weights[b][t] · log π(x_bt)` with respect to the
    /// trainable variables, from what [`Policy::agent_log_probs`] kept (same `pass`).
    pub fn agent_gradients(
        &self,
        lp: &AgentLogProbs,
        weights: &[Vec<f64>],
        pass: Option<&mut ChunkedPass>,
    ) -> Result<GradStore> {
        if let Some(graph) = &lp.graph {
            let (gb, gt) = graph.dims2()?;
            let mut w = vec![0f32; gb * gt];
            for (r, row) in weights.iter().enumerate().take(gb) {
                for (c, &v) in row.iter().enumerate().take(gt) {
                    w[r * gt + c] = v as f32;
                }
            }
            let w = Tensor::from_vec(w, (gb, gt), graph.device())?;
            return Ok((graph * w)?.sum_all()?.neg()?.backward()?);
        }
        let pass = pass
            .ok_or_else(|| Error::config("policy", "agent_gradients needs the pass that ran the forward"))?;
        let w: Vec<Vec<f32>> = weights
            .iter()
            .map(|row| row.iter().skip(lp.skip).map(|&v| v as f32).collect())
            .collect();
        let target = match self.mode {
            PolicyMode::Full => GradTarget::Weights,
            PolicyMode::Prefix => GradTarget::PrefixOnly,
        };
        Ok(pass.backward(&w, target)?)
    }

    /// The frozen prior's per-token log-probabilities of `seqs`, one row per sequence; by the
    /// hand-written pass when given, else by candle's forward.
    pub fn prior_log_probs(
        &self,
        seqs: &[Vec<u32>],
        pass: Option<&mut ChunkedPass>,
    ) -> Result<Vec<Vec<f64>>> {
        let lens: Vec<usize> = seqs.iter().map(|s| s.len().saturating_sub(1)).collect();
        match pass {
            Some(pass) => {
                check_seqs(seqs)?;
                let lp = pass.log_probs(&self.prior, &teacher_rows(seqs, 0), None)?;
                Ok(lp
                    .into_iter()
                    .map(|r| r.into_iter().map(f64::from).collect())
                    .collect())
            }
            None => rows_of(&self.candle_log_probs(seqs, false)?, &lens),
        }
    }

    /// log p(x_1 | BOS) under the prior, for every token.
    fn first_token_log_probs(&self) -> Result<Vec<f64>> {
        let first = self
            .prior
            .forward(&Tensor::new(&[[BOS]], self.agent.device())?, None)?; // (1, 1, V)
        let first = first.flatten_all()?.to_vec1::<f32>()?;
        let max = first.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let lse = max + first.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
        Ok(first.iter().map(|&v| v as f64 - lse).collect())
    }

    /// Per-token log-probabilities `(B, T)` through candle's `Gpt::forward` (zero at padding):
    /// under the agent (differentiable) or the prior (detached).
    fn candle_log_probs(&self, seqs: &[Vec<u32>], agent: bool) -> Result<Tensor> {
        let device = self.agent.device();
        let (input, target) = pad_batch(seqs, device)?;
        let mask = target.ne(PAD)?.to_dtype(candle_core::DType::F32)?;
        let lp = match (agent, self.prefix()) {
            (false, _) => model::token_log_probs(&self.prior.forward(&input, None)?, &target)?.detach(),
            (true, None) => model::token_log_probs(&self.agent.forward(&input, None)?, &target)?,
            (true, Some(prefix)) => {
                // Column 0 (x_1 after BOS) from the prior; the prompt replaces BOS for the rest.
                let first = self.prior.forward(&input.narrow(1, 0, 1)?.contiguous()?, None)?;
                let first = model::token_log_probs(&first, &target.narrow(1, 0, 1)?.contiguous()?)?.detach(); // (B, 1)
                let t = input.dim(1)?;
                if t == 1 {
                    first
                } else {
                    let rest_in = input.narrow(1, 1, t - 1)?.contiguous()?;
                    let rest_tg = target.narrow(1, 1, t - 1)?.contiguous()?;
                    let rest =
                        model::token_log_probs(&self.agent.forward(&rest_in, Some(prefix))?, &rest_tg)?;
                    Tensor::cat(&[&first, &rest], 1)?
                }
            }
        };
        Ok((lp * mask)?)
    }

    /// Saves the trainable part (prefix, or every agent weight) to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        match &self.prefix {
            Some(v) => {
                let ts = HashMap::from([(PREFIX_VAR.to_string(), v.as_tensor().clone())]);
                candle_core::safetensors::save(&ts, path)?;
            }
            None => self.varmap.save(path)?,
        }
        Ok(())
    }

    /// Restores what [`Policy::save`] wrote; errors name the file.
    pub fn load_trainable(&mut self, path: &Path) -> Result<()> {
        match &self.prefix {
            Some(v) => {
                let ts = candle_core::safetensors::load(path, self.agent.device())
                    .map_err(|e| Error::checkpoint(path, e))?;
                let t = ts
                    .get(PREFIX_VAR)
                    .ok_or_else(|| Error::checkpoint(path, "no prefix tensor"))?;
                if t.shape() != v.shape() {
                    return Err(Error::checkpoint(
                        path,
                        format!("prefix shape {:?}, config wants {:?}", t.shape(), v.shape()),
                    ));
                }
                v.set(t)?;
            }
            None => self.varmap.load(path).map_err(|e| Error::checkpoint(path, e))?,
        }
        Ok(())
    }
}

/// Teacher-forcing tensors for `[BOS] + tokens` sequences; rejects sequences without BOS.
fn pad_batch(seqs: &[Vec<u32>], device: &Device) -> Result<(Tensor, Tensor)> {
    check_seqs(seqs)?;
    Ok(model::sample::pad_batch(seqs, device)?)
}

fn check_seqs(seqs: &[Vec<u32>]) -> Result<()> {
    match seqs.iter().find(|s| s.len() < 2 || s[0] != BOS) {
        Some(s) => Err(Error::config(
            "seqs",
            format!("a sequence needs BOS and a token, got {s:?}"),
        )),
        None => Ok(()),
    }
}

/// The agent's log-probabilities of a batch ([`Policy::agent_log_probs`]).
pub struct AgentLogProbs {
    /// log π of each token of each sequence.
    pub rows: Vec<Vec<f64>>,
    /// candle's `(B, T)` log-probs when the hand-written pass was not used.
    graph: Option<Tensor>,
    /// Leading tokens per sequence without a gradient (prefix mode: x_1, read from the prior).
    skip: usize,
}

/// Rows of a `(B, T)` tensor, cut to `lens`.
fn rows_of(lp: &Tensor, lens: &[usize]) -> Result<Vec<Vec<f64>>> {
    let rows = lp.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    Ok(rows
        .into_iter()
        .zip(lens)
        .map(|(r, &l)| r[..l].to_vec())
        .collect())
}

/// Teacher-forcing `(input, target)` of each sequence (checked by [`check_seqs`]) after its first
/// `skip` tokens: input = tokens without the last, target = tokens shifted by one.
fn teacher_rows(seqs: &[Vec<u32>], skip: usize) -> Vec<(&[u32], &[u32])> {
    seqs.iter()
        .map(|s| {
            let n = s.len() - 1;
            (&s[skip.min(n)..n], &s[(1 + skip).min(s.len())..])
        })
        .collect()
}
