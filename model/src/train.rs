//! Pretraining: next-token cross-entropy over a SMILES corpus, resumable.
//!
//! The corpus is encoded (vocabulary built from it unless given), split into train/validation by
//! a seeded shuffle, and cut every epoch into length-bucketed batches (molecules sorted by length
//! after a seeded shuffle, so a batch carries little padding, then the batch order shuffled).
//! AdamW with linear warmup and cosine decay, gradient clipping by global norm, periodic
//! validation, a CSV log, and atomic checkpoints (see [`crate::checkpoint`]). With
//! `randomized_smiles`, each molecule is trained on as a new string of itself every time it is
//! drawn (Arús-Pous et al., "Randomized SMILES strings improve the quality of molecular
//! generative models", J. Cheminform. 2019); the caller supplies the rewriting, since this crate
//! knows tokens, not molecules.

use crate::checkpoint::{self, TrainState, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE};
use crate::gpt::{Gpt, GptConfig};
use crate::optim::{lr_at, AdamW, AdamWParams};
use crate::rng::Rng;
use crate::train_pass::{GradTarget, TrainPass};
use crate::vocab::{fits_block, Corpus, TokenMode, Vocab, PAD};
use crate::{ops, Error, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Name of the per-run CSV log (`step,train_loss,val_loss,lr,tokens_per_s`).
pub const LOG_FILE: &str = "log.csv";

/// Pretraining options (`[pretrain]` of the run config). Defaults follow nanoGPT's small-model
/// settings scaled to a 2-core CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainOptions {
    /// Model shape; `vocab_size` is resolved from the vocabulary.
    pub model: GptConfig,
    /// Output directory for checkpoints, `log.csv`.
    pub out_dir: PathBuf,
    /// Tokenizer mode when the vocabulary is built from the corpus.
    pub tokenizer: TokenMode,
    /// Use this `vocab.json` instead of building one (molecules with other tokens are skipped).
    pub vocab_path: Option<PathBuf>,
    /// Molecules per batch.
    pub batch_size: usize,
    /// Total optimizer steps (the cosine schedule's length); see also `epochs`.
    pub max_steps: usize,
    /// If set, overrides `max_steps` with `epochs × batches per epoch`.
    pub epochs: Option<f64>,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine decay.
    pub min_lr: f64,
    /// Linear warmup steps.
    pub warmup_steps: usize,
    /// AdamW decoupled weight decay (matrices only).
    pub weight_decay: f64,
    /// AdamW β1.
    pub beta1: f64,
    /// AdamW β2 (0.95 as in nanoGPT: steadier for small batches).
    pub beta2: f64,
    /// AdamW ε.
    pub eps: f64,
    /// Clip the global gradient norm to this (0 disables).
    pub grad_clip: f64,
    /// Fraction of molecules held out for validation (at least 1 when > 0).
    pub val_fraction: f64,
    /// Validate every this many steps (and at the end); 0 disables.
    pub eval_interval: usize,
    /// Validation batches per evaluation (spread over all lengths); 0 = the whole split.
    pub eval_batches: usize,
    /// Write a `log.csv` row every this many steps.
    pub log_interval: usize,
    /// Checkpoint every this many steps (and at the end).
    pub checkpoint_interval: usize,
    /// Seed of the split, data order and initialisation.
    pub seed: u64,
    /// Train on a randomized SMILES of each molecule, drawn anew each epoch through the
    /// [`SmilesRewriter`] the caller passes (`smirl pretrain` passes RDKit's); where it gives
    /// nothing or a string the vocabulary or block cannot hold, the molecule is trained on as
    /// given. Validation stays on the strings as given.
    pub randomized_smiles: bool,
    /// Continue from the checkpoint in `out_dir` (starts fresh if there is none). A resumed run
    /// keeps the checkpoint's model config, vocabulary and seed; `max_steps`/`epochs` may grow.
    pub resume: bool,
    /// Testing aid: stop after this many steps of this call without a final checkpoint, as if
    /// the process had been killed.
    #[serde(skip)]
    pub interrupt_after: Option<usize>,
}

impl Default for PretrainOptions {
    fn default() -> Self {
        Self {
            model: GptConfig::default(),
            out_dir: PathBuf::from("runs/prior"),
            tokenizer: TokenMode::Char,
            vocab_path: None,
            batch_size: 64,
            max_steps: 10_000,
            epochs: None,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 200,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
            val_fraction: 0.01,
            eval_interval: 500,
            eval_batches: 20,
            log_interval: 50,
            checkpoint_interval: 1000,
            seed: 42,
            randomized_smiles: false,
            resume: false,
            interrupt_after: None,
        }
    }
}

impl PretrainOptions {
    /// Checks the values; the error names the first bad field.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("batch_size", self.batch_size),
            ("log_interval", self.log_interval),
            ("checkpoint_interval", self.checkpoint_interval),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(Error::option(field, "must be > 0"));
            }
        }
        if self.lr.is_nan()
            || self.min_lr.is_nan()
            || self.lr <= 0.0
            || self.min_lr < 0.0
            || self.min_lr > self.lr
        {
            return Err(Error::option(
                "min_lr",
                format!("need 0 <= min_lr ({}) <= lr ({}), lr > 0", self.min_lr, self.lr),
            ));
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return Err(Error::option("val_fraction", "must be in [0, 1)"));
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return Err(Error::option("beta1", "betas must be in [0, 1)"));
        }
        if self.epochs.is_some_and(|e| e.is_nan() || e <= 0.0) {
            return Err(Error::option("epochs", "must be > 0"));
        }
        Ok(())
    }
}

