//! Discrete prompts (after RLPrompt, Deng et al. 2022, with plain REINFORCE): a policy writes
//! SMILES beginnings of K tokens, the frozen prior completes each one M times, and a prompt is
//! rewarded with its completions' mean reward, z-scored across the step's prompts.
//!
//! The policy is the frozen prior with a small MLP added to its last hidden state before the
//! output head, `h + W₂·tanh(W₁·h + b₁) + b₂`, W₂ and b₂ starting at zero: the untuned policy
//! writes prompts as the prior would begin molecules. PAD, BOS and EOS are masked out of its
//! distribution (a prompt is a beginning, never a whole molecule), and its log-probabilities are
//! those of the masked, renormalised distribution it samples from.
//!
//! With `[loss] kl_beta` β, a prompt's reward is lowered by β·(log π − log p_prior) of its own
//! tokens before z-scoring (without it the policy soon writes one prompt only).
//!
//! `RUN/prompts.csv` ranks every prompt written so far by its completions' mean reward, shrunk
//! towards the run's mean by M pseudo-completions (a prompt written once has 8 noisy
//! completions; one written often, hundreds), with
//! their validity, uniqueness, QED and SA: a learned prompt is readable ("O=C(Nc1ccc…") and
//! samples with `smirl sample --prompts RUN/prompts.csv --top N` from any prior sharing the
//! vocabulary.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var, D};
use chem::Molecule;
use model::optim::AdamW;
use model::rng::Rng;
use model::{Gpt, SampleOptions, Vocab, BOS, EOS, PAD};
use serde::{Deserialize, Serialize};

use crate::batch_metrics::BatchMetrics;
use crate::candidates::CandidateTable;
use crate::config::LossConfig;
use crate::reinforce::{adam, novelty_reference};
use crate::run::{check_optimizer, Tuner};
use crate::run_dir::{CANDIDATES_FILE, OPTIMIZER_FILE, STATE_FILE, TRAINABLE_FILE};
use crate::scoring::components::{MolBatch, Novelty, ScoringContext};
use crate::scoring::Scorer;
use crate::{Error, Result, SmilesSource, StepLog, TuneConfig};

pub use crate::run_dir::PROMPTS_FILE;

/// The prompt-writing policy: the frozen prior plus a trainable MLP before its head.
pub struct PromptPolicy {
    prior: Gpt,
    w1: Var, // (C, H)
    b1: Var, // (H)
    w2: Var, // (H, C), zero at init
    b2: Var, // (C), zero at init
    /// `(V)`: 0 for tokens a prompt may use, −1e9 for PAD, BOS and EOS.
    mask: Tensor,
}

impl PromptPolicy {
    /// A policy over `prior` (detached) with an MLP of width `hidden`, seeded.
    pub fn new(prior: &Gpt, hidden: usize, seed: u64) -> Result<Self> {
        let cfg = prior.config();
        let (c, v, dev) = (cfg.n_embd, cfg.vocab_size, prior.device());
        let mut rng = Rng::derive(seed, 0x4450_524d); // "DPRM"
        let std = 1.0 / (c as f64).sqrt();
        let w1: Vec<f32> = (0..c * hidden).map(|_| (rng.normal() * std) as f32).collect();
        let var = |t: Tensor| -> Result<Var> { Ok(Var::from_tensor(&t)?) };
        let mask: Vec<f32> = (0..v as u32)
            .map(|id| {
                if id == PAD || id == BOS || id == EOS {
                    -1e9
                } else {
                    0.0
                }
            })
            .collect();
        Ok(Self {
            prior: prior.detached(),
            w1: var(Tensor::from_vec(w1, (c, hidden), dev)?)?,
            b1: var(Tensor::zeros(hidden, DType::F32, dev)?)?,
            w2: var(Tensor::zeros((hidden, c), DType::F32, dev)?)?,
            b2: var(Tensor::zeros(c, DType::F32, dev)?)?,
            mask: Tensor::from_vec(mask, v, dev)?,
        })
    }

