//! `smirl bench score`: scoring and IntDiv throughput against RDKit's Python (bench/score_peer.py).

use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;
use serde_json::{json, Value};

use super::run_python_peer;
use crate::cli::input;

/// Arguments of `smirl bench score`.
#[derive(Debug, clap::Args)]
pub struct ScoreBenchArgs {
    /// Molecules to score (the peer scores the same file).
    #[arg(long, default_value = "bench/data/moses_test_10k.smi")]
    input: PathBuf,
    /// Molecules for the large IntDiv timing.
    #[arg(long, default_value = "bench/data/moses_test_30k.smi")]
    intdiv_input: PathBuf,
    #[command(flatten)]
    pub common: super::PeerArgs,
}

/// The work the peer does per molecule, no more: parse, canonical SMILES, QED, SA, fingerprint.
fn peer_equivalent(smiles: &str) -> Option<(String, f64, f64, chem::Fingerprint)> {
    let mol = chem::Molecule::parse(smiles)?;
    Some((
        mol.canonical_smiles(),
        mol.qed().ok()?,
        mol.sa_score().ok()?,
        mol.morgan_fingerprint(),
    ))
}

/// Runs `smirl bench score`.
pub fn run(args: ScoreBenchArgs) -> anyhow::Result<()> {
    let records = input::read(&args.input, None)?;
    let smiles: Vec<&str> = records.iter().map(|r| r.smiles.as_str()).collect();
    // Warm-up outside the clock: the SA fragment table and the SMARTS sets load once per process.
    let _ = chem::score_smiles("c1ccccc1O");

    let t = Instant::now();
    let out: Vec<_> = smiles.par_iter().map(|s| peer_equivalent(s)).collect();
    let score_s = t.elapsed().as_secs_f64();
    let n_valid = out.iter().flatten().count();
    let fps: Vec<chem::Fingerprint> = out.iter().flatten().map(|o| o.3).collect();

    let t = Instant::now();
    let full = chem::score_batch(&smiles);
    let full_s = t.elapsed().as_secs_f64();
    assert_eq!(full.len(), smiles.len());

    let t = Instant::now();
    let (intdiv1, _) = chem::internal_diversity(&fps);
    let intdiv_s = t.elapsed().as_secs_f64();

    let big = input::read(&args.intdiv_input, None)?;
    let big_smiles: Vec<&str> = big.iter().map(|r| r.smiles.as_str()).collect();
    let big_fps: Vec<chem::Fingerprint> = big_smiles
        .par_iter()
        .filter_map(|s| chem::Molecule::parse(s))
        .map(|m| m.morgan_fingerprint())
        .collect();
    let t = Instant::now();
    let (big_intdiv1, _) = chem::internal_diversity(&big_fps);
    let big_intdiv_s = t.elapsed().as_secs_f64();

    let mut result = json!({
        "input": args.input.display().to_string(),
        "threads": rayon::current_num_threads(),
        "cpu": super::cpu_description(),
        "n": smiles.len(),
        "valid": n_valid,
        "score_seconds": score_s,
        "mols_per_s": smiles.len() as f64 / score_s,
        "full_score_seconds": full_s,
        "full_mols_per_s": smiles.len() as f64 / full_s,
        "intdiv_n": fps.len(),
        "intdiv_seconds": intdiv_s,
        "intdiv1": intdiv1,
        "intdiv_large_n": big_fps.len(),
        "intdiv_large_seconds": big_intdiv_s,
        "intdiv_large_intdiv1": big_intdiv1,
    });
    if args.common.peer {
        let peer_args = [args.input.display().to_string(), "--json".to_string()];
        let peer = run_python_peer(
            args.common.python_or("/usr/bin/python3"),
            "bench/score_peer.py",
            &peer_args,
        )?;
        let ratio = |ours: &str, theirs: &str, higher_is_better: bool| -> Value {
            match (result[ours].as_f64(), peer[theirs].as_f64()) {
                (Some(a), Some(b)) if a > 0.0 && b > 0.0 => {
                    json!(if higher_is_better { a / b } else { b / a })
                }
                _ => Value::Null,
            }
        };
        let scoring = ratio("mols_per_s", "mols_per_s", true);
        let intdiv = ratio("intdiv_seconds", "intdiv_seconds", false);
        result["ratio_scoring"] = scoring;
        result["ratio_intdiv"] = intdiv;
        result["peer"] = peer;
    }
    args.common.print(&result, print_human)
}

fn print_human(r: &Value) {
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "smirl bench score on {} ({} threads)",
        r["input"].as_str().unwrap_or(""),
        r["threads"]
    );
    println!("CPU: {}", r["cpu"].as_str().unwrap_or(""));
    println!(
        "  scoring (parse, canonical, QED, SA, fingerprint): {:.0} mol/s ({:.2} s for {})",
        f("mols_per_s"),
        f("score_seconds"),
        r["n"]
    );
    println!(
        "  full `smirl score` row (+ scaffold, filters, descriptors): {:.0} mol/s",
        f("full_mols_per_s")
    );
    println!(
        "  IntDiv over {} molecules: {:.3} s (IntDiv1 {:.4})",
        r["intdiv_n"],
        f("intdiv_seconds"),
        f("intdiv1")
    );
    println!(
        "  IntDiv over {} molecules: {:.3} s (IntDiv1 {:.4})",
        r["intdiv_large_n"],
        f("intdiv_large_seconds"),
        f("intdiv_large_intdiv1")
    );
    if let Some(peer) = r.get("peer") {
        let p = |k: &str| peer[k].as_f64().unwrap_or(f64::NAN);
        println!("RDKit-Python peer (single process):");
        println!(
            "  scoring: {:.0} mol/s; IntDiv over {}: {:.2} s (IntDiv1 {:.4})",
            p("mols_per_s"),
            peer["intdiv_n"],
            p("intdiv_seconds"),
            p("intdiv1")
        );
        println!(
            "ratios (smirl / peer, higher is better): scoring {:.2}x, IntDiv {:.1}x",
            f("ratio_scoring"),
            f("ratio_intdiv")
        );
    }
}
