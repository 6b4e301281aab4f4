//! `smirl bench pmo`: PMO's sample-efficiency protocol (Gao et al. 2022, "Sample efficiency
//! matters") on the shipped prior. Each task × seed is a `smirl tune` run whose reward is the task's
//! oracle, stopped at the oracle budget; its score is the area under the running top-10 mean over
//! the calls (PMO's top-10 AUC, [`rl::oracle_budget::top_k_auc`]). Runs live in `--out/<task>/seed<S>`
//! and resume, and each finished run is a row of `--out/pmo.csv` that later calls keep and reuse,
//! so a long bench can be continued in pieces; the table sets them beside published rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{json, Value};

/// PMO logs the top-k mean every this many calls (its `freq_log`).
const PMO_FREQ_LOG: usize = 100;

/// The published rows (`task,method,mean,sd,source`), shipped beside the peers.
const PUBLISHED: &str = include_str!("../../../bench/pmo_published.csv");

/// Arguments of `smirl bench pmo`.
#[derive(Debug, clap::Args)]
pub struct PmoBenchArgs {
    /// The prior (a `smirl pretrain` model directory).
    #[arg(long, default_value = "models/prior")]
    model: PathBuf,
    /// Tasks: `pmo` (PMO's 20 RDKit-computable tasks), `guacamol`, `all`, or ids separated by commas.
    #[arg(long, default_value = "pmo")]
    tasks: String,
    /// Seeds per task (0, 1, ...).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Oracle calls per run (distinct valid molecules scored).
    #[arg(long, default_value_t = 10_000)]
    budget: usize,
    /// The optimiser: a `smirl tune` config whose scoring, seed and budget the bench replaces.
    #[arg(long, default_value = "configs/pmo.toml")]
    config: PathBuf,
    /// Override the config's `mode` (prefix, soft_prompt, lora, discrete_prompt, full).
    #[arg(long)]
    mode: Option<String>,
    /// Where the runs and `pmo.csv` go.
    #[arg(long, default_value = "runs/pmo")]
    out: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The config of one run: `base` with the task's oracle as the whole reward.
fn run_config(
    args: &PmoBenchArgs,
    base: &toml::Table,
    task: &str,
    seed: u64,
) -> anyhow::Result<rl::TuneConfig> {
    let mut cfg = base.clone();
    cfg.insert("seed".into(), toml::Value::Integer(seed as i64));
    cfg.insert(
        "max_oracle_calls".into(),
        toml::Value::Integer(args.budget as i64),
    );
    if let Some(mode) = &args.mode {
        cfg.insert("mode".into(), toml::Value::String(mode.clone()));
    }
    let scoring: toml::Table = toml::from_str(&format!(
        "aggregation = \"arithmetic\"\n[[components]]\ntype = \"oracle\"\ntask = \"{task}\"\n"
    ))?;
    cfg.insert("scoring".into(), toml::Value::Table(scoring));
    let text = toml::to_string(&cfg)?;
    let dir = args.config.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    Ok(rl::TuneConfig::from_toml(&text, dir, &args.config)?)
}

/// One finished (or resumed-to-the-end) run: a row of `pmo.csv`.
#[derive(Debug, Clone, serde::Deserialize)]
struct RunResult {
    task: String,
    seed: u64,
    auc_top10: f64,
    top10: f64,
    #[serde(rename = "oracle_calls")]
    calls: usize,
    steps: usize,
    seconds: f64,
}

impl RunResult {
    const HEADER: [&'static str; 7] = [
        "task",
        "seed",
        "auc_top10",
        "top10",
        "oracle_calls",
        "steps",
        "seconds",
    ];

