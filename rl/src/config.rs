//! The `smirl tune` config (TOML). Every section has `deny_unknown_fields` and typed defaults;
//! [`TuneConfig::validate`] names the first bad field. Relative paths resolve against the config
//! file's folder and are written back absolute, so the resolved `config.toml` of a run directory
//! stands on its own.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::scoring::components::ComponentConfig;
use crate::scoring::ScoringConfig;
use crate::{Error, Result};

/// What the optimizer trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMode {
    /// Deep prefix tuning: learned keys and values at every layer of the frozen GPT (`[prefix]`).
    #[default]
    Prefix,
    /// A learnable soft prompt: input vectors in front of the frozen GPT (`[soft_prompt]`).
    SoftPrompt,
    /// Low-rank adapters on every block's attention and MLP matrices (`[lora]`).
    Lora,
    /// A policy writes SMILES beginnings that the frozen prior completes (`[discrete_prompt]`,
    /// RLPrompt-style; `RUN/prompts.csv` ranks the learned prompts).
    DiscretePrompt,
    /// Every GPT weight (Taiga / REINVENT style).
    Full,
}

impl PolicyMode {
    /// The name used in configs and logs.
    pub fn name(self) -> &'static str {
        match self {
            PolicyMode::Prefix => "prefix",
            PolicyMode::SoftPrompt => "soft_prompt",
            PolicyMode::Lora => "lora",
            PolicyMode::DiscretePrompt => "discrete_prompt",
            PolicyMode::Full => "full",
        }
    }
}

/// How the soft prompt's vectors start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SoftPromptInit {
    /// Copies of randomly chosen (seeded) token embeddings: inputs the GPT has seen.
    #[default]
    Tokens,
    /// N(0, `init_std`) noise.
    Noise,
}

/// The `[soft_prompt]` section (soft_prompt mode only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SoftPromptConfig {
    /// Number of prompt vectors P; the last one takes BOS's place (see `policy.rs`), so P = 1
    /// keeps every token at its pretraining position and P > 1 shifts tokens by P − 1.
    pub length: usize,
    /// How vectors other than the BOS one start: `tokens` or `noise`.
    pub init: SoftPromptInit,
    /// Standard deviation of `noise` init (GPT-2's init scale).
    pub init_std: f64,
}

impl Default for SoftPromptConfig {
    fn default() -> Self {
        Self {
            length: 1,
            init: SoftPromptInit::Tokens,
            init_std: 0.02,
        }
    }
}

/// The `[lora]` section (lora mode only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank r of each update B·A.
    pub rank: usize,
    /// The update is scaled by alpha / rank (Hu et al. 2021).
    pub alpha: f64,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self { rank: 8, alpha: 16.0 }
    }
}

/// The `[discrete_prompt]` section (discrete_prompt mode only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscretePromptConfig {
    /// Prompt length K in SMILES tokens.
    pub length: usize,
    /// Completions M of each prompt by the frozen prior; a step writes `batch_size / M` prompts.
    pub completions: usize,
    /// Width of the policy's MLP (inserted before the prior's output head).
    pub hidden: usize,
    /// Draw prompt tokens from the k most likely only (0 = off).
    pub top_k: usize,
}

impl Default for DiscretePromptConfig {
    fn default() -> Self {
        Self {
            length: 5,
            completions: 8,
            hidden: 64,
            top_k: 0,
        }
    }
}

/// How the deep prefix's keys and values start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PrefixInit {
    /// From the prior's own activations on real SMILES (the embedded MOSES corpus): each slot's
    /// values are the prior's mean value moved a tenth of the way towards its value at a random
    /// (seeded) real position, all layers alike; the
    /// keys are fitted (least squares, per head) so that the prior's queries on those SMILES
    /// score them `init_score` on average, low enough that the untuned agent stays close to the
    /// prior. (Copies of real keys, as Li & Liang 2021 §7.2 initialise, divert so much attention
    /// on this small model that validity fell from 0.93 to 0.02.)
    #[default]
    PriorKv,
    /// N(0, `init_std`) noise.
    Noise,
}

