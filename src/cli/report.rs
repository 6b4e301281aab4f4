//! `smirl report`: one self-contained HTML file for a samples file or an RL run directory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use reports::{Candidate, Curves, Distribution, Report};

use super::eval::MosesSources;
use super::input;

/// Arguments of `smirl report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A samples file (CSV/TSV/.smi) or a run directory (log.csv, candidates.csv, config.toml).
    input: PathBuf,
    /// Where to write the HTML.
    #[arg(long, default_value = "report.html")]
    out: PathBuf,
    /// The MOSES table's reference sets (the training set also gives the reference property
    /// distributions).
    #[command(flatten)]
    sources: MosesSources,
    /// For a run directory: fresh samples of the tuned agent (`smirl sample --agent RUN_DIR`) for the
    /// metric table and the property distributions (default: the run's candidates).
    #[arg(long)]
    samples: Option<PathBuf>,
    /// Name of the SMILES column of a CSV/TSV samples file.
    #[arg(long)]
    smiles_column: Option<String>,
    /// Candidates shown with pictures.
    #[arg(long, default_value_t = 50)]
    top: usize,
}

/// A run's `log.csv` as charts, one per kind of column (`rl::run_dir::LogColumnKind`), in that
/// order; wall time is left out, and the top-k means are drawn against oracle calls.
fn curves_from_log(log: &rl::run_dir::RunLog) -> Curves {
    use rl::run_dir::LogColumnKind;
    let oracle_calls = log
        .columns
        .iter()
        .find(|c| c.kind == LogColumnKind::OracleCalls)
        .map(|c| c.values.clone())
        .unwrap_or_default();
    let mut charts: std::collections::BTreeMap<LogColumnKind, Vec<reports::Series>> = Default::default();
    let drawn = |k: LogColumnKind| !matches!(k, LogColumnKind::Time | LogColumnKind::OracleCalls);
    for col in log.columns.iter().filter(|c| drawn(c.kind)) {
        if col.values.iter().any(|x| x.is_finite()) {
            charts
                .entry(col.kind)
                .or_default()
                .push((col.name.clone(), col.values.clone()));
        }
    }
    let top_k = charts
        .remove(&LogColumnKind::TopK)
        .filter(|_| !oracle_calls.is_empty());
    Curves {
        steps: log.steps.clone(),
        charts: charts
            .into_iter()
            .map(|(kind, series)| (kind.title().to_string(), series))
            .collect(),
        call_charts: top_k
            .map(|series| vec![(LogColumnKind::TopK.title().to_string(), series)])
            .unwrap_or_default(),
        oracle_calls,
    }
}

/// The molecules of the report: (SMILES, name, extra scores) from a samples file or a run.
struct Molecules {
    smiles: Vec<String>,
    names: Vec<Option<String>>,
    /// For a run's candidates.csv: its numeric columns, already ranked.
    ranked_scores: Option<Vec<Vec<(String, f64)>>>,
}

fn molecules_from_candidates(candidates: rl::run_dir::Candidates) -> Molecules {
    let mut names = vec!["total".to_string()];
    names.extend(candidates.components);
    Molecules {
        names: vec![None; candidates.rows.len()],
        ranked_scores: Some(
            candidates
                .rows
                .iter()
                .map(|r| {
                    let values = std::iter::once(r.total).chain(r.scores.iter().copied());
                    names.iter().cloned().zip(values).collect()
                })
                .collect(),
        ),
        smiles: candidates.rows.into_iter().map(|r| r.smiles).collect(),
    }
}

