//! Checkpoint directory layout, atomic writes and loading.
//!
//! A checkpoint directory holds `model.safetensors` (weights, nanoGPT names), `config.json`
//! ([`GptConfig`]), `vocab.json` and, for training runs, `optimizer.safetensors` (AdamW moments)
//! and `state.json` ([`TrainState`]), which records the size and FNV-1a hash of the others.
//!
//! A training checkpoint is committed like a journal: every file is first written to
//! `<name>.tmp` and synced; then `state.json.next` (the new state, listing those files) is written
//! atomically, which decides the commit; then the files are renamed into place and
//! `state.json.next` becomes `state.json`. A kill before `state.json.next` exists leaves the
//! previous checkpoint untouched; a kill after it is rolled forward by the next load
//! ([`read_state`]), which finishes the renames. A file that matches neither is reported by name
//! instead of being silently mixed in.

use crate::gpt::{Gpt, GptConfig};
use crate::vocab::Vocab;
use crate::{Error, Result};
use candle_core::Device;
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Weights file name.
pub const MODEL_FILE: &str = "model.safetensors";
/// Optimizer moments file name.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Training state file name (renamed from `state.json.next` last: that completes a checkpoint).
pub const STATE_FILE: &str = "state.json";
/// The staged training state of a checkpoint being committed (see the module docs).
pub const NEXT_STATE_FILE: &str = "state.json.next";
/// Vocabulary file name.
pub const VOCAB_FILE: &str = "vocab.json";
/// Resolved model config file name.
pub const CONFIG_FILE: &str = "config.json";

/// Size and hash of one checkpoint file, as recorded in `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheck {
    /// Length in bytes.
    pub bytes: u64,
    /// FNV-1a 64-bit hash of the content, hex.
    pub fnv1a64: String,
}

/// Where a training run stands; `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps completed.
    pub step: usize,
    /// Total steps the schedule was planned for.
    pub total_steps: usize,
    /// Seed of the data order and the initialisation.
    pub seed: u64,
    /// Data cursor: epoch (the shuffled batch order is a function of seed and epoch) ...
    pub epoch: usize,
    /// ... and the next batch of that epoch.
    pub batch_cursor: usize,
    /// Non-pad target tokens trained on so far.
    pub tokens_seen: u64,
    /// Training molecules (after the validation split), to catch a resume on another corpus.
    pub n_train: usize,
    /// Validation molecules.
    pub n_val: usize,
    /// Last validation loss, if any.
    pub val_loss: Option<f64>,
    /// Tokens of the longest molecule trained on, EOS included: a sampled row that runs well
    /// past it is wandering (`smirl sample --grammar` redraws such rows). Absent from
    /// checkpoints written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_molecule: Option<usize>,
    /// The checkpoint files this state belongs to.
    pub files: BTreeMap<String, FileCheck>,
}

/// A loaded model directory.
#[derive(Clone)]
pub struct Loaded {
    /// The model (weights are the `Var`s of `varmap`, so it can be trained further).
    pub model: Gpt,
    /// The weights.
    pub varmap: VarMap,
    /// The vocabulary.
    pub vocab: Vocab,
    /// The resolved config.
    pub config: GptConfig,
    /// The training state, when the directory has one.
    pub state: Option<TrainState>,
}

fn fnv1a64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn check_of(path: &Path) -> Result<FileCheck> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(FileCheck {
        bytes: bytes.len() as u64,
        fnv1a64: fnv1a64(&bytes),
    })
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