/// The `[prefix]` section (prefix mode only): deep prefix tuning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrefixConfig {
    /// Prefix length L: key/value pairs per layer that every position attends to.
    pub length: usize,
    /// How the keys and values start: `prior_kv` or `noise`.
    pub init: PrefixInit,
    /// Standard deviation of `noise` init.
    pub init_std: f64,
    /// `prior_kv` init: the attention score (q·k/√d) the prior's queries give the prefix keys
    /// on average; more negative starts closer to the prior.
    pub init_score: f64,
    /// Train through an MLP reparameterisation, prefix = init + MLP(embedding) with the MLP's
    /// output layer starting at zero (Li & Liang §4.3: optimising the prefix directly was
    /// unstable). The saved agent holds the folded keys and values only.
    pub reparam: bool,
    /// Width of the reparameterisation's embedding and hidden layer.
    pub reparam_hidden: usize,
}

impl Default for PrefixConfig {
    fn default() -> Self {
        Self {
            length: 10,
            init: PrefixInit::PriorKv,
            init_std: 0.02,
            init_score: -3.0,
            reparam: true,
            reparam_hidden: 16,
        }
    }
}

/// The `[sampling]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingConfig {
    /// Softmax temperature (1 = the policy itself, as REINFORCE assumes).
    pub temperature: f64,
    /// Most tokens per molecule, EOS included (also capped by the context).
    pub max_len: usize,
    /// Sequences decoded together.
    pub decode_batch: usize,
    /// Grammar-constrained sampling (`smirl sample --grammar`): tokens that would break SMILES
    /// syntax or a valence are masked and the rest renormalised; the update's likelihoods (agent
    /// and prior) are those of the same masked distributions, so the policy gradient stays exact.
    pub grammar: bool,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            max_len: 100,
            decode_batch: 256,
            grammar: false,
        }
    }
}

/// Baseline b subtracted from the reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BaselineKind {
    /// Mean reward of the current batch.
    #[default]
    Mean,
    /// Exponential moving average of batch means (`baseline_decay`).
    MovingAverage,
    /// No baseline (b = 0).
    None,
}

fn d_gamma() -> f64 {
    1.0
}
fn d_decay() -> f64 {
    0.9
}
fn d_sigma() -> f64 {
    128.0
}

/// The `[loss]` section, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LossConfig {
    /// −mean_seq Σ_t A_t log π(a_t | s_t), A_t = γ^(T−1−t)·(R − b)/s − β·Σ_{t'≥t} γ^(t'−t)·kl_t'.
    Reinforce {
        /// Discount from the end of the sequence (1 = none; Taiga used 0.99).
        #[serde(default = "d_gamma")]
        gamma: f64,
        /// `mean`, `moving_average` or `none`.
        #[serde(default)]
        baseline: BaselineKind,
        /// Decay of the moving-average baseline.
        #[serde(default = "d_decay")]
        baseline_decay: f64,
        /// Divide R − b by the batch's reward standard deviation (z-score, RLPrompt).
        #[serde(default)]
        normalize: bool,
        /// Per-token KL penalty coefficient β to the frozen prior (0 = off).
        #[serde(default)]
        kl_beta: f64,
    },
    /// REINVENT: (log p_prior(x) + σ·R − log π(x))², mean over sequences.
    Reinvent {
        /// σ, the reward's scale in nats.
        #[serde(default = "d_sigma")]
        sigma: f64,
        /// Weight λ of the regulariser `λ·mean(−1/log π(x))` over the update's sequences, which
        /// pushes down sequences the agent makes nearly certain (a collapse). Olivecrona's
        /// REINVENT code and PMO's run it with 5,000; 0 turns it off.
        #[serde(default)]
        likelihood_penalty: f64,
        /// Train on each distinct sampled token string once per step (Olivecrona's code and PMO's
        /// drop a batch's repeats before the loss); the batch metrics still count every sample.
        #[serde(default)]
        unique_sequences: bool,
    },
    /// Distributional policy gradient (DPG; Parshakova et al. 2019, Khalifa et al. 2021): fit the
    /// agent to the prior tilted by the reward, P(x) ∝ p_prior(x)·exp(R(x)/β), by importance-
    /// weighted maximum likelihood on its own samples. Minimises the forward KL(P‖π), which covers
    /// P's modes instead of collapsing onto one (REINFORCE minimises the reverse KL).
    Dpg {
        /// β, the reward's temperature: smaller tilts harder towards high rewards.
        beta: f64,
    },
}

