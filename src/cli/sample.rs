//! `smirl sample`: molecules from a trained model, with their log-likelihoods.

use std::path::PathBuf;

use anyhow::Context;
use model::SampleOptions;
use rayon::prelude::*;

/// Arguments of `smirl sample`.
#[derive(Debug, clap::Args)]
pub struct SampleArgs {
    /// Run directory of a trained model (from `smirl pretrain`).
    #[arg(long)]
    model: PathBuf,
    /// Sample from the tuned agent of this `smirl tune` run directory (tuned from --model).
    #[arg(long)]
    agent: Option<PathBuf>,
    /// Number of molecules.
    #[arg(short = 'n', long, default_value_t = 1000)]
    n: usize,
    /// Softmax temperature (0 = greedy).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Keep the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Most tokens per molecule (limit: the model's block_size, also the default). Under the
    /// grammar with redraws the default is 1.25 × the longest training molecule when the
    /// checkpoint records it: a row that runs past that is wandering and is redrawn.
    #[arg(long)]
    max_len: Option<usize>,
    /// Seed: the same seed and model give the same molecules (on the CPU; behind a soft prompt,
    /// or on a GPU, the same batch size too).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Molecules decoded together.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Continue this SMILES beginning (fragment-constrained generation): every molecule starts
    /// with it.
    #[arg(long, conflicts_with = "prompts")]
    prompt: Option<String>,
    /// Continue the learned prompts of a discrete_prompt run (its `prompts.csv`, best first):
    /// the molecules are spread evenly over the first --top of them.
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// How many of --prompts' best prompts to use.
    #[arg(long, default_value_t = 10, requires = "prompts")]
    top: usize,
    /// Grammar-constrained decoding: mask every token that cannot continue a valid SMILES
    /// (balanced branches and ring closures, well-formed bracket atoms, no atom past its largest
    /// valence); log-likelihoods are those of the masked, renormalised distribution.
    #[arg(long)]
    grammar: bool,
    /// Times a molecule that ends unfinished (no EOS within --max-len, or a grammar dead end) is
    /// drawn again: on the CPU it starts over in its own slot of the batch, from its own random
    /// stream (behind a soft prompt, or on a GPU, the batch's unfinished rows are redrawn in
    /// rounds). Under the grammar a row is also abandoned and drawn again once the mask leaves
    /// the model under 1 % of its probability. Default: 5 under the grammar, where a finished row
    /// is nearly always a molecule, else 0 (every row is kept as drawn).
    #[arg(long)]
    redraw: Option<usize>,
    /// Reward-guided decoding with the `[scoring]` of this tune config (no training): blockwise
    /// best-of-K, each continuation valued by rollouts to complete molecules (Controlled
    /// Decoding). Adds a `reward` column.
    #[arg(long, conflicts_with_all = ["agent", "prompt", "prompts", "grammar"])]
    steer: Option<PathBuf>,
    /// Tokens per block when steering (M).
    #[arg(long, default_value_t = 8, requires = "steer")]
    block: usize,
    /// Continuations per prefix and block when steering (K).
    #[arg(long, default_value_t = 6, requires = "steer")]
    candidates: usize,
    /// Rollouts per continuation when steering (its value is their mean reward).
    #[arg(long, default_value_t = 1, requires = "steer")]
    rollouts: usize,
    /// Value continuations with this head (from `smirl value-head`, trained on the same prior
    /// and reward) instead of rollouts: one teacher-forced pass each (CD-FUDGE).
    #[arg(long, requires = "steer")]
    value_head: Option<PathBuf>,
    /// Also run best-of-N whole-molecule sampling with the same number of forward tokens, and
    /// write it beside --out (`<out>.best_of_n.csv`).
    #[arg(long, requires = "steer")]
    compare_best_of_n: bool,
    /// Sample shard I of N (0-based) of this run: -n and --seed stay those of the whole run, and
    /// the shard takes its own contiguous range of the run's batches. Each molecule is drawn
    /// from its own sub-stream of --seed (behind a soft prompt, or on a GPU, each batch), so
    /// shards are disjoint, and the N shards' files, in order, are the unsharded run's file
    /// (same --batch). The contract the Ray and Slurm drivers (scale/) use.
    #[arg(long, value_name = "I/N", value_parser = parse_shard, conflicts_with = "steer")]
    shard: Option<(usize, usize)>,
    /// Output CSV: smiles,log_likelihood,complete.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    device: super::device::DeviceArg,
}