    /// The row as written: every digit, so that a row read back scores as the run did.
    fn record(&self) -> [String; 7] {
        [
            self.task.clone(),
            self.seed.to_string(),
            self.auc_top10.to_string(),
            self.top10.to_string(),
            self.calls.to_string(),
            self.steps.to_string(),
            self.seconds.to_string(),
        ]
    }
}

/// Beside `pmo.csv`: what makes its rows comparable (the prior, the budget, the mode override
/// and the optimiser's config).
const SETUP_FILE: &str = "bench.toml";

/// Records this call's setup in `--out`, or refuses a setup other than the one recorded there, so
/// that rows of different optimisers are never mixed in one table.
fn check_setup(args: &PmoBenchArgs, base: &toml::Table) -> anyhow::Result<()> {
    let mut setup = toml::Table::new();
    setup.insert("model".into(), args.model.display().to_string().into());
    setup.insert("budget".into(), (args.budget as i64).into());
    if let Some(mode) = &args.mode {
        setup.insert("mode".into(), mode.clone().into());
    }
    setup.insert("config".into(), toml::Value::Table(base.clone()));
    let path = args.out.join(SETUP_FILE);
    if !path.exists() {
        return std::fs::write(&path, toml::to_string(&setup)?)
            .with_context(|| format!("writing {}", path.display()));
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let recorded: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    anyhow::ensure!(
        recorded == setup,
        "{} holds runs of another setup (the prior, --budget, --mode or the config differ; see {}): \
         pick another --out",
        args.out.display(),
        path.display()
    );
    Ok(())
}

/// The rows of an earlier call's `pmo.csv` (none where there is no file yet).
fn read_rows(path: &Path) -> anyhow::Result<Vec<RunResult>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    reader
        .deserialize()
        .enumerate()
        .map(|(i, row)| row.with_context(|| format!("{}, line {}", path.display(), i + 2)))
        .collect()
}

/// Rewrites `pmo.csv` with every row, through a temporary name so a killed bench keeps the old file.
fn write_rows(path: &Path, rows: &[RunResult]) -> anyhow::Result<()> {
    super::super::cache::write_atomically(path, |tmp| {
        let mut writer = csv::Writer::from_path(tmp).with_context(|| format!("writing {}", tmp.display()))?;
        writer.write_record(RunResult::HEADER)?;
        for row in rows {
            writer.write_record(row.record())?;
        }
        writer.flush()?;
        Ok(())
    })
}

fn run_one(args: &PmoBenchArgs, base: &toml::Table, task: &str, seed: u64) -> anyhow::Result<RunResult> {
    let cfg = run_config(args, base, task, seed)?;
    let out = args.out.join(task).join(format!("seed{seed}"));
    let opts = rl::TuneOptions {
        model_dir: args.model.clone(),
        out_dir: out.clone(),
        resume: true,
        interrupt_after: None,
        device: model::Device::Cpu,
        references: super::super::input::DatasetSmiles::handle(),
    };
    let pb = indicatif::ProgressBar::new(args.budget as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} {elapsed_precise} [{wide_bar}] {pos}/{len} calls {msg}",
        )?
        .progress_chars("=> "),
    );
    pb.set_prefix(format!("{task} seed {seed}"));
    let report = rl::run_tune(&cfg, &opts, &mut |row: &rl::StepLog| {
        pb.set_position(row.oracle.oracle_calls as u64);
        pb.set_message(format!(
            "top-10 {:.3} valid {:.2}",
            row.oracle.top10, row.validity
        ));
    })
    .with_context(|| format!("{task}, seed {seed} (run directory {})", out.display()))?;
    pb.finish_and_clear();
    let log = rl::run_dir::RunLog::read(&out.join(rl::run_dir::LOG_FILE))?;
    let totals = &report.oracle_totals;
    Ok(RunResult {
        task: task.to_string(),
        seed,
        auc_top10: rl::oracle_budget::top_k_auc(totals, 10, args.budget, PMO_FREQ_LOG),
        top10: rl::oracle_budget::OracleProgress::of(totals).top10,
        calls: totals.len(),
        steps: report.step,
        seconds: (log.total_seconds() * 1000.0).round() / 1000.0, // the log's milliseconds
    })
}

/// Published top-10 AUC (mean, sd) by method, then task.
type PublishedRows = BTreeMap<String, BTreeMap<String, (f64, f64)>>;

/// The embedded published rows by method and task; a malformed row is an error naming its line.
fn published() -> anyhow::Result<PublishedRows> {
    let mut by_method = PublishedRows::new();
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(PUBLISHED.as_bytes());
    for row in reader.records() {
        let row = row.context("bench/pmo_published.csv")?;
        let line = row.position().map_or(0, |p| p.line());
        let field = |i: usize| -> anyhow::Result<&str> {
            row.get(i)
                .with_context(|| format!("bench/pmo_published.csv line {line}: {} fields, not 4", row.len()))
        };
        let number = |i: usize| -> anyhow::Result<f64> {
            let text = field(i)?;
            text.parse()
                .with_context(|| format!("bench/pmo_published.csv line {line}: {text:?} is not a number"))
        };
        by_method
            .entry(field(1)?.to_string())
            .or_default()
            .insert(field(0)?.to_string(), (number(2)?, number(3)?));
    }
    Ok(by_method)
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    // Sample standard deviation; none (NaN, `null` in JSON) from a single seed.
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, if xs.len() > 1 { var.sqrt() } else { f64::NAN })
}