impl LossConfig {
    /// Whether the loss needs the frozen prior's log-probabilities of every sequence.
    pub fn uses_prior(&self) -> bool {
        match self {
            LossConfig::Reinforce { kl_beta, .. } => *kl_beta != 0.0,
            LossConfig::Reinvent { .. } | LossConfig::Dpg { .. } => true,
        }
    }

    /// Whether the update takes each distinct sampled string once (REINVENT's `unique_sequences`).
    pub fn trains_on_distinct_samples(&self) -> bool {
        matches!(
            self,
            LossConfig::Reinvent {
                unique_sequences: true,
                ..
            }
        )
    }
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig::Reinforce {
            gamma: 1.0,
            baseline: BaselineKind::Mean,
            baseline_decay: 0.9,
            normalize: false,
            kl_beta: 0.0,
        }
    }
}

/// The `[replay]` section: experience replay of the top-scored molecules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayConfig {
    /// Molecules kept (the top `size` by reward; 0 disables replay).
    pub size: usize,
    /// Molecules replayed per step (drawn at random from the memory).
    pub per_step: usize,
    /// Draw them with probability proportional to their reward, without replacement
    /// (REINVENT's prioritised replay, as PMO runs it) instead of uniformly.
    pub by_score: bool,
    /// Augmented Memory (Guo & Schwaller, JACS Au 2024): after each step's update, this many more
    /// updates, each on the step's batch and the whole memory written as randomized SMILES (the
    /// same molecules, new strings, so the same rewards). 0 turns it off.
    pub augmentation_rounds: usize,
}

/// The `[diversity_filter]` section (REINVENT 4's defaults; see [`crate::diversity_filter`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiversityFilterConfig {
    /// Whether the filter is on.
    pub enabled: bool,
    /// How hits are grouped into buckets.
    pub kind: FilterKind,
    /// Hits a bucket may hold before its molecules score 0.
    pub bucket_size: usize,
    /// A hit is a molecule scoring at least this.
    pub min_score: f64,
    /// `compound_similarity`: the Tanimoto similarity (Morgan, radius 2) at which a hit joins a
    /// bucket.
    pub similarity: f64,
}

/// How the diversity filter groups hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterKind {
    /// One bucket per identical Bemis–Murcko scaffold.
    #[default]
    MurckoScaffold,
    /// One bucket per group of similar molecules (Tanimoto to the bucket's first hit).
    CompoundSimilarity,
}

impl Default for DiversityFilterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            kind: FilterKind::MurckoScaffold,
            bucket_size: 25,
            min_score: 0.4,
            similarity: 0.6,
        }
    }
}

fn d_steps() -> usize {
    100
}
fn d_batch() -> usize {
    128
}
fn d_lr() -> f64 {
    1e-3
}
fn d_ckpt() -> usize {
    10
}
fn d_top() -> usize {
    1000
}

