//! Batched autoregressive sampling with the KV cache, and likelihoods of given SMILES.

use crate::decode_pass::Decoder;
use crate::gpt::{token_log_probs, Gpt};
use crate::grammar::{GrammarState, SmilesGrammar};
use crate::rng::Rng;
use crate::vocab::{Vocab, BOS, EOS, PAD};
use crate::{Error, Result};
use candle_core::{Tensor, D};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Sampling options (`smirl sample` flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SampleOptions {
    /// Molecules to generate.
    pub n: usize,
    /// Sequences decoded together (one KV cache per batch).
    pub batch_size: usize,
    /// Softmax temperature; 0 picks the most likely token (greedy).
    pub temperature: f64,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Nucleus sampling: keep the smallest set of tokens with probability ≥ top_p (1 = off).
    pub top_p: f64,
    /// Most tokens generated per molecule, EOS included (also capped by the context).
    pub max_len: usize,
    /// Seed: the same seed, options and model give the same molecules.
    pub seed: u64,
    /// Grammar-constrained decoding ([`crate::grammar`]): tokens that cannot continue a valid
    /// SMILES are masked and the rest renormalised; log-likelihoods are those of the masked
    /// distribution.
    pub grammar: bool,
    /// Rounds of redrawing the rows that end unfinished (no EOS within `max_len`, or a grammar
    /// dead end), so that with the grammar nearly every string written is a complete SMILES.
    /// On the CPU decoder without a soft prompt, such a row starts over in its own slot while
    /// the batch decodes on (up to this many times); elsewhere each round decodes the batch's
    /// unfinished rows afresh (the first from spare rows decoded with the batch, where every
    /// row begins alike). 0 = off. What is drawn is then the distribution conditioned
    /// on finishing; log-likelihoods stay those of the (masked) model, which that conditioning
    /// only rescales.
    pub redraw_rounds: usize,
    /// Under the grammar with redraws: a row whose mask leaves the model less than this share of
    /// its probability (it wanted, at ≥ 99 % by default, only what the grammar forbids) has left
    /// the model's distribution; it is stopped there, unfinished, and redrawn. Nearly every row
    /// that would wander to `max_len` or into a dead end does this first. 0 = off.
    pub abandon_below: f64,
    /// Index of the first batch within a longer stream (its first molecule is `first_batch ×
    /// batch_size`). On the CPU decoder without a soft prompt, molecule i of a stream is drawn
    /// from its own sub-stream of `seed` whatever the batch size; otherwise batch k is drawn
    /// from sub-stream k (batch 0 from `seed` itself). Either way a run cut into batch ranges
    /// (`smirl sample --shard I/N`) gives disjoint shards whose union is the uncut run.
    pub first_batch: usize,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            n: 1000,
            batch_size: 256,
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            max_len: 128,
            seed: 0,
            grammar: false,
            redraw_rounds: 0,
            abandon_below: 0.0,
            first_batch: 0,
        }
    }
}

impl SampleOptions {
    /// Checks the values; the error names the first bad field.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::option("batch_size", "must be > 0"));
        }
        if self.temperature.is_nan() || self.temperature < 0.0 {
            return Err(Error::option("temperature", "must be >= 0"));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) || self.top_p.is_nan() {
            return Err(Error::option("top_p", "must be in (0, 1]"));
        }
        if !(0.0..1.0).contains(&self.abandon_below) {
            return Err(Error::option("abandon_below", "must be in [0, 1)"));
        }
        if self.max_len == 0 {
            return Err(Error::option("max_len", "must be > 0"));
        }
        Ok(())
    }
}

/// One generated molecule.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The decoded SMILES (not necessarily valid chemistry).
    pub smiles: String,
    /// Sum of the log-probabilities of the sampled tokens, EOS included, under the model itself
    /// (temperature 1, no top-k/top-p truncation): log π(x) as needed by policy gradients.
    pub log_likelihood: f64,
    /// Generated token ids (EOS included when reached; no BOS).
    pub tokens: Vec<u32>,
    /// Whether EOS was produced before `max_len` ran out.
    pub complete: bool,
    /// Under the grammar: whether the row ran into a state where nothing but EOS could follow,
    /// so that it ended incomplete (always false without the grammar).
    pub dead_end: bool,
    /// The redraw round that produced this row (0: the row's own first draw; 1: a spare, or
    /// the first redraw or restart; see [`SampleOptions::redraw_rounds`]).
    pub redraws: usize,
}

impl Sample {
    /// Ended without EOS, or at a dead end of the grammar: not a finished string.
    pub fn unfinished(&self) -> bool {
        !self.complete || self.dead_end
    }
}

/// Log-softmax of one row, in f64.
fn log_softmax(xs: &[f32]) -> Vec<f64> {
    let max = xs.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let lse = max + xs.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
    xs.iter().map(|&v| v as f64 - lse).collect()
}

/// Renormalises `logp` over the `allowed` tokens (the others become -inf); returns the log of
/// the probability the allowed tokens held (for normalised `logp`).
pub fn mask_log_probs(logp: &mut [f64], allowed: &[bool]) -> f64 {
    let max = logp
        .iter()
        .zip(allowed)
        .filter(|(_, &a)| a)
        .fold(f64::NEG_INFINITY, |m, (&l, _)| m.max(l));
    let lse = max
        + logp
            .iter()
            .zip(allowed)
            .filter(|(_, &a)| a)
            .map(|(&l, _)| (l - max).exp())
            .sum::<f64>()
            .ln();
    for (l, &a) in logp.iter_mut().zip(allowed) {
        *l = if a { *l - lse } else { f64::NEG_INFINITY };
    }
    lse
}