/// Runs `smirl bench pmo`.
pub fn run(args: PmoBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.seeds > 0, "--seeds must be > 0");
    anyhow::ensure!(args.budget > 0, "--budget must be > 0");
    let tasks = chem::oracle_ids(&args.tasks)?;
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading the optimiser config {}", args.config.display()))?;
    let base: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", args.config.display()))?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    check_setup(&args, &base)?;
    // Rows of earlier calls stay in pmo.csv; a run with a row there is not run again, even where
    // its run directory is gone.
    let csv_path = args.out.join("pmo.csv");
    let mut table = read_rows(&csv_path)?;
    let mut results = Vec::new();
    for task in &tasks {
        for seed in 0..args.seeds {
            let earlier = table.iter().find(|r| &r.task == task && r.seed == seed).cloned();
            let reused = earlier.is_some();
            let r = match earlier {
                Some(r) => r,
                None => {
                    let r = run_one(&args, &base, task, seed)?;
                    table.push(r.clone());
                    write_rows(&csv_path, &table)?;
                    r
                }
            };
            eprintln!(
                "{task} seed {seed}: top-10 AUC {:.3}, top-10 {:.3}, {} calls in {} steps, {:.0} s{}",
                r.auc_top10,
                r.top10,
                r.calls,
                r.steps,
                r.seconds,
                if reused { " (from pmo.csv)" } else { "" }
            );
            results.push(r);
        }
    }
    let published = published()?;
    let mut rows = Vec::new();
    for task in &tasks {
        let runs: Vec<&RunResult> = results.iter().filter(|r| &r.task == task).collect();
        let (mean, sd) = mean_sd(&runs.iter().map(|r| r.auc_top10).collect::<Vec<_>>());
        let seconds = runs.iter().map(|r| r.seconds).sum::<f64>() / runs.len() as f64;
        let others: BTreeMap<&str, Value> = published
            .iter()
            .filter_map(|(m, t)| {
                t.get(*task)
                    .map(|&(mean, sd)| (m.as_str(), json!({"mean": mean, "sd": sd})))
            })
            .collect();
        rows.push(
            json!({"task": task, "mean": mean, "sd": sd, "seconds_per_run": seconds, "published": others}),
        );
    }
    // Sums over the tasks run, for smirl and for each method that published all of them.
    let smirl_sum: f64 = rows.iter().map(|r| r["mean"].as_f64().unwrap_or(0.0)).sum();
    let sums: BTreeMap<&str, f64> = published
        .iter()
        .filter(|(_, t)| tasks.iter().all(|task| t.contains_key(*task)))
        .map(|(m, t)| (m.as_str(), tasks.iter().map(|task| t[*task].0).sum()))
        .collect();
    let result = json!({
        "benchmark": "pmo",
        "budget": args.budget,
        "seeds": args.seeds,
        "config": args.config.display().to_string(),
        "mode": args.mode,
        "tasks": rows,
        "sum": smirl_sum,
        "published_sums": sums,
        "cpu": super::cpu_description(),
        "csv": csv_path.display().to_string(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print_table(&result, &published);
    }
    Ok(())
}

fn print_table(result: &Value, published: &BTreeMap<String, BTreeMap<String, (f64, f64)>>) {
    let methods: Vec<&String> = published.keys().collect();
    print!("{:<26} {:>15}", "task (top-10 AUC)", "smirl");
    for m in &methods {
        print!(" {:>17}", m);
    }
    println!(" {:>9}", "s/run");
    for row in result["tasks"].as_array().into_iter().flatten() {
        let task = row["task"].as_str().unwrap_or("");
        let mean = row["mean"].as_f64().unwrap_or(f64::NAN);
        let cell = match row["sd"].as_f64() {
            Some(sd) => format!("{mean:.3} ± {sd:.3}"),
            None => format!("{mean:.3}"),
        };
        print!("{task:<26} {cell:>15}");
        for m in &methods {
            let cell = published[*m]
                .get(task)
                .map_or("-".to_string(), |(mean, sd)| format!("{mean:.3} ± {sd:.3}"));
            print!(" {cell:>17}");
        }
        println!(" {:>9.0}", row["seconds_per_run"].as_f64().unwrap_or(f64::NAN));
    }
    print!(
        "{:<26} {:>15}",
        "sum",
        format!("{:.3}", result["sum"].as_f64().unwrap_or(f64::NAN))
    );
    for m in &methods {
        let cell = result["published_sums"][m.as_str()]
            .as_f64()
            .map_or("-".to_string(), |s| format!("{s:.3}"));
        print!(" {cell:>17}");
    }
    println!();
    println!(
        "budget {} calls, {} seed(s), config {}; runs and pmo.csv in {}",
        result["budget"],
        result["seeds"],
        result["config"].as_str().unwrap_or(""),
        result["csv"].as_str().unwrap_or("")
    );
    println!("published rows: bench/pmo_published.csv (sources there)");
}

#[cfg(test)]
mod tests {
    /// Every embedded row parses, and each method's 23 tasks add up to the sum its paper prints
    /// (Kim et al. 2024, Table 1: REINVENT 15.185, Graph GA 14.131, Genetic GFN 16.213).
    #[test]
    fn published_rows_add_up_to_the_papers_sums() {
        let published = super::published().unwrap();
        for (method, sum) in [
            ("REINVENT", 15.185),
            ("Graph GA", 14.131),
            ("Genetic GFN", 16.213),
        ] {
            let tasks = &published[method];
            assert_eq!(tasks.len(), 23, "{method}");
            let total: f64 = tasks.values().map(|(mean, _)| mean).sum();
            assert!((total - sum).abs() < 5e-4, "{method}: {total}");
        }
    }
}