/// A whole `tune.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuneConfig {
    /// `prefix` (default, deep prefix), `soft_prompt`, `lora`, `discrete_prompt` or `full`.
    #[serde(default)]
    pub mode: PolicyMode,
    /// Optimizer steps (a resumed run may raise it).
    #[serde(default = "d_steps")]
    pub steps: usize,
    /// Molecules sampled per step.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Adam learning rate (prefix vectors tolerate far larger rates than full weights).
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// Clip the global gradient norm to this (0 = off).
    #[serde(default)]
    pub grad_clip: f64,
    /// Seed of the prefix init, sampling and replay draws.
    #[serde(default)]
    pub seed: u64,
    /// Checkpoint every this many steps (and at the end).
    #[serde(default = "d_ckpt")]
    pub checkpoint_every: usize,
    /// Rows of `candidates.csv` (the best distinct molecules).
    #[serde(default = "d_top")]
    pub top_candidates: usize,
    /// Oracle budget: the run stops once this many distinct valid molecules have been scored
    /// (PMO's protocol: a repeat is served from the candidate table and costs nothing). Unset:
    /// no budget, the run stops at `steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_oracle_calls: Option<usize>,
    /// PMO's early stop: end the run once its best 100 scores have stayed the same for this many
    /// consecutive steps (counted once 1,000 oracle calls are spent). Unset: no early stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convergence_patience: Option<usize>,
    /// Sampling options.
    #[serde(default)]
    pub sampling: SamplingConfig,
    /// Deep prefix options (prefix mode).
    #[serde(default)]
    pub prefix: PrefixConfig,
    /// Soft prompt options (soft_prompt mode).
    #[serde(default)]
    pub soft_prompt: SoftPromptConfig,
    /// LoRA options (lora mode).
    #[serde(default)]
    pub lora: LoraConfig,
    /// Discrete prompt options (discrete_prompt mode).
    #[serde(default)]
    pub discrete_prompt: DiscretePromptConfig,
    /// The loss.
    #[serde(default)]
    pub loss: LossConfig,
    /// Experience replay.
    #[serde(default)]
    pub replay: ReplayConfig,
    /// Scaffold diversity filter.
    #[serde(default)]
    pub diversity_filter: DiversityFilterConfig,
    /// The reward.
    pub scoring: ScoringConfig,
}