/// A link from the report at `report` to `target`, relative when both resolve (so that the
/// report and the run can move together), else the target's path as given.
fn relative_link(report: &Path, target: &Path) -> String {
    let folder = report.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    });
    let (Some(Ok(from)), Ok(to)) = (folder.map(std::fs::canonicalize), std::fs::canonicalize(target)) else {
        return target.display().to_string();
    };
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// Runs `smirl report`.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    args.sources.check()?;
    let mut report = Report {
        title: format!("smirl report: {}", args.input.display()),
        ..Default::default()
    };
    report
        .summary
        .push(("input".into(), args.input.display().to_string()));
    let molecules = if args.input.is_dir() {
        let run = rl::run_dir::RunDir::open(&args.input)?;
        if let Some(table) = run.config_toml()? {
            for (k, v) in table.iter().filter(|(_, v)| !v.is_table() && !v.is_array()) {
                report.summary.push((format!("config: {k}"), v.to_string()));
            }
        }
        if let Some(info) = run.info()? {
            report
                .summary
                .push(("model (prior)".into(), info.model_dir.display().to_string()));
        }
        if let Some(log) = run.log()? {
            report.summary.push((
                "wall time".into(),
                format!("{:.1} s over {} steps", log.total_seconds(), log.steps.len()),
            ));
            report.curves = Some(curves_from_log(&log));
        }
        let sdf = args.input.join(rl::run_dir::CANDIDATES_SDF_FILE);
        if sdf.is_file() {
            report.files.push((
                "candidates as SD file (ChemDraw, MOE, Maestro, KNIME, DataWarrior)".into(),
                relative_link(&args.out, &sdf),
            ));
        }
        molecules_from_candidates(run.candidates()?)
    } else {
        let records = input::read(&args.input, args.smiles_column.as_deref())?;
        Molecules {
            names: records.iter().map(|r| r.name.clone()).collect(),
            smiles: records.into_iter().map(|r| r.smiles).collect(),
            ranked_scores: None,
        }
    };

    let smiles: Vec<&str> = molecules.smiles.iter().map(String::as_str).collect();
    let scored = input::score_all(&smiles, "scoring");
    // The set the metric table and distributions describe.
    let sampled = match &args.samples {
        Some(path) => {
            anyhow::ensure!(
                args.input.is_dir(),
                "--samples goes with a run directory as input"
            );
            report
                .summary
                .push(("samples".into(), path.display().to_string()));
            let records = input::read(path, args.smiles_column.as_deref())?;
            let smiles: Vec<&str> = records.iter().map(|r| r.smiles.as_str()).collect();
            input::score_all(&smiles, "samples")
        }
        None => {
            if args.input.is_dir() {
                report.summary.push((
                    "metrics over".into(),
                    "the run's candidates (distinct valid molecules)".into(),
                ));
            }
            scored.clone()
        }
    };
    let (train_records, train_name) =
        input::read_or_embedded(args.sources.train.as_deref(), input::Embedded::Train)
            .context("reading the training set")?;
    report.summary.push(("training set".into(), train_name.clone()));
    report.n_generated = sampled.len();
    report.n_valid = sampled.iter().flatten().count();
    report.metrics = match report.n_valid {
        0 => None,
        _ => Some(args.sources.metrics(&sampled)?),
    };

    // Reference distributions from (up to 5,000 molecules of) the training set.
    let reference = {
        let sample: Vec<&str> = train_records
            .iter()
            .take(5_000)
            .map(|r| r.smiles.as_str())
            .collect();
        Some(input::score_all(&sample, "train set"))
    };
    type Getter = fn(&chem::MoleculeProps) -> Option<f64>;
    let properties: [(&str, Getter); 5] = [
        ("QED", |p| Some(p.qed)),
        ("SA score", |p| Some(p.sa)),
        ("MW", |p| p.descriptors.map(|d| d.mw)),
        ("logP", |p| p.descriptors.map(|d| d.logp)),
        ("TPSA", |p| p.descriptors.map(|d| d.tpsa)),
    ];
    for (name, get) in properties {
        let values =
            |set: &[Option<chem::MoleculeProps>]| set.iter().flatten().filter_map(get).collect::<Vec<f64>>();
        report.distributions.push(Distribution {
            name: name.to_string(),
            generated: values(&sampled),
            reference: reference.as_deref().map(values),
        });
    }

    // Candidates: a run's ranking as given; a samples file's distinct valid molecules by QED.
    let mut seen = HashSet::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    for (i, props) in scored.iter().enumerate() {
        let Some(p) = props else { continue };
        if !seen.insert(p.canonical.clone()) {
            continue;
        }
        let scores = match &molecules.ranked_scores {
            Some(ranked) => ranked[i].clone(),
            None => {
                let d = p.descriptors;
                vec![
                    ("QED".to_string(), p.qed),
                    ("SA".to_string(), p.sa),
                    ("MW".to_string(), d.map_or(f64::NAN, |d| d.mw)),
                    ("logP".to_string(), d.map_or(f64::NAN, |d| d.logp)),
                ]
            }
        };
        candidates.push(Candidate {
            smiles: p.canonical.clone(),
            name: molecules.names[i].clone(),
            scores,
        });
    }
    if molecules.ranked_scores.is_none() {
        candidates.sort_by(|a, b| b.scores[0].1.total_cmp(&a.scores[0].1));
    }
    candidates.truncate(args.top);
    report.candidates = candidates;

    let html = report.to_html();
    std::fs::write(&args.out, &html).with_context(|| format!("{}: cannot write", args.out.display()))?;
    println!(
        "report: {} ({} molecules, {} valid, {} KB)",
        args.out.display(),
        report.n_generated,
        report.n_valid,
        html.len() / 1024
    );
    Ok(())
}