/// Below this log-probability (at temperature 1, about 1e-10), a token is not checked against
/// the grammar while sampling and counts as forbidden; a masked log-likelihood moves by under
/// V·1e-10. The shipped prior gives nearly every token more (28.3 of 29 per step over 10,000
/// samples), so there it saves little; a distribution sharper than the prior's skips more.
const UNCHECKED_LOG_PROB: f64 = -23.0;

/// One row's next-token log-probs `logp`, renormalised over what the grammar allows after
/// `state` where there is one, with the probability the mask kept (1 without). A `forced`
/// token (a given start) is checked however unlikely.
fn mask_next(
    mut logp: Vec<f64>,
    grammar: Option<(&SmilesGrammar, &GrammarState)>,
    forced: Option<u32>,
    temperature: f64,
) -> (Vec<f64>, f64) {
    let Some((g, state)) = grammar else {
        return (logp, 1.0);
    };
    // A hotter temperature lifts unlikely tokens: the threshold follows it.
    let floor = UNCHECKED_LOG_PROB * temperature.max(1.0);
    // On the stack for a character vocabulary: this runs for every row at every step.
    let (mut on_stack, mut on_heap) = ([false; 64], Vec::new());
    let allowed: &mut [bool] = if logp.len() <= on_stack.len() {
        &mut on_stack[..logp.len()]
    } else {
        on_heap.resize(logp.len(), false);
        &mut on_heap
    };
    g.allowed_among(state, allowed, |id| logp[id] > floor || forced == Some(id as u32));
    let kept = mask_log_probs(&mut logp, allowed).exp();
    (logp, kept)
}

/// Draws one token from `logp` (the model's log-probs) after temperature, top-k and top-p.
/// PAD, BOS and the tokens a mask forbids (-inf) are never drawn.
pub fn pick(logp: &[f64], opts: &SampleOptions, rng: &mut Rng) -> u32 {
    // Masked tokens are left out before the sort: under the grammar a third of them are.
    let mut cand: Vec<(u32, f64)> = logp
        .iter()
        .enumerate()
        .filter(|&(i, &l)| i as u32 != PAD && i as u32 != BOS && l > f64::NEG_INFINITY)
        .map(|(i, &l)| (i as u32, l))
        .collect();
    if cand.is_empty() {
        // Nothing has weight, which the grammar never leaves (EOS stays allowed at a dead end).
        return EOS;
    }
    cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))); // most likely first
    if opts.temperature == 0.0 {
        return cand[0].0;
    }
    if opts.top_k > 0 {
        cand.truncate(opts.top_k);
    }
    let top = cand[0].1;
    let mut probs: Vec<f64> = cand
        .iter()
        .map(|&(_, l)| ((l - top) / opts.temperature).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if opts.top_p < 1.0 {
        let mut acc = 0.0;
        let keep = probs.iter().position(|&p| {
            acc += p;
            acc >= opts.top_p
        });
        probs.truncate(keep.map_or(probs.len(), |k| k + 1));
    }
    let mut u = rng.next_f64() * probs.iter().sum::<f64>();
    for (i, p) in probs.iter().enumerate() {
        u -= p;
        if u < 0.0 {
            return cand[i].0;
        }
    }
    cand[probs.len() - 1].0
}

/// A soft prompt for [`sample`]: learned vectors fed before the tokens.
#[derive(Debug, Clone, Copy)]
pub enum Prompt<'a> {
    /// `(1, P, n_embd)` or `(batch, P, n_embd)` vectors placed before BOS, which predicts x_1.
    BeforeBos(&'a Tensor),
    /// `(1, P, n_embd)` vectors whose last one takes BOS's place, so with P = 1 every token sits
    /// where pretraining put it (rl's prefix mode). No position predicts x_1 then: it is drawn
    /// from `first_log_probs` (rl passes the prior's distribution after BOS).
    InBosPlace {
        /// The prompt vectors.
        prefix: &'a Tensor,
        /// Log-probabilities of the first token, one per vocabulary entry.
        first_log_probs: &'a [f64],
    },
}

/// What decodes: the hand-written CPU decoder, or candle's KV-cached forward elsewhere.
enum Stepper {
    Cpu(Box<Decoder>),
    Candle(Gpt),
}

impl Stepper {
    fn new(model: &Gpt) -> Result<Self> {
        Ok(if Decoder::supports(model) {
            Stepper::Cpu(Box::new(Decoder::new(model)?))
        } else {
            Stepper::Candle(model.detached()) // no graph recording, own KV cache
        })
    }

    fn start(&mut self, rows: usize, positions: usize) {
        match self {
            Stepper::Cpu(d) => d.start(rows, positions),
            Stepper::Candle(m) => m.clear_kv_cache(),
        }
    }

    /// Feeds the prompt `(1 or rows, P, C)`, if any, then one token per row, from position 0;
    /// returns the next-token logits `(rows × V)`.
    fn first(&mut self, prefix: Option<&Tensor>, tokens: &[u32]) -> Result<Vec<f32>> {
        match self {
            Stepper::Cpu(d) => {
                if let Some(pre) = prefix {
                    let (pb, p, c) = pre.dims3()?;
                    let data = pre.flatten_all()?.to_vec1::<f32>()?;
                    for pos in 0..p {
                        let vectors: Vec<f32> = (0..pb)
                            .flat_map(|r| data[(r * p + pos) * c..][..c].to_vec())
                            .collect();
                        d.feed_vectors(&vectors)?;
                    }
                }
                Ok(d.feed_tokens(tokens)?.to_vec())
            }
            Stepper::Candle(m) => {
                let input = Tensor::from_vec(tokens.to_vec(), (tokens.len(), 1), m.device())?;
                Ok(m.forward_cached(&input, prefix, 0)?
                    .flatten_all()?
                    .to_vec1::<f32>()?)
            }
        }
    }