/// One `log.csv` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    /// Steps completed.
    pub step: usize,
    /// Mean training loss since the previous row.
    pub train_loss: f64,
    /// Validation loss, when evaluated at this step.
    pub val_loss: Option<f64>,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Non-pad target tokens per second since the previous row.
    pub tokens_per_s: f64,
}

/// What a `pretrain` call did.
#[derive(Debug, Clone)]
pub struct PretrainReport {
    /// Step the call started from (0, or the resumed checkpoint's).
    pub start_step: usize,
    /// Steps completed at the end of the call.
    pub step: usize,
    /// Planned total steps.
    pub total_steps: usize,
    /// Training loss of every step of this call, in order.
    pub losses: Vec<f64>,
    /// Last validation loss, if any.
    pub val_loss: Option<f64>,
    /// Mean non-pad target tokens per second over this call.
    pub tokens_per_s: f64,
    /// Model parameters.
    pub n_params: usize,
    /// Training / validation molecules.
    pub n_train: usize,
    /// Validation molecules.
    pub n_val: usize,
    /// Molecules skipped: unknown token, too long for `block_size`, empty line.
    pub skipped: (usize, usize, usize),
    /// Rows written to `log.csv` by this call.
    pub log: Vec<LogRow>,
    /// The checkpoint directory.
    pub out_dir: PathBuf,
    /// With `randomized_smiles`: molecules drawn in this call that were trained on as rewritten,
    /// and those trained on as given because no admissible rewrite came back.
    pub rewrites: (usize, usize),
}

/// Writes a molecule's SMILES as another string of the same molecule, from a seed (`None` where
/// it cannot): the augmentation behind `randomized_smiles`.
pub type SmilesRewriter<'a> = &'a (dyn Fn(&str, u64) -> Option<String> + Sync);

/// Rewrites draw from this sub-stream of the seed (the split, data order and initialisation use
/// others), so switching augmentation on changes nothing else about a run.
const REWRITE_STREAM: u64 = 0x5245_5752_4954_4500;

/// The batch's training sequences under `rewrite`: molecule `i` of epoch `epoch` as the string
/// drawn for it from `(seed, epoch, i)` (the same after a resume), or as given where no string
/// comes back that `vocab` and `block` admit. Also returns how many were rewritten.
fn rewritten_batch(
    rewrite: SmilesRewriter,
    vocab: &Vocab,
    train: &[Vec<u32>],
    batch: &[usize],
    (seed, epoch, block): (u64, usize, usize),
) -> (Vec<Vec<u32>>, usize) {
    use rayon::prelude::*;
    let seqs: Vec<Option<Vec<u32>>> = batch
        .par_iter()
        .map(|&i| {
            let draw = Rng::derive(seed ^ REWRITE_STREAM, ((epoch as u64) << 32) | i as u64).next_u64();
            rewrite(&vocab.decode(&train[i]), draw)
                .and_then(|s| vocab.encode_with_specials(&s).ok())
                .filter(|t| fits_block(t, block))
        })
        .collect();
    let rewritten = seqs.iter().filter(|s| s.is_some()).count();
    let seqs = seqs
        .into_iter()
        .zip(batch)
        .map(|(s, &i)| s.unwrap_or_else(|| train[i].clone()))
        .collect();
    (seqs, rewritten)
}

/// `(input, targets, non-pad targets)` of a batch: input `(B, T)` = seq without its last token,
/// targets = seq shifted by one, both PAD-filled to the longest sequence.
fn make_batch(seqs: &[&[u32]], device: &Device) -> Result<(Tensor, Vec<u32>, usize)> {
    let t = seqs.iter().map(|s| s.len() - 1).max().unwrap_or(1);
    let mut input = vec![PAD; seqs.len() * t];
    let mut targets = vec![PAD; seqs.len() * t];
    for (r, s) in seqs.iter().enumerate() {
        input[r * t..r * t + s.len() - 1].copy_from_slice(&s[..s.len() - 1]);
        targets[r * t..r * t + s.len() - 1].copy_from_slice(&s[1..]);
    }
    let n_tok = seqs.iter().map(|s| s.len() - 1).sum();
    Ok((Tensor::from_vec(input, (seqs.len(), t), device)?, targets, n_tok))
}

/// How pretraining computes gradients: the hand-written CPU pass where it supports the model (f32
/// weights on the CPU), candle's autograd elsewhere (CUDA, or on request for comparisons). Callers
/// hold one and never see which, as [`crate::sample`]'s `Stepper` hides the decoder's choice.
pub struct Backprop {
    pass: Option<TrainPass>,
}

impl Backprop {
    /// The hand-written pass when it supports `model`, else candle's autograd.
    pub fn for_model(model: &Gpt) -> Self {
        Self {
            pass: TrainPass::supports(model).then(TrainPass::new),
        }
    }

    /// candle's autograd, whatever the model.
    pub fn autograd() -> Self {
        Self { pass: None }
    }

    /// Whether the hand-written pass is in use.
    pub fn is_hand_written(&self) -> bool {
        self.pass.is_some()
    }

