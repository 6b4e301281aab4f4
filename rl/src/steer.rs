//! Reward-guided decoding without training: blockwise best-of-K as Controlled Decoding does it
//! (Mudgal et al. 2023, arXiv 2310.17022). From each prefix, K continuations of M tokens are
//! drawn from the frozen prior; each is valued by Monte-Carlo rollouts to complete molecules
//! scored by the reward, or by a learned [`ValueHead`] (CD-FUDGE) where one is given (a
//! continuation that already ended is valued by its own score); the best one becomes the prefix. Beside it, best-of-N whole-molecule sampling at the same number of
//! forward tokens is the baseline.

use model::{Gpt, Sample, SampleOptions, Vocab};

use crate::scoring::components::{MolBatch, ScoringContext};
use crate::scoring::Scorer;
use crate::value_head::ValueHead;
use crate::{Error, Result};

/// How to steer.
#[derive(Debug, Clone)]
pub struct SteerOptions {
    /// Molecules to write.
    pub n: usize,
    /// Tokens per block (M).
    pub block: usize,
    /// Continuations drawn per prefix and block (K).
    pub candidates: usize,
    /// Rollouts to a complete molecule per continuation (the value is their mean reward).
    pub rollouts: usize,
    /// Values continuations instead of the rollouts: one teacher-forced pass of the value model
    /// (a prior-sized GPT) per continuation.
    pub value_head: Option<ValueHead>,
    /// Sampling temperature, token limit, decode batch and seed (n is set per call).
    pub sampling: SampleOptions,
}

/// What steering wrote and what it cost.
#[derive(Debug, Clone)]
pub struct Steered {
    /// The molecules, with their log-likelihood under the prior.
    pub samples: Vec<Sample>,
    /// Their rewards.
    pub rewards: Vec<f64>,
    /// Tokens fed through the model, prompts of continued prefixes included: the compute.
    pub forward_tokens: usize,
}

/// Scores complete samples with `scorer` (incomplete ones get 0).
pub fn reward_of(scorer: &Scorer, samples: &[Sample]) -> Result<Vec<f64>> {
    let smiles: Vec<String> = samples.iter().map(|s| s.smiles.clone()).collect();
    let complete: Vec<bool> = samples.iter().map(|s| s.complete).collect();
    let batch = MolBatch::new(&smiles, Some(&complete));
    let ctx = ScoringContext {
        seen: None,
        memory: &[],
    };
    Ok(scorer.score(&batch, &ctx)?.total)
}

fn forward_tokens(samples: &[Sample]) -> usize {
    samples.iter().map(|s| s.tokens.len()).sum()
}

