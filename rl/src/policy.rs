//! The policy being tuned: the pretrained GPT steered by one of
//! - a deep prefix (`prefix` mode, [`crate::deep_prefix`]): learned keys and values at every
//!   layer, every GPT weight frozen; the first token is steered like the rest;
//! - a soft prompt (`soft_prompt` mode): learned input vectors, every GPT weight frozen;
//! - LoRA adapters (`lora` mode, [`crate::lora`]): low-rank updates of the block matrices;
//! - all weights trainable (`full` mode);
//!
//! plus a frozen copy of the prior for KL and REINVENT's augmented likelihood.
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
use model::train_pass::{ChunkedPass, GradTarget, TrainPass};
use model::{Gpt, Sample, SampleOptions, Vocab, BOS, EOS, PAD};

use crate::config::{PolicyMode, SoftPromptInit, TuneConfig};
use crate::deep_prefix::DeepPrefix;
use crate::lora::Lora;
use crate::{Error, Result, SmilesSource};

/// Name of the soft-prompt variable in checkpoints.
pub const PREFIX_VAR: &str = "prefix";

/// The agent (a prompt + the frozen GPT, or a trainable GPT) and its frozen prior.
pub struct Policy {
    mode: PolicyMode,
    /// Prompt modes: the prior's detached weights; full mode: the trainable weights of `varmap`.
    agent: Gpt,
    prior: Gpt,
    prior_varmap: VarMap,
    varmap: VarMap,
    /// Soft-prompt mode: the prompt vectors.
    prefix: Option<Var>,
    /// Prefix mode: the deep prefix.
    deep: Option<DeepPrefix>,
    /// LoRA mode: the adapters.
    lora: Option<Lora>,
    vocab: Vocab,
    /// The hand-written CPU passes that teacher-force the agent and the prior, where they support
    /// the models (f32 on the CPU); `None`: candle's graph and forward (CUDA, or on request).
    passes: Option<Box<(ChunkedPass, ChunkedPass)>>,
    /// Whether the run's config samples under the SMILES grammar (`[sampling] grammar`): the
    /// distribution the agent was trained as, so `smirl sample --agent` draws from it too.
    grammar: bool,
}

impl Policy {
    /// Loads the prior from a model directory (`smirl pretrain` output) and builds the trainable
    /// part `cfg.mode` asks for (seeded by `cfg.seed`); full mode loads the weights a second
    /// time as the trainable agent (the optimizer updates `Var`s in place, so the prior needs
    /// its own).
    /// A `prior_kv` prefix reads real molecules from `refs`.
    pub fn load(
        model_dir: &Path,
        cfg: &TuneConfig,
        device: &Device,
        refs: &dyn SmilesSource,
    ) -> Result<Self> {
        let mut policy = Self::build(model_dir, cfg, device, refs)?;
        policy.use_autograd(false);
        policy.grammar = cfg.sampling.grammar;
        Ok(policy)
    }

    /// Whether the run trained this agent under the SMILES grammar (`[sampling] grammar`).
    pub fn trained_with_grammar(&self) -> bool {
        self.grammar
    }

    /// Teacher-forces through candle's graph (`true`) or, where it supports the models, the
    /// hand-written CPU pass (`false`, the default); the two agree (tests), this is for comparing.
    pub fn use_autograd(&mut self, autograd: bool) {
        let hand_written = !autograd && TrainPass::supports(&self.agent) && TrainPass::supports(&self.prior);
        self.passes = hand_written.then(|| Box::new((ChunkedPass::new(), ChunkedPass::new())));
    }

    /// Whether the hand-written CPU pass teacher-forces (else candle's graph).
    pub fn is_hand_written(&self) -> bool {
        self.passes.is_some()
    }