    /// Mean next-token cross-entropy of a batch and its gradients; `rows` are
    /// `[BOS] + tokens + [EOS]` sequences. Also returns the number of counted tokens.
    pub fn loss_and_grads(
        &mut self,
        model: &Gpt,
        rows: &[&[u32]],
    ) -> Result<(f64, candle_core::backprop::GradStore, usize)> {
        let (input, targets, n_tok) = make_batch(rows, model.device())?;
        match &mut self.pass {
            Some(pass) => {
                let ids = input.flatten_all()?.to_vec1::<u32>()?;
                let logp = pass.forward(model, &ids, &targets, rows.len(), None, None)?;
                let w = 1.0 / n_tok.max(1) as f32;
                let weights: Vec<f32> = targets.iter().map(|&y| if y == PAD { 0.0 } else { w }).collect();
                let loss = -logp
                    .iter()
                    .zip(&weights)
                    .filter(|(_, &w)| w != 0.0)
                    .map(|(l, w)| (l * w) as f64)
                    .sum::<f64>();
                Ok((loss, pass.backward(&weights, GradTarget::Weights)?, n_tok))
            }
            None => {
                let logits = model.forward(&input, None)?;
                let (b, t, v) = logits.dims3()?;
                let loss = ops::cross_entropy(&logits.reshape((b * t, v))?, &targets, PAD)?;
                let grads = loss.backward()?;
                Ok((loss.to_scalar::<f32>()? as f64, grads, n_tok))
            }
        }
    }
}

/// Length-bucketed batches of one epoch: a function of (seed, epoch) only.
fn epoch_batches(lens: &[usize], batch_size: usize, seed: u64, epoch: usize) -> Vec<Vec<usize>> {
    let mut rng = Rng::derive(seed, 1 + epoch as u64);
    let mut idx: Vec<usize> = (0..lens.len()).collect();
    rng.shuffle(&mut idx);
    idx.sort_by_key(|&i| lens[i]); // stable: equal lengths stay shuffled
    let mut batches: Vec<Vec<usize>> = idx.chunks(batch_size).map(<[usize]>::to_vec).collect();
    rng.shuffle(&mut batches);
    batches
}

/// Mean validation loss (token-weighted) over `batches`, without recording a graph.
fn evaluate(model: &Gpt, seqs: &[Vec<u32>], batches: &[Vec<usize>]) -> Result<Option<f64>> {
    let model = model.detached();
    let (mut sum, mut count) = (0f64, 0usize);
    for b in batches {
        let rows: Vec<&[u32]> = b.iter().map(|&i| seqs[i].as_slice()).collect();
        let (input, targets, n_tok) = make_batch(&rows, model.device())?;
        let logits = model.forward(&input, None)?;
        let (bs, t, v) = logits.dims3()?;
        let loss = ops::cross_entropy(&logits.reshape((bs * t, v))?, &targets, PAD)?;
        sum += loss.to_scalar::<f32>()? as f64 * n_tok as f64;
        count += n_tok;
    }
    Ok((count > 0).then(|| sum / count as f64))
}

fn fmt_opt(x: Option<f64>) -> String {
    x.map_or(String::new(), |v| format!("{v:.6}"))
}

/// Keeps the header and the rows with `step <= keep_until` (a resume drops rows logged after
/// the checkpoint it continues from), or starts a new log.
fn open_log(path: &Path, keep_until: Option<usize>) -> Result<std::fs::File> {
    let header = "step,train_loss,val_loss,lr,tokens_per_s\n";
    let mut text = String::from(header);
    if let (Some(keep), Ok(old)) = (keep_until, std::fs::read_to_string(path)) {
        // A row cut short by a kill has no newline or too few fields: dropped with the later ones.
        let fields = header.split(',').count();
        for line in old.split_inclusive('\n').skip(1) {
            let step = line.split(',').next().and_then(|s| s.parse::<usize>().ok());
            let whole = line.ends_with('\n') && line.split(',').count() == fields;
            if whole && step.is_some_and(|s| s <= keep) {
                text.push_str(line);
            }
        }
    }
    checkpoint::write_atomic(path, text.as_bytes())?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// Where a pretraining run stands, for a progress display: sent before the first step and after
/// every step.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Optimizer steps completed.
    pub step: usize,
    /// Steps planned.
    pub total_steps: usize,
    /// The `log.csv` row of this step, when one was written.
    pub logged: Option<LogRow>,
    /// The latest validation loss.
    pub val_loss: Option<f64>,
}

/// Pretrains (or resumes pretraining of) a GPT on `smiles`, writing checkpoints into
/// `opts.out_dir`. Runs on `device` (use `Device::Cpu` unless built with `cuda`). Quiet; see
/// [`pretrain_with_progress`].
pub fn pretrain(opts: &PretrainOptions, smiles: &[String], device: &Device) -> Result<PretrainReport> {
    pretrain_with_progress(opts, smiles, device, None, &mut |_| {})
}

