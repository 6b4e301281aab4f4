//! Character-level SMILES GPT on [candle](https://github.com/huggingface/candle): tokenizer, model, pretraining, sampling, checkpoints.
//!
//! # Brief overview
//!
//! - [`Vocab`] (`vocab.rs`): PAD/BOS/EOS + corpus characters (or atoms, [`TokenMode::Atom`]),
//!   JSON round trip; [`Corpus::build`] encodes a corpus and counts what it had to skip.
//! - [`Gpt`] / [`GptConfig`] (`gpt.rs`): decoder-only GPT, pre-LayerNorm, erf-GELU MLP, learned
//!   positions, tied head. [`Gpt::forward`] takes an optional soft-prompt prefix;
//!   [`Gpt::forward_cached`] decodes incrementally with a preallocated KV cache.
//! - [`pretrain`] / [`PretrainOptions`] (`train.rs`): AdamW ([`optim::AdamW`], moments
//!   checkpointed), warmup + cosine schedule, clipping, validation, `log.csv`, atomic and
//!   resumable checkpoints ([`checkpoint`]).
//! - [`sample()`] / [`SampleOptions`] (`sample.rs`): batched sampling with temperature, top-k,
//!   top-p and a seed; each [`Sample`] carries its log-likelihood. [`likelihood`] scores given
//!   SMILES; [`sequence_log_probs`] is its differentiable form for REINFORCE.
//! - [`load_checkpoint`] reads a run directory back into a [`Loaded`] (model, varmap, vocab,
//!   config, state).
//!
//! On the CPU, training (pretraining and the RL update) runs through [`train_pass`]: the GPT's
//! forward and backward written out by hand over reusable buffers, checked against candle's
//! autograd in its tests (1.6–2× faster than autograd here). Elsewhere training uses candle's
//! autograd with the fused kernels of [`ops`] (LayerNorm, causal softmax, erf GELU,
//! cross-entropy), which carry their own backward pass; decoding uses a fused attention over the
//! KV cache. Other devices and dtypes fall back to candle's composed ops.
//!
//! Sampling on the CPU runs through [`decode_pass::Decoder`]: one position per call over caches
//! written in place, the rows dealt into one shard per thread, and the linear layers through
//! weights packed once for an AVX2/FMA kernel (`packed_linear.rs`) that adds the bias and
//! residual and applies GELU as it writes. Its tests compare logits with [`Gpt::forward`].
//!
//! So the GPT's forward exists three times, tied together by tests: [`Gpt::forward`] (candle,
//! every device; the reference), [`train_pass::TrainPass`] (losses and every gradient checked
//! against candle's autograd) and [`decode_pass::Decoder`] (logits checked against
//! [`Gpt::forward`] with and without a deep prefix; the sampler's log-likelihoods against both
//! training paths'). The two hand-written passes share the slice kernels of `cpu/kernels.rs` and
//! the weights' flat layout of `cpu/layout.rs`.
//!
//! # CPU performance notes for the binary
//!
//! - candle 0.11 runs large elementwise ops on its own *spinning* barrier thread pool, next to
//!   the rayon pool that GEMM uses. On a 2-core machine, and worse on a busy one, the spinning
//!   workers steal the cores the GEMM threads need: a tiny model trained 5× slower than with
//!   `CANDLE_NUM_THREADS=1`. Call [`configure_cpu_env`] first thing in `main`.
//! - Training is allocation-heavy: a global allocator such as mimalloc, or glibc malloc tunables
//!   (`mmap_threshold`/`trim_threshold`), gave 1.6× on training in earlier measurements.
//!
//! ```no_run
//! use model::{pretrain, sample, load_checkpoint, PretrainOptions, SampleOptions};
//! let device = candle_core::Device::Cpu;
//! let smiles: Vec<String> = vec!["CCO".into(), "c1ccccc1".into()];
//! let opts = PretrainOptions { out_dir: "runs/prior".into(), max_steps: 100, ..Default::default() };
//! let report = pretrain(&opts, &smiles, &device)?;
//! let run = load_checkpoint(&report.out_dir, &device)?;
//! let mols = sample(&run.model, &run.vocab, None, &SampleOptions { n: 10, ..Default::default() })?;
//! # Ok::<(), model::Error>(())
//! ```