    /// Feeds one token per row at position `offset`.
    fn next(&mut self, tokens: &[u32], offset: usize) -> Result<Vec<f32>> {
        match self {
            Stepper::Cpu(d) => Ok(d.feed_tokens(tokens)?.to_vec()),
            Stepper::Candle(m) => {
                let input = Tensor::from_vec(tokens.to_vec(), (tokens.len(), 1), m.device())?;
                Ok(m.forward_cached(&input, None, offset)?
                    .flatten_all()?
                    .to_vec1::<f32>()?)
            }
        }
    }

    /// Starts rows over at position 0 (only the CPU decoder keeps a position per row).
    fn restart(&mut self, rows: &[usize]) -> Result<()> {
        match self {
            Stepper::Cpu(d) => d.restart_rows(rows),
            Stepper::Candle(_) => Err(Error::option(
                "rows",
                "candle's KV cache cannot restart single rows",
            )),
        }
    }

    fn retain(&mut self, rows: &[usize]) -> Result<()> {
        match self {
            Stepper::Cpu(d) => d.retain_rows(rows),
            Stepper::Candle(m) => Ok(m.retain_kv_rows(&rows.iter().map(|&r| r as u32).collect::<Vec<_>>())?),
        }
    }
}

/// The generator of batch `batch` of a sampling stream: `seed` itself for the first batch (a run
/// of one batch is the same as before sharding existed), an independent sub-stream after it.
pub fn batch_rng(seed: u64, batch: usize) -> Rng {
    match batch {
        0 => Rng::new(seed),
        k => Rng::derive(seed, k as u64),
    }
}

/// Generates `opts.n` molecules, `opts.batch_size` at a time with a KV cache, each ending at its
/// own EOS, optionally behind a soft [`Prompt`]. On the CPU decoder without a soft prompt the
/// batch is a set of slots, each taking the next molecule as soon as its last one ends.
pub fn sample(
    model: &Gpt,
    vocab: &Vocab,
    prompt: Option<Prompt>,
    opts: &SampleOptions,
) -> Result<Vec<Sample>> {
    sample_continuing(model, vocab, prompt, opts, &[])
}

/// [`sample`] where molecule i begins with the tokens `starts[i % starts.len()]` (no BOS, no
/// EOS; none when `starts` is empty): the model continues each given beginning. A sample's
/// tokens and log-likelihood cover the whole molecule, its beginning included.
pub fn sample_continuing(
    model: &Gpt,
    vocab: &Vocab,
    prompt: Option<Prompt>,
    opts: &SampleOptions,
    starts: &[Vec<u32>],
) -> Result<Vec<Sample>> {
    opts.validate()?;
    if let Some(bad) = starts
        .iter()
        .flatten()
        .find(|&&t| t <= EOS || t as usize >= vocab.len())
    {
        return Err(Error::option(
            "prompt",
            format!("token id {bad} cannot begin a molecule (a special token or outside the vocabulary)"),
        ));
    }
    let (prefix, first_log_probs) = match prompt {
        None => (None, None),
        Some(Prompt::BeforeBos(t)) => (Some(t.detach()), None),
        Some(Prompt::InBosPlace {
            prefix,
            first_log_probs,
        }) => {
            if first_log_probs.len() != vocab.len() {
                return Err(Error::option(
                    "first_log_probs",
                    format!(
                        "{} values for a vocabulary of {}",
                        first_log_probs.len(),
                        vocab.len()
                    ),
                ));
            }
            if prefix.dim(0)? != 1 {
                return Err(Error::option("prefix", "a prompt in BOS's place must have 1 row"));
            }
            (Some(prefix.detach()), Some(first_log_probs))
        }
    };
    let p = prefix.as_ref().map_or(Ok(0), |t| t.dim(1))?;
    // Positions taken before x_1: the prompt, and BOS unless the prompt stands in for it.
    let lead = p + usize::from(first_log_probs.is_none());
    let block = model.config().block_size;
    let mut m = Stepper::new(model)?;
    if lead.max(p + 1) > block {
        return Err(Error::TooLong {
            len: lead.max(p + 1),
            block_size: block,
        });
    }
    let max_len = opts.max_len.min(block + 1 - lead); // the last token is never fed back
    if let Some(long) = starts.iter().find(|s| s.len() >= max_len) {
        return Err(Error::option(
            "prompt",
            format!(
                "{} tokens leave no room to continue within max_len {max_len}",
                long.len()
            ),
        ));
    }
    let grammar = opts.grammar.then(|| SmilesGrammar::new(vocab));
    let job = BatchJob {
        vocab,
        grammar: grammar.as_ref(),
        opts,
        first_log_probs,
        lead,
        prompt_len: p,
        max_len,
        starts,
    };
    // Where the CPU decoder feeds BOS itself, every row of the batch is a slot that takes the
    // next molecule as soon as its last one ends: no batch waits for its longest row.
    if matches!(m, Stepper::Cpu(_)) && prefix.is_none() && first_log_probs.is_none() {
        return job.decode_stream(&mut m, opts.first_batch * opts.batch_size);
    }
    let mut out = Vec::with_capacity(opts.n);
    while out.len() < opts.n {
        let b = opts.batch_size.min(opts.n - out.len());
        let batch = opts.first_batch + out.len() / opts.batch_size;
        if prefix
            .as_ref()
            .is_some_and(|t| t.dim(0).ok() != Some(1) && t.dim(0).ok() != Some(b))
        {
            return Err(Error::option(
                "batch_size",
                "a batched prefix must have batch_size rows (or 1)",
            ));
        }
        // Spare rows decoded with the batch stand in for its first unfinished rows: a few more
        // rows in a full batch cost far less than a second, nearly empty one. They need every
        // row to begin alike (one prompt row, at most one start).
        let shared_start = starts.len() <= 1 && prefix.as_ref().map_or(Ok(1), |t| t.dim(0))? == 1;
        let spares = match opts.redraw_rounds {
            0 => 0,
            _ if !shared_start => 0,
            _ => b.div_ceil(SPARE_SHARE),
        };
        let first_molecule = batch * opts.batch_size;
        let molecules: Vec<usize> = (first_molecule..first_molecule + b + spares).collect();
        let mut rows = job.decode(
            &mut m,
            prefix.as_ref(),
            &molecules,
            &mut batch_rng(opts.seed, batch),
        )?;
        let mut finished_spares = rows.split_off(b).into_iter().filter(|s| !s.unfinished());
        for row in rows.iter_mut().filter(|s| s.unfinished()) {
            match finished_spares.next() {
                Some(spare) => *row = Sample { redraws: 1, ..spare },
                None => break,
            }
        }
        // Redraw the rows still unfinished, each round from its own sub-stream of the seed, so
        // that a shard redraws exactly what the whole run does.
        for round in (1 + usize::from(spares > 0))..=opts.redraw_rounds {
            let failed: Vec<usize> = (0..b).filter(|&r| rows[r].unfinished()).collect();
            if failed.is_empty() {
                break;
            }
            let sub_prefix = match &prefix {
                Some(t) if t.dim(0)? > 1 => {
                    let ids: Vec<u32> = failed.iter().map(|&r| r as u32).collect();
                    Some(t.index_select(&Tensor::new(ids.as_slice(), t.device())?, 0)?)
                }
                other => other.clone(),
            };
            let again: Vec<usize> = failed.iter().map(|&r| molecules[r]).collect();
            let mut rng = Rng::derive(opts.seed, REDRAW_STREAMS + (batch as u64) * 256 + round as u64);
            let redrawn = job.decode(&mut m, sub_prefix.as_ref(), &again, &mut rng)?;
            for (r, mut s) in failed.into_iter().zip(redrawn) {
                s.redraws = round;
                rows[r] = s;
            }
        }
        out.extend(rows);
    }
    Ok(out)
}