/// Blockwise best-of-K decoding of `opts.n` molecules from `model`, valued by `scorer`.
/// `progress` is called after each block with the molecules finished so far.
pub fn steer(
    model: &Gpt,
    vocab: &Vocab,
    scorer: &Scorer,
    opts: &SteerOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<Steered> {
    for (field, value) in [
        ("block", opts.block),
        ("candidates", opts.candidates),
        ("rollouts", opts.rollouts),
        ("n", opts.n),
    ] {
        if value == 0 {
            return Err(Error::config(field, "must be > 0"));
        }
    }
    let max_len = opts.sampling.max_len.min(model.config().block_size);
    let mut prefixes: Vec<Vec<u32>> = vec![Vec::new(); opts.n];
    let mut finished: Vec<Option<(Sample, f64)>> = vec![None; opts.n];
    let mut tokens = 0usize;
    let mut seed = opts.sampling.seed;
    let mut next_seed = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed
    };
    let mut length = 0;
    while finished.iter().any(Option::is_none) {
        let open: Vec<usize> = (0..opts.n).filter(|&i| finished[i].is_none()).collect();
        let k = opts.candidates;
        // K continuations of M tokens of every open prefix (candidate j of prefix i at i*K + j).
        let block_end = (length + opts.block).min(max_len);
        let starts: Vec<Vec<u32>> = open.iter().flat_map(|&i| vec![prefixes[i].clone(); k]).collect();
        let candidates = model::sample_continuing(
            model,
            vocab,
            None,
            &SampleOptions {
                n: starts.len(),
                max_len: block_end,
                seed: next_seed(),
                ..opts.sampling.clone()
            },
            &starts,
        )?;
        tokens += forward_tokens(&candidates);
        // Values: a finished candidate's own reward, else the mean of its rollouts' rewards.
        let own = reward_of(scorer, &candidates)?;
        let unfinished: Vec<usize> = (0..candidates.len())
            .filter(|&c| !candidates[c].complete && candidates[c].tokens.len() < max_len)
            .collect();
        let mut value: Vec<f64> = own.clone();
        if let (Some(head), false) = (&opts.value_head, unfinished.is_empty()) {
            let seqs: Vec<Vec<u32>> = unfinished.iter().map(|&c| candidates[c].tokens.clone()).collect();
            tokens += seqs.iter().map(Vec::len).sum::<usize>(); // BOS and all but the last token
            for (&c, v) in unfinished.iter().zip(head.values(&seqs)?) {
                value[c] = v;
            }
        } else if !unfinished.is_empty() {
            let roll_starts: Vec<Vec<u32>> = unfinished
                .iter()
                .flat_map(|&c| vec![candidates[c].tokens.clone(); opts.rollouts])
                .collect();
            let rolls = model::sample_continuing(
                model,
                vocab,
                None,
                &SampleOptions {
                    n: roll_starts.len(),
                    max_len,
                    seed: next_seed(),
                    ..opts.sampling.clone()
                },
                &roll_starts,
            )?;
            tokens += forward_tokens(&rolls);
            let roll_rewards = reward_of(scorer, &rolls)?;
            for (u, &c) in unfinished.iter().enumerate() {
                let r = &roll_rewards[u * opts.rollouts..(u + 1) * opts.rollouts];
                value[c] = r.iter().sum::<f64>() / opts.rollouts as f64;
            }
        }
        for (slot, &i) in open.iter().enumerate() {
            let group = slot * k..(slot + 1) * k;
            // The best value; ties go to the first drawn.
            let best = group
                .clone()
                .fold(group.start, |b, c| if value[c] > value[b] { c } else { b });
            let chosen = &candidates[best];
            if chosen.complete || chosen.tokens.len() >= max_len {
                finished[i] = Some((chosen.clone(), own[best]));
            } else {
                prefixes[i] = chosen.tokens.clone();
            }
        }
        length = block_end;
        progress(finished.iter().filter(|f| f.is_some()).count());
    }
    let (samples, rewards) = finished
        .into_iter()
        .map(|f| f.expect("every molecule finished"))
        .unzip();
    Ok(Steered {
        samples,
        rewards,
        forward_tokens: tokens,
    })
}

/// Best-of-N whole-molecule sampling within a budget of forward tokens: molecules are drawn in
/// rounds of `n` (one per slot) until the budget is spent, and each slot keeps its best.
pub fn best_of_n(
    model: &Gpt,
    vocab: &Vocab,
    scorer: &Scorer,
    n: usize,
    token_budget: usize,
    sampling: &SampleOptions,
) -> Result<Steered> {
    let mut best: Vec<Option<(Sample, f64)>> = vec![None; n];
    let mut tokens = 0usize;
    let mut round = 0u64;
    while tokens < token_budget || best.iter().any(Option::is_none) {
        let draws = model::sample(
            model,
            vocab,
            None,
            &SampleOptions {
                n,
                seed: sampling.seed.wrapping_add(round),
                ..sampling.clone()
            },
        )?;
        tokens += forward_tokens(&draws);
        let rewards = reward_of(scorer, &draws)?;
        for ((slot, draw), r) in best.iter_mut().zip(draws).zip(rewards) {
            if slot.as_ref().is_none_or(|(_, b)| r > *b) {
                *slot = Some((draw, r));
            }
        }
        round += 1;
    }
    let (samples, rewards) = best.into_iter().map(|f| f.expect("one round ran")).unzip();
    Ok(Steered {
        samples,
        rewards,
        forward_tokens: tokens,
    })
}
