//! `smirl tune` as a library call: the run loop behind a run directory (its files and their
//! format: [`crate::run_dir`]), with atomic, resumable checkpoints.

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::candidates::CandidateTable;
pub use crate::reinforce::StepLog;
use crate::reinforce::{Trainer, TrainerState};
use crate::run_dir::{
    log_header, log_row, RunInfo, AGENT_FILE, CANDIDATES_FILE, CHECKPOINT_DIR, CONFIG_FILE, LOG_FILE,
    OPTIMIZER_FILE, RUN_INFO_FILE, STATE_FILE, TRAINABLE_FILE,
};
use crate::{Error, NoReferences, Policy, References, Result, TuneConfig};

/// Where to run.
#[derive(Clone)]
pub struct TuneOptions {
    /// The prior's model directory (`smirl pretrain` output).
    pub model_dir: PathBuf,
    /// The run directory.
    pub out_dir: PathBuf,
    /// Continue from the checkpoint in `out_dir` (starts fresh when there is none).
    pub resume: bool,
    /// Testing aid: stop after this many steps of this call without a final checkpoint, as if
    /// the process had been killed.
    pub interrupt_after: Option<usize>,
    /// Where the agent and the prior live.
    pub device: Device,
    /// Reference molecules: novelty's training set, the prefix initialisation's real SMILES.
    pub references: References,
}

impl std::fmt::Debug for TuneOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TuneOptions")
            .field("model_dir", &self.model_dir)
            .field("out_dir", &self.out_dir)
            .field("resume", &self.resume)
            .field("interrupt_after", &self.interrupt_after)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl Default for TuneOptions {
    fn default() -> Self {
        Self {
            model_dir: PathBuf::new(),
            out_dir: PathBuf::new(),
            resume: false,
            interrupt_after: None,
            device: Device::Cpu,
            references: std::sync::Arc::new(NoReferences),
        }
    }
}

/// What a call did.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneReport {
    /// Step the call started from (0, or the checkpoint's).
    pub start_step: usize,
    /// Steps completed at the end of the call.
    pub step: usize,
    /// Mean reward of every step of this call.
    pub mean_rewards: Vec<f64>,
    /// Distinct valid molecules sampled by the run so far.
    pub candidates: usize,
    /// The candidates' totals in oracle-call order, the first `max_oracle_calls` of them (PMO's
    /// top-k AUC is taken over these: [`crate::oracle_budget::top_k_auc`]).
    pub oracle_totals: Vec<f64>,
    /// Steps per second over this call.
    pub steps_per_s: f64,
    /// Parameters the run trains, and the prior's.
    pub trainable: (usize, usize),
}

#[derive(Serialize, Deserialize)]
struct CheckpointState {
    trainer: TrainerState,
    optimizer_steps: usize,
}

/// What `run_tune` drives: a trainer of one of the modes, one step at a time.
pub(crate) trait Tuner {
    /// One optimizer step.
    fn step(&mut self) -> Result<StepLog>;
    /// Steps completed.
    fn steps_done(&self) -> usize;
    /// Reward component names (log columns).
    fn component_names(&self) -> Vec<String>;
    /// Every distinct valid molecule sampled so far (one oracle call each).
    fn candidate_table(&self) -> &CandidateTable;
    /// Parameters trained, and the prior's.
    fn trainable(&self) -> (usize, usize);
    /// Writes the trainable variables, optimizer and state into checkpoint folder `dir`.
    fn save(&mut self, dir: &Path) -> Result<()>;
    /// Restores what [`Tuner::save`] wrote.
    fn load(&mut self, dir: &Path) -> Result<()>;
    /// Writes the ranked outputs (`candidates.csv`, and the mode's own) into the run directory.
    fn write_outputs(&self, out: &Path) -> Result<()>;
    /// Writes what sampling the tuned agent needs, where that is small; whether it wrote one.
    fn save_agent(&self, path: &Path) -> Result<bool>;
}

impl Tuner for Trainer {
    fn step(&mut self) -> Result<StepLog> {
        Trainer::step(self)
    }

    fn steps_done(&self) -> usize {
        self.state.step
    }