/// Once a quarter of the batch's rows are idle, drops them from the batch and the cache, keeping
/// the rows `live` (indices into `active` and `next`, in order).
fn drop_idle(m: &mut Stepper, live: &[usize], active: &mut Vec<usize>, next: &mut Vec<u32>) -> Result<()> {
    if live.len() * 4 <= active.len() * 3 {
        m.retain(live)?;
        *next = live.iter().map(|&ci| next[ci]).collect();
        *active = live.iter().map(|&ci| active[ci]).collect();
    }
    Ok(())
}

/// One spare row per this many rows of a batch when redrawing: unconstrained or under the
/// grammar, about 4 % of the shipped prior's rows end unfinished.
const SPARE_SHARE: usize = 16;

/// Sub-streams of the seed from here on belong to redraws (batch k, round j: this + 256 k + j),
/// far above any batch's own stream.
const REDRAW_STREAMS: u64 = 1 << 48;

/// What every batch of one sampling call shares.
struct BatchJob<'a> {
    vocab: &'a Vocab,
    grammar: Option<&'a SmilesGrammar>,
    opts: &'a SampleOptions,
    /// The first token's log-probs when a prompt stands in BOS's place.
    first_log_probs: Option<&'a [f64]>,
    /// Positions before x_1 (the prompt, and BOS unless the prompt replaces it).
    lead: usize,
    prompt_len: usize,
    max_len: usize,
    starts: &'a [Vec<u32>],
}

impl BatchJob<'_> {
    /// The kept probability under which a row is abandoned: only where a redraw replaces it.
    fn abandon_below(&self) -> f64 {
        if self.opts.redraw_rounds > 0 {
            self.opts.abandon_below
        } else {
            0.0
        }
    }

    /// The token molecule `molecule`'s given start puts at `at`, if any.
    fn forced(&self, molecule: usize, at: usize) -> Option<u32> {
        match self.starts.len() {
            0 => None,
            k => self.starts[molecule % k].get(at).copied(),
        }
    }

    /// The error for a given start the grammar does not allow.
    fn refused_start(&self, molecule: usize) -> Error {
        let start = &self.starts[molecule % self.starts.len()];
        Error::option(
            "prompt",
            format!(
                "{:?} is not the beginning of a SMILES the grammar allows",
                self.vocab.decode(start)
            ),
        )
    }

    /// Decodes one molecule per entry of `molecules` (their indices in the stream choose their
    /// `starts`) together in one KV cache, behind `prefix` (1 row, or one per molecule).
    fn decode(
        &self,
        m: &mut Stepper,
        prefix: Option<&Tensor>,
        molecules: &[usize],
        rng: &mut Rng,
    ) -> Result<Vec<Sample>> {
        let (b, v, max_len, lead) = (molecules.len(), self.vocab.len(), self.max_len, self.lead);
        let (grammar, abandon_below) = (self.grammar, self.abandon_below());
        m.start(b, lead.max(self.prompt_len + 1) + max_len);
        let mut toks: Vec<Vec<u32>> = vec![Vec::with_capacity(max_len); b];
        let mut ll = vec![0f64; b];
        let mut done = vec![false; b];
        let mut abandoned = vec![false; b];
        let mut states = vec![GrammarState::new(); if grammar.is_some() { b } else { 0 }];
        // Logits for the next token of each active row; None before the first forward.
        let mut logits = match self.first_log_probs {
            Some(_) => None,
            None => Some(m.first(prefix, &vec![BOS; b])?),
        };
        let mut active: Vec<usize> = (0..b).collect(); // batch row -> molecule
        for step in 0..max_len {
            let mut next = vec![PAD; active.len()];
            // Each live row's (masked) log-probs, computed in parallel.
            let rows: Vec<Option<(Vec<f64>, f64)>> = active
                .par_iter()
                .enumerate()
                .map(|(ci, &r)| {
                    if done[r] {
                        return None;
                    }
                    let logp = match (&logits, self.first_log_probs) {
                        (Some(rows), _) => log_softmax(&rows[ci * v..(ci + 1) * v]),
                        (None, Some(first)) => first.to_vec(),
                        (None, None) => unreachable!("logits exist unless the first token is given"),
                    };
                    let state = grammar.zip(states.get(r));
                    Some(mask_next(
                        logp,
                        state,
                        self.forced(molecules[r], step),
                        self.opts.temperature,
                    ))
                })
                .collect();
            for (ci, (&r, row)) in active.iter().zip(rows).enumerate() {
                let Some((logp, kept)) = row else {
                    continue;
                };
                if kept < abandon_below {
                    done[r] = true; // no EOS: unfinished, so a redraw replaces it
                    abandoned[r] = true;
                    continue;
                }
                let forced = self.forced(molecules[r], step);
                let id = forced.unwrap_or_else(|| pick(&logp, self.opts, rng));
                if let Some(g) = grammar {
                    if !g.advance(&mut states[r], id) && forced.is_some() {
                        return Err(self.refused_start(molecules[r]));
                    }
                }
                ll[r] += logp[id as usize];
                toks[r].push(id);
                next[ci] = id;
                done[r] = id == EOS;
            }
            if step + 1 == max_len || done.iter().all(|&d| d) {
                break;
            }
            let live: Vec<usize> = (0..active.len()).filter(|&ci| !done[active[ci]]).collect();
            drop_idle(m, &live, &mut active, &mut next)?;
            // x_{step+1} sits after the lead positions; the prompt goes in with the first forward.
            logits = Some(if logits.is_none() {
                m.first(prefix, &next)?
            } else {
                m.next(&next, lead + step)?
            });
        }
        Ok((0..b)
            .map(|r| {
                let tokens = std::mem::take(&mut toks[r]);
                Sample {
                    smiles: self.vocab.decode(&tokens),
                    log_likelihood: ll[r],
                    complete: done[r] && !abandoned[r],
                    dead_end: states.get(r).is_some_and(GrammarState::dead_end),
                    redraws: 0,
                    tokens,
                }
            })
            .collect())
    }
}

