/*!
REINFORCE tuning of the SMILES GPT on chemistry rewards.

# Brief overview
- [`scoring`]: REINVENT 4-style layers. [`scoring::components`] (validity, novelty, diversity,
  QED, SAS, similarity, required/forbidden SMARTS, property windows; each a
  [`scoring::components::Component`] returning one value per molecule, NaN for failures),
  [`scoring::transforms`] (sigmoid, reverse sigmoid, double sigmoid, step, in closed form) and
  [`scoring::aggregate`] (weighted arithmetic/geometric means with NaN masked).
  [`scoring::Scorer`] runs them; invalid molecules score 0.
- [`Policy`] (`policy.rs`): the frozen prior GPT steered by a deep prefix (`prefix` mode;
  [`deep_prefix`]), by a soft prompt (`soft_prompt` mode), by low-rank adapters
  (`lora` mode; [`lora`]), or with every weight trainable (`full` mode).
- [`losses`]: the losses' maths as per-token weights of one surrogate (REINFORCE with per-token
  discounted returns, a baseline, optional z-score and per-token KL to the prior; REINVENT's
  augmented-likelihood loss; or DPG, which fits the agent to the prior tilted by exp(R/β) by
  importance-weighted likelihood); [`reinforce::Trainer`] runs them one step at a time, in named
  phases (sample, score, remember, update).
- [`discrete_prompt`] (`discrete_prompt` mode): a small policy writes SMILES beginnings that the
  frozen prior completes; REINFORCE on the beginnings' tokens.
- [`memory::ReplayMemory`] (top-k replay), [`augmented_memory`] (its molecules and the batch
  rewritten as randomized SMILES for Augmented Memory's extra updates), [`diversity_filter::DiversityFilter`] (buckets of
  identical Murcko scaffolds or of similar compounds), [`candidates::CandidateTable`] (every
  distinct valid molecule sampled, numbered as oracle calls), [`oracle_budget`] (PMO's
  running top-k means and top-k AUC over oracle calls).
- [`TuneConfig`] (`config.rs`): the TOML config, `deny_unknown_fields` everywhere and
  `validate()` naming the bad field; [`run_tune`] (`run.rs`) is `smirl tune`: logs, candidates,
  atomic checkpoints and resume; [`run_dir`] defines the run directory's files and reads them.
- [`SmilesSource`] (`references.rs`): reference molecules (novelty's training set, the prefix
  initialisation's real SMILES) come from the caller, so rl reads no molecule files itself
  (the CLI supplies the embedded MOSES corpus and `datasets`' reader).

```no_run
let cfg = rl::TuneConfig::from_file(std::path::Path::new("configs/qed.toml"))?;
// `references` supplies novelty's training set; the default supplies none.
let opts = rl::TuneOptions { model_dir: "models/prior".into(), out_dir: "runs/qed".into(), ..Default::default() };
let report = rl::run_tune(&cfg, &opts, &mut |row: &rl::StepLog| println!("{} {:.3}", row.step, row.mean_reward))?;
# Ok::<(), rl::Error>(())
```
*/

#![warn(missing_docs)]

pub mod augmented_memory;
mod batch_metrics;
pub mod candidates;
pub mod config;
pub mod deep_prefix;
pub mod discrete_prompt;
pub mod diversity_filter;
mod error;
pub mod lora;
pub mod losses;
pub mod memory;
pub mod oracle_budget;
pub mod policy;
pub mod references;
pub mod reinforce;
pub mod run;
pub mod run_dir;
pub mod scoring;
pub mod steer;
pub mod value_head;

pub use config::{LossConfig, PolicyMode, TuneConfig};
pub use error::{Error, Result};
pub use policy::Policy;
pub use references::{CanonicalSet, InMemorySmiles, NoReferences, References, SmilesSource};
pub use run::{load_tuned_policy, run_tune, StepLog, TuneOptions, TuneReport};