fn sync_dir(dir: &Path) {
    // Best effort: makes the renames durable; not supported on every platform.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `bytes` to `path` via `path.tmp` + fsync + rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// Writes a complete checkpoint into `dir` (created if needed); `state.files` is filled in.
pub(crate) fn save(
    dir: &Path,
    varmap: &VarMap,
    optimizer: Option<&crate::optim::AdamW>,
    vocab: &Vocab,
    config: &GptConfig,
    state: Option<&mut TrainState>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut staged: Vec<(&str, PathBuf)> = Vec::new();
    let model_tmp = tmp_path(&dir.join(MODEL_FILE));
    varmap
        .save(&model_tmp)
        .map_err(|e| Error::checkpoint(&model_tmp, e))?;
    staged.push((MODEL_FILE, model_tmp));
    if let Some(opt) = optimizer {
        let tmp = tmp_path(&dir.join(OPTIMIZER_FILE));
        opt.save(&tmp)?;
        staged.push((OPTIMIZER_FILE, tmp));
    }
    for (name, text) in [
        (VOCAB_FILE, vocab.to_json()),
        (
            CONFIG_FILE,
            serde_json::to_string_pretty(config).expect("config serialises"),
        ),
    ] {
        let tmp = tmp_path(&dir.join(name));
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        staged.push((name, tmp));
    }
    let mut files = BTreeMap::new();
    for (name, tmp) in &staged {
        sync_file(tmp)?;
        files.insert(name.to_string(), check_of(tmp)?);
    }
    let next = dir.join(NEXT_STATE_FILE);
    let commits_state = state.is_some();
    if let Some(state) = state {
        state.files = files;
        let text = serde_json::to_string_pretty(state).expect("state serialises");
        // From here on the new checkpoint is decided: a kill is rolled forward by `read_state`.
        write_atomic(&next, text.as_bytes())?;
    }
    for (name, tmp) in &staged {
        let dst = dir.join(name);
        std::fs::rename(tmp, &dst).map_err(|e| Error::io(&dst, e))?;
    }
    sync_dir(dir);
    if commits_state {
        let dst = dir.join(STATE_FILE);
        std::fs::rename(&next, &dst).map_err(|e| Error::io(&dst, e))?;
        sync_dir(dir);
    }
    Ok(())
}

/// Finishes a commit that a kill interrupted: renames the staged files `state.json.next` lists
/// into place (each checked against its recorded size and hash), then `state.json.next` to
/// `state.json`. Does nothing when there is no `state.json.next`.
fn roll_forward(dir: &Path) -> Result<()> {
    let next = dir.join(NEXT_STATE_FILE);
    if !next.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&next).map_err(|e| Error::io(&next, e))?;
    let state: TrainState = serde_json::from_str(&text).map_err(|e| Error::checkpoint(&next, e))?;
    for (name, want) in &state.files {
        let dst = dir.join(name);
        let tmp = tmp_path(&dst);
        if tmp.exists() && &check_of(&tmp)? == want {
            std::fs::rename(&tmp, &dst).map_err(|e| Error::io(&dst, e))?;
        } else if !(dst.exists() && &check_of(&dst)? == want) {
            return Err(Error::checkpoint(
                &dst,
                format!(
                    "an interrupted checkpoint cannot be completed: neither this file nor {} matches {}",
                    tmp.display(),
                    next.display()
                ),
            ));
        }
    }
    sync_dir(dir);
    let dst = dir.join(STATE_FILE);
    std::fs::rename(&next, &dst).map_err(|e| Error::io(&dst, e))?;
    sync_dir(dir);
    Ok(())
}

/// Whether `dir` holds a training checkpoint (`state.json`, or a commit to finish).
pub fn has_training_state(dir: &Path) -> Result<bool> {
    roll_forward(dir)?;
    Ok(dir.join(STATE_FILE).exists())
}

/// Reads `state.json` of `dir`, if there is one, and checks the files it lists; an interrupted
/// commit is finished first.
pub fn read_state(dir: &Path) -> Result<Option<TrainState>> {
    roll_forward(dir)?;
    let path = dir.join(STATE_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let state: TrainState = serde_json::from_str(&text).map_err(|e| Error::checkpoint(&path, e))?;
    for (name, want) in &state.files {
        let p = dir.join(name);
        if !p.exists() && name == OPTIMIZER_FILE {
            continue; // only a resume needs the optimizer state, and it says so when it is missing
        }
        if !p.exists() {
            return Err(Error::checkpoint(&p, "missing (listed in state.json)"));
        }
        let got = check_of(&p)?;
        if &got != want {
            return Err(Error::checkpoint(
                &p,
                format!(
                    "truncated or corrupt: {} bytes, hash {} but state.json recorded {} bytes, hash {}",
                    got.bytes, got.fnv1a64, want.bytes, want.fnv1a64
                ),
            ));
        }
    }
    Ok(Some(state))
}

/// Loads a model directory written by `pretrain` (or any dir with `model.safetensors`,
/// `config.json`, `vocab.json`). When `state.json` is present the files are verified against it.
/// Errors name the offending file.
pub fn load_checkpoint(dir: &Path, device: &Device) -> Result<Loaded> {
    let state = read_state(dir)?;
    let cfg_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    let config: GptConfig = serde_json::from_str(&text).map_err(|e| Error::checkpoint(&cfg_path, e))?;
    config.validate().map_err(|e| Error::checkpoint(&cfg_path, e))?;
    let vocab = Vocab::load(&dir.join(VOCAB_FILE))?;
    if vocab.len() != config.vocab_size {
        return Err(Error::checkpoint(
            &cfg_path,
            format!(
                "vocab_size {} but vocab.json has {} tokens",
                config.vocab_size,
                vocab.len()
            ),
        ));
    }
    let varmap = VarMap::new();
    let model = Gpt::init(&config, &varmap, 0, device)?;
    load_weights(&varmap, &dir.join(MODEL_FILE))?;
    Ok(Loaded {
        model,
        varmap,
        vocab,
        config,
        state,
    })
}

/// Overwrites every variable of `varmap` from a safetensors file; errors name the file.
pub(crate) fn load_weights(varmap: &VarMap, path: &Path) -> Result<()> {
    if !path.exists() {
        return Err(Error::checkpoint(path, "missing"));
    }
    let ts = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| Error::checkpoint(path, e))?;
    let data = varmap.data().lock().expect("varmap lock");
    for (name, var) in data.iter() {
        let t = ts
            .get(name)
            .ok_or_else(|| Error::checkpoint(path, format!("missing tensor {name}")))?;
        // Weights may be stored narrower than the model computes (float16 keeps a large prior's
        // files under 16 MiB); they are widened on load.
        let t = t.to_dtype(var.dtype()).and_then(|t| t.to_device(var.device()));
        t.and_then(|t| var.set(&t))
            .map_err(|e| Error::checkpoint(path, format!("{name}: {e}")))?;
    }
    Ok(())
}