/// A molecule being decoded in one slot of [`BatchJob::decode_stream`].
struct Draft {
    /// Index in the whole stream (chooses the random sub-stream and the start).
    molecule: usize,
    rng: Rng,
    tokens: Vec<u32>,
    log_likelihood: f64,
    grammar: GrammarState,
    /// Times the molecule started over after ending unfinished.
    attempts: usize,
}

impl Draft {
    fn new(molecule: usize, seed: u64) -> Self {
        Self {
            molecule,
            rng: Rng::derive(seed, MOLECULE_STREAMS + molecule as u64),
            tokens: Vec::new(),
            log_likelihood: 0.0,
            grammar: GrammarState::new(),
            attempts: 0,
        }
    }

    /// Drops what was drawn, keeping the random stream: the next draw is a fresh one.
    fn start_over(&mut self) {
        self.attempts += 1;
        self.tokens.clear();
        self.log_likelihood = 0.0;
        self.grammar = GrammarState::new();
    }

    fn into_sample(self, vocab: &Vocab, grammar: bool) -> Sample {
        Sample {
            smiles: vocab.decode(&self.tokens),
            log_likelihood: self.log_likelihood,
            complete: self.tokens.last() == Some(&EOS),
            dead_end: grammar && self.grammar.dead_end(),
            redraws: self.attempts,
            tokens: self.tokens,
        }
    }
}

/// Molecule i of a stream draws from sub-stream `MOLECULE_STREAMS + i` of the seed.
const MOLECULE_STREAMS: u64 = 1 << 40;

impl BatchJob<'_> {
    /// Decodes `opts.n` molecules, numbered from `first_molecule` in the stream, through
    /// `opts.batch_size` slots of the CPU decoder (no prompt; BOS first). A slot whose molecule
    /// ends takes the next one at position 0 while the others decode on, so every step is
    /// full until the queue runs dry; a molecule that ends unfinished (see
    /// [`SampleOptions::redraw_rounds`]) starts over in its slot. Each molecule draws from its
    /// own sub-stream of the seed, and a row's logits do not depend on the rows beside it, so
    /// the molecules do not depend on the batch size or on where a run is cut into shards.
    fn decode_stream(&self, m: &mut Stepper, first_molecule: usize) -> Result<Vec<Sample>> {
        let (n, v, max_len, seed) = (self.opts.n, self.vocab.len(), self.max_len, self.opts.seed);
        let (grammar, abandon_below) = (self.grammar, self.abandon_below());
        let width = self.opts.batch_size.min(n);
        if width == 0 {
            return Ok(Vec::new());
        }
        let mut out: Vec<Option<Sample>> = vec![None; n];
        let mut queue = (first_molecule..first_molecule + n).map(|i| Draft::new(i, seed));
        let mut slots: Vec<Option<Draft>> = queue.by_ref().take(width).map(Some).collect();
        m.start(width, self.lead + max_len);
        let mut logits = m.first(None, &vec![BOS; width])?;
        let mut active: Vec<usize> = (0..width).collect(); // decoder row -> slot
        loop {
            // Each busy slot draws its next token in parallel: a draft owns its random stream
            // and grammar state, so the order the rows are worked in does not matter.
            let mut row_of_slot = vec![usize::MAX; slots.len()];
            for (ci, &slot) in active.iter().enumerate() {
                row_of_slot[slot] = ci;
            }
            let steps: Vec<(usize, Result<Option<u32>>)> = slots
                .par_iter_mut()
                .enumerate()
                .filter_map(|(slot, d)| {
                    let ci = row_of_slot[slot];
                    let d = d.as_mut()?;
                    Some((
                        ci,
                        self.step_draft(d, &logits[ci * v..(ci + 1) * v], abandon_below),
                    ))
                })
                .collect();
            let mut next = vec![PAD; active.len()];
            let mut restart = Vec::new(); // decoder rows fed at position 0 next
            let mut busy = vec![false; active.len()];
            for (ci, step) in steps {
                busy[ci] = true;
                // None: the draft ended (EOS, max_len, or it left the model's distribution).
                if let Some(id) = step? {
                    next[ci] = id;
                    continue;
                }
                let slot = active[ci];
                let d = slots[slot].as_mut().expect("the slot is busy");
                let finished = d.tokens.last() == Some(&EOS) && !(grammar.is_some() && d.grammar.dead_end());
                if !finished && d.attempts < self.opts.redraw_rounds {
                    d.start_over();
                } else {
                    let done = slots[slot].take().expect("the slot is busy");
                    let at = done.molecule - first_molecule;
                    out[at] = Some(done.into_sample(self.vocab, grammar.is_some()));
                    slots[slot] = queue.next();
                }
                next[ci] = BOS;
                restart.push(ci);
            }
            // An idle slot waits at position 0 until it is dropped.
            restart.extend((0..active.len()).filter(|&ci| !busy[ci]));
            restart.sort_unstable();
            if slots.iter().all(Option::is_none) {
                break;
            }
            m.restart(&restart)?;
            let live: Vec<usize> = (0..active.len())
                .filter(|&ci| slots[active[ci]].is_some())
                .collect();
            drop_idle(m, &live, &mut active, &mut next)?;
            logits = m.next(&next, 0)?; // the CPU decoder keeps each row's position itself
        }
        Ok(out
            .into_iter()
            .map(|s| s.expect("every molecule was decoded"))
            .collect())
    }
}

