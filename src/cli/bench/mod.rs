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
    /// `score`; for `model` and `rl`, bench/.venv/bin/python (made by bench/peer_env.sh) when it
    /// exists, else python3].
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

    /// The interpreter of the PyTorch peers: `--python`, else `bench/.venv/bin/python` when
    /// `bench/peer_env.sh` has made it, else `python3`.
    pub fn torch_python(&self) -> &str {
        const VENV: &str = "bench/.venv/bin/python";
        match &self.python {
            Some(p) => p,
            None if std::path::Path::new(VENV).is_file() => VENV,
            None => "python3",
        }
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
    let mut command = Command::new(python);
    command.arg(&script).args(args);
    for (key, value) in peer_simd_limits() {
        if std::env::var_os(key).is_none() {
            command.env(key, value);
        }
    }
    // smirl turns transparent huge pages off for itself (main.rs); the peer runs as a user runs
    // it, with the system's setting, which it would otherwise inherit.
    // SAFETY: between fork and exec the closure only makes one syscall, touching no memory.
    #[cfg(target_os = "linux")]
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0);
            Ok(())
        })
    };
    let output = command.output().with_context(|| format!("cannot run {python}"))?;
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

/// Under `SMIRL_SIMD=avx2` or `portable`, the environment that limits PyTorch the same way: its
/// ATen kernels (`ATEN_CPU_CAPABILITY`), oneDNN (`DNNL_MAX_CPU_ISA`) and MKL
/// (`MKL_ENABLE_INSTRUCTIONS`); a variable the caller already set is left as it is.
fn peer_simd_limits() -> Vec<(&'static str, &'static str)> {
    use fastmath::simd::SimdLevel;
    match fastmath::simd::requested() {
        Ok(Some(SimdLevel::Avx2)) => vec![
            ("ATEN_CPU_CAPABILITY", "avx2"),
            ("DNNL_MAX_CPU_ISA", "AVX2"),
            ("MKL_ENABLE_INSTRUCTIONS", "AVX2"),
        ],
        Ok(Some(SimdLevel::Portable)) => vec![
            ("ATEN_CPU_CAPABILITY", "default"),
            ("DNNL_MAX_CPU_ISA", "SSE41"),
            ("MKL_ENABLE_INSTRUCTIONS", "SSE4_2"),
        ],
        _ => Vec::new(),
    }
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
