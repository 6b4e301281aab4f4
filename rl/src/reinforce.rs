//! REINFORCE on the SMILES policy, one step at a time.
//!
//! Per step: sample `batch_size` molecules from the agent, score them (invalid → 0), apply the
//! scaffold diversity filter, add replayed memory molecules, and minimise one of three losses:
//!
//! - **REINFORCE** (Williams 1992): loss = −(1/B) Σ_seq Σ_t A_t · log π(a_t | s_t), with
//!   A_t = γ^(T−1−t) · (R − b) / s − β · Σ_{t'≥t} γ^(t'−t) · (log π(a_t') − log p_prior(a_t')).
//!   T counts the sequence's tokens (EOS included), so the terminal reward reaches the last token
//!   undiscounted (Taiga's γ = 0.99 from the end). b is the batch-mean or moving-average
//!   baseline, s the batch's reward standard deviation when z-scoring (else 1). The KL term is the
//!   per-token log-ratio to the frozen prior as a (detached) per-token reward, as in RLHF.
//! - **REINVENT** (Olivecrona et al. 2017): loss = (1/B) Σ_seq (log p_prior(x) + σ·R − log π(x))².
//! - **DPG** (Parshakova et al. 2019; Korbak et al. 2022): the target is P(x) ∝ p_prior(x)·exp(R/β);
//!   loss = −Σ_seq (w(x) − 1/B) · log π(x), with w the self-normalised importance weights
//!   P(x)/π(x) of the batch, minus their mean as a baseline.
//!
//! With `[replay] augmentation_rounds` (REINVENT only), Augmented Memory follows each step's
//! update with that many more on the batch and the whole memory as randomized SMILES
//! ([`crate::augmented_memory`]).
//!
//! Gradients flow only into the trainable variables ([`crate::Policy::trainable_vars`]); Adam
//! (`model::optim::AdamW` without weight decay) updates them.

use std::time::Instant;

use chem::Molecule;
use model::grammar::SmilesGrammar;
use model::optim::{AdamW, AdamWParams};
use model::{SampleOptions, BOS};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::augmented_memory::{admit, randomized_sequences, Source};
use crate::batch_metrics::BatchMetrics;
use crate::candidates::CandidateTable;
use crate::config::{BaselineKind, FilterKind, LossConfig, TuneConfig};
use crate::diversity_filter::DiversityFilter;
use crate::losses::{advantages, dpg_weights, reinforce_weights, reinvent_weights, row_sums, surrogate_loss};
use crate::memory::{MemoryEntry, ReplayMemory};
use crate::policy::Policy;
use crate::scoring::components::{ComponentConfig, MolBatch, Novelty, NoveltyParams, ScoringContext};
use crate::scoring::{Scorer, Scores};
use crate::{Error, Result, SmilesSource};

/// Sampled molecules the logged KL is estimated on when the loss does not use the prior.
pub const KL_LOG_ROWS: usize = 64;

/// What a run carries from step to step (checkpointed as JSON).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrainerState {
    /// Steps completed.
    pub step: usize,
    /// Moving-average baseline, once started.
    pub baseline: Option<f64>,
    /// Replay memory.
    pub memory: ReplayMemory,
    /// Diversity filter buckets.
    pub filter: DiversityFilter,
    /// Every distinct valid molecule sampled.
    pub candidates: CandidateTable,
}

/// One row of `log.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepLog {
    /// Step (1-based).
    pub step: usize,
    /// Mean training reward over the sampled batch (invalid = 0, after the diversity filter).
    pub mean_reward: f64,
    /// Max training reward.
    pub max_reward: f64,
    /// Mean of each transformed component over the valid molecules (config order).
    pub components: Vec<f64>,
    /// Fraction of samples that are valid (complete and parsed by RDKit).
    pub validity: f64,
    /// Distinct canonical SMILES / valid samples.
    pub uniqueness: f64,
    /// Fraction of distinct valid samples not in the training set.
    pub novelty: f64,
    /// IntDiv1 of the valid samples (Morgan r2, 1024 bits).
    pub int_div1: f64,
    /// Mean per sequence of log π(x) − log p_prior(x) on the sampled batch (on its first
    /// [`KL_LOG_ROWS`] molecules when the loss does not use the prior).
    pub kl: f64,
    /// −mean log π per sampled token.
    pub entropy: f64,
    /// The loss minimised.
    pub loss: f64,
    /// Molecules replayed from memory.
    pub replayed: usize,
    /// Molecules zeroed by the diversity filter.
    pub filtered: usize,
    /// Oracle calls spent so far and the running top-1/10/100 means of the candidates' totals.
    pub oracle: crate::oracle_budget::OracleProgress,
    /// Wall-clock seconds of the step.
    pub seconds: f64,
    /// Of `seconds`: sampling the batch from the agent.
    pub sample_seconds: f64,
    /// Of `seconds`: scoring, the diversity filter, batch metrics, candidates and memory.
    pub score_seconds: f64,
    /// Of `seconds`: the teacher-forced log-probs (agent and prior), loss, backward and Adam step
    /// (each of them, with Augmented Memory's extra rounds).
    pub update_seconds: f64,
}