/// [`pretrain`] with the rewriter `randomized_smiles` needs, calling `on_step` before the first
/// step and after each (the CLI's progress bar).
pub fn pretrain_with_progress(
    opts: &PretrainOptions,
    smiles: &[String],
    device: &Device,
    rewrite: Option<SmilesRewriter>,
    on_step: &mut dyn FnMut(&Progress),
) -> Result<PretrainReport> {
    opts.validate()?;
    let rewrite = match (opts.randomized_smiles, rewrite) {
        (true, None) => {
            return Err(Error::option(
                "randomized_smiles",
                "needs a SMILES rewriter from the caller (smirl pretrain passes RDKit's)",
            ))
        }
        (true, r) => r,
        (false, _) => None,
    };
    let out = opts.out_dir.as_path();
    let has_ckpt = checkpoint::has_training_state(out)?;
    if has_ckpt && !opts.resume {
        return Err(Error::option(
            "resume",
            format!(
                "{} already holds a checkpoint; resume it or pick another out_dir",
                out.display()
            ),
        ));
    }
    // Weights without the state that says where they stand: starting over would overwrite them and
    // resuming cannot know the step, so refuse either way.
    let weights = out.join(MODEL_FILE);
    if !has_ckpt && weights.exists() {
        return Err(Error::checkpoint(
            out.join(STATE_FILE),
            format!(
                "missing, but {} exists: the run's training state is lost, so it can be neither \
                 resumed nor overwritten; move its files away or pick another out_dir",
                weights.display()
            ),
        ));
    }
    let resumed = if has_ckpt {
        Some(checkpoint::load_checkpoint(out, device)?)
    } else {
        None
    };
    let state = resumed.as_ref().and_then(|l| l.state.clone());

    // Vocabulary and config: the checkpoint's when resuming.
    let given_vocab = match (&resumed, &opts.vocab_path) {
        (Some(l), _) => Some(l.vocab.clone()),
        (None, Some(p)) => Some(Vocab::load(p)?),
        (None, None) => None,
    };
    let mode = given_vocab.as_ref().map_or(opts.tokenizer, Vocab::mode);
    let corpus = Corpus::build(smiles, given_vocab, mode, opts.model.block_size);
    let skipped = (
        corpus.skipped_unknown,
        corpus.skipped_too_long,
        corpus.skipped_empty,
    );
    if corpus.seqs.is_empty() {
        return Err(Error::EmptyCorpus {
            skipped: skipped.0 + skipped.1 + skipped.2,
        });
    }
    let vocab = corpus.vocab;
    let cfg = match &resumed {
        Some(l) => l.config.clone(),
        None => GptConfig {
            vocab_size: vocab.len(),
            ..opts.model.clone()
        },
    };
    cfg.validate()?;
    let seed = state.as_ref().map_or(opts.seed, |s| s.seed);

    // Seeded train/validation split.
    let mut order: Vec<usize> = (0..corpus.seqs.len()).collect();
    Rng::derive(seed, 0).shuffle(&mut order);
    let n_val = if opts.val_fraction > 0.0 && order.len() > 1 {
        ((order.len() as f64 * opts.val_fraction).round() as usize).clamp(1, order.len() - 1)
    } else {
        0
    };
    let mut seqs = corpus.seqs;
    let val: Vec<Vec<u32>> = order[..n_val]
        .iter()
        .map(|&i| std::mem::take(&mut seqs[i]))
        .collect();
    let train: Vec<Vec<u32>> = seqs.into_iter().filter(|s| !s.is_empty()).collect();
    let lens: Vec<usize> = train.iter().map(Vec::len).collect();
    // Generated tokens of the longest molecule: its sequence less BOS.
    let longest_molecule = train.iter().chain(&val).map(|s| s.len().saturating_sub(1)).max();
    if let Some(s) = &state {
        if (s.n_train, s.n_val) != (train.len(), val.len()) {
            return Err(Error::option(
                "resume",
                format!(
                    "the checkpoint was trained on {} + {} molecules, this corpus gives {} + {}",
                    s.n_train,
                    s.n_val,
                    train.len(),
                    val.len()
                ),
            ));
        }
    }
    let val_batches: Vec<Vec<usize>> = {
        let mut idx: Vec<usize> = (0..val.len()).collect();
        idx.sort_by_key(|&i| val[i].len());
        let all: Vec<Vec<usize>> = idx.chunks(opts.batch_size).map(<[usize]>::to_vec).collect();
        let k = if opts.eval_batches == 0 {
            all.len()
        } else {
            opts.eval_batches.min(all.len())
        };
        (0..k).map(|j| all[j * all.len() / k].clone()).collect() // spread over all lengths
    };
    let batches_per_epoch = train.len().div_ceil(opts.batch_size);
    let total_steps = match opts.epochs {
        Some(e) => ((e * batches_per_epoch as f64).ceil() as usize).max(1),
        None => opts.max_steps,
    };

    // Model and optimizer, fresh or restored.
    let (model, varmap) = match resumed {
        Some(l) => (l.model, l.varmap),
        None => {
            let varmap = VarMap::new();
            (Gpt::init(&cfg, &varmap, seed, device)?, varmap)
        }
    };
    let params = AdamWParams {
        lr: opts.lr,
        beta1: opts.beta1,
        beta2: opts.beta2,
        eps: opts.eps,
        weight_decay: opts.weight_decay,
    };
    let mut opt = AdamW::new(varmap.data().lock().expect("varmap lock").clone(), params)?;
    let mut st = match state {
        Some(s) => {
            opt.load(&out.join(OPTIMIZER_FILE))?;
            TrainState {
                total_steps,
                longest_molecule: s.longest_molecule.or(longest_molecule),
                ..s
            }
        }
        None => TrainState {
            step: 0,
            total_steps,
            seed,
            epoch: 0,
            batch_cursor: 0,
            tokens_seen: 0,
            n_train: train.len(),
            n_val: val.len(),
            val_loss: None,
            longest_molecule,
            files: Default::default(),
        },
    };
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let log_path = out.join(LOG_FILE);
    let mut log = open_log(&log_path, has_ckpt.then_some(st.step))?;

    on_step(&Progress {
        step: st.step,
        total_steps,
        logged: None,
        val_loss: st.val_loss,
    });

    let start_step = st.step;
    // The hand-written pass on the CPU; candle's autograd elsewhere (e.g. CUDA).
    let mut backprop = Backprop::for_model(&model);
    let mut batches = epoch_batches(&lens, opts.batch_size, seed, st.epoch);
    let (mut losses, mut rows) = (Vec::new(), Vec::new());
    let (mut win_loss, mut win_steps, mut win_tok, mut win_time) = (0f64, 0usize, 0usize, 0f64);
    let (mut run_tok, mut run_time) = (0usize, 0f64);
    let mut rewrites = (0usize, 0usize);
    while st.step < total_steps {
        if crate::stop_requested() {
            checkpoint::save(out, &varmap, Some(&opt), &vocab, &cfg, Some(&mut st))?;
            return Err(Error::Interrupted {
                dir: out.to_path_buf(),
                step: st.step,
            });
        }
        if opts.interrupt_after.is_some_and(|k| st.step - start_step >= k) {
            return Ok(report(
                start_step, &st, losses, rows, run_tok, run_time, &model, skipped, out, rewrites,
            ));
        }
        if st.batch_cursor >= batches.len() {
            st.epoch += 1;
            st.batch_cursor = 0;
            batches = epoch_batches(&lens, opts.batch_size, seed, st.epoch);
        }
        let t0 = Instant::now();
        let batch = &batches[st.batch_cursor];
        let rewritten = rewrite.map(|f| {
            let (seqs, n) = rewritten_batch(f, &vocab, &train, batch, (seed, st.epoch, cfg.block_size));
            rewrites = (rewrites.0 + n, rewrites.1 + batch.len() - n);
            seqs
        });
        let rows_b: Vec<&[u32]> = match &rewritten {
            Some(seqs) => seqs.iter().map(Vec::as_slice).collect(),
            None => batch.iter().map(|&i| train[i].as_slice()).collect(),
        };
        let lr = lr_at(st.step, opts.lr, opts.min_lr, opts.warmup_steps, total_steps);
        opt.set_lr(lr);
        let (loss, grads, n_tok) = backprop.loss_and_grads(&model, &rows_b)?;
        opt.clip_and_step(&grads, opts.grad_clip)?;
        let dt = t0.elapsed().as_secs_f64();
        st.step += 1;
        st.batch_cursor += 1;
        st.tokens_seen += n_tok as u64;
        losses.push(loss);
        (win_loss, win_steps, win_tok, win_time) =
            (win_loss + loss, win_steps + 1, win_tok + n_tok, win_time + dt);
        (run_tok, run_time) = (run_tok + n_tok, run_time + dt);

        let last = st.step == total_steps;
        let mut val_loss = None;
        if opts.eval_interval > 0 && (st.step % opts.eval_interval == 0 || last) {
            val_loss = evaluate(&model, &val, &val_batches)?;
            st.val_loss = val_loss.or(st.val_loss);
        }
        let mut logged = None;
        if st.step % opts.log_interval == 0 || last || val_loss.is_some() {
            let row = LogRow {
                step: st.step,
                train_loss: win_loss / win_steps as f64,
                val_loss,
                lr,
                tokens_per_s: win_tok as f64 / win_time.max(1e-9),
            };
            // One write per row, so that a kill cannot leave half a row behind.
            let line = format!(
                "{},{:.6},{},{:.6e},{:.1}\n",
                row.step,
                row.train_loss,
                fmt_opt(row.val_loss),
                row.lr,
                row.tokens_per_s
            );
            log.write_all(line.as_bytes())
                .map_err(|e| Error::io(&log_path, e))?;
            logged = Some(row.clone());
            rows.push(row);
            (win_loss, win_steps, win_tok, win_time) = (0.0, 0, 0, 0.0);
        }
        if st.step % opts.checkpoint_interval == 0 || last {
            checkpoint::save(out, &varmap, Some(&opt), &vocab, &cfg, Some(&mut st))?;
        }
        on_step(&Progress {
            step: st.step,
            total_steps,
            logged,
            val_loss: st.val_loss,
        });
    }
    Ok(report(
        start_step, &st, losses, rows, run_tok, run_time, &model, skipped, out, rewrites,
    ))
}