/// `I/N` with I < N.
fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let (i, n) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: expected I/N, e.g. 0/4"))?;
    let number = |s: &str| {
        s.trim()
            .parse::<usize>()
            .map_err(|_| format!("{text:?}: {s:?} is not a whole number"))
    };
    let (i, n) = (number(i)?, number(n)?);
    if n == 0 || i >= n {
        return Err(format!("{text:?}: needs 0 <= I < N"));
    }
    Ok((i, n))
}

/// The molecules and first batch of shard `i` of `n` in a run of `total` molecules drawn `batch`
/// at a time: the run's batches are split into `n` contiguous ranges as even as can be.
pub fn shard_range(total: usize, batch: usize, (i, n): (usize, usize)) -> (usize, usize) {
    let batches = total.div_ceil(batch.max(1));
    let (lo, hi) = (i * batches / n, (i + 1) * batches / n);
    let molecules = (hi * batch).min(total).saturating_sub(lo * batch);
    (molecules, lo)
}

/// The `prompt` column of the first `top` rows of a `prompts.csv` (ranked best first).
fn read_prompts(path: &std::path::Path, top: usize) -> anyhow::Result<Vec<String>> {
    if top == 0 {
        anyhow::bail!("--top must be > 0");
    }
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let col = reader
        .headers()
        .with_context(|| format!("{}: no header", path.display()))?
        .iter()
        .position(|h| h == "prompt")
        .with_context(|| {
            format!(
                "{}: no `prompt` column (not a discrete_prompt run's prompts.csv?)",
                path.display()
            )
        })?;
    let mut out = Vec::new();
    for (i, row) in reader.records().take(top).enumerate() {
        let row = row.with_context(|| format!("{}: line {}", path.display(), i + 2))?;
        out.push(row.get(col).unwrap_or_default().to_string());
    }
    if out.is_empty() {
        anyhow::bail!("{}: holds no prompts", path.display());
    }
    Ok(out)
}

/// Redraws under the grammar unless --redraw says otherwise: about 5 % of the shipped prior's
/// rows need one, and after three one row in 10^4 was still unfinished.
const DEFAULT_GRAMMAR_REDRAWS: usize = 5;

/// Under the grammar with redraws, a row is abandoned (and redrawn) when the mask leaves the
/// model under 1 % of its probability: such rows are the ones that go on to wander or dead-end.
const GRAMMAR_ABANDON_BELOW: f64 = 0.01;