impl TuneConfig {
    /// Parses TOML text; relative paths resolve against `base_dir`. Validates.
    pub fn from_toml(text: &str, base_dir: &Path, origin: &Path) -> Result<Self> {
        let mut cfg: TuneConfig = toml::from_str(text).map_err(|e| Error::ConfigParse {
            path: origin.to_path_buf(),
            msg: e.to_string(),
        })?;
        cfg.resolve_paths(base_dir);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a config file; relative paths resolve against its folder.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let base = std::fs::canonicalize(if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        })
        .map_err(|e| Error::io(base, e))?;
        Self::from_toml(&text, &base, path)
    }

    /// Makes relative paths (the novelty training set) absolute against `base_dir`.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        for c in &mut self.scoring.components {
            if let ComponentConfig::Novelty(p) = c {
                if let Some(path) = &p.training_set {
                    if path.is_relative() {
                        p.training_set = Some(base_dir.join(path));
                    }
                }
            }
        }
    }

    /// The resolved config as TOML (what `config.toml` of a run holds).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("TuneConfig serialises to TOML")
    }

    /// Checks the values; the error names the first bad field.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("checkpoint_every", self.checkpoint_every),
            ("sampling.max_len", self.sampling.max_len),
            ("sampling.decode_batch", self.sampling.decode_batch),
            ("max_oracle_calls", self.max_oracle_calls.unwrap_or(1)),
            ("convergence_patience", self.convergence_patience.unwrap_or(1)),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(Error::config(field, "must be > 0"));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::config("lr", "must be > 0"));
        }
        if !(self.grad_clip.is_finite() && self.grad_clip >= 0.0) {
            return Err(Error::config("grad_clip", "must be >= 0"));
        }
        if !(self.sampling.temperature.is_finite() && self.sampling.temperature > 0.0) {
            return Err(Error::config("sampling.temperature", "must be > 0"));
        }
        match self.mode {
            PolicyMode::Prefix => {
                if self.prefix.length == 0 {
                    return Err(Error::config("prefix.length", "must be > 0 in prefix mode"));
                }
                if !(self.prefix.init_std.is_finite() && self.prefix.init_std >= 0.0) {
                    return Err(Error::config("prefix.init_std", "must be >= 0"));
                }
                if !self.prefix.init_score.is_finite() {
                    return Err(Error::config("prefix.init_score", "must be finite"));
                }
                if self.prefix.reparam && self.prefix.reparam_hidden == 0 {
                    return Err(Error::config("prefix.reparam_hidden", "must be > 0 with reparam"));
                }
            }
            PolicyMode::SoftPrompt => {
                if self.soft_prompt.length == 0 {
                    return Err(Error::config(
                        "soft_prompt.length",
                        "must be > 0 in soft_prompt mode",
                    ));
                }
                if !(self.soft_prompt.init_std.is_finite() && self.soft_prompt.init_std >= 0.0) {
                    return Err(Error::config("soft_prompt.init_std", "must be >= 0"));
                }
            }
            PolicyMode::Lora => {
                if self.lora.rank == 0 {
                    return Err(Error::config("lora.rank", "must be > 0 in lora mode"));
                }
                if !(self.lora.alpha.is_finite() && self.lora.alpha > 0.0) {
                    return Err(Error::config("lora.alpha", "must be > 0"));
                }
            }
            PolicyMode::DiscretePrompt => {
                let d = &self.discrete_prompt;
                if self.replay.augmentation_rounds > 0 {
                    return Err(Error::config(
                        "replay.augmentation_rounds",
                        "not available in discrete_prompt mode (its update is over prompts, not SMILES)",
                    ));
                }
                if self.sampling.grammar {
                    return Err(Error::config(
                        "sampling.grammar",
                        "not available in discrete_prompt mode (its prompts are written unmasked)",
                    ));
                }
                for (field, v) in [
                    ("discrete_prompt.length", d.length),
                    ("discrete_prompt.completions", d.completions),
                    ("discrete_prompt.hidden", d.hidden),
                ] {
                    if v == 0 {
                        return Err(Error::config(field, "must be > 0 in discrete_prompt mode"));
                    }
                }
                if self.batch_size / d.completions < 2 {
                    return Err(Error::config(
                        "discrete_prompt.completions",
                        format!(
                            "batch_size {} holds fewer than 2 prompts of {} completions (rewards are z-scored across prompts)",
                            self.batch_size, d.completions
                        ),
                    ));
                }
                if !matches!(self.loss, LossConfig::Reinforce { .. }) {
                    return Err(Error::config(
                        "loss.type",
                        "discrete_prompt mode trains with \"reinforce\" (z-scored prompt rewards, optional kl_beta)",
                    ));
                }
                if d.length >= self.sampling.max_len {
                    return Err(Error::config(
                        "discrete_prompt.length",
                        format!("must be below sampling.max_len {}", self.sampling.max_len),
                    ));
                }
            }
            PolicyMode::Full => {}
        }
        match self.loss {
            LossConfig::Reinforce {
                gamma,
                baseline_decay,
                kl_beta,
                ..
            } => {
                if !(gamma > 0.0 && gamma <= 1.0) {
                    return Err(Error::config("loss.gamma", "must be in (0, 1]"));
                }
                if !(0.0..1.0).contains(&baseline_decay) {
                    return Err(Error::config("loss.baseline_decay", "must be in [0, 1)"));
                }
                if !(kl_beta.is_finite() && kl_beta >= 0.0) {
                    return Err(Error::config("loss.kl_beta", "must be >= 0"));
                }
            }
            LossConfig::Reinvent {
                sigma,
                likelihood_penalty,
                ..
            } => {
                if !(sigma.is_finite() && sigma > 0.0) {
                    return Err(Error::config("loss.sigma", "must be > 0"));
                }
                if !(likelihood_penalty.is_finite() && likelihood_penalty >= 0.0) {
                    return Err(Error::config("loss.likelihood_penalty", "must be >= 0"));
                }
            }
            LossConfig::Dpg { beta } => {
                if !(beta.is_finite() && beta > 0.0) {
                    return Err(Error::config("loss.beta", "must be > 0"));
                }
                if self.replay.per_step > 0 {
                    return Err(Error::config(
                        "replay.per_step",
                        "must be 0 with loss.type = \"dpg\": its importance weights hold for the agent's own samples only",
                    ));
                }
            }
        }
        if self.replay.augmentation_rounds > 0 && !matches!(self.loss, LossConfig::Reinvent { .. }) {
            return Err(Error::config(
                "replay.augmentation_rounds",
                "needs loss.type = \"reinvent\" (Augmented Memory's loss; the others' weights hold for the agent's own samples)",
            ));
        }
        if self.replay.per_step > self.replay.size {
            return Err(Error::config("replay.per_step", "must be <= replay.size"));
        }
        if self.diversity_filter.bucket_size == 0 {
            return Err(Error::config("diversity_filter.bucket_size", "must be > 0"));
        }
        if !(0.0..=1.0).contains(&self.diversity_filter.min_score) {
            return Err(Error::config("diversity_filter.min_score", "must be in [0, 1]"));
        }
        if !(self.diversity_filter.similarity > 0.0 && self.diversity_filter.similarity <= 1.0) {
            return Err(Error::config("diversity_filter.similarity", "must be in (0, 1]"));
        }
        self.scoring.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[[scoring.components]]\ntype = \"qed\"\n";

    /// Defaults fill a minimal config; the resolved TOML round-trips; relative paths resolve.
    #[test]
    fn defaults_round_trip_and_paths() {
        let cfg = TuneConfig::from_toml(MINIMAL, Path::new("/x"), Path::new("t.toml")).unwrap();
        assert_eq!(cfg.mode, PolicyMode::Prefix);
        assert_eq!(cfg.diversity_filter.bucket_size, 25);
        let back = TuneConfig::from_toml(&cfg.to_toml(), Path::new("/y"), Path::new("c.toml")).unwrap();
        assert_eq!(cfg, back);
        let text = "[[scoring.components]]\ntype = \"novelty\"\ntraining_set = \"train.smi\"\n\
                    [loss]\ntype = \"reinvent\"\n";
        let dir = tempfile::tempdir().unwrap();
        // A training set that does not exist is an error naming the field, before any work.
        let err = TuneConfig::from_toml(text, dir.path(), Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("scoring.components[0].training_set") && err.contains("train.smi"),
            "{err}"
        );
        std::fs::write(dir.path().join("train.smi"), "CCO\n").unwrap();
        let cfg = TuneConfig::from_toml(text, dir.path(), Path::new("t.toml")).unwrap();
        match &cfg.scoring.components[0] {
            ComponentConfig::Novelty(p) => {
                assert_eq!(
                    p.training_set.as_deref(),
                    Some(dir.path().join("train.smi").as_path())
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            cfg.loss,
            LossConfig::Reinvent {
                sigma: 128.0,
                likelihood_penalty: 0.0,
                unique_sequences: false
            }
        );
        let back = TuneConfig::from_toml(&cfg.to_toml(), Path::new("/y"), Path::new("c.toml")).unwrap();
        assert_eq!(cfg, back);
    }

    /// Unknown keys are refused in every section; bad values are named.
    #[test]
    fn errors_name_the_field() {
        let parse = |t: &str| TuneConfig::from_toml(t, Path::new("."), Path::new("t.toml"));
        for extra in [
            "stepz = 3\n",
            "[sampling]\ntemp = 1\n",
            "[loss]\ntype = \"reinforce\"\nsigma = 1\n",
        ] {
            assert!(parse(&format!("{extra}{MINIMAL}")).is_err(), "{extra}");
        }
        let err = parse(&format!("lr = 0\n{MINIMAL}")).unwrap_err();
        assert!(err.to_string().contains("`lr`"), "{err}");
        let err = parse(&format!("[loss]\ntype = \"reinforce\"\ngamma = 1.5\n{MINIMAL}")).unwrap_err();
        assert!(err.to_string().contains("loss.gamma"), "{err}");
        let err = parse(&format!("[replay]\nsize = 2\nper_step = 3\n{MINIMAL}")).unwrap_err();
        assert!(err.to_string().contains("replay.per_step"), "{err}");
        for (text, field) in [
            ("[prefix]\nlength = 0\n", "prefix.length"),
            ("[prefix]\nreparam_hidden = 0\n", "prefix.reparam_hidden"),
            (
                "mode = \"soft_prompt\"\n[soft_prompt]\nlength = 0\n",
                "soft_prompt.length",
            ),
            ("[prefix]\ninit = \"tokens\"\n", "init"),
            ("mode = \"lora\"\n[lora]\nrank = 0\n", "lora.rank"),
            (
                "mode = \"discrete_prompt\"\n[discrete_prompt]\nlength = 0\n",
                "discrete_prompt.length",
            ),
            (
                "mode = \"discrete_prompt\"\n[discrete_prompt]\nlength = 100\n",
                "discrete_prompt.length",
            ),
            (
                "mode = \"discrete_prompt\"\nbatch_size = 8\n",
                "discrete_prompt.completions",
            ),
        ] {
            let err = parse(&format!("{text}{MINIMAL}")).unwrap_err();
            assert!(err.to_string().contains(field), "{text}: {err}");
        }
        let err = parse(&format!(
            "[loss]\ntype = \"reinvent\"\nlikelihood_penalty = -1\n{MINIMAL}"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("loss.likelihood_penalty"), "{err}");
        let err = parse(&format!("[loss]\ntype = \"dpg\"\nbeta = 0\n{MINIMAL}")).unwrap_err();
        assert!(err.to_string().contains("loss.beta"), "{err}");
        let dpg_replay =
            format!("[loss]\ntype = \"dpg\"\nbeta = 0.1\n[replay]\nsize = 5\nper_step = 2\n{MINIMAL}");
        let err = parse(&dpg_replay).unwrap_err();
        assert!(err.to_string().contains("replay.per_step"), "{err}");
        // Augmented Memory is REINVENT's: the default loss (REINFORCE) and discrete prompts refuse it.
        let augmented = format!("[replay]\nsize = 5\naugmentation_rounds = 2\n{MINIMAL}");
        let err = parse(&augmented).unwrap_err();
        assert!(err.to_string().contains("replay.augmentation_rounds"), "{err}");
        let reinvent = format!("[loss]\ntype = \"reinvent\"\n{augmented}");
        assert!(parse(&reinvent).is_ok());
        let err = parse(&format!("mode = \"discrete_prompt\"\n{reinvent}")).unwrap_err();
        assert!(err.to_string().contains("replay.augmentation_rounds"), "{err}");
    }
}

#[cfg(test)]
mod shipped_configs {
    use super::*;

    /// Every tuning config in `configs/` (all but the pretraining `prior_*.toml`) parses,
    /// validates and builds its scorer.
    #[test]
    fn shipped_configs_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml") && !n.starts_with("prior_"))
            .collect();
        names.sort();
        assert!(names.len() >= 10, "{names:?}");
        for name in &names {
            let cfg = TuneConfig::from_file(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            crate::scoring::Scorer::new(
                &cfg.scoring,
                Path::new("."),
                &crate::references::embedded_corpus(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let qed = TuneConfig::from_file(&dir.join("qed.toml")).unwrap();
        assert_eq!((qed.mode, qed.batch_size, qed.lr), (PolicyMode::Full, 500, 1e-4));
        let prefix = TuneConfig::from_file(&dir.join("qed_prefix.toml")).unwrap();
        let target = TuneConfig::from_file(&dir.join("qed_target.toml")).unwrap();
        assert_eq!(prefix.mode, PolicyMode::Prefix);
        assert_eq!(
            (prefix.scoring, prefix.batch_size),
            (target.scoring, target.batch_size),
            "qed_prefix.toml has qed_target.toml's reward"
        );
        // The prefix keeps its diversity through a similarity memory instead of scaffold buckets.
        assert_eq!(prefix.diversity_filter.kind, FilterKind::CompoundSimilarity);
        assert_eq!(target.diversity_filter.kind, FilterKind::MurckoScaffold);
    }
}