    /// The trainable variables by checkpoint name.
    pub fn vars(&self) -> HashMap<String, Var> {
        [
            ("mlp.w1", &self.w1),
            ("mlp.b1", &self.b1),
            ("mlp.w2", &self.w2),
            ("mlp.b2", &self.b2),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
    }

    /// Masked log-probabilities `(B, T, V)` of the next token after each position of `idx`,
    /// under the policy (`tuned`, differentiable in the MLP) or the plain prior.
    fn log_probs_all(&self, idx: &Tensor, tuned: bool) -> Result<Tensor> {
        let h = self.prior.forward_hidden(idx)?; // (B, T, C)
        let h = if tuned {
            let (b, t, c) = h.dims3()?;
            let flat = h.reshape((b * t, c))?;
            let mid = flat
                .matmul(self.w1.as_tensor())?
                .broadcast_add(&self.b1)?
                .tanh()?;
            let delta = mid.matmul(self.w2.as_tensor())?.broadcast_add(&self.b2)?;
            (flat + delta)?.reshape((b, t, c))?
        } else {
            h
        };
        let logits = self.prior.head(&h)?.broadcast_add(&self.mask)?;
        Ok(candle_nn::ops::log_softmax(&logits, D::Minus1)?)
    }

    /// `n` prompts of `k` tokens (no BOS), drawn token by token from the policy.
    pub fn sample(&self, n: usize, k: usize, top_k: usize, rng: &mut Rng) -> Result<Vec<Vec<u32>>> {
        let dev = self.prior.device().clone();
        let mut rows: Vec<Vec<u32>> = vec![vec![BOS]; n];
        for _ in 0..k {
            let t = rows[0].len();
            let flat: Vec<u32> = rows.iter().flatten().copied().collect();
            let idx = Tensor::from_vec(flat, (n, t), &dev)?;
            let lp = self.log_probs_all(&idx, true)?.narrow(1, t - 1, 1)?.squeeze(1)?; // (n, V)
            let opts = SampleOptions {
                top_k,
                temperature: 1.0,
                ..Default::default()
            };
            for (row, lp) in rows.iter_mut().zip(lp.to_dtype(DType::F64)?.to_vec2::<f64>()?) {
                row.push(model::sample::pick(&lp, &opts, rng)); // masked tokens have weight 0
            }
        }
        Ok(rows.into_iter().map(|r| r[1..].to_vec()).collect())
    }

    /// Per prompt: log π(prompt) as a graph `(P,)`, and the plain prior's log p(prompt).
    pub fn prompt_log_probs(&self, prompts: &[Vec<u32>]) -> Result<(Tensor, Vec<f64>)> {
        let (p, k) = (prompts.len(), prompts.first().map_or(0, Vec::len));
        let dev = self.prior.device().clone();
        let input: Vec<u32> = prompts
            .iter()
            .flat_map(|r| std::iter::once(BOS).chain(r[..k - 1].iter().copied()))
            .collect();
        let target: Vec<u32> = prompts.iter().flatten().copied().collect();
        let input = Tensor::from_vec(input, (p, k), &dev)?;
        let target = Tensor::from_vec(target, (p, k, 1), &dev)?;
        let pick =
            |lp: Tensor| -> Result<Tensor> { Ok(lp.gather(&target, D::Minus1)?.squeeze(D::Minus1)?.sum(1)?) };
        let tuned = pick(self.log_probs_all(&input, true)?)?;
        let prior = pick(self.log_probs_all(&input, false)?)?;
        let prior = prior.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        Ok((tuned, prior))
    }
}

/// What the run knows of one prompt, summed over the steps that wrote it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptStats {
    /// Steps that wrote it (a step may write it more than once).
    pub times: usize,
    /// Completions scored.
    pub completions: usize,
    /// Valid completions.
    pub valid: usize,
    /// Distinct valid completions, summed over the times it was written.
    pub distinct: usize,
    /// Sums over the valid completions.
    pub qed_sum: f64,
    /// Sum of SA scores over the valid completions.
    pub sa_sum: f64,
    /// Sum of rewards over all completions (invalid = 0).
    pub reward_sum: f64,
}