    fn component_names(&self) -> Vec<String> {
        Trainer::component_names(self).to_vec()
    }

    fn candidate_table(&self) -> &CandidateTable {
        &self.state.candidates
    }

    fn trainable(&self) -> (usize, usize) {
        self.policy().num_trainable()
    }

    fn save(&mut self, dir: &Path) -> Result<()> {
        self.policy().save(&dir.join(TRAINABLE_FILE))?;
        self.optimizer().save(&dir.join(OPTIMIZER_FILE))?;
        let state = CheckpointState {
            trainer: self.state.clone(),
            optimizer_steps: self.optimizer().step_count(),
        };
        let json = serde_json::to_vec(&state).map_err(|e| Error::checkpoint(dir, e))?;
        model::checkpoint::write_atomic(&dir.join(STATE_FILE), &json).map_err(Error::from)
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let state: CheckpointState =
            serde_json::from_slice(&text).map_err(|e| Error::checkpoint(&path, e))?;
        self.policy_mut().load_trainable(&dir.join(TRAINABLE_FILE))?;
        check_optimizer(self.optimizer(), dir, state.optimizer_steps)?;
        self.state = state.trainer;
        Ok(())
    }

    fn write_outputs(&self, out: &Path) -> Result<()> {
        let cfg = self.config();
        self.state.candidates.write_csv(
            &out.join(CANDIDATES_FILE),
            Trainer::component_names(self),
            cfg.top_candidates,
        )
    }

    fn save_agent(&self, path: &Path) -> Result<bool> {
        self.policy().save_agent(path)
    }
}

/// Loads `dir`'s optimizer state into `opt` and checks its step against state.json's.
pub(crate) fn check_optimizer(opt: &mut model::optim::AdamW, dir: &Path, steps: usize) -> Result<()> {
    opt.load(&dir.join(OPTIMIZER_FILE))?;
    if opt.step_count() != steps {
        return Err(Error::checkpoint(
            dir.join(OPTIMIZER_FILE),
            "optimizer step does not match state.json",
        ));
    }
    Ok(())
}

/// Writes the checkpoint of `tuner` into `out/checkpoint` atomically (tmp dir + rename), then
/// its agent file.
fn save_checkpoint(tuner: &mut dyn Tuner, out: &Path) -> Result<()> {
    let tmp = out.join("checkpoint.tmp");
    let dst = out.join(CHECKPOINT_DIR);
    let old = out.join("checkpoint.old");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    tuner.save(&tmp)?;
    if dst.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        std::fs::rename(&dst, &old).map_err(|e| Error::io(&dst, e))?;
    }
    std::fs::rename(&tmp, &dst).map_err(|e| Error::io(&tmp, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    let agent_tmp = out.join("agent.safetensors.tmp");
    if tuner.save_agent(&agent_tmp)? {
        let agent = out.join(AGENT_FILE);
        std::fs::rename(&agent_tmp, &agent).map_err(|e| Error::io(&agent, e))?;
    }
    Ok(())
}

/// The newest complete checkpoint directory of `out`, if any (`checkpoint/`, or
/// `checkpoint.old/` when a kill hit between the two renames).
fn find_checkpoint(out: &Path) -> Option<PathBuf> {
    [CHECKPOINT_DIR, "checkpoint.old"]
        .iter()
        .map(|d| out.join(d))
        .find(|d| d.join(STATE_FILE).exists())
}

/// The tuned agent of a run directory (or a shipped prompt: `config.toml` + `agent.safetensors`):
/// the prior from `model_dir` with the run's prompt (`agent.safetensors`) or, where there is
/// none (full mode), the trainable part of its newest checkpoint, built as its config says.
pub fn load_tuned_policy(run_dir: &Path, model_dir: &Path, device: &Device) -> Result<Policy> {
    let cfg_path = run_dir.join(CONFIG_FILE);
    if !cfg_path.exists() {
        return Err(Error::checkpoint(
            run_dir,
            "no config.toml here (not a `smirl tune` run or a prompt directory?)",
        ));
    }
    let mut cfg = TuneConfig::from_file(&cfg_path)?;
    // The agent's file replaces whatever the prefix starts as, so skip `prior_kv`'s fit (a
    // forward pass over real SMILES and a least-squares solve per head).
    cfg.prefix.init = crate::config::PrefixInit::Noise;
    let agent = run_dir.join(AGENT_FILE);
    let weights = if agent.exists() {
        agent
    } else {
        let ckpt = find_checkpoint(run_dir).ok_or_else(|| {
            Error::checkpoint(
                run_dir,
                "no agent.safetensors and no checkpoint in this run directory (not a `smirl tune` run?)",
            )
        })?;
        ckpt.join(TRAINABLE_FILE)
    };
    // No reference molecules needed: the prompt is loaded, not initialised.
    let mut policy = Policy::load(model_dir, &cfg, device, &NoReferences)?;
    policy.load_trainable(&weights)?;
    Ok(policy)
}

/// Keeps the header and the rows of `log.csv` with step ≤ `step` (a killed run may have logged
/// steps after its last checkpoint; they are redone).
fn truncate_log(path: &Path, step: usize, header: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = String::new();
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h == header => {}
        Some(_) => {
            return Err(Error::checkpoint(
                path,
                "log.csv header does not match the config's components",
            ))
        }
        None => {}
    }
    out.push_str(header);
    out.push('\n');
    for l in lines {
        let s: Option<usize> = l.split(',').next().and_then(|s| s.parse().ok());
        if s.is_some_and(|s| s <= step) {
            out.push_str(l);
            out.push('\n');
        }
    }
    model::checkpoint::write_atomic(path, out.as_bytes())?;
    Ok(())
}