    fn build(model_dir: &Path, cfg: &TuneConfig, device: &Device, refs: &dyn SmilesSource) -> Result<Self> {
        let prior_run = model::load_checkpoint(model_dir, device)?;
        let prior = prior_run.model.detached();
        let vocab = prior_run.vocab;
        let (mode, seed, prefix) = (cfg.mode, cfg.seed, &cfg.soft_prompt);
        match mode {
            PolicyMode::Prefix => {
                let deep = DeepPrefix::new(&prior, &vocab, &cfg.prefix, seed, refs)?;
                Ok(Self {
                    mode,
                    agent: prior.clone(),
                    prior,
                    prior_varmap: prior_run.varmap,
                    varmap: VarMap::new(),
                    prefix: None,
                    deep: Some(deep),
                    lora: None,
                    vocab,
                    passes: None,
                    grammar: false,
                })
            }
            PolicyMode::Lora => {
                let lora = Lora::new(&prior, &cfg.lora, seed)?;
                Ok(Self {
                    mode,
                    agent: prior.clone(),
                    prior,
                    prior_varmap: prior_run.varmap,
                    varmap: VarMap::new(),
                    prefix: None,
                    deep: None,
                    lora: Some(lora),
                    vocab,
                    passes: None,
                    grammar: false,
                })
            }
            PolicyMode::SoftPrompt => {
                let c = prior_run.config.n_embd;
                let p = prefix.length;
                if p + 1 > prior_run.config.block_size {
                    return Err(Error::config(
                        "soft_prompt.length",
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
                        SoftPromptInit::Tokens => {
                            let n_special = EOS as usize + 1;
                            let n_tok = vocab.len().saturating_sub(n_special).max(1);
                            let ids: Vec<u32> = (0..p - 1)
                                .map(|_| (n_special + rng.below(n_tok)) as u32)
                                .collect();
                            wte.index_select(&Tensor::new(ids.as_slice(), device)?, 0)?
                        }
                        SoftPromptInit::Noise => {
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
                    deep: None,
                    lora: None,
                    vocab,
                    passes: None,
                    grammar: false,
                })
            }
            PolicyMode::DiscretePrompt => Err(Error::config(
                "mode",
                "a discrete_prompt run has no agent to sample: sample its prompts with \
                 `smirl sample --prompts RUN/prompts.csv --top N`",
            )),
            PolicyMode::Full => {
                let agent_run = model::load_checkpoint(model_dir, device)?;
                Ok(Self {
                    mode,
                    agent: agent_run.model,
                    prior,
                    prior_varmap: prior_run.varmap,
                    varmap: agent_run.varmap,
                    prefix: None,
                    deep: None,
                    lora: None,
                    vocab,
                    passes: None,
                    grammar: false,
                })
            }
        }
    }

    /// Which part is trained.
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
        match (&self.prefix, &self.deep, &self.lora) {
            (Some(v), _, _) => HashMap::from([(PREFIX_VAR.to_string(), v.clone())]),
            (None, Some(deep), _) => deep.vars(),
            (None, None, Some(lora)) => lora.vars(),
            (None, None, None) => self.varmap.data().lock().map(|m| m.clone()).unwrap_or_default(),
        }
    }

    /// Number of trainable parameters, and the prior's.
    pub fn num_trainable(&self) -> (usize, usize) {
        let trainable = self.trainable_vars().values().map(|v| v.elem_count()).sum();
        (trainable, self.prior.num_params())
    }

    /// The agent as a model: the prior with the deep prefix's current keys and values (a graph
    /// into the trainable variables unless `detach`), or the agent GPT in the other modes.
    fn agent_model(&self, detach: bool) -> Result<Gpt> {
        if let Some(lora) = &self.lora {
            return lora.merged(&self.prior, detach);
        }
        match &self.deep {
            None => Ok(self.agent.clone()),
            Some(deep) => {
                let kv = deep.kv()?;
                let kv = if detach { kv.detach() } else { kv };
                Ok(self.prior.with_kv_prefix(Some(kv))?)
            }
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
        self.sample_continuing(opts, &[])
    }

    /// [`Policy::sample`] where molecule i begins with the tokens `starts[i % starts.len()]`
    /// (see `model::sample_continuing`).
    pub fn sample_continuing(&self, opts: &SampleOptions, starts: &[Vec<u32>]) -> Result<Vec<Sample>> {
        if self.deep.is_some() || self.lora.is_some() {
            let agent = self.agent_model(true)?;
            return Ok(model::sample_continuing(&agent, &self.vocab, None, opts, starts)?);
        }
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
        Ok(model::sample_continuing(
            &self.agent,
            &self.vocab,
            prompt,
            opts,
            starts,
        )?)
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
    /// `masks` (per sequence, its targets' allowed tokens, `(len − 1) × V`, as
    /// `SmilesGrammar::masks_along` gives them): the log-probs of the distribution renormalised
    /// over the allowed tokens, what grammar-constrained sampling draws from.
    pub fn agent_log_probs(
        &mut self,
        seqs: &[Vec<u32>],
        masks: Option<&[Vec<bool>]>,
    ) -> Result<AgentLogProbs> {
        let mut passes = self.passes.take();
        let out = self.agent_log_probs_with(seqs, masks, passes.as_mut().map(|p| &mut p.0));
        self.passes = passes;
        out
    }

    fn agent_log_probs_with(
        &self,
        seqs: &[Vec<u32>],
        masks: Option<&[Vec<bool>]>,
        pass: Option<&mut ChunkedPass>,
    ) -> Result<AgentLogProbs> {
        let lens: Vec<usize> = seqs.iter().map(|s| s.len().saturating_sub(1)).collect();
        self.check_masks(seqs, masks)?;
        if self.deep.is_some() || self.lora.is_some() {
            let agent = self.agent_model(false)?;
            // What the chain rule of `agent_gradients` starts from: the deep prefix, or the
            // merged weights.
            let kv = match &self.lora {
                None => agent.kv_prefix().cloned().into_iter().collect(),
                Some(lora) => {
                    let names: std::collections::HashSet<&str> = lora.adapted().collect();
                    agent
                        .parameters()
                        .into_iter()
                        .filter(|(n, _)| names.contains(n.as_str()))
                        .map(|(_, t)| t)
                        .collect()
                }
            };
            let Some(pass) = pass else {
                let (input, target) = pad_batch(seqs, agent.device())?;
                let mask = target.ne(PAD)?.to_dtype(DType::F32)?;
                let logits = apply_masks(&agent.forward(&input, None)?, masks, 0)?;
                let lp = (model::token_log_probs(&logits, &target)? * mask)?;
                return Ok(AgentLogProbs {
                    rows: rows_of(&lp, &lens)?,
                    graph: Some(lp),
                    skip: 0,
                    kv: Vec::new(),
                });
            };
            check_seqs(seqs)?;
            let rows = pass.forward(&agent, &teacher_rows(seqs, 0), None, masks)?;
            return Ok(AgentLogProbs {
                rows: rows
                    .into_iter()
                    .map(|r| r.into_iter().map(f64::from).collect())
                    .collect(),
                graph: None,
                skip: 0,
                kv,
            });
        }
        let Some(pass) = pass else {
            let lp = self.candle_log_probs(seqs, masks, true)?;
            return Ok(AgentLogProbs {
                rows: rows_of(&lp, &lens)?,
                graph: Some(lp),
                skip: 0,
                kv: Vec::new(),
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
                rows: to_f64(pass.forward(&self.agent, &teacher_rows(seqs, 0), None, masks)?),
                graph: None,
                skip: 0,
                kv: Vec::new(),
            }),
            Some(prefix) => {
                // x_1 from the prior (one BOS forward); the prompt stands in for BOS after it.
                let first = self.first_token_log_probs()?;
                let v = self.vocab.len();
                let rest_masks: Option<Vec<Vec<bool>>> =
                    masks.map(|m| m.iter().map(|m| m[v..].to_vec()).collect());
                let rest = to_f64(pass.forward(
                    &self.agent,
                    &teacher_rows(seqs, 1),
                    Some(prefix),
                    rest_masks.as_deref(),
                )?);
                let rows = seqs
                    .iter()
                    .enumerate()
                    .zip(rest)
                    .map(|((i, s), rest)| {
                        let first = first_under_mask(&first, masks.map(|m| &m[i][..v]));
                        std::iter::once(first[s[1] as usize]).chain(rest).collect()
                    })
                    .collect();
                Ok(AgentLogProbs {
                    rows,
                    graph: None,
                    skip: 1,
                    kv: Vec::new(),
                })
            }
        }
    }

    /// Gradients of the surrogate `−Σ_b Σ_t weights[b][t] · log π(x_bt)` with respect to the
    /// trainable variables, from what [`Policy::agent_log_probs`] kept (call it just before).
    pub fn agent_gradients(&mut self, lp: &AgentLogProbs, weights: &[Vec<f64>]) -> Result<GradStore> {
        let mut passes = self.passes.take();
        let out = self.agent_gradients_with(lp, weights, passes.as_mut().map(|p| &mut p.0));
        self.passes = passes;
        out
    }

    fn agent_gradients_with(
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
            PolicyMode::Full | PolicyMode::Lora => GradTarget::Weights,
            PolicyMode::Prefix | PolicyMode::SoftPrompt | PolicyMode::DiscretePrompt => {
                GradTarget::PrefixOnly
            }
        };
        let grads = pass.backward(&w, target)?;
        if lp.kv.is_empty() {
            return Ok(grads);
        }
        // The pass differentiates the loss in the deep prefix's keys and values (or LoRA's merged
        // weights); the chain rule into the trainable variables (through the reparameterisation,
        // or into A and B) is the gradient of Σ t · dL/dt, with dL/dt a constant.
        let mut surrogate: Option<Tensor> = None;
        for t in &lp.kv {
            let d = grads
                .get(t)
                .ok_or_else(|| Error::config("policy", "the pass formed no gradient for the prompt"))?
                .detach();
            let term = (t * d)?.sum_all()?;
            surrogate = Some(match surrogate {
                None => term,
                Some(s) => (s + term)?,
            });
        }
        Ok(surrogate.expect("kv is not empty").backward()?)
    }

    /// The frozen prior's per-token log-probabilities of `seqs`, one row per sequence; `masks`
    /// as in [`Policy::agent_log_probs`].
    pub fn prior_log_probs(
        &mut self,
        seqs: &[Vec<u32>],
        masks: Option<&[Vec<bool>]>,
    ) -> Result<Vec<Vec<f64>>> {
        let mut passes = self.passes.take();
        let out = self.prior_log_probs_with(seqs, masks, passes.as_mut().map(|p| &mut p.1));
        self.passes = passes;
        out
    }

    fn prior_log_probs_with(
        &self,
        seqs: &[Vec<u32>],
        masks: Option<&[Vec<bool>]>,
        pass: Option<&mut ChunkedPass>,
    ) -> Result<Vec<Vec<f64>>> {
        let lens: Vec<usize> = seqs.iter().map(|s| s.len().saturating_sub(1)).collect();
        self.check_masks(seqs, masks)?;
        match pass {
            Some(pass) => {
                check_seqs(seqs)?;
                let lp = pass.log_probs(&self.prior, &teacher_rows(seqs, 0), None, masks)?;
                Ok(lp
                    .into_iter()
                    .map(|r| r.into_iter().map(f64::from).collect())
                    .collect())
            }
            None => rows_of(&self.candle_log_probs(seqs, masks, false)?, &lens),
        }
    }

    /// Rejects masks that do not cover each sequence's targets.
    fn check_masks(&self, seqs: &[Vec<u32>], masks: Option<&[Vec<bool>]>) -> Result<()> {
        let Some(masks) = masks else { return Ok(()) };
        let v = self.vocab.len();
        let bad = masks.len() != seqs.len()
            || seqs
                .iter()
                .zip(masks)
                .any(|(s, m)| m.len() != s.len().saturating_sub(1) * v);
        if bad {
            return Err(Error::config(
                "masks",
                "one token mask per sequence, covering each of its targets, is needed",
            ));
        }
        Ok(())
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
    fn candle_log_probs(
        &self,
        seqs: &[Vec<u32>],
        masks: Option<&[Vec<bool>]>,
        agent: bool,
    ) -> Result<Tensor> {
        let device = self.agent.device();
        let (input, target) = pad_batch(seqs, device)?;
        let mask = target.ne(PAD)?.to_dtype(candle_core::DType::F32)?;
        let lp = match (agent, self.prefix()) {
            (false, _) => {
                let logits = apply_masks(&self.prior.forward(&input, None)?, masks, 0)?;
                model::token_log_probs(&logits, &target)?.detach()
            }
            (true, None) => {
                let logits = apply_masks(&self.agent.forward(&input, None)?, masks, 0)?;
                model::token_log_probs(&logits, &target)?
            }
            (true, Some(prefix)) => {
                // Column 0 (x_1 after BOS) from the prior; the prompt replaces BOS for the rest.
                let first = self.prior.forward(&input.narrow(1, 0, 1)?.contiguous()?, None)?;
                let first = apply_masks(&first, masks, 0)?;
                let first = model::token_log_probs(&first, &target.narrow(1, 0, 1)?.contiguous()?)?.detach(); // (B, 1)
                let t = input.dim(1)?;
                if t == 1 {
                    first
                } else {
                    let rest_in = input.narrow(1, 1, t - 1)?.contiguous()?;
                    let rest_tg = target.narrow(1, 1, t - 1)?.contiguous()?;
                    let rest = apply_masks(&self.agent.forward(&rest_in, Some(prefix))?, masks, 1)?;
                    let rest = model::token_log_probs(&rest, &rest_tg)?;
                    Tensor::cat(&[&first, &rest], 1)?
                }
            }
        };
        Ok((lp * mask)?)
    }

    /// Saves the trainable part (prompt, or every agent weight) to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(deep) = &self.deep {
            candle_core::safetensors::save(&deep.tensors()?, path)?;
            return Ok(());
        }
        if let Some(lora) = &self.lora {
            let ts: HashMap<String, Tensor> = lora
                .vars()
                .into_iter()
                .map(|(k, v)| (k, v.as_tensor().clone()))
                .collect();
            candle_core::safetensors::save(&ts, path)?;
            return Ok(());
        }
        match &self.prefix {
            Some(v) => {
                let ts = HashMap::from([(PREFIX_VAR.to_string(), v.as_tensor().clone())]);
                candle_core::safetensors::save(&ts, path)?;
            }
            None => self.varmap.save(path)?,
        }
        Ok(())
    }

    /// Saves what sampling the agent needs, where that is small (the prompt modes: the soft
    /// prompt, or the deep prefix's folded keys and values); returns whether it wrote a file.
    pub fn save_agent(&self, path: &Path) -> Result<bool> {
        if self.lora.is_some() {
            self.save(path)?; // the adapters are the agent
            return Ok(true);
        }
        let ts = match (&self.deep, &self.prefix) {
            (Some(deep), _) => {
                HashMap::from([(crate::deep_prefix::KV_PREFIX_VAR.to_string(), deep.kv()?.detach())])
            }
            (None, Some(v)) => HashMap::from([(PREFIX_VAR.to_string(), v.as_tensor().clone())]),
            (None, None) => return Ok(false),
        };
        candle_core::safetensors::save(&ts, path)?;
        Ok(true)
    }

    /// Restores what [`Policy::save`] (or, in the prompt modes, [`Policy::save_agent`]) wrote;
    /// errors name the file.
    pub fn load_trainable(&mut self, path: &Path) -> Result<()> {
        if let Some(deep) = &mut self.deep {
            let ts = candle_core::safetensors::load(path, self.agent.device())
                .map_err(|e| Error::checkpoint(path, e))?;
            return deep.restore(&ts, path);
        }
        if let Some(lora) = &self.lora {
            let ts = candle_core::safetensors::load(path, self.agent.device())
                .map_err(|e| Error::checkpoint(path, e))?;
            return lora.restore(&ts, path);
        }
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
    /// Leading tokens per sequence without a gradient (soft-prompt mode: x_1, read from the prior).
    skip: usize,
    /// Prefix and LoRA modes with the hand-written pass: the tensors the pass ran with that are
    /// a graph into the trainable variables (the deep prefix, or the merged weights).
    kv: Vec<Tensor>,
}

/// `logits (B, T, V)` with the tokens `masks` forbids pushed to -1e9, so that a softmax is over
/// the allowed ones; logit column `c` is mask position `from + c` (PAD columns past a row's end
/// are left as they are).
fn apply_masks(logits: &Tensor, masks: Option<&[Vec<bool>]>, from: usize) -> Result<Tensor> {
    let Some(masks) = masks else {
        return Ok(logits.clone());
    };
    let (b, t, v) = logits.dims3()?;
    let mut add = vec![0f32; b * t * v];
    for (row, m) in add.chunks_mut(t * v).zip(masks) {
        let m = m.get(from * v..).unwrap_or(&[]);
        for (a, &ok) in row.iter_mut().zip(m) {
            if !ok {
                *a = -1e9;
            }
        }
    }
    Ok(
        logits
            .broadcast_add(&Tensor::from_vec(add, (b, t, v), logits.device())?.to_dtype(logits.dtype())?)?,
    )
}

/// The first token's log-probs renormalised over `allowed` (all of them where `None`).
fn first_under_mask(first: &[f64], allowed: Option<&[bool]>) -> Vec<f64> {
    let mut lp = first.to_vec();
    if let Some(allowed) = allowed {
        model::sample::mask_log_probs(&mut lp, allowed);
    }
    lp
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