/// Checkpointed state of a discrete-prompt run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiscreteState {
    /// Steps completed.
    pub step: usize,
    /// Every prompt written, by its SMILES text.
    pub prompts: BTreeMap<String, PromptStats>,
    /// Every distinct valid completion.
    pub candidates: CandidateTable,
    /// Optimizer updates (checked on resume).
    pub optimizer_steps: usize,
}

/// `smirl tune` in discrete_prompt mode.
pub struct DiscreteTrainer {
    cfg: TuneConfig,
    policy: PromptPolicy,
    vocab: Vocab,
    opt: AdamW,
    scorer: Scorer,
    novelty_ref: Novelty,
    state: DiscreteState,
}

impl DiscreteTrainer {
    /// A trainer at step 0 over the prior in `model_dir`; reference molecules come from `refs`.
    pub fn new(cfg: TuneConfig, model_dir: &Path, device: &Device, refs: &dyn SmilesSource) -> Result<Self> {
        cfg.validate()?;
        let run = model::load_checkpoint(model_dir, device)?;
        let d = &cfg.discrete_prompt;
        if d.length + 1 >= run.config.block_size {
            return Err(Error::config(
                "discrete_prompt.length",
                format!(
                    "{} leaves no room in the prior's block_size {}",
                    d.length, run.config.block_size
                ),
            ));
        }
        let policy = PromptPolicy::new(&run.model, d.hidden, cfg.seed)?;
        let opt = adam(policy.vars(), cfg.lr)?;
        let scorer = Scorer::new(&cfg.scoring, Path::new("."), refs)?;
        Ok(Self {
            novelty_ref: novelty_reference(&cfg, refs)?,
            cfg,
            policy,
            vocab: run.vocab,
            opt,
            scorer,
            state: DiscreteState::default(),
        })
    }

    /// Writes `prompts.csv`: every prompt, best first by its mean reward shrunk towards the
    /// run's mean by `completions` pseudo-completions (the `score` column).
    pub fn write_prompts(&self, path: &Path) -> Result<()> {
        let mut rows: Vec<(&String, &PromptStats)> = self.state.prompts.iter().collect();
        let (sum, count) = rows.iter().fold((0.0, 0usize), |(s, c), (_, st)| {
            (s + st.reward_sum, c + st.completions)
        });
        let run_mean = sum / count.max(1) as f64;
        let k = self.cfg.discrete_prompt.completions as f64;
        let score = |s: &PromptStats| (s.reward_sum + k * run_mean) / (s.completions as f64 + k);
        rows.sort_by(|a, b| score(b.1).total_cmp(&score(a.1)).then(a.0.cmp(b.0)));
        let mut w = csv::Writer::from_path(path).map_err(|e| Error::checkpoint(path, e))?;
        let header = [
            "rank",
            "prompt",
            "times",
            "completions",
            "validity",
            "uniqueness",
            "mean_qed",
            "mean_sa",
            "mean_reward",
            "score",
        ];
        w.write_record(header).map_err(|e| Error::checkpoint(path, e))?;
        let ratio = |a: f64, b: usize| {
            if b == 0 {
                String::new()
            } else {
                format!("{:.4}", a / b as f64)
            }
        };
        for (rank, (prompt, s)) in rows.iter().enumerate() {
            w.write_record([
                (rank + 1).to_string(),
                prompt.to_string(),
                s.times.to_string(),
                s.completions.to_string(),
                ratio(s.valid as f64, s.completions),
                ratio(s.distinct as f64, s.valid),
                ratio(s.qed_sum, s.valid),
                ratio(s.sa_sum, s.valid),
                ratio(s.reward_sum, s.completions),
                format!("{:.4}", score(s)),
            ])
            .map_err(|e| Error::checkpoint(path, e))?;
        }
        w.flush().map_err(|e| Error::io(path, e))?;
        Ok(())
    }
}

