//! `smirl export`: molecules to an SD file for chemists' tools (ChemDraw, MOE, Maestro, KNIME,
//! DataWarrior), with 2D depiction coordinates or an ETKDG + MMFF94 conformer, and every other
//! column of the input as SD tags.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chem::Coordinates;
use datasets::SmilesTable;
use rayon::prelude::*;

/// Arguments of `smirl export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// SMILES file (CSV/TSV/.smi/Parquet, optionally gzip), e.g. `smirl sample`/`score` output or
    /// a run's candidates.csv. Every column but the SMILES and name becomes an SD tag.
    input: PathBuf,
    /// Name of the SMILES column (default: smiles/SMILES).
    #[arg(long)]
    column: Option<String>,
    /// The SD file to write.
    #[arg(long)]
    sdf: PathBuf,
    /// A 3D conformer per molecule (hydrogens added, ETKDGv3, MMFF94 minimisation) instead of 2D
    /// depiction coordinates. Molecules that cannot be embedded are counted and named, not fatal.
    #[arg(long = "3d")]
    three_d: bool,
    /// Random seed of the 3D embedding (the same seed gives the same conformers).
    #[arg(long, default_value_t = 0xf00d)]
    seed: u32,
}

/// What an export wrote and what it left out.
#[derive(Debug, Default)]
pub struct ExportSummary {
    /// Records written.
    pub written: usize,
    /// Input lines whose SMILES RDKit rejects.
    pub invalid_lines: Vec<u64>,
    /// (title, SMILES, reason) of valid molecules without a record (a failed 3D embedding).
    pub failed: Vec<(String, String, String)>,
    /// Records written with a `conformer_note` tag (e.g. no MMFF94 parameters).
    pub noted: usize,
}

impl ExportSummary {
    /// Prints the counts, then the invalid lines and failures (the first few of each) to stderr.
    pub fn print(&self, out: &Path) {
        println!(
            "{} molecules written to {}; {} invalid SMILES skipped; {} not embedded in 3D; {} with a conformer note",
            self.written,
            out.display(),
            self.invalid_lines.len(),
            self.failed.len(),
            self.noted
        );
        const SHOWN: usize = 20;
        if !self.invalid_lines.is_empty() {
            let lines: Vec<String> = self
                .invalid_lines
                .iter()
                .take(SHOWN)
                .map(u64::to_string)
                .collect();
            let more = self.invalid_lines.len().saturating_sub(SHOWN);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            eprintln!("invalid SMILES on input lines {}{more}", lines.join(", "));
        }
        for (title, smiles, why) in self.failed.iter().take(SHOWN) {
            eprintln!("not embedded: {title} {smiles}: {why}");
        }
        if self.failed.len() > SHOWN {
            eprintln!("… and {} more not embedded", self.failed.len() - SHOWN);
        }
    }
}

/// One input row's outcome.
enum Row {
    Invalid(u64),
    Failed(String, String, String),
    Record(chem::SdfRecord),
}

/// Writes `table` as an SD file at `out` (through a temporary file, so a failed export leaves no
/// half-written file). The title is the row's name, or `<file stem>:<line>`; tags are `SMILES`
/// (RDKit canonical), `name` when the row has one, then the table's columns.
pub fn write_sdf(
    table: &SmilesTable,
    source: &Path,
    out: &Path,
    coordinates: Coordinates,
) -> anyhow::Result<ExportSummary> {
    let stem = source
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('.').next())
        .unwrap_or("molecule")
        .to_string();
    let bar = super::input::progress(table.records.len(), "export");
    // Everything is parsed before anything is embedded: RDKit's embedder touches the global log
    // switches that keep parse errors of invalid SMILES off stderr.
    let molecules: Vec<Option<chem::Molecule>> = table
        .records
        .par_iter()
        .map(|r| chem::Molecule::parse(&r.smiles))
        .collect();
    let rows: Vec<Row> = table
        .records
        .par_iter()
        .zip(table.values.par_iter())
        .zip(molecules.into_par_iter())
        .map(|((record, values), mol)| {
            let row = match mol {
                None => Row::Invalid(record.line),
                Some(mol) => export_row(&mol, record, values, &table.columns, &stem, coordinates),
            };
            bar.inc(1);
            row
        })
        .collect();
    bar.finish_and_clear();

    let tmp = out.with_extension("sdf.partial");
    let file = std::fs::File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    let mut summary = ExportSummary::default();
    for row in rows {
        match row {
            Row::Invalid(line) => summary.invalid_lines.push(line),
            Row::Failed(title, smiles, why) => summary.failed.push((title, smiles, why)),
            Row::Record(record) => {
                writer
                    .write_all(record.text.as_bytes())
                    .with_context(|| format!("{}: write failed", tmp.display()))?;
                summary.written += 1;
                summary.noted += usize::from(record.note.is_some());
            }
        }
    }
    writer
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("{}: write failed", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("{}: cannot move into place", out.display()))?;
    Ok(summary)
}

fn export_row(
    mol: &chem::Molecule,
    record: &datasets::SmilesRecord,
    values: &[String],
    columns: &[String],
    stem: &str,
    coordinates: Coordinates,
) -> Row {
    let title = record
        .name
        .clone()
        .unwrap_or_else(|| format!("{stem}:{}", record.line));
    let canonical = mol.canonical_smiles();
    let mut tags: Vec<(&str, &str)> = vec![("SMILES", canonical.as_str())];
    if let Some(name) = &record.name {
        tags.push(("name", name));
    }
    tags.extend(
        columns
            .iter()
            .map(String::as_str)
            .zip(values.iter().map(String::as_str)),
    );
    match chem::sdf_record(mol, &title, &tags, coordinates) {
        Ok(rec) => Row::Record(rec),
        Err(e) => Row::Failed(title, canonical, e.to_string()),
    }
}

/// Runs `smirl export`.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let table = datasets::read_smiles_table(&args.input, args.column.as_deref())?;
    let coordinates = if args.three_d {
        Coordinates::Conformer { seed: args.seed }
    } else {
        Coordinates::Flat
    };
    let summary = write_sdf(&table, &args.input, &args.sdf, coordinates)?;
    summary.print(&args.sdf);
    Ok(())
}
