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

/// Reads a CSV into (header, rows); used for a run's log.csv and candidates.csv.
fn read_table(path: &Path) -> anyhow::Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("{}: no header", path.display()))?
        .iter()
        .map(String::from)
        .collect();
    let mut rows = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{}:{}: malformed CSV", path.display(), i + 2))?;
        rows.push(row.iter().map(String::from).collect());
    }
    Ok((header, rows))
}

/// A run's `log.csv` as charts, one per kind of column (`rl::run::LogColumnKind`), in that
/// order; wall time and columns this version does not know are left out.
fn curves_from_log(path: &Path) -> anyhow::Result<Curves> {
    use rl::run::LogColumnKind;
    let (header, rows) = read_table(path)?;
    let step_col = header
        .iter()
        .position(|h| h == "step")
        .with_context(|| format!("{}: no step column", path.display()))?;
    let parse = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
    let steps = rows.iter().map(|r| parse(&r[step_col])).collect();
    let mut charts: std::collections::BTreeMap<LogColumnKind, Vec<reports::Series>> = Default::default();
    for (i, h) in header.iter().enumerate() {
        let Some(kind) = LogColumnKind::of(h).filter(|&k| k != LogColumnKind::Time) else {
            continue;
        };
        let values: Vec<f64> = rows.iter().map(|r| parse(r.get(i).map_or("", |s| s))).collect();
        if values.iter().any(|x| x.is_finite()) {
            charts.entry(kind).or_default().push((h.clone(), values));
        }
    }
    Ok(Curves {
        steps,
        charts: charts
            .into_iter()
            .map(|(kind, series)| (kind.title().to_string(), series))
            .collect(),
    })
}

/// The molecules of the report: (SMILES, name, extra scores) from a samples file or a run.
struct Molecules {
    smiles: Vec<String>,
    names: Vec<Option<String>>,
    /// For a run's candidates.csv: its numeric columns, already ranked.
    ranked_scores: Option<Vec<Vec<(String, f64)>>>,
}

fn molecules_from_candidates(path: &Path) -> anyhow::Result<Molecules> {
    let (header, rows) = read_table(path)?;
    let col = header
        .iter()
        .position(|h| h == "canonical" || h == "smiles" || h == "SMILES")
        .with_context(|| format!("{}: no smiles/canonical column", path.display()))?;
    let numeric: Vec<usize> = (0..header.len())
        .filter(|&i| {
            i != col
                // Positions, not scores: the table numbers its rows itself.
                && !matches!(header[i].as_str(), "rank" | "step" | "first_step")
                && rows
                    .iter()
                    .all(|r| r.get(i).is_some_and(|v| v.is_empty() || v.parse::<f64>().is_ok()))
        })
        .collect();
    Ok(Molecules {
        smiles: rows.iter().map(|r| r[col].clone()).collect(),
        names: vec![None; rows.len()],
        ranked_scores: Some(
            rows.iter()
                .map(|r| {
                    numeric
                        .iter()
                        .map(|&i| (header[i].clone(), r[i].parse().unwrap_or(f64::NAN)))
                        .collect()
                })
                .collect(),
        ),
    })
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
        let dir = &args.input;
        if let Ok(text) = std::fs::read_to_string(dir.join("config.toml")) {
            if let Ok(toml::Value::Table(table)) = text.parse::<toml::Value>() {
                for (k, v) in table.iter().filter(|(_, v)| !v.is_table() && !v.is_array()) {
                    report.summary.push((format!("config: {k}"), v.to_string()));
                }
            }
        }
        if let Ok(text) = std::fs::read_to_string(dir.join(rl::run::RUN_INFO_FILE)) {
            if let Some(model) = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["model_dir"].as_str().map(String::from))
            {
                report.summary.push(("model (prior)".into(), model));
            }
        }
        let log = dir.join("log.csv");
        if log.is_file() {
            let curves = curves_from_log(&log)?;
            let (header, rows) = read_table(&log)?;
            if let Some(i) = header.iter().position(|h| h == "seconds") {
                let total: f64 = rows.iter().filter_map(|r| r.get(i)?.parse::<f64>().ok()).sum();
                report.summary.push((
                    "wall time".into(),
                    format!("{total:.1} s over {} steps", rows.len()),
                ));
            }
            report.curves = Some(curves);
        }
        let candidates = dir.join("candidates.csv");
        anyhow::ensure!(
            candidates.is_file(),
            "{}: no candidates.csv in this run directory",
            dir.display()
        );
        molecules_from_candidates(&candidates)?
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