/// Runs `smirl sample`.
pub fn run(args: SampleArgs) -> anyhow::Result<()> {
    let (n, first_batch) = match args.shard {
        Some(shard) => shard_range(args.n, args.batch, shard),
        None => (args.n, 0),
    };
    // `longest_molecule`: the prior's record (state.json), which sets the grammar's length limit.
    let options = |block_size: usize,
                   grammar: bool,
                   longest_molecule: Option<usize>|
     -> anyhow::Result<SampleOptions> {
        let redraw_rounds = args
            .redraw
            .unwrap_or(if grammar { DEFAULT_GRAMMAR_REDRAWS } else { 0 });
        let wander_limit = match longest_molecule {
            Some(longest) if grammar && redraw_rounds > 0 => (longest + longest.div_ceil(4)).min(block_size),
            _ => block_size,
        };
        let max_len = args.max_len.unwrap_or(wander_limit);
        if max_len > block_size {
            anyhow::bail!(
                "--max-len {max_len} exceeds the model's block_size {block_size}, the most tokens it can see"
            );
        }
        Ok(SampleOptions {
            n,
            batch_size: args.batch,
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            max_len,
            seed: args.seed,
            grammar,
            redraw_rounds,
            abandon_below: if grammar { GRAMMAR_ABANDON_BELOW } else { 0.0 },
            first_batch,
        })
    };
    let device = args.device.open()?;
    if let Some(config) = &args.steer {
        return steer(&args, config, &options, &device);
    }
    let texts: Vec<String> = match (&args.prompt, &args.prompts) {
        (Some(p), _) if p.is_empty() => anyhow::bail!("--prompt is empty"),
        (Some(p), _) => vec![p.clone()],
        (None, Some(file)) => read_prompts(file, args.top)?,
        (None, None) => Vec::new(),
    };
    let encode = |vocab: &model::Vocab| -> anyhow::Result<Vec<Vec<u32>>> {
        texts
            .iter()
            .map(|p| {
                vocab
                    .encode(p)
                    .with_context(|| format!("prompt {p:?} does not fit the model's vocabulary"))
            })
            .collect()
    };
    let mut grammar_used = args.grammar;
    let samples = match &args.agent {
        None => {
            let run = model::load_checkpoint(&args.model, &device)?;
            let starts = encode(&run.vocab)?;
            let longest = run.state.as_ref().and_then(|s| s.longest_molecule);
            let opts = options(run.config.block_size, args.grammar, longest)?;
            model::sample_continuing(&run.model, &run.vocab, None, &opts, &starts)?
        }
        Some(run_dir) => {
            if args.top_k != 0 || args.top_p < 1.0 {
                eprintln!("note: --top-k/--top-p are not applied to a tuned agent (it samples at --temperature only)");
            }
            let policy = rl::load_tuned_policy(run_dir, &args.model, &device)
                .with_context(|| format!("loading the tuned agent of {}", run_dir.display()))?;
            let starts = encode(policy.vocab())?;
            let grammar = args.grammar || policy.trained_with_grammar();
            let longest = match grammar {
                true => model::read_state(&args.model)?.and_then(|s| s.longest_molecule),
                false => None,
            };
            let opts = options(policy.max_tokens(), grammar, longest)?;
            if policy.trained_with_grammar() && !args.grammar {
                // The agent was trained as the grammar-masked distribution: sample that one.
                eprintln!(
                    "note: {} was tuned with [sampling] grammar = true, so it samples under the grammar",
                    run_dir.display()
                );
                grammar_used = true;
            }
            policy.sample_continuing(&opts, &starts)?
        }
    };
    write_samples(&args.out, &samples, None)?;
    let complete = samples.iter().filter(|s| s.complete).count();
    let redrawn = samples.iter().filter(|s| s.redraws > 0).count();
    if redrawn > 0 {
        let unfinished = samples.iter().filter(|s| s.unfinished()).count();
        println!(
            "{redrawn} rows were redrawn after ending unfinished (no EOS or a dead end); {unfinished} stayed unfinished"
        );
    }
    let shard = match args.shard {
        Some((i, of)) => format!(" (shard {i}/{of} of {}: batches from {first_batch})", args.n),
        None => String::new(),
    };
    println!(
        "{} molecules{shard} ({} ended with EOS) written to {}",
        samples.len(),
        complete,
        args.out.display()
    );
    if grammar_used {
        // The independent check: purr reads every finished string (on every core).
        let finished: Vec<&model::Sample> = samples.iter().filter(|s| s.complete && !s.dead_end).collect();
        let unread: Vec<&str> = finished
            .par_iter()
            .filter(|s| !model::grammar::purr_reads(&s.smiles))
            .map(|s| s.smiles.as_str())
            .collect();
        let dead_ends = samples.iter().filter(|s| s.dead_end).count();
        println!(
            "grammar: purr reads {} of {} finished strings; {dead_ends} rows ended at a dead end",
            finished.len() - unread.len(),
            finished.len()
        );
        if let Some(first) = unread.first() {
            anyhow::bail!(
                "{} strings written under the grammar do not parse with purr (first: {first:?}): a grammar bug",
                unread.len()
            );
        }
    }
    Ok(())
}

/// Writes `smiles,log_likelihood,complete[,reward]`.
fn write_samples(
    out: &std::path::Path,
    samples: &[model::Sample],
    rewards: Option<&[f64]>,
) -> anyhow::Result<()> {
    let file = std::fs::File::create(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(file));
    let mut header = vec!["smiles", "log_likelihood", "complete"];
    if rewards.is_some() {
        header.push("reward");
    }
    writer.write_record(&header)?;
    for (i, s) in samples.iter().enumerate() {
        let mut row = vec![
            s.smiles.clone(),
            format!("{:.6}", s.log_likelihood),
            if s.complete { "1" } else { "0" }.to_string(),
        ];
        if let Some(r) = rewards {
            row.push(format!("{:.6}", r[i]));
        }
        writer.write_record(&row)?;
    }
    writer
        .flush()
        .with_context(|| format!("{}: write failed", out.display()))
}