impl Tuner for DiscreteTrainer {
    fn step(&mut self) -> Result<StepLog> {
        let t0 = Instant::now();
        let step = self.state.step + 1;
        let d = self.cfg.discrete_prompt.clone();
        let mut rng = Rng::derive(self.cfg.seed, step as u64);
        let n_prompts = self.cfg.batch_size / d.completions;
        let prompts = self.policy.sample(n_prompts, d.length, d.top_k, &mut rng)?;
        let opts = SampleOptions {
            n: n_prompts * d.completions,
            batch_size: self.cfg.sampling.decode_batch,
            temperature: self.cfg.sampling.temperature,
            top_k: 0,
            top_p: 1.0,
            max_len: self.cfg.sampling.max_len,
            seed: rng.next_u64(),
            // The update's likelihoods are the unmasked model's, so the completions are too.
            grammar: false,
            redraw_rounds: 0,
            abandon_below: 0.0,
            first_batch: 0,
        };
        // Completion i continues prompt i mod n_prompts.
        let samples = model::sample_continuing(&self.policy.prior, &self.vocab, None, &opts, &prompts)?;
        let sample_seconds = t0.elapsed().as_secs_f64();

        let smiles: Vec<String> = samples.iter().map(|s| s.smiles.clone()).collect();
        let complete: Vec<bool> = samples.iter().map(|s| s.complete).collect();
        let batch = MolBatch::new(&smiles, Some(&complete));
        let n = batch.len();
        let ctx = ScoringContext {
            seen: Some(&self.state.candidates),
            memory: &[],
        };
        let scores = self.scorer.score(&batch, &ctx)?;
        let rewards = &scores.total;
        let qed = batch.map_f64(|m: &Molecule| m.qed().ok());
        let sa = batch.map_f64(|m: &Molecule| m.sa_score().ok());
        let valid: Vec<usize> = (0..n).filter(|&i| batch.is_valid(i)).collect();

        // Per-prompt rewards and statistics.
        let mut prompt_reward = vec![0.0; n_prompts];
        let mut per_prompt: Vec<PromptStats> = vec![PromptStats::default(); n_prompts];
        let mut distinct: Vec<HashSet<&str>> = vec![HashSet::new(); n_prompts];
        for i in 0..n {
            let p = i % n_prompts;
            let st = &mut per_prompt[p];
            st.completions += 1;
            st.reward_sum += rewards[i];
            prompt_reward[p] += rewards[i] / d.completions as f64;
            if let Some(c) = batch.canonical[i].as_deref() {
                st.valid += 1;
                distinct[p].insert(c);
                st.qed_sum += if qed[i].is_nan() { 0.0 } else { qed[i] };
                st.sa_sum += if sa[i].is_nan() { 0.0 } else { sa[i] };
            }
        }
        for (p, prompt) in prompts.iter().enumerate() {
            let mut st = std::mem::take(&mut per_prompt[p]);
            st.times = 1;
            st.distinct = distinct[p].len();
            let entry = self.state.prompts.entry(self.vocab.decode(prompt)).or_default();
            entry.times += st.times;
            entry.completions += st.completions;
            entry.valid += st.valid;
            entry.distinct += st.distinct;
            entry.qed_sum += st.qed_sum;
            entry.sa_sum += st.sa_sum;
            entry.reward_sum += st.reward_sum;
        }
        for &i in &valid {
            let c = batch.canonical[i].as_deref().expect("valid");
            let comps = scores.components.iter().map(|col| col[i]).collect();
            self.state.candidates.record(c, step, rewards[i], comps);
        }
        let score_seconds = t0.elapsed().as_secs_f64() - sample_seconds;

        // REINFORCE on the prompt tokens with z-scored prompt rewards, less the KL penalty.
        let (lp, prior_lp) = self.policy.prompt_log_probs(&prompts)?;
        let policy_lp = lp.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let kl_beta = match self.cfg.loss {
            LossConfig::Reinforce { kl_beta, .. } => kl_beta,
            _ => 0.0,
        };
        for ((r, a), b) in prompt_reward.iter_mut().zip(&policy_lp).zip(&prior_lp) {
            *r -= kl_beta * (a - b);
        }
        let mean = prompt_reward.iter().sum::<f64>() / n_prompts as f64;
        let std = (prompt_reward.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n_prompts as f64).sqrt();
        let adv: Vec<f32> = prompt_reward
            .iter()
            .map(|r| ((r - mean) / (std + 1e-8) / n_prompts as f64) as f32)
            .collect();
        let adv_t = Tensor::from_vec(adv, n_prompts, lp.device())?;
        let loss = (&lp * adv_t)?.sum_all()?.neg()?;
        let loss_value = loss.to_scalar::<f32>()? as f64;
        let grads = loss.backward()?;
        self.opt.step(&grads, 1.0)?;
        self.state.step = step;
        self.state.optimizer_steps = self.opt.step_count();
        let kl = policy_lp.iter().zip(&prior_lp).map(|(a, b)| a - b).sum::<f64>() / n_prompts as f64;
        let entropy = -policy_lp.iter().sum::<f64>() / (n_prompts * d.length) as f64;

        let metrics = BatchMetrics::of(&batch, &scores.components, &self.novelty_ref);
        let seconds = t0.elapsed().as_secs_f64();
        Ok(StepLog {
            step,
            mean_reward: rewards.iter().sum::<f64>() / n as f64,
            max_reward: rewards.iter().copied().fold(0.0, f64::max),
            components: metrics.components,
            validity: metrics.validity,
            uniqueness: metrics.uniqueness,
            novelty: metrics.novelty,
            int_div1: metrics.int_div1,
            kl,
            entropy,
            loss: loss_value,
            replayed: 0,
            filtered: 0,
            oracle: self.state.candidates.progress(self.cfg.max_oracle_calls),
            seconds,
            sample_seconds,
            score_seconds,
            update_seconds: seconds - sample_seconds - score_seconds,
        })
    }