/// The training set a run's logged novelty is measured against: the novelty component's, or the
/// reference source's training set.
pub(crate) fn novelty_reference(cfg: &TuneConfig, refs: &dyn SmilesSource) -> Result<Novelty> {
    let params = cfg
        .scoring
        .components
        .iter()
        .find_map(|c| match c {
            ComponentConfig::Novelty(p) => Some(p.clone()),
            _ => None,
        })
        .unwrap_or(NoveltyParams {
            weight: 1.0,
            name: None,
            transform: Default::default(),
            training_set: None,
        });
    Novelty::new(&params, std::path::Path::new("."), refs)
}

/// Adam (no weight decay) over the trainable variables, as every mode trains them.
pub(crate) fn adam(vars: std::collections::HashMap<String, candle_core::Var>, lr: f64) -> Result<AdamW> {
    let params = AdamWParams {
        lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    Ok(AdamW::new(vars, params)?)
}

/// Holds everything a run updates: policy, optimizer, scorer, memories.
pub struct Trainer {
    cfg: TuneConfig,
    policy: Policy,
    opt: AdamW,
    scorer: Scorer,
    novelty_ref: Novelty,
    /// With `[sampling] grammar`: the SMILES grammar the batch is sampled under and the update's
    /// likelihoods are renormalised by.
    grammar: Option<SmilesGrammar>,
    /// Steps, baseline, memory, filter and candidates.
    pub state: TrainerState,
}

impl Trainer {
    /// A trainer at step 0. Paths in `cfg` must be resolved (see [`TuneConfig::from_file`]);
    /// reference molecules (novelty's training set) come from `refs`.
    pub fn new(cfg: TuneConfig, policy: Policy, refs: &dyn SmilesSource) -> Result<Self> {
        cfg.validate()?;
        let scorer = Scorer::new(&cfg.scoring, std::path::Path::new("."), refs)?;
        let novelty_ref = novelty_reference(&cfg, refs)?;
        let opt = adam(policy.trainable_vars(), cfg.lr)?;
        let grammar = cfg.sampling.grammar.then(|| SmilesGrammar::new(policy.vocab()));
        Ok(Self {
            grammar,
            state: TrainerState {
                memory: ReplayMemory::new(cfg.replay.size),
                ..Default::default()
            },
            cfg,
            opt,
            scorer,
            novelty_ref,
            policy,
        })
    }

    /// The config.
    pub fn config(&self) -> &TuneConfig {
        &self.cfg
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The optimizer (its moments are checkpointed).
    pub fn optimizer(&mut self) -> &mut AdamW {
        &mut self.opt
    }

    /// Mutable policy (to restore a checkpoint).
    pub fn policy_mut(&mut self) -> &mut Policy {
        &mut self.policy
    }

    /// Component names (log columns).
    pub fn component_names(&self) -> &[String] {
        self.scorer.names()
    }

    /// One REINFORCE step: sample, score (diversity filter included), log the batch, remember
    /// it, then update the policy on it and on replayed molecules.
    pub fn step(&mut self) -> Result<StepLog> {
        let t0 = Instant::now();
        let step = self.state.step + 1;
        let mut rng = model::rng::Rng::derive(self.cfg.seed, step as u64);
        let samples = self.sample(rng.next_u64())?;
        let sample_seconds = t0.elapsed().as_secs_f64();

        let smiles: Vec<String> = samples.iter().map(|s| s.smiles.clone()).collect();
        let complete: Vec<bool> = samples.iter().map(|s| s.complete).collect();
        let batch = MolBatch::new(&smiles, Some(&complete));
        let (scores, rewards, filtered) = self.score(&batch)?;
        let metrics = BatchMetrics::of(&batch, &scores.components, &self.novelty_ref);
        // Replay draws come from earlier steps' memory, before this batch joins it.
        let replay = if self.cfg.replay.per_step == 0 {
            Vec::new()
        } else if self.cfg.replay.by_score {
            self.state
                .memory
                .sample_by_score(self.cfg.replay.per_step, &mut rng)
        } else {
            self.state.memory.sample(self.cfg.replay.per_step, &mut rng)
        };
        self.remember(step, &batch, &scores, &rewards);
        let score_seconds = t0.elapsed().as_secs_f64() - sample_seconds;

        let train = self.training_sequences(&samples, &rewards, &replay)?;
        let update = self.update(step, &train)?;
        // Augmented Memory: the memory now holds this batch's best, as in Guo & Schwaller's code.
        for _ in 0..self.cfg.replay.augmentation_rounds {
            let train = self.augmented_sequences(&samples, &batch.canonical, &rewards, rng.next_u64());
            self.update(step, &train)?;
        }
        self.state.step = step;
        let seconds = t0.elapsed().as_secs_f64();

        Ok(StepLog {
            step,
            mean_reward: mean(&rewards),
            max_reward: rewards.iter().copied().fold(0.0, f64::max),
            components: metrics.components,
            validity: metrics.validity,
            uniqueness: metrics.uniqueness,
            novelty: metrics.novelty,
            int_div1: metrics.int_div1,
            kl: update.kl,
            entropy: update.entropy,
            loss: update.loss,
            replayed: train.seqs.len() - train.sampled,
            filtered,
            oracle: self.state.candidates.progress(self.cfg.max_oracle_calls),
            seconds,
            sample_seconds,
            score_seconds,
            update_seconds: seconds - sample_seconds - score_seconds,
        })
    }

    /// Draws the step's batch from the agent.
    fn sample(&mut self, seed: u64) -> Result<Vec<model::Sample>> {
        let opts = SampleOptions {
            n: self.cfg.batch_size,
            batch_size: self.cfg.sampling.decode_batch,
            temperature: self.cfg.sampling.temperature,
            top_k: 0,
            top_p: 1.0,
            max_len: self.cfg.sampling.max_len,
            seed,
            // With the grammar, the update's likelihoods are renormalised by the same masks.
            grammar: self.cfg.sampling.grammar,
            // An unfinished row is an invalid molecule the reward must see, so it is kept.
            redraw_rounds: 0,
            abandon_below: 0.0,
            first_batch: 0,
        };
        self.policy.sample(&opts)
    }

    /// Scores the batch against the run so far, then applies the diversity filter: the scores,
    /// the training rewards (the filtered totals) and how many molecules the filter zeroed.
    fn score(&mut self, batch: &MolBatch) -> Result<(Scores, Vec<f64>, usize)> {
        let memory_fps: Vec<chem::Fingerprint> = self
            .state
            .memory
            .entries
            .iter()
            .filter_map(|e| Molecule::parse(&e.canonical).map(|m| m.morgan_fingerprint()))
            .collect();
        let ctx = ScoringContext {
            seen: Some(&self.state.candidates),
            memory: &memory_fps,
        };
        let scores = self.scorer.score(batch, &ctx)?;
        let mut rewards = scores.total.clone();
        let filter_cfg = &self.cfg.diversity_filter;
        let filtered = if !filter_cfg.enabled {
            0
        } else {
            match filter_cfg.kind {
                FilterKind::MurckoScaffold => {
                    let scaffolds: Vec<Option<String>> = batch
                        .map(|m| m.murcko_scaffold().ok())
                        .into_iter()
                        .map(Option::flatten)
                        .collect();
                    self.state
                        .filter
                        .apply_scaffolds(filter_cfg, &scaffolds, &mut rewards)
                }
                FilterKind::CompoundSimilarity => {
                    let fps = batch.fingerprints();
                    self.state.filter.apply_similarity(filter_cfg, &fps, &mut rewards)
                }
            }
        };
        Ok((scores, rewards, filtered))
    }

    /// Records the batch's valid molecules: every one in the candidate table (unfiltered scores),
    /// and in the replay memory with its training reward.
    fn remember(&mut self, step: usize, batch: &MolBatch, scores: &Scores, rewards: &[f64]) {
        for (i, c) in batch.canonical.iter().enumerate() {
            if let Some(c) = c {
                let comps = scores.components.iter().map(|col| col[i]).collect();
                self.state.candidates.record(c, step, scores.total[i], comps);
            }
        }
        self.state.memory.add(
            (0..batch.len())
                .filter(|&i| batch.is_valid(i))
                .map(|i| MemoryEntry {
                    smiles: batch.smiles[i].clone(),
                    canonical: batch.canonical[i].clone().unwrap_or_default(),
                    score: rewards[i],
                }),
        );
    }

    /// The token sequences (BOS first) the loss is taken over, their rewards and, under the
    /// grammar, their masks: the sampled batch (each distinct string once where the REINVENT
    /// loss asks for `unique_sequences`), then the replayed molecules that the vocabulary and
    /// block size admit (and the grammar, where it is on).
    fn training_sequences(
        &self,
        samples: &[model::Sample],
        rewards: &[f64],
        replay: &[MemoryEntry],
    ) -> Result<TrainingBatch> {
        let distinct = self.cfg.loss.trains_on_distinct_samples();
        let mut seen = std::collections::HashSet::new();
        let (mut seqs, mut all_rewards): (Vec<Vec<u32>>, Vec<f64>) = samples
            .iter()
            .zip(rewards)
            .filter(|(s, _)| !distinct || seen.insert(s.tokens.as_slice()))
            .map(|(s, &r)| (std::iter::once(BOS).chain(s.tokens.iter().copied()).collect(), r))
            .unzip();
        let sampled = seqs.len();
        let mut masks = match &self.grammar {
            None => None,
            Some(g) => Some(grammar_masks(g, &seqs)?),
        };
        let (vocab, block) = (self.policy.vocab(), self.policy.max_tokens());
        for e in replay {
            let encoded = vocab.encode_with_specials(&e.smiles).ok();
            let Some(a) = encoded.and_then(|t| admit(t, block, self.grammar.as_ref())) else {
                continue;
            };
            if let Some(masks) = masks.as_mut() {
                masks.extend(a.masks);
            }
            seqs.push(a.tokens);
            all_rewards.push(e.score);
        }
        Ok(TrainingBatch {
            seqs,
            rewards: all_rewards,
            masks,
            sampled,
        })
    }

    /// One round of Augmented Memory's training sequences: the step's batch, then the whole
    /// memory, each valid molecule written as a randomized SMILES drawn from `seed`.
    fn augmented_sequences(
        &self,
        samples: &[model::Sample],
        canonical: &[Option<String>],
        rewards: &[f64],
        seed: u64,
    ) -> TrainingBatch {
        let vocab = self.policy.vocab();
        let sources: Vec<Source> = samples
            .iter()
            .zip(canonical)
            .zip(rewards)
            .map(|((s, c), &reward)| Source {
                molecule: c.as_deref(),
                as_sampled: Some(std::iter::once(BOS).chain(s.tokens.iter().copied()).collect()),
                reward,
            })
            .chain(self.state.memory.entries.iter().map(|e| Source {
                molecule: Some(&e.canonical),
                as_sampled: vocab.encode_with_specials(&e.smiles).ok(),
                reward: e.score,
            }))
            .collect();
        let admitted = randomized_sequences(
            &sources,
            vocab,
            self.policy.max_tokens(),
            self.grammar.as_ref(),
            seed,
        );
        let sampled = admitted[..samples.len()].iter().filter(|a| a.is_some()).count();
        let (mut seqs, mut all_rewards, mut masks) = (Vec::new(), Vec::new(), Vec::new());
        for (a, src) in admitted.into_iter().zip(&sources) {
            if let Some(a) = a {
                seqs.push(a.tokens);
                all_rewards.push(src.reward);
                masks.extend(a.masks);
            }
        }
        TrainingBatch {
            seqs,
            rewards: all_rewards,
            masks: self.grammar.as_ref().map(|_| masks),
            sampled,
        }
    }

    /// Teacher-forced log-probs of agent and prior, the configured loss's per-token weights, the
    /// backward pass and Adam's step, over `train` (its first `sampled` sequences the batch).
    fn update(&mut self, step: usize, train: &TrainingBatch) -> Result<Update> {
        let (n, seqs, rewards) = (train.sampled, &train.seqs, &train.rewards);
        let masks = train.masks.as_deref();
        let lens: Vec<usize> = seqs.iter().map(|s| s.len() - 1).collect();
        let agent_lp = self.policy.agent_log_probs(seqs, masks)?;
        // The prior's forward pass costs about as much as the agent's. A loss that does not use it
        // gets the logged KL from the first KL_LOG_ROWS sampled molecules (they come in random
        // order, so the estimate is unbiased).
        let prior_for = if self.cfg.loss.uses_prior() {
            seqs.len()
        } else {
            n.min(KL_LOG_ROWS)
        };
        let prior_masks = masks.map(|m| &m[..prior_for]);
        let prior_rows = self.policy.prior_log_probs(&seqs[..prior_for], prior_masks)?;
        let agent_rows = &agent_lp.rows;
        let kl_tok: Vec<Vec<f64>> = agent_rows
            .iter()
            .zip(&prior_rows)
            .map(|(a, p)| a.iter().zip(p).map(|(a, p)| a - p).collect())
            .collect();
        let kl_rows = n.min(prior_for);
        let kl = kl_tok[..kl_rows]
            .iter()
            .map(|r| r.iter().sum::<f64>())
            .sum::<f64>()
            / kl_rows as f64;
        let sampled_tokens: usize = lens[..n].iter().sum();
        let entropy = -agent_rows[..n].iter().map(|r| r.iter().sum::<f64>()).sum::<f64>()
            / sampled_tokens.max(1) as f64;

        let sampled = &rewards[..n];
        let mean_reward = mean(sampled);
        let (loss, weights) = match self.cfg.loss {
            LossConfig::Reinforce {
                gamma,
                baseline,
                baseline_decay,
                normalize,
                kl_beta,
            } => {
                let b = match baseline {
                    BaselineKind::Mean => mean_reward,
                    BaselineKind::None => 0.0,
                    BaselineKind::MovingAverage => {
                        let b = self.state.baseline.unwrap_or(mean_reward);
                        self.state.baseline = Some(baseline_decay * b + (1.0 - baseline_decay) * mean_reward);
                        b
                    }
                };
                let scale = if normalize {
                    let var = sampled.iter().map(|r| (r - mean_reward).powi(2)).sum::<f64>() / n as f64;
                    var.sqrt() + 1e-8
                } else {
                    1.0
                };
                let adv = advantages(rewards, &lens, b, scale, gamma, kl_beta, &kl_tok);
                let w = reinforce_weights(&adv);
                (surrogate_loss(&w, agent_rows), w)
            }
            LossConfig::Reinvent {
                sigma,
                likelihood_penalty,
                ..
            } => reinvent_weights(
                &row_sums(agent_rows),
                &row_sums(&prior_rows),
                rewards,
                sigma,
                likelihood_penalty,
                &lens,
            ),
            LossConfig::Dpg { beta } => {
                let (loss, w, _) = dpg_weights(
                    &row_sums(agent_rows),
                    &row_sums(&prior_rows),
                    rewards,
                    beta,
                    &lens,
                );
                (loss, w)
            }
        };
        if !loss.is_finite() {
            return Err(Error::config(
                "lr",
                format!("the loss became {loss} at step {step}; lower lr"),
            ));
        }
        let grads = self.policy.agent_gradients(&agent_lp, &weights)?;
        self.opt.clip_and_step(&grads, self.cfg.grad_clip)?;
        Ok(Update { kl, entropy, loss })
    }
}

/// What [`Trainer::update`] logs.
struct Update {
    kl: f64,
    entropy: f64,
    loss: f64,
}

/// Per sequence, each target position's allowed tokens (`len × V`), as the grammar gives them.
type TokenMasks = Vec<Vec<bool>>;

/// What the update is taken over: the sampled batch, then the replayed molecules.
struct TrainingBatch {
    /// Token sequences, BOS first.
    seqs: Vec<Vec<u32>>,
    /// Their rewards.
    rewards: Vec<f64>,
    /// Under the grammar, its masks along each sequence.
    masks: Option<TokenMasks>,
    /// How many of `seqs`, at the front, are this step's samples (the rest are replayed).
    sampled: usize,
}

/// The grammar's masks along each `[BOS] + tokens` sequence, computed in parallel.
fn grammar_masks(grammar: &SmilesGrammar, seqs: &[Vec<u32>]) -> Result<TokenMasks> {
    seqs.par_iter()
        .map(|s| {
            grammar.masks_along(&s[1..]).ok_or_else(|| {
                Error::config(
                    "sampling.grammar",
                    format!("a training sequence the grammar does not allow: {s:?}"),
                )
            })
        })
        .collect()
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}
