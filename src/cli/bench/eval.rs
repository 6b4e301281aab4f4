//! `smirl bench eval`: the whole MOSES table (`smirl eval` against full MOSES, FCD included) timed
//! against molsets' `get_all_metrics` (bench/moses_peer.py) on the same samples, in interleaved
//! rounds: smirl with an empty cache (cold), smirl again (warm), then molsets.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use serde_json::{json, Value};

use super::run_python_peer;

/// Arguments of `smirl bench eval`.
#[derive(Debug, clap::Args)]
pub struct EvalBenchArgs {
    /// Samples to evaluate (both sides read the same file).
    #[arg(long, default_value = "bench/data/prior_samples_3000.smi")]
    input: PathBuf,
    /// Directory with the MOSES splits, molsets' statistics and ChemNet's weights
    /// (datasets/fetch_moses.sh).
    #[arg(long, default_value = "data/moses")]
    moses: PathBuf,
    /// Interleaved rounds; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Threads the peer's torch may use (molsets itself runs in one process).
    #[arg(long, default_value_t = 2)]
    peer_threads: usize,
    #[command(flatten)]
    pub common: super::PeerArgs,
}

/// Runs `smirl eval` as a user does, with the given cache directory; returns seconds and metrics.
fn run_smirl_eval(args: &EvalBenchArgs, cache: &std::path::Path) -> anyhow::Result<(f64, Value)> {
    let exe = std::env::current_exe().context("locating the smirl binary")?;
    let start = Instant::now();
    let output = Command::new(exe)
        .arg("eval")
        .arg(&args.input)
        .arg("--train")
        .arg(args.moses.join("train.csv.gz"))
        .arg("--test")
        .arg(args.moses.join("test.csv.gz"))
        .arg("--json")
        .env("SMIRL_CACHE_DIR", cache)
        .output()
        .context("running smirl eval")?;
    let seconds = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        output.status.success(),
        "smirl eval failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok((seconds, serde_json::from_slice(&output.stdout)?))
}

/// Runs `smirl bench eval`.
pub fn run(args: EvalBenchArgs) -> anyhow::Result<()> {
    for f in ["train.csv.gz", "test.csv.gz", "test_stats.npz", fcd::WEIGHTS_FILE] {
        let p = args.moses.join(f);
        anyhow::ensure!(
            p.is_file(),
            "{}: missing; run datasets/fetch_moses.sh first",
            p.display()
        );
    }
    let (mut cold, mut warm, mut peer_s) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ours, mut theirs) = (Value::Null, Value::Null);
    for round in 0..args.rounds.max(1) {
        let cache = std::env::temp_dir().join(format!("smirl-bench-eval-{}-{round}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        let (s, _) = run_smirl_eval(&args, &cache)?;
        cold.push(s);
        let (s, metrics) = run_smirl_eval(&args, &cache)?;
        let _ = std::fs::remove_dir_all(&cache);
        warm.push(s);
        ours = metrics;
        eprintln!(
            "round {}: smirl cold {:.1} s, warm {:.1} s",
            round + 1,
            cold[round],
            s
        );
        if args.common.peer {
            let peer_args = [
                args.input.display().to_string(),
                "--threads".to_string(),
                args.peer_threads.to_string(),
            ];
            let python = args.common.python_or("python3");
            let start = Instant::now();
            let peer = run_python_peer(python, "bench/moses_peer.py", &peer_args)?;
            let wall = start.elapsed().as_secs_f64();
            eprintln!(
                "round {}: molsets get_all_metrics {:.1} s ({wall:.1} s with interpreter start)",
                round + 1,
                peer["seconds"].as_f64().unwrap_or(f64::NAN)
            );
            peer_s.push(wall);
            theirs = peer;
        }
    }
    let mut result = json!({
        "input": args.input.display().to_string(),
        "cpu": super::cpu_description(),
        "rounds": args.rounds.max(1),
        "smirl_cold_seconds": super::median(cold),
        "smirl_warm_seconds": super::median(warm),
        "metrics": ours,
    });
    if args.common.peer {
        let peer = super::median(peer_s);
        result["peer_seconds"] = json!(peer);
        result["peer_threads"] = json!(args.peer_threads);
        result["ratio_warm"] = json!(peer / result["smirl_warm_seconds"].as_f64().unwrap_or(f64::NAN));
        result["ratio_cold"] = json!(peer / result["smirl_cold_seconds"].as_f64().unwrap_or(f64::NAN));
        // The largest disagreement on any molsets metric (FCD relative), as a sanity check.
        let mut worst = (String::new(), 0.0f64);
        if let Some(map) = theirs["metrics"].as_object() {
            for (k, v) in map {
                let (Some(a), Some(b)) = (ours[k].as_f64(), v.as_f64()) else {
                    continue;
                };
                let d = if k.starts_with("FCD") {
                    ((a - b) / b).abs()
                } else {
                    (a - b).abs()
                };
                if d >= worst.1 {
                    worst = (k.clone(), d);
                }
            }
        }
        result["largest_difference"] = json!({"metric": worst.0, "difference": worst.1});
        result["peer"] = theirs;
    }
    args.common.print(&result, print_human)
}

fn print_human(r: &Value) {
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "smirl bench eval on {} against full MOSES",
        r["input"].as_str().unwrap_or("")
    );
    println!("CPU: {}", r["cpu"].as_str().unwrap_or(""));
    println!(
        "  smirl eval (median of {} rounds): {:.1} s with an empty cache, {:.1} s with it warm",
        r["rounds"],
        f("smirl_cold_seconds"),
        f("smirl_warm_seconds")
    );
    if r.get("peer").is_some() {
        println!(
            "  molsets get_all_metrics (torch {} threads): {:.1} s",
            r["peer_threads"],
            f("peer_seconds")
        );
        println!(
            "ratios (molsets time / smirl time): warm {:.1}x, cold {:.1}x; largest metric difference {} {:.2e}",
            f("ratio_warm"),
            f("ratio_cold"),
            r["largest_difference"]["metric"].as_str().unwrap_or(""),
            r["largest_difference"]["difference"].as_f64().unwrap_or(f64::NAN)
        );
    }
}