impl BatchJob<'_> {
    /// One step of draft `d` from its row of `logits`: the (masked) draw, appended to the draft.
    /// Some(token) while it goes on; None once it has ended (EOS, `max_len`, or the mask left
    /// the model under `abandon_below` of its probability, which ends it unfinished).
    fn step_draft(&self, d: &mut Draft, logits: &[f32], abandon_below: f64) -> Result<Option<u32>> {
        let forced = self.forced(d.molecule, d.tokens.len());
        let (logp, kept) = mask_next(
            log_softmax(logits),
            self.grammar.zip(Some(&d.grammar)),
            forced,
            self.opts.temperature,
        );
        if kept < abandon_below {
            return Ok(None);
        }
        let id = forced.unwrap_or_else(|| pick(&logp, self.opts, &mut d.rng));
        if let Some(g) = self.grammar {
            if !g.advance(&mut d.grammar, id) && forced.is_some() {
                return Err(self.refused_start(d.molecule));
            }
        }
        d.log_likelihood += logp[id as usize];
        d.tokens.push(id);
        Ok((id != EOS && d.tokens.len() < self.max_len).then_some(id))
    }
}

/// `(input (B, T), targets (B, T) PAD-filled)` for teacher forcing `[BOS] + tokens` sequences
/// (each at least 2 long): input drops the last token, targets drop BOS.
pub fn pad_batch(seqs: &[Vec<u32>], device: &candle_core::Device) -> Result<(Tensor, Tensor)> {
    let t = seqs.iter().map(|s| s.len() - 1).max().unwrap_or(1);
    let (mut input, mut target) = (vec![PAD; seqs.len() * t], vec![PAD; seqs.len() * t]);
    for (r, s) in seqs.iter().enumerate() {
        input[r * t..r * t + s.len() - 1].copy_from_slice(&s[..s.len() - 1]);
        target[r * t..r * t + s.len() - 1].copy_from_slice(&s[1..]);
    }
    Ok((
        Tensor::from_vec(input, (seqs.len(), t), device)?,
        Tensor::from_vec(target, (seqs.len(), t), device)?,
    ))
}

/// Differentiable log-likelihood `(B,)` of token sequences (`[BOS] + tokens + [EOS]`, as in
/// [`Sample::tokens`] with BOS prepended), summed over the predicted tokens, EOS included.
/// Gradients flow into the model's `Var`s and the prefix: the building block of REINFORCE.
pub fn sequence_log_probs(model: &Gpt, seqs: &[Vec<u32>], prefix: Option<&Tensor>) -> Result<Tensor> {
    if let Some(s) = seqs.iter().find(|s| s.len() < 2) {
        return Err(Error::option(
            "seqs",
            format!("a sequence needs BOS and at least one token, got {s:?}"),
        ));
    }
    let (input, target) = pad_batch(seqs, model.device())?;
    let logits = model.forward(&input, prefix)?;
    let lp = token_log_probs(&logits, &target)?; // (B, T)
    let mask = target.ne(PAD)?.to_dtype(lp.dtype())?;
    Ok((lp * mask)?.sum(D::Minus1)?)
}

