//! `smirl bench`: throughput against the Python peers, run on the same machine in the same run.
//! Absolute times are noisy here; the ratio is the figure that counts.

mod eval;
mod model;
mod pmo;
mod rl;
mod score;

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use serde_json::Value;

/// Benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Scoring throughput (parse, canonical SMILES, QED, SA, Morgan fingerprint) and IntDiv time.
    Score(score::ScoreBenchArgs),
    /// GPT training tokens/s and sampling molecules/s against a same-size PyTorch GPT-2.
    Model(model::ModelBenchArgs),
    /// REINFORCE steps/s (sample, score, update) against a PyTorch REINFORCE loop on the prior.
    Rl(rl::RlBenchArgs),
    /// The whole MOSES table (`smirl eval`, FCD included) against molsets' get_all_metrics.
    Eval(eval::EvalBenchArgs),
    /// PMO's goal-directed protocol: top-10 AUC per task at an oracle budget, beside published
    /// REINVENT, Augmented Memory, Graph GA and Genetic GFN rows.
    Pmo(pmo::PmoBenchArgs),
}

/// The peer options every benchmark shares.
#[derive(Debug, clap::Args)]
pub struct PeerArgs {
    /// Also run the Python peer (bench/<benchmark>_peer.py) in the same run and print the ratios.
    #[arg(long)]
    pub peer: bool,
    /// Python interpreter for the peer [default: /usr/bin/python3, Debian's with python3-rdkit, for
    /// `score`; python3 with torch and transformers otherwise].
    #[arg(long)]
    pub python: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

impl PeerArgs {
    /// The interpreter: `--python`, else the benchmark's default.
    pub fn python_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.python.as_deref().unwrap_or(default)
    }

    /// Prints a benchmark's result: JSON with `--json`, else through its own `human` layout.
    pub fn print(&self, result: &Value, human: fn(&Value)) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(result)?);
        } else {
            human(result);
        }
        Ok(())
    }
}

/// Median (NaN for none): the figure reported over interleaved rounds.
pub(super) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// Runs a benchmark.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Score(args) => score::run(args),
        BenchCommand::Model(args) => model::run(args),
        BenchCommand::Rl(args) => rl::run(args),
        BenchCommand::Eval(args) => eval::run(args),
        BenchCommand::Pmo(args) => pmo::run(args),
    }
}

/// Runs a Python peer script and returns the JSON object it prints last.
pub(super) fn run_python_peer(python: &str, script: &str, args: &[String]) -> anyhow::Result<Value> {
    let script = PathBuf::from(script);
    anyhow::ensure!(
        script.is_file(),
        "{}: peer script not found (run from the repository root)",
        script.display()
    );
    eprintln!("running the peer ({python} {}) ...", script.display());
    let output = Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {python}"))?;
    anyhow::ensure!(
        output.status.success(),
        "the peer {} failed ({}): {}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("the JSON output of {}", script.display()))
}

/// The CPU model and its vector extensions, from /proc/cpuinfo (these ratios depend on them).
pub(super) fn cpu_description() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let flags = field("flags");
    let simd: Vec<&str> = [
        "avx2",
        "fma",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512_vpopcntdq",
        "avx512_bf16",
    ]
    .into_iter()
    .filter(|f| flags.split_whitespace().any(|x| x == *f))
    .collect();
    format!(
        "{} ({} logical CPUs; {}); paths: kernels {}, gemm {}",
        field("model name"),
        num_cpus(),
        simd.join(" "),
        fastmath::simd::level(),
        ::model::gemm_simd_level()
    )
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Peak resident memory of this process so far, in MiB.
pub(super) fn peak_rss_mb() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}
