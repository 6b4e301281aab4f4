//! `smirl score`: per-molecule properties to CSV, set metrics to the terminal.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use chem::MoleculeProps;

use super::{input, table};

/// Arguments of `smirl score`.
#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// SMILES file: .csv/.tsv (column `smiles` or `SMILES`) or .smi (SMILES [name]), optionally .gz.
    input: PathBuf,
    /// Name of the SMILES column of a CSV/TSV.
    #[arg(long)]
    smiles_column: Option<String>,
    /// Training set for novelty (same formats).
    #[arg(long)]
    train: Option<PathBuf>,
    /// Where to write one row per input molecule: CSV, or Parquet with typed columns when the
    /// name ends in `.parquet` (what `smirl merge` reads from many shards).
    #[arg(long, default_value = "scored.csv")]
    out: PathBuf,
    /// Print the set metrics as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Goal-directed objectives to add, one column each (named by task id, empty for an invalid
    /// SMILES): `guacamol` (its 20 v2 tasks), `pmo` (PMO's 20 RDKit-computable tasks), `all`, or task
    /// ids separated by commas, e.g. `osimertinib_mpo,median1`. The `qed` task is the `qed` column
    /// already there.
    #[arg(long, value_name = "SUITE|ID[,ID...]")]
    oracles: Option<String>,
}

/// The columns of the scored CSV, in order.
pub const COLUMNS: [&str; 24] = [
    "smiles",
    "valid",
    "canonical",
    "qed",
    "sa",
    "qed_mw",
    "qed_alogp",
    "qed_hba",
    "qed_hbd",
    "qed_psa",
    "qed_rotb",
    "qed_arom",
    "qed_alerts",
    "heavy_atoms",
    "rings",
    "scaffold",
    "moses_filters",
    "mw",
    "logp",
    "tpsa",
    "hbd",
    "hba",
    "rotb",
    "name",
];

/// The Parquet type of a column: fixed for `smirl score`'s own columns; any other (oracle scores,
/// columns carried through from the input, merge's `source`) is a float when every non-empty cell
/// reads as one, else text.
fn column_kind(name: &str, column: usize, rows: &[Vec<String>]) -> datasets::ColumnKind {
    use datasets::ColumnKind::*;
    match name {
        "smiles" | "canonical" | "scaffold" | "name" | "source" => Text,
        "valid" | "moses_filters" | "novel" => Flag,
        "qed_hba" | "qed_hbd" | "qed_rotb" | "qed_arom" | "qed_alerts" | "heavy_atoms" | "rings" | "hbd"
        | "hba" | "rotb" | "count" => Int,
        _ if rows
            .iter()
            .map(|r| r[column].as_str())
            .all(|cell| cell.is_empty() || cell.parse::<f64>().is_ok()) =>
        {
            Float
        }
        _ => Text,
    }
}

/// Writes a table of text cells as CSV, or as typed Parquet when `out` ends in `.parquet`.
pub fn write_table(out: &std::path::Path, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    if out.extension().is_some_and(|e| e == "parquet") {
        let kinds: Vec<datasets::ColumnKind> = (header.iter().enumerate())
            .map(|(i, h)| column_kind(h, i, rows))
            .collect();
        datasets::write_text_table(out, header, &kinds, rows)?;
        return Ok(());
    }
    let file = std::fs::File::create(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(file));
    writer.write_record(header)?;
    for row in rows {
        writer.write_record(row)?;
    }
    writer
        .flush()
        .with_context(|| format!("{}: write failed", out.display()))
}

fn float(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else {
        String::new()
    }
}

/// Control characters (a NUL, an escape) written as `\u{0}`, `\u{1b}`, so that the CSV stays text; a
/// string holding one is an invalid SMILES anyway.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn row(smiles: &str, name: Option<&str>, props: Option<&MoleculeProps>) -> Vec<String> {
    let name = printable(name.unwrap_or(""));
    let Some(p) = props else {
        let mut cells = vec![String::new(); COLUMNS.len()];
        cells[0] = printable(smiles);
        cells[1] = "0".to_string();
        cells[COLUMNS.len() - 1] = name;
        return cells;
    };
    let q = p.qed_properties;
    let d = p.descriptors;
    let qf = |f: fn(&chem::QedProperties) -> f64| q.as_ref().map_or(String::new(), |q| float(f(q)));
    let qi = |f: fn(&chem::QedProperties) -> u32| q.as_ref().map_or(String::new(), |q| f(q).to_string());
    let df = |f: fn(&chem::Descriptors) -> f64| d.as_ref().map_or(String::new(), |d| float(f(d)));
    let di = |f: fn(&chem::Descriptors) -> u32| d.as_ref().map_or(String::new(), |d| f(d).to_string());
    vec![
        smiles.to_string(),
        "1".to_string(),
        p.canonical.clone(),
        float(p.qed),
        float(p.sa),
        qf(|q| q.mw),
        qf(|q| q.alogp),
        qi(|q| q.hba),
        qi(|q| q.hbd),
        qf(|q| q.psa),
        qi(|q| q.rotb),
        qi(|q| q.arom),
        qi(|q| q.alerts),
        p.heavy_atoms.to_string(),
        p.rings.to_string(),
        p.scaffold.clone().unwrap_or_default(),
        p.passes_filters
            .map_or(String::new(), |f| if f { "1" } else { "0" }.to_string()),
        df(|d| d.mw),
        df(|d| d.logp),
        df(|d| d.tpsa),
        di(|d| d.hbd),
        di(|d| d.hba),
        di(|d| d.rotb),
        name,
    ]
}

/// The oracles' values, in chunks so that the progress bar moves.
fn oracle_all(oracles: &[chem::Oracle], smiles: &[&str]) -> Vec<Vec<Option<f64>>> {
    let bar = input::progress(smiles.len(), "oracles");
    let mut out = Vec::with_capacity(smiles.len());
    for chunk in smiles.chunks(256) {
        out.extend(chem::score_oracles(oracles, chunk));
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    out
}

/// Runs `smirl score`.
pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    let records = input::read(&args.input, args.smiles_column.as_deref())?;
    let smiles: Vec<&str> = records.iter().map(|r| r.smiles.as_str()).collect();
    let scored = input::score_all(&smiles, "scoring");

    let oracles = match &args.oracles {
        Some(spec) => chem::oracle_ids(spec)?
            .into_iter()
            .filter(|id| !COLUMNS.contains(id))
            .map(chem::Oracle::new)
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let oracle_values = if oracles.is_empty() {
        vec![Vec::new(); smiles.len()]
    } else {
        oracle_all(&oracles, &smiles)
    };

    let header: Vec<&str> = COLUMNS
        .iter()
        .copied()
        .chain(oracles.iter().map(|o| o.id()))
        .collect();
    let rows: Vec<Vec<String>> = records
        .iter()
        .zip(&scored)
        .zip(&oracle_values)
        .map(|((record, props), values)| {
            let mut cells = row(&record.smiles, record.name.as_deref(), props.as_ref());
            cells.extend(values.iter().map(|v| v.map_or(String::new(), float)));
            cells
        })
        .collect();
    write_table(&args.out, &header, &rows)?;

    let train = match &args.train {
        Some(path) => Some(input::canonical_set(path, None)?),
        None => None,
    };
    let metrics = chem::set_metrics(&scored, train.as_ref(), None, None);
    let means = table::property_means(&scored);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&table::metrics_json(&metrics, means))?
        )?;
    } else {
        writeln!(stdout, "{}", table::metrics_table(&metrics, means))?;
        writeln!(stdout, "{} rows written to {}", records.len(), args.out.display())?;
    }
    Ok(())
}