/// Negative log-likelihood of each SMILES under the model (optionally behind a prefix), in
/// nats, EOS included; `batch_size` molecules per forward. Errors name an unknown token.
pub fn likelihood(
    model: &Gpt,
    vocab: &Vocab,
    smiles: &[String],
    prefix: Option<&Tensor>,
    batch_size: usize,
) -> Result<Vec<f64>> {
    let m = model.detached();
    let prefix = prefix.map(Tensor::detach);
    let mut nll = Vec::with_capacity(smiles.len());
    for chunk in smiles.chunks(batch_size.max(1)) {
        let seqs = chunk
            .iter()
            .map(|s| vocab.encode_with_specials(s))
            .collect::<Result<Vec<_>>>()?;
        let need =
            seqs.iter().map(Vec::len).max().unwrap_or(0) - 1 + prefix.as_ref().map_or(Ok(0), |t| t.dim(1))?;
        if need > m.config().block_size {
            return Err(Error::TooLong {
                len: need,
                block_size: m.config().block_size,
            });
        }
        let lp = sequence_log_probs(&m, &seqs, prefix.as_ref())?.to_vec1::<f32>()?;
        nll.extend(lp.iter().map(|&l| -(l as f64)));
    }
    Ok(nll)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::TokenMode;
    use candle_core::Device;

    /// Temperature sampling follows the distribution and never draws PAD or BOS.
    #[test]
    fn pick_follows_probabilities() {
        let mut logp: Vec<f64> = [0.1f64, 0.1, 0.2, 0.3, 0.3].iter().map(|p| p.ln()).collect();
        logp[PAD as usize] = 0.4f64.ln(); // would dominate if PAD were allowed
        let mut rng = Rng::new(3);
        let mut counts = [0usize; 5];
        for _ in 0..10_000 {
            counts[pick(&logp, &SampleOptions::default(), &mut rng) as usize] += 1;
        }
        assert_eq!(counts[PAD as usize] + counts[BOS as usize], 0, "{counts:?}");
        let total: usize = counts.iter().sum();
        let p_eos = 0.2 / 0.8; // renormalised without PAD and BOS
        assert!(
            (counts[EOS as usize] as f64 / total as f64 - p_eos).abs() < 0.02,
            "{counts:?}"
        );
    }

    fn tiny() -> (Gpt, Vocab) {
        let vocab = Vocab::from_corpus(["CNOc1()=#"], TokenMode::Char);
        (crate::testing::tiny_gpt(vocab.len(), 16, 24, 3).0, vocab)
    }

    /// Under the grammar every sampled token was allowed, and the reported log-likelihood is
    /// that of the masked distribution: recomputed here from the full forward pass and masks
    /// replayed on a fresh grammar state.
    #[test]
    fn grammar_likelihoods_are_the_masked_distributions() {
        crate::configure_cpu_env();
        let (m, vocab) = tiny();
        let opts = SampleOptions {
            n: 24,
            batch_size: 8,
            max_len: 23,
            seed: 9,
            grammar: true,
            ..Default::default()
        };
        let samples = sample(&m, &vocab, None, &opts).unwrap();
        let g = SmilesGrammar::new(&vocab);
        let mut finished = 0;
        for s in &samples {
            let mut seq = vec![BOS];
            seq.extend(&s.tokens);
            let input = Tensor::new(&seq[..seq.len() - 1], &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let logits = m
                .forward(&input, None)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let mut state = GrammarState::new();
            let mut allowed = vec![false; vocab.len()];
            let mut ll = 0.0;
            for (row, &t) in logits.iter().zip(&s.tokens) {
                g.allowed(&state, &mut allowed);
                assert!(allowed[t as usize], "{:?}: token {t} was masked", s.smiles);
                let mut lp = log_softmax(row);
                mask_log_probs(&mut lp, &allowed);
                ll += lp[t as usize];
                g.advance(&mut state, t);
            }
            assert!(
                (ll - s.log_likelihood).abs() < 1e-3,
                "{ll} vs {}",
                s.log_likelihood
            );
            if s.complete && !s.dead_end {
                finished += 1;
                assert!(crate::grammar::grammatical(&s.smiles), "{:?}", s.smiles);
                assert!(crate::grammar::purr_reads(&s.smiles), "{:?}", s.smiles);
            }
        }
        // The untrained model writes noise; the grammar still finishes some strings.
        assert!(finished > 0);
    }

    /// One soft-prompt vector for `m`, placed before BOS: the batched path's sampling.
    fn soft_prompt(m: &Gpt) -> Tensor {
        let c = m.config().n_embd;
        let values = (0..c).map(|i| (i as f32 * 0.3).cos()).collect();
        Tensor::from_vec(values, (1, 1, c), &Device::Cpu).unwrap()
    }

    /// Shards cut from one stream at batch boundaries are disjoint pieces of it: their
    /// concatenation is the uncut run, row for row, whatever the cut; without a prompt, where
    /// each molecule has its own random stream, the batch size does not change them either.
    #[test]
    fn shards_of_a_stream_concatenate_to_the_whole_run() {
        crate::configure_cpu_env();
        let (m, vocab) = tiny();
        let soft = soft_prompt(&m);
        for prompt in [None, Some(&soft)] {
            let run = |opts: &SampleOptions| sample(&m, &vocab, prompt.map(Prompt::BeforeBos), opts).unwrap();
            for grammar in [false, true] {
                let whole = SampleOptions {
                    n: 70,
                    batch_size: 16,
                    max_len: 30,
                    seed: 11,
                    grammar,
                    redraw_rounds: usize::from(grammar) * 2,
                    abandon_below: 0.01,
                    ..Default::default()
                };
                let all = run(&whole);
                // Batches 0-1, 2, 3-4 (the last one short, as in the uncut run).
                let cuts = [(0, 32), (2, 16), (3, 22)];
                let mut joined = Vec::new();
                for (first_batch, n) in cuts {
                    joined.extend(run(&SampleOptions {
                        n,
                        first_batch,
                        ..whole.clone()
                    }));
                }
                assert_eq!(joined, all, "prompt {}, grammar {grammar}", prompt.is_some());
                // Batches are distinct streams, not one stream restarted.
                assert_ne!(all[..16], all[16..32]);
                assert!(run(&SampleOptions {
                    n: 0,
                    ..whole.clone()
                })
                .is_empty());
                if prompt.is_none() {
                    for batch_size in [1, 7, 70] {
                        let other = run(&SampleOptions {
                            batch_size,
                            ..whole.clone()
                        });
                        assert_eq!(other, all, "batch size {batch_size}, grammar {grammar}");
                    }
                }
            }
        }
    }

    /// Redrawing (spares, then rounds of their own) replaces unfinished rows by finished ones,
    /// keeps the finished rows' log-likelihoods those of the model, and keeps shards exact.
    #[test]
    fn redraws_replace_unfinished_rows_and_keep_shards_exact() {
        crate::configure_cpu_env();
        let (m, vocab) = tiny();
        let soft = soft_prompt(&m);
        // Without a prompt, unfinished rows start over in place; behind a soft prompt they are
        // replaced by spares and redrawn in rounds.
        for prompt in [None, Some(&soft)] {
            let plain = SampleOptions {
                n: 48,
                batch_size: 16,
                max_len: 12,
                seed: 5,
                grammar: true,
                ..Default::default()
            };
            let redrawn = SampleOptions {
                redraw_rounds: 6,
                abandon_below: 0.01,
                ..plain.clone()
            };
            let run = |opts: &SampleOptions| sample(&m, &vocab, prompt.map(Prompt::BeforeBos), opts).unwrap();
            let (before, after) = (run(&plain), run(&redrawn));
            let unfinished = |xs: &[Sample]| xs.iter().filter(|s| s.unfinished()).count();
            assert!(
                unfinished(&before) > 0,
                "the tiny model should leave rows unfinished at 12 tokens"
            );
            assert!(
                unfinished(&after) < unfinished(&before),
                "prompt {}",
                prompt.is_some()
            );
            assert!(after.iter().any(|s| s.redraws > 0));
            assert!(after.iter().all(|s| s.redraws <= 6));
            for s in after.iter().filter(|s| !s.unfinished()) {
                assert_eq!(s.tokens.last(), Some(&EOS));
                let ll = -likelihood(&m, &vocab, std::slice::from_ref(&s.smiles), prompt, 1).unwrap()[0]; // an NLL
                assert!(
                    s.log_likelihood >= ll - 1e-4 && s.log_likelihood.is_finite(),
                    "masked log-likelihood {} must be finite and at least the unmasked {ll}",
                    s.log_likelihood
                );
            }
            let mut joined = run(&SampleOptions {
                n: 16,
                ..redrawn.clone()
            });
            joined.extend(run(&SampleOptions {
                n: 32,
                first_batch: 1,
                ..redrawn.clone()
            }));
            assert_eq!(joined, after);
        }
    }

    /// Same seed → same molecules; the reported log-likelihood equals `likelihood`'s; greedy
    /// equals top-k 1; a prefix is accepted.
    #[test]
    fn sampling_is_seeded_and_consistent_with_likelihood() {
        crate::configure_cpu_env();
        let (m, vocab) = tiny();
        let opts = SampleOptions {
            n: 40,
            batch_size: 16,
            max_len: 30,
            seed: 5,
            ..Default::default()
        };
        let a = sample(&m, &vocab, None, &opts).unwrap();
        let b = sample(&m, &vocab, None, &opts).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 40);
        let c = sample(
            &m,
            &vocab,
            None,
            &SampleOptions {
                seed: 6,
                ..opts.clone()
            },
        )
        .unwrap();
        assert_ne!(a, c);
        assert!(a
            .iter()
            .all(|s| s.tokens.len() <= 24 && s.tokens.iter().all(|&t| t > BOS)));
        let complete: Vec<&Sample> = a.iter().filter(|s| s.complete).collect();
        assert!(complete.len() > 10, "{}", complete.len());
        let smiles: Vec<String> = complete.iter().map(|s| s.smiles.clone()).collect();
        let nll = likelihood(&m, &vocab, &smiles, None, 7).unwrap();
        for (s, n) in complete.iter().zip(&nll) {
            assert!(
                (s.log_likelihood + n).abs() < 1e-3,
                "{} vs {}",
                s.log_likelihood,
                -n
            );
        }
        let greedy = sample(
            &m,
            &vocab,
            None,
            &SampleOptions {
                temperature: 0.0,
                n: 3,
                ..opts.clone()
            },
        )
        .unwrap();
        let top1 = sample(
            &m,
            &vocab,
            None,
            &SampleOptions {
                top_k: 1,
                n: 3,
                seed: 99,
                ..opts.clone()
            },
        )
        .unwrap();
        assert_eq!(greedy, top1);
        let nucleus = sample(
            &m,
            &vocab,
            None,
            &SampleOptions {
                top_p: 1e-9,
                n: 3,
                ..opts.clone()
            },
        )
        .unwrap();
        assert_eq!(greedy, nucleus);
        // Continuations of given beginnings start with them, and their log-likelihoods still
        // match `likelihood`'s of the whole molecule.
        let starts = vec![vocab.encode("CC(").unwrap(), vocab.encode("O").unwrap()];
        let cont = sample_continuing(&m, &vocab, None, &opts, &starts).unwrap();
        for (i, s) in cont.iter().enumerate() {
            assert!(
                s.smiles.starts_with(if i % 2 == 0 { "CC(" } else { "O" }),
                "{}",
                s.smiles
            );
        }
        let done: Vec<&Sample> = cont.iter().filter(|s| s.complete).collect();
        let nll = likelihood(
            &m,
            &vocab,
            &done.iter().map(|s| s.smiles.clone()).collect::<Vec<_>>(),
            None,
            8,
        )
        .unwrap();
        for (s, n) in done.iter().zip(&nll) {
            assert!(
                (s.log_likelihood + n).abs() < 1e-3,
                "{} vs {}",
                s.log_likelihood,
                -n
            );
        }
        assert!(sample_continuing(&m, &vocab, None, &opts, &[vec![EOS]]).is_err());
        assert!(sample_continuing(&m, &vocab, None, &opts, &[vec![5; 30]]).is_err());
        let pre = Tensor::ones((1, 3, 16), candle_core::DType::F32, &Device::Cpu).unwrap();
        let with_prefix = sample(&m, &vocab, Some(Prompt::BeforeBos(&pre)), &opts).unwrap();
        assert!(with_prefix.iter().all(|s| s.tokens.len() <= 21));
        assert!(likelihood(&m, &vocab, &["CXC".to_string()], None, 4)
            .unwrap_err()
            .to_string()
            .contains("\"X\""));
    }
}