#[allow(clippy::too_many_arguments)]
fn report(
    start_step: usize,
    st: &TrainState,
    losses: Vec<f64>,
    log: Vec<LogRow>,
    tok: usize,
    time: f64,
    model: &Gpt,
    skipped: (usize, usize, usize),
    out: &Path,
    rewrites: (usize, usize),
) -> PretrainReport {
    PretrainReport {
        start_step,
        step: st.step,
        total_steps: st.total_steps,
        losses,
        val_loss: st.val_loss,
        tokens_per_s: tok as f64 / time.max(1e-9),
        n_params: model.num_params(),
        n_train: st.n_train,
        n_val: st.n_val,
        skipped,
        log,
        out_dir: out.to_path_buf(),
        rewrites,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{sample, SampleOptions};

    fn moses(n: usize) -> Vec<String> {
        include_str!("../../tests/data/moses_test_sample.smi")
            .lines()
            .take(n)
            .map(str::to_string)
            .collect()
    }

    fn tiny_opts(out: &Path) -> PretrainOptions {
        PretrainOptions {
            model: GptConfig {
                n_layer: 2,
                n_head: 2,
                n_embd: 32,
                block_size: 64,
                ..Default::default()
            },
            out_dir: out.to_path_buf(),
            batch_size: 16,
            max_steps: 24,
            warmup_steps: 4,
            lr: 3e-3,
            val_fraction: 0.1,
            eval_interval: 8,
            eval_batches: 2,
            log_interval: 4,
            checkpoint_interval: 8,
            ..Default::default()
        }
    }

    /// A 50-molecule corpus is memorised: loss near its floor, and low-temperature samples are
    /// training molecules.
    #[test]
    fn overfits_a_small_corpus() {
        crate::configure_cpu_env();
        let dir = tempfile::tempdir().unwrap();
        let smiles = moses(50);
        let opts = PretrainOptions {
            model: GptConfig {
                n_layer: 2,
                n_head: 4,
                n_embd: 64,
                block_size: 64,
                ..Default::default()
            },
            batch_size: 25,
            max_steps: 300,
            warmup_steps: 20,
            lr: 5e-3,
            min_lr: 5e-4,
            weight_decay: 0.0,
            val_fraction: 0.0,
            eval_interval: 0,
            checkpoint_interval: 1000,
            ..tiny_opts(dir.path())
        };
        let rep = pretrain(&opts, &smiles, &Device::Cpu).unwrap();
        let tail: f64 = rep.losses[rep.losses.len() - 10..].iter().sum::<f64>() / 10.0;
        // Floor: which of the 50 molecules to start is inherently uncertain (ln 50 / ~40 tokens).
        assert!(tail < 0.2, "final loss {tail}, first {}", rep.losses[0]);
        assert!(rep.losses[0] > 2.0);
        let run = crate::load_checkpoint(dir.path(), &Device::Cpu).unwrap();
        let mols = sample(
            &run.model,
            &run.vocab,
            None,
            &SampleOptions {
                n: 20,
                temperature: 0.2,
                seed: 1,
                ..Default::default()
            },
        )
        .unwrap();
        let hits = mols.iter().filter(|m| smiles.contains(&m.smiles)).count();
        eprintln!("overfit: final loss {tail:.4}, {hits}/20 samples are training molecules");
        assert!(hits >= 16, "{hits}/20 sampled molecules are training molecules");
    }

    /// `randomized_smiles` trains on what the rewriter writes: each molecule's own SMILES goes in
    /// with a seed of its own per epoch; a rewrite the vocabulary or block cannot hold, or none,
    /// leaves the run exactly as it is without augmentation.
    #[test]
    fn randomized_smiles_trains_on_the_rewrites() {
        crate::configure_cpu_env();
        let smiles = moses(200);
        let run_for = |steps: usize, rewrite: Option<SmilesRewriter>| {
            let dir = tempfile::tempdir().unwrap();
            let opts = PretrainOptions {
                randomized_smiles: rewrite.is_some(),
                max_steps: steps,
                ..tiny_opts(dir.path())
            };
            pretrain_with_progress(&opts, &smiles, &Device::Cpu, rewrite, &mut |_| {}).unwrap()
        };
        let run = |rewrite: Option<SmilesRewriter>| run_for(24, rewrite);
        let plain = run(None);
        // 180 training molecules in batches of 16: the 24 steps are two whole epochs.
        assert_eq!(plain.n_train.div_ceil(16) * 2, 24);
        let drawn = 2 * plain.n_train;

        let dir = tempfile::tempdir().unwrap();
        let opts = PretrainOptions {
            randomized_smiles: true,
            ..tiny_opts(dir.path())
        };
        let err = pretrain(&opts, &smiles, &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("randomized_smiles"), "{err}");

        let calls = std::sync::Mutex::new(Vec::new());
        let none = |s: &str, seed: u64| {
            calls.lock().unwrap().push((s.to_string(), seed));
            None
        };
        let untouched = run(Some(&none));
        assert_eq!(untouched.losses, plain.losses);
        assert_eq!(untouched.rewrites, (0, drawn));
        let calls = calls.into_inner().unwrap();
        assert_eq!(calls.len(), drawn);
        assert!(calls.iter().all(|(s, _)| smiles.contains(s)));
        // Each molecule comes once per epoch, each time with a new seed.
        let seeds: std::collections::HashSet<u64> = calls.iter().map(|c| c.1).collect();
        assert_eq!(seeds.len(), drawn);
        let distinct: std::collections::HashSet<&str> = calls.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(distinct.len(), plain.n_train);

        let too_long = |_: &str, _: u64| Some("C".repeat(80));
        assert_eq!(run(Some(&too_long)).losses, plain.losses);

        // Every molecule rewritten as the same one: the model learns that one string.
        let one = smiles[0].clone();
        let constant = |_: &str, _: u64| Some(one.clone());
        let rewritten = run_for(96, Some(&constant));
        assert_eq!(rewritten.rewrites, (8 * plain.n_train, 0));
        let tail = rewritten.losses[92..].iter().sum::<f64>() / 4.0;
        assert!(tail < 0.2, "loss {tail} on one string of {} tokens", one.len());
    }

    /// Killing a run after a checkpoint and resuming it continues the step count, the data order
    /// and the loss curve exactly where an uninterrupted run goes; the log has no duplicates.
    #[test]
    fn resume_continues_the_loss_curve() {
        crate::configure_cpu_env();
        let smiles = moses(200);
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let full = pretrain(&tiny_opts(da.path()), &smiles, &Device::Cpu).unwrap();
        assert_eq!((full.start_step, full.step, full.losses.len()), (0, 24, 24));
        assert!(full.val_loss.is_some());

        let killed = pretrain(
            &PretrainOptions {
                interrupt_after: Some(13),
                ..tiny_opts(db.path())
            },
            &smiles,
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(killed.step, 13); // last checkpoint was at step 8
        let err = pretrain(&tiny_opts(db.path()), &smiles, &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("resume"), "{err}");
        let resumed = pretrain(
            &PretrainOptions {
                resume: true,
                ..tiny_opts(db.path())
            },
            &smiles,
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!((resumed.start_step, resumed.step), (8, 24));
        for (a, b) in full.losses[8..].iter().zip(&resumed.losses) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        let log = std::fs::read_to_string(db.path().join(LOG_FILE)).unwrap();
        let steps: Vec<usize> = log
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(steps, (1..=6).map(|i| 4 * i).collect::<Vec<_>>());
        let a = crate::load_checkpoint(da.path(), &Device::Cpu).unwrap();
        let b = crate::load_checkpoint(db.path(), &Device::Cpu).unwrap();
        assert_eq!(a.state.as_ref().unwrap().step, 24);
        // The longest molecule's tokens, EOS included (the corpus is one character per token).
        let longest = smiles.iter().map(|s| s.chars().count() + 1).max();
        assert_eq!(a.state.as_ref().unwrap().longest_molecule, longest);
        assert_eq!(b.state.as_ref().unwrap().longest_molecule, longest);
        let x = Tensor::new(&[[1u32, 5, 6, 7]], &Device::Cpu).unwrap();
        let diff = (a.model.forward(&x, None).unwrap() - b.model.forward(&x, None).unwrap()).unwrap();
        assert!(
            diff.abs()
                .unwrap()
                .max_keepdim(2)
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                < 1e-4
        );
    }

    /// Weights stored as float16 (models/prior-large, to keep every file under 16 MiB) load into
    /// the float32 model: each weight is the float16 rounding of the original, and the logits
    /// agree with the float32 model's to float16 precision.
    #[test]
    fn float16_weights_load_as_float32() {
        crate::configure_cpu_env();
        let dir = tempfile::tempdir().unwrap();
        pretrain(
            &PretrainOptions {
                max_steps: 3,
                ..tiny_opts(dir.path())
            },
            &moses(40),
            &Device::Cpu,
        )
        .unwrap();
        let a = crate::load_checkpoint(dir.path(), &Device::Cpu).unwrap();
        let half: std::collections::HashMap<String, Tensor> = a
            .varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_tensor().to_dtype(candle_core::DType::F16).unwrap(),
                )
            })
            .collect();
        let copy = tempfile::tempdir().unwrap();
        for f in [checkpoint::CONFIG_FILE, checkpoint::VOCAB_FILE] {
            std::fs::copy(dir.path().join(f), copy.path().join(f)).unwrap();
        }
        candle_core::safetensors::save(&half, copy.path().join(checkpoint::MODEL_FILE)).unwrap();
        let b = crate::load_checkpoint(copy.path(), &Device::Cpu).unwrap();
        let bw = b.varmap.data().lock().unwrap().clone();
        for (name, t) in &half {
            let widened: Vec<f32> = t
                .to_dtype(candle_core::DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let loaded: Vec<f32> = bw[name].as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(widened, loaded, "{name}");
        }
        let x = Tensor::new(&[[1u32, 5, 6, 7, 8]], &Device::Cpu).unwrap();
        let logits = |m: &crate::Gpt| -> Vec<f32> {
            let l = m.forward(&x, None).unwrap();
            l.flatten_all().unwrap().to_vec1().unwrap()
        };
        let (la, lb) = (logits(&a.model), logits(&b.model));
        let worst = la
            .iter()
            .zip(&lb)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(worst < 2e-2, "logits differ by up to {worst}");
    }

    /// Save → load gives identical logits; a truncated file is reported by name.
    #[test]
    fn checkpoint_round_trip_and_corruption() {
        crate::configure_cpu_env();
        let dir = tempfile::tempdir().unwrap();
        let smiles = moses(40);
        pretrain(
            &PretrainOptions {
                max_steps: 3,
                ..tiny_opts(dir.path())
            },
            &smiles,
            &Device::Cpu,
        )
        .unwrap();
        let a = crate::load_checkpoint(dir.path(), &Device::Cpu).unwrap();
        let vocab: Vocab = Vocab::load(&dir.path().join(checkpoint::VOCAB_FILE)).unwrap();
        assert_eq!(vocab, a.vocab);
        let copy = tempfile::tempdir().unwrap();
        checkpoint::save(copy.path(), &a.varmap, None, &a.vocab, &a.config, None).unwrap();
        let b = crate::load_checkpoint(copy.path(), &Device::Cpu).unwrap();
        let x = Tensor::new(&[[1u32, 5, 6, 7, 8]], &Device::Cpu).unwrap();
        let (la, lb) = (
            a.model.forward(&x, None).unwrap(),
            b.model.forward(&x, None).unwrap(),
        );
        assert_eq!(
            la.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            lb.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );

        for name in [checkpoint::MODEL_FILE, OPTIMIZER_FILE] {
            let d = tempfile::tempdir().unwrap();
            pretrain(
                &PretrainOptions {
                    max_steps: 2,
                    ..tiny_opts(d.path())
                },
                &smiles,
                &Device::Cpu,
            )
            .unwrap();
            let p = d.path().join(name);
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
            let err = pretrain(
                &PretrainOptions {
                    resume: true,
                    max_steps: 4,
                    ..tiny_opts(d.path())
                },
                &smiles,
                &Device::Cpu,
            )
            .unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
            // Without state.json to check against, the truncated file fails to parse, named too.
            std::fs::remove_file(d.path().join(STATE_FILE)).unwrap();
            if name == checkpoint::MODEL_FILE {
                let err = crate::load_checkpoint(d.path(), &Device::Cpu).err().unwrap();
                assert!(err.to_string().contains(name), "{err}");
            }
        }
    }

    fn copy_dir(from: &Path, to: &Path) {
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }

    /// A kill during a checkpoint's commit: before `state.json.next` exists the previous
    /// checkpoint loads; after it, the load finishes the commit, whichever files were renamed.
    #[test]
    fn an_interrupted_commit_rolls_back_or_forward() {
        crate::configure_cpu_env();
        let smiles = moses(40);
        let run = |steps: usize| {
            let d = tempfile::tempdir().unwrap();
            let opts = PretrainOptions {
                max_steps: steps,
                checkpoint_interval: 1,
                ..tiny_opts(d.path())
            };
            pretrain(&opts, &smiles, &Device::Cpu).unwrap();
            d
        };
        let (old, new) = (run(2), run(3));
        let bytes = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
        let staged = [
            checkpoint::MODEL_FILE,
            OPTIMIZER_FILE,
            checkpoint::VOCAB_FILE,
            checkpoint::CONFIG_FILE,
        ];
        // renamed = how many of the staged files reached their place before the kill.
        for (with_next, renamed) in [(false, 0), (true, 0), (true, 1), (true, 4)] {
            let d = tempfile::tempdir().unwrap();
            copy_dir(old.path(), d.path());
            for (i, f) in staged.iter().enumerate() {
                let dst = if i < renamed {
                    d.path().join(f)
                } else {
                    d.path().join(format!("{f}.tmp"))
                };
                std::fs::write(dst, bytes(new.path(), f)).unwrap();
            }
            if with_next {
                std::fs::write(
                    d.path().join(checkpoint::NEXT_STATE_FILE),
                    bytes(new.path(), STATE_FILE),
                )
                .unwrap();
            }
            let loaded = crate::load_checkpoint(d.path(), &Device::Cpu).unwrap();
            let (want, step) = if with_next {
                (new.path(), 3)
            } else {
                (old.path(), 2)
            };
            assert_eq!(
                loaded.state.unwrap().step,
                step,
                "next {with_next}, renamed {renamed}"
            );
            assert_eq!(
                bytes(d.path(), checkpoint::MODEL_FILE),
                bytes(want, checkpoint::MODEL_FILE)
            );
            assert_eq!(bytes(d.path(), OPTIMIZER_FILE), bytes(want, OPTIMIZER_FILE));
            assert!(!d.path().join(checkpoint::NEXT_STATE_FILE).exists());
            // And training goes on from there.
            let opts = PretrainOptions {
                max_steps: 4,
                checkpoint_interval: 1,
                resume: true,
                ..tiny_opts(d.path())
            };
            assert_eq!(pretrain(&opts, &smiles, &Device::Cpu).unwrap().start_step, step);
        }
        // A staged file that matches neither the old nor the new state is an error naming it.
        let d = tempfile::tempdir().unwrap();
        copy_dir(old.path(), d.path());
        std::fs::write(
            d.path().join(checkpoint::NEXT_STATE_FILE),
            bytes(new.path(), STATE_FILE),
        )
        .unwrap();
        let err = crate::load_checkpoint(d.path(), &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("interrupted checkpoint") && err.contains(checkpoint::MODEL_FILE),
            "{err}"
        );
    }

    /// Weights whose state.json is gone are neither resumed nor overwritten.
    #[test]
    fn weights_without_state_are_kept() {
        crate::configure_cpu_env();
        let smiles = moses(40);
        let d = tempfile::tempdir().unwrap();
        let opts = PretrainOptions {
            max_steps: 2,
            ..tiny_opts(d.path())
        };
        pretrain(&opts, &smiles, &Device::Cpu).unwrap();
        std::fs::remove_file(d.path().join(STATE_FILE)).unwrap();
        let before = std::fs::read(d.path().join(checkpoint::MODEL_FILE)).unwrap();
        for resume in [true, false] {
            let err = pretrain(
                &PretrainOptions {
                    resume,
                    ..opts.clone()
                },
                &smiles,
                &Device::Cpu,
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(STATE_FILE) && err.contains("missing"), "{err}");
        }
        assert_eq!(
            std::fs::read(d.path().join(checkpoint::MODEL_FILE)).unwrap(),
            before
        );
    }

    /// A row cut short by a kill is dropped when the log is reopened.
    #[test]
    fn a_torn_log_row_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(LOG_FILE);
        std::fs::write(
            &p,
            "step,train_loss,val_loss,lr,tokens_per_s\n1,2.0,,1e-3,10.0\n2,1.9,,1e-3,10.0\n3,1.8",
        )
        .unwrap();
        drop(open_log(&p, Some(5)).unwrap());
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "step,train_loss,val_loss,lr,tokens_per_s\n1,2.0,,1e-3,10.0\n2,1.9,,1e-3,10.0\n"
        );
    }
}