/// The reward a tune config's `[scoring]` defines (relative paths from the config's folder).
pub fn reward_of_config(config: &std::path::Path) -> anyhow::Result<rl::scoring::Scorer> {
    let cfg =
        rl::TuneConfig::from_file(config).with_context(|| format!("reading config {}", config.display()))?;
    let base = config.parent().unwrap_or(std::path::Path::new("."));
    let refs = super::input::DatasetSmiles::handle();
    rl::scoring::Scorer::new(&cfg.scoring, base, refs.as_ref())
        .with_context(|| format!("building the reward of {}", config.display()))
}

/// `smirl sample --steer CONFIG`: reward-guided decoding, and optionally best-of-N at the same
/// compute.
fn steer(
    args: &SampleArgs,
    config: &std::path::Path,
    options: &dyn Fn(usize, bool, Option<usize>) -> anyhow::Result<SampleOptions>,
    device: &model::Device,
) -> anyhow::Result<()> {
    let scorer = reward_of_config(config)?;
    let run = model::load_checkpoint(&args.model, device)?;
    let sampling = options(run.config.block_size, false, None)?;
    let value_head = match &args.value_head {
        Some(path) => Some(rl::value_head::ValueHead::load(path, &run.model)?),
        None => None,
    };
    let opts = rl::steer::SteerOptions {
        n: args.n,
        block: args.block,
        candidates: args.candidates,
        rollouts: args.rollouts,
        value_head,
        sampling: sampling.clone(),
    };
    let bar = super::input::progress(args.n, "steering");
    let t0 = std::time::Instant::now();
    let steered = rl::steer::steer(&run.model, &run.vocab, &scorer, &opts, &mut |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let seconds = t0.elapsed().as_secs_f64();
    write_samples(&args.out, &steered.samples, Some(&steered.rewards))?;
    let mean = |r: &[f64]| r.iter().sum::<f64>() / r.len().max(1) as f64;
    let valued_by = match &args.value_head {
        Some(path) => format!("value head {}", path.display()),
        None => format!("{} rollouts", args.rollouts),
    };
    println!(
        "steered: {} molecules to {} (block {}, {} candidates, {valued_by}): mean reward {:.4}, {} forward tokens, {seconds:.1} s",
        steered.samples.len(),
        args.out.display(),
        args.block,
        args.candidates,
        mean(&steered.rewards),
        steered.forward_tokens
    );
    if args.compare_best_of_n {
        let out = args.out.with_extension("best_of_n.csv");
        let t0 = std::time::Instant::now();
        let best = rl::steer::best_of_n(
            &run.model,
            &run.vocab,
            &scorer,
            args.n,
            steered.forward_tokens,
            &sampling,
        )?;
        let seconds = t0.elapsed().as_secs_f64();
        write_samples(&out, &best.samples, Some(&best.rewards))?;
        println!(
            "best-of-N: {} molecules to {}: mean reward {:.4}, {} forward tokens, {seconds:.1} s",
            best.samples.len(),
            out.display(),
            mean(&best.rewards),
            best.forward_tokens
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_run_once_in_order() {
        for (total, batch, n) in [
            (20_000, 256, 4),
            (1000, 64, 3),
            (10, 256, 4),
            (5, 1, 7),
            (0, 8, 2),
        ] {
            let mut next_batch = 0;
            let mut molecules = 0;
            for i in 0..n {
                let (count, first) = shard_range(total, batch, (i, n));
                // Shard i starts where shard i - 1 ended, on a batch boundary.
                assert_eq!(first, next_batch, "total {total} batch {batch} shard {i}/{n}");
                molecules += count;
                next_batch = first + count.div_ceil(batch);
            }
            assert_eq!(molecules, total, "total {total} batch {batch} in {n} shards");
        }
        // Even to within one batch.
        let sizes: Vec<usize> = (0..4).map(|i| shard_range(20_000, 256, (i, 4)).0).collect();
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 256,
            "{sizes:?}"
        );
    }

    #[test]
    fn shard_arguments_are_checked() {
        assert_eq!(parse_shard("1/4"), Ok((1, 4)));
        assert_eq!(parse_shard(" 0 / 1 "), Ok((0, 1)));
        for bad in ["4/4", "0/0", "1", "a/4", "-1/4", "1/4/2"] {
            assert!(parse_shard(bad).is_err(), "{bad} accepted");
        }
    }
}