/// Feeds the oracle columns of `log.csv` through `c`; whether some step converged.
fn replay_convergence(c: &mut crate::oracle_budget::Convergence, log_path: &Path) -> Result<bool> {
    let table = crate::run_dir::Table::read(log_path)?;
    let column = |name: &str| match table.column(name) {
        Some(i) => table.numbers(i),
        None => Err(Error::checkpoint(log_path, format!("no `{name}` column"))),
    };
    let (calls, top100) = (column("oracle_calls")?, column("top100")?);
    let mut converged = false;
    for (&calls, &top100) in calls.iter().zip(&top100) {
        let p = crate::oracle_budget::OracleProgress {
            oracle_calls: calls as usize,
            top1: f64::NAN,
            top10: f64::NAN,
            top100,
        };
        converged |= c.converged_after(&p);
    }
    Ok(converged)
}

/// Runs (or resumes) a tuning run; `on_step` sees every step's log row (the CLI's progress bar).
pub fn run_tune(
    cfg: &TuneConfig,
    opts: &TuneOptions,
    on_step: &mut dyn FnMut(&StepLog),
) -> Result<TuneReport> {
    cfg.validate()?;
    let out = &opts.out_dir;
    let ckpt = find_checkpoint(out);
    if ckpt.is_some() && !opts.resume {
        return Err(Error::checkpoint(
            out,
            "already holds a run checkpoint; pass --resume to continue it or pick another --out",
        ));
    }
    let cfg_path = out.join(CONFIG_FILE);
    if let (true, Ok(text)) = (ckpt.is_some(), std::fs::read_to_string(&cfg_path)) {
        // Everything but the planned number of steps must match the run being resumed.
        let mut old: TuneConfig = toml::from_str(&text).map_err(|e| Error::checkpoint(&cfg_path, e))?;
        old.steps = cfg.steps;
        if &old != cfg {
            return Err(Error::checkpoint(
                &cfg_path,
                "the config differs from the run's (only `steps` may change on --resume)",
            ));
        }
    }
    let mut trainer: Box<dyn Tuner> = match cfg.mode {
        crate::PolicyMode::DiscretePrompt => Box::new(crate::discrete_prompt::DiscreteTrainer::new(
            cfg.clone(),
            &opts.model_dir,
            &opts.device,
            opts.references.as_ref(),
        )?),
        _ => Box::new(Trainer::new(
            cfg.clone(),
            Policy::load(&opts.model_dir, cfg, &opts.device, opts.references.as_ref())?,
            opts.references.as_ref(),
        )?),
    };
    let trainer = trainer.as_mut();
    // Only now, with the prior loaded and the scorer built, does the run get a directory: a bad
    // config leaves nothing behind.
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    model::checkpoint::write_atomic(&cfg_path, cfg.to_toml().as_bytes())?;
    // Which prior the run tunes, for reports and for sampling the agent later.
    let run_info = RunInfo {
        model_dir: opts.model_dir.clone(),
    };
    let json = serde_json::to_string_pretty(&run_info).map_err(|e| Error::checkpoint(out, e))?;
    model::checkpoint::write_atomic(&out.join(RUN_INFO_FILE), format!("{json}\n").as_bytes())?;
    if let Some(dir) = &ckpt {
        trainer.load(dir)?;
    }
    let names = trainer.component_names();
    let header = log_header(&names);
    let log_path = out.join(LOG_FILE);
    if ckpt.is_some() {
        truncate_log(&log_path, trainer.steps_done(), &header)?;
    } else {
        // A fresh run (or one killed before its first checkpoint) starts a fresh log.
        model::checkpoint::write_atomic(&log_path, format!("{header}\n").as_bytes())?;
    }
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io(&log_path, e))?;

    let start_step = trainer.steps_done();
    let t0 = std::time::Instant::now();
    let mut mean_rewards = Vec::new();
    let mut this_call = 0;
    let budget_spent = |t: &dyn Tuner| {
        cfg.max_oracle_calls
            .is_some_and(|b| t.candidate_table().len() >= b)
    };
    let mut convergence = cfg
        .convergence_patience
        .map(crate::oracle_budget::Convergence::new);
    // A resumed run replays its logged steps, so that a converged run stays finished.
    let mut converged = match (&mut convergence, ckpt.is_some()) {
        (Some(c), true) => replay_convergence(c, &log_path)?,
        _ => false,
    };
    while trainer.steps_done() < cfg.steps && !budget_spent(trainer) && !converged {
        if model::stop_requested() {
            save_checkpoint(trainer, out)?;
            trainer.write_outputs(out)?;
            return Err(model::Error::Interrupted {
                dir: out.clone(),
                step: trainer.steps_done(),
            }
            .into());
        }
        let row = trainer.step()?;
        writeln!(log, "{}", log_row(&row)).map_err(|e| Error::io(&log_path, e))?;
        log.flush().map_err(|e| Error::io(&log_path, e))?;
        mean_rewards.push(row.mean_reward);
        on_step(&row);
        converged = convergence
            .as_mut()
            .is_some_and(|c| c.converged_after(&row.oracle));
        this_call += 1;
        if opts.interrupt_after == Some(this_call) {
            return Ok(report(
                cfg.max_oracle_calls,
                start_step,
                trainer,
                mean_rewards,
                t0,
            ));
        }
        let last = row.step == cfg.steps || budget_spent(trainer) || converged;
        if row.step % cfg.checkpoint_every == 0 || last {
            save_checkpoint(trainer, out)?;
            trainer.write_outputs(out)?;
        }
    }
    if this_call == 0 {
        // Nothing to do (already at `steps`): still leave the outputs in place.
        save_checkpoint(trainer, out)?;
    }
    trainer.write_outputs(out)?;
    Ok(report(
        cfg.max_oracle_calls,
        start_step,
        trainer,
        mean_rewards,
        t0,
    ))
}

fn report(
    max_oracle_calls: Option<usize>,
    start_step: usize,
    trainer: &dyn Tuner,
    mean_rewards: Vec<f64>,
    t0: std::time::Instant,
) -> TuneReport {
    let secs = t0.elapsed().as_secs_f64();
    TuneReport {
        start_step,
        step: trainer.steps_done(),
        steps_per_s: mean_rewards.len() as f64 / secs.max(1e-9),
        mean_rewards,
        candidates: trainer.candidate_table().len(),
        oracle_totals: trainer.candidate_table().totals_by_call(max_oracle_calls),
        trainable: trainer.trainable(),
    }
}