    fn steps_done(&self) -> usize {
        self.state.step
    }

    fn component_names(&self) -> Vec<String> {
        self.scorer.names().to_vec()
    }

    fn candidate_table(&self) -> &CandidateTable {
        &self.state.candidates
    }

    fn trainable(&self) -> (usize, usize) {
        let n = self.policy.vars().values().map(|v| v.elem_count()).sum();
        (n, self.policy.prior.num_params())
    }

    fn save(&mut self, dir: &Path) -> Result<()> {
        let ts: HashMap<String, Tensor> = self
            .policy
            .vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&ts, dir.join(TRAINABLE_FILE))?;
        self.opt.save(&dir.join(OPTIMIZER_FILE))?;
        let json = serde_json::to_vec(&self.state).map_err(|e| Error::checkpoint(dir, e))?;
        model::checkpoint::write_atomic(&dir.join(STATE_FILE), &json)?;
        Ok(())
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let state: DiscreteState = serde_json::from_slice(&text).map_err(|e| Error::checkpoint(&path, e))?;
        let tpath = dir.join(TRAINABLE_FILE);
        let ts = candle_core::safetensors::load(&tpath, self.policy.prior.device())
            .map_err(|e| Error::checkpoint(&tpath, e))?;
        for (name, var) in self.policy.vars() {
            let t = ts
                .get(&name)
                .ok_or_else(|| Error::checkpoint(&tpath, format!("no {name} tensor")))?;
            if t.dims() != var.dims() {
                return Err(Error::checkpoint(
                    &tpath,
                    format!("{name} has shape {:?}", t.dims()),
                ));
            }
            var.set(t)?;
        }
        check_optimizer(&mut self.opt, dir, state.optimizer_steps)?;
        self.state = state;
        Ok(())
    }

    fn write_outputs(&self, out: &Path) -> Result<()> {
        self.state.candidates.write_csv(
            &out.join(CANDIDATES_FILE),
            self.scorer.names(),
            self.cfg.top_candidates,
        )?;
        self.write_prompts(&out.join(PROMPTS_FILE))
    }

    fn save_agent(&self, _path: &Path) -> Result<bool> {
        Ok(false) // the agent is prompts.csv
    }
}