#![warn(missing_docs)]

pub mod checkpoint;
mod cpu;
pub mod decode_pass;
mod error;
pub mod gpt;
pub mod grammar;
pub mod ops;
pub mod optim;
mod packed_linear;
pub mod rng;
pub mod sample;
#[cfg(test)]
mod testing;
pub mod train;
pub mod train_pass;
pub mod vocab;

pub use candle_core::{Device, Tensor};

/// Set when the user asks a long run to stop (the CLI's Ctrl-C handler): [`pretrain`] and `rl`'s
/// tuning loop then checkpoint after the current step and return [`Error::Interrupted`].
static STOP_REQUESTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks running training loops to checkpoint and stop after their current step.
pub fn request_stop() {
    STOP_REQUESTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Whether [`request_stop`] was called.
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Sets candle's CPU thread knobs that pay off on small machines, unless the environment already
/// sets them: `CANDLE_NUM_THREADS=1` (no spinning elementwise pool; GEMM and this crate's fused
/// ops still use every rayon thread). candle reads them once, at its first large op, so call this
/// before any tensor work, while the program is single-threaded.
pub fn configure_cpu_env() {
    for (key, value) in [("CANDLE_NUM_THREADS", "1")] {
        if std::env::var_os(key).is_none() {
            std::env::set_var(key, value);
        }
    }
}

/// The path the `gemm` crate's matrix products take on this CPU (training and candle's matmuls):
/// AVX-512 where this build has gemm's AVX-512 kernels (feature `gemm-avx512`) and the CPU runs
/// them, else AVX2 with FMA, else portable. `SMIRL_SIMD` cannot cap it: gemm picks by itself.
pub fn gemm_simd_level() -> fastmath::simd::SimdLevel {
    use fastmath::simd::{detected, SimdLevel};
    let cpu = detected();
    if cfg!(feature = "gemm-avx512") {
        cpu
    } else {
        cpu.min(SimdLevel::Avx2)
    }
}

/// The device called `name`: `cpu`, `cuda` (GPU 0) or `cuda:N`, or `auto` (the first GPU when
/// this build has the `cuda` feature and one answers, else the CPU).
pub fn device_by_name(name: &str) -> Result<Device> {
    let ordinal = match name {
        "cpu" => return Ok(Device::Cpu),
        "auto" if cfg!(feature = "cuda") => return Ok(Device::new_cuda(0).unwrap_or(Device::Cpu)),
        "auto" => return Ok(Device::Cpu),
        "cuda" => 0,
        _ => name
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                Error::option("device", format!("{name:?}: expected cpu, cuda, cuda:N or auto"))
            })?,
    };
    if !cfg!(feature = "cuda") {
        return Err(Error::option(
            "device",
            format!("{name}: this build has no CUDA support (build with `--features cuda`)"),
        ));
    }
    Device::new_cuda(ordinal).map_err(|e| Error::option("device", format!("{name}: {e}")))
}

pub use checkpoint::{load_checkpoint, read_state, Loaded, TrainState};
pub use error::{Error, Result};
pub use gpt::{token_log_probs, Gpt, GptConfig};
pub use sample::{likelihood, sample, sample_continuing, sequence_log_probs, Sample, SampleOptions};
pub use train::{
    pretrain, pretrain_with_progress, LogRow, PretrainOptions, PretrainReport, Progress, SmilesRewriter,
};
pub use vocab::{fits_block, Corpus, TokenMode, Vocab, BOS, EOS, PAD};

#[cfg(test)]
mod tests {
    use super::*;

    /// Device names parse; a CUDA name in a CPU-only build says how to get CUDA.
    #[test]
    fn device_names() {
        assert!(device_by_name("cpu").unwrap().is_cpu());
        for bad in ["gpu", "cuda:", "cuda:x", "CPU"] {
            let err = device_by_name(bad).unwrap_err().to_string();
            assert!(err.contains("expected cpu, cuda"), "{bad}: {err}");
        }
        if !cfg!(feature = "cuda") {
            assert!(device_by_name("auto").unwrap().is_cpu());
            let err = device_by_name("cuda:1").unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
