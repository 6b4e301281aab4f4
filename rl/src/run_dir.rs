//! The run directory `smirl tune` writes, defined in one place: its file names, the `log.csv`
//! columns and what each holds, `run.json`, and readers for them (the report reads runs through
//! [`RunDir`]).
//!
//! Layout of `RUN_DIR`:
//! - `config.toml`: the resolved config (absolute paths, every default written out);
//! - `log.csv`: one row per step (see [`crate::StepLog`]); component means are `score_<name>` columns;
//! - `candidates.csv`: the best `top_candidates` distinct molecules, ranked (rewritten at every
//!   checkpoint and at the end);
//! - `candidates.sdf`: the same molecules as an SD file with 2D coordinates and every column as
//!   a tag, for chemists' tools (written by `smirl tune` when the run ends);
//! - `run.json`: which prior the run tunes ([`RunInfo`]);
//! - `prompts.csv` (discrete_prompt mode): the learned prompts, ranked;
//! - `agent.safetensors` (prompt modes): what sampling the tuned agent needs, kilobytes (the
//!   deep prefix's folded keys and values, or the soft prompt); with `config.toml` it is a
//!   portable prompt (`smirl sample --model PRIOR --agent DIR`, the `prompts/` library);
//! - `checkpoint/`: `trainable.safetensors` (the prefix, or all agent weights in full mode),
//!   `optimizer.safetensors` (Adam moments), `state.json` (step, baseline, replay memory,
//!   diversity-filter buckets, candidate table). A checkpoint is written whole into
//!   `checkpoint.tmp/` and then renamed into place, so a kill at any moment leaves a complete one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Per-step log file name.
pub const LOG_FILE: &str = "log.csv";
/// Ranked candidates file name.
pub const CANDIDATES_FILE: &str = "candidates.csv";
/// The candidates as an SD file (written by the CLI after a run).
pub const CANDIDATES_SDF_FILE: &str = "candidates.sdf";
/// Resolved config file name.
pub const CONFIG_FILE: &str = "config.toml";
/// What the run tunes (`{"model_dir": ...}`), in the run directory.
pub const RUN_INFO_FILE: &str = "run.json";
/// Checkpoint directory name.
pub const CHECKPOINT_DIR: &str = "checkpoint";
pub(crate) const TRAINABLE_FILE: &str = "trainable.safetensors";
/// The sample-ready prompt of a run (prompt modes), in the run directory.
pub const AGENT_FILE: &str = "agent.safetensors";
pub(crate) const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub(crate) const STATE_FILE: &str = "state.json";
/// The ranked prompts of a discrete_prompt run, in the run directory.
pub const PROMPTS_FILE: &str = "prompts.csv";

/// A CSV field as RFC 4180 writes it: quoted when it holds a comma, a quote or a line break.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// What a `log.csv` column holds, so that readers (the report's charts) need not guess from its
/// name; defined beside [`log_header`], which writes the columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogColumnKind {
    /// `mean_reward`, `max_reward`.
    Reward,
    /// `validity`, `uniqueness`, `novelty`, `int_div1` of the sampled batch.
    BatchQuality,
    /// `kl`, `entropy`, `loss`.
    Divergence,
    /// `score_<component>`: each component's mean over the valid molecules.
    Component,
    /// `replayed`, `filtered`: molecules per step.
    Count,
    /// `oracle_calls`: distinct valid molecules scored so far (the x axis of [`Self::TopK`]).
    OracleCalls,
    /// `top1`, `top10`, `top100`: running means of the best candidates' totals.
    TopK,
    /// `seconds`, wall time of the step.
    Time,
}

impl LogColumnKind {
    /// The kind of column `name` (`None` for `step` and for names this version does not write).
    pub fn of(name: &str) -> Option<Self> {
        Some(match name {
            "mean_reward" | "max_reward" => Self::Reward,
            "validity" | "uniqueness" | "novelty" | "int_div1" => Self::BatchQuality,
            "kl" | "entropy" | "loss" => Self::Divergence,
            "replayed" | "filtered" => Self::Count,
            "oracle_calls" => Self::OracleCalls,
            "top1" | "top10" | "top100" => Self::TopK,
            "seconds" => Self::Time,
            _ if name.starts_with("score_") => Self::Component,
            _ => return None,
        })
    }

    /// A chart title for the columns of this kind.
    pub fn title(self) -> &'static str {
        match self {
            Self::Reward => "reward",
            Self::BatchQuality => "validity, uniqueness, novelty, diversity",
            Self::Divergence => "KL, entropy, loss",
            Self::Component => "component means",
            Self::Count => "molecules replayed / filtered per step",
            Self::OracleCalls => "oracle calls",
            Self::TopK => "top-k mean score against oracle calls",
            Self::Time => "seconds per step",
        }
    }
}

pub(crate) fn log_header(names: &[String]) -> String {
    let mut cols = vec!["step".to_string(), "mean_reward".into(), "max_reward".into()];
    // Component names are the user's: quoted where needed, so that any name keeps the columns.
    cols.extend(names.iter().map(|n| csv_field(&format!("score_{n}"))));
    cols.extend(
        [
            "validity",
            "uniqueness",
            "novelty",
            "int_div1",
            "kl",
            "entropy",
            "loss",
            "replayed",
            "filtered",
            "oracle_calls",
            "top1",
            "top10",
            "top100",
            "seconds",
        ]
        .map(String::from),
    );
    cols.join(",")
}

pub(crate) fn log_row(r: &crate::StepLog) -> String {
    let mut cols = vec![
        r.step.to_string(),
        format!("{:.6}", r.mean_reward),
        format!("{:.6}", r.max_reward),
    ];
    cols.extend(r.components.iter().map(|v| format!("{v:.6}")));
    cols.extend(
        [
            r.validity,
            r.uniqueness,
            r.novelty,
            r.int_div1,
            r.kl,
            r.entropy,
            r.loss,
        ]
        .map(|v| format!("{v:.6}")),
    );
    cols.extend([
        r.replayed.to_string(),
        r.filtered.to_string(),
        r.oracle.oracle_calls.to_string(),
        format!("{:.6}", r.oracle.top1),
        format!("{:.6}", r.oracle.top10),
        format!("{:.6}", r.oracle.top100),
        format!("{:.3}", r.seconds),
    ]);
    cols.join(",")
}

/// `run.json`: which prior a run tunes (sampling the agent later needs the same one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The prior's model directory, as `smirl tune --model` named it.
    pub model_dir: PathBuf,
}

/// A CSV file of the run directory, read whole: the header and the rows as text.
#[derive(Debug, Clone)]
pub struct Table {
    /// The file (for error messages).
    pub path: PathBuf,
    /// Column names.
    pub header: Vec<String>,
    /// Rows, each as long as the header.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Reads `path`; a malformed row is an error naming the file and line.
    pub fn read(path: &Path) -> Result<Self> {
        let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error(path, e))?;
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| csv_error(path, e))?
            .iter()
            .map(String::from)
            .collect();
        let mut rows = Vec::new();
        for (i, row) in reader.records().enumerate() {
            let row = row.map_err(|e| Error::checkpoint(path, format!("line {}: {e}", i + 2)))?;
            rows.push(row.iter().map(String::from).collect());
        }
        Ok(Self {
            path: path.to_path_buf(),
            header,
            rows,
        })
    }

    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// Column `i` of every row as numbers (an empty cell is NaN); other text is an error
    /// naming the file, line and column.
    pub fn numbers(&self, i: usize) -> Result<Vec<f64>> {
        self.rows
            .iter()
            .enumerate()
            .map(|(r, row)| match row[i].as_str() {
                "" => Ok(f64::NAN),
                v => v.parse().map_err(|_| {
                    Error::checkpoint(
                        &self.path,
                        format!(
                            "line {}: column `{}` holds {v:?}, not a number",
                            r + 2,
                            self.header[i]
                        ),
                    )
                }),
            })
            .collect()
    }
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => Error::io(path, e),
        kind => Error::checkpoint(path, format!("{kind:?}")),
    }
}

/// One `log.csv` column with its kind.
#[derive(Debug, Clone)]
pub struct LogColumn {
    /// The column's name (`score_<component>` for components).
    pub name: String,
    /// What it holds.
    pub kind: LogColumnKind,
    /// One value per step (NaN where empty).
    pub values: Vec<f64>,
}

/// A run's `log.csv`: the steps and every column this version knows, in file order.
#[derive(Debug, Clone)]
pub struct RunLog {
    /// The `step` column.
    pub steps: Vec<f64>,
    /// The other known columns (unknown names, from a newer version, are left out).
    pub columns: Vec<LogColumn>,
}

impl RunLog {
    /// Reads `log.csv` at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let table = Table::read(path)?;
        let step = table
            .column("step")
            .ok_or_else(|| Error::checkpoint(path, "no `step` column (not a run's log.csv?)"))?;
        let mut columns = Vec::new();
        for (i, name) in table.header.iter().enumerate() {
            if let Some(kind) = LogColumnKind::of(name) {
                columns.push(LogColumn {
                    name: name.clone(),
                    kind,
                    values: table.numbers(i)?,
                });
            }
        }
        Ok(Self {
            steps: table.numbers(step)?,
            columns,
        })
    }

    /// Wall time of the steps logged, in seconds (0 without a `seconds` column).
    pub fn total_seconds(&self) -> f64 {
        self.columns
            .iter()
            .filter(|c| c.kind == LogColumnKind::Time)
            .flat_map(|c| c.values.iter().filter(|v| v.is_finite()))
            .sum()
    }
}

/// One row of `candidates.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateRow {
    /// 1 for the best.
    pub rank: usize,
    /// Canonical SMILES.
    pub smiles: String,
    /// The step that first sampled it.
    pub first_step: usize,
    /// Its aggregated reward.
    pub total: f64,
    /// One score per component (`Candidates::components`), NaN where it failed.
    pub scores: Vec<f64>,
}

/// A run's `candidates.csv`: the best distinct valid molecules, ranked.
#[derive(Debug, Clone)]
pub struct Candidates {
    /// Component names, in column order.
    pub components: Vec<String>,
    /// The rows, best first.
    pub rows: Vec<CandidateRow>,
}

/// The columns `candidates.csv` opens with, before one per component.
pub(crate) const CANDIDATE_COLUMNS: [&str; 4] = ["rank", "smiles", "first_step", "total"];

impl Candidates {
    /// Reads `candidates.csv` at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let table = Table::read(path)?;
        if table.header.len() < CANDIDATE_COLUMNS.len() || table.header[..4] != CANDIDATE_COLUMNS {
            return Err(Error::checkpoint(
                path,
                format!(
                    "the header must start with {} (not a run's candidates.csv?)",
                    CANDIDATE_COLUMNS.join(",")
                ),
            ));
        }
        let number = |i: usize| table.numbers(i);
        let (rank, first_step, total) = (number(0)?, number(2)?, number(3)?);
        let scores = (4..table.header.len()).map(number).collect::<Result<Vec<_>>>()?;
        let rows = (0..table.rows.len())
            .map(|r| CandidateRow {
                rank: rank[r] as usize,
                smiles: table.rows[r][1].clone(),
                first_step: first_step[r] as usize,
                total: total[r],
                scores: scores.iter().map(|col| col[r]).collect(),
            })
            .collect();
        Ok(Self {
            components: table.header[4..].to_vec(),
            rows,
        })
    }
}

/// A run directory (or a shipped prompt's), for reading.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// `path`, which must be a directory.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_dir() {
            return Err(Error::checkpoint(path, "not a directory"));
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run's config as TOML, if it has one.
    pub fn config_toml(&self) -> Result<Option<toml::Table>> {
        let path = self.path.join(CONFIG_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        text.parse().map(Some).map_err(|e| Error::ConfigParse {
            path,
            msg: format!("{e}"),
        })
    }

    /// `run.json`, if the run has one.
    pub fn info(&self) -> Result<Option<RunInfo>> {
        let path = self.path.join(RUN_INFO_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::checkpoint(&path, e))
    }

    /// `log.csv`, if the run has one.
    pub fn log(&self) -> Result<Option<RunLog>> {
        let path = self.path.join(LOG_FILE);
        path.is_file().then(|| RunLog::read(&path)).transpose()
    }

    /// `candidates.csv` (every run writes one).
    pub fn candidates(&self) -> Result<Candidates> {
        let path = self.path.join(CANDIDATES_FILE);
        if !path.is_file() {
            return Err(Error::checkpoint(
                &self.path,
                "no candidates.csv in this run directory",
            ));
        }
        Candidates::read(&path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every column `log.csv` gets has a kind, components included (`step` has none).
    #[test]
    fn every_log_column_has_a_kind() {
        let header = log_header(&["qed".into(), "SA, \"easy\"".into()]);
        let mut reader = csv::Reader::from_reader(header.as_bytes());
        let cols: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(cols[0], "step");
        assert_eq!(LogColumnKind::of("step"), None);
        for c in &cols[1..] {
            assert!(LogColumnKind::of(c).is_some(), "{c}");
        }
        assert_eq!(
            LogColumnKind::of("score_SA, \"easy\""),
            Some(LogColumnKind::Component)
        );
        assert_eq!(LogColumnKind::of("score_novelty"), Some(LogColumnKind::Component));
        assert_eq!(LogColumnKind::of("novelty"), Some(LogColumnKind::BatchQuality));
        assert_eq!(LogColumnKind::of("filtered"), Some(LogColumnKind::Count));
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A log.csv written by hand: steps, kinds, a quoted component name, an empty cell, the
    /// wall time; unknown columns are skipped.
    #[test]
    fn reads_a_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            LOG_FILE,
            "step,mean_reward,\"score_a,b\",validity,future_column,seconds\n\
             1,0.5,0.25,0.9,x,1.5\n\
             2,0.6,,0.95,y,2.25\n",
        );
        let log = RunLog::read(&path).unwrap();
        assert_eq!(log.steps, vec![1.0, 2.0]);
        let names: Vec<&str> = log.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["mean_reward", "score_a,b", "validity", "seconds"]);
        assert_eq!(log.columns[1].kind, LogColumnKind::Component);
        assert_eq!(log.columns[1].values[0], 0.25);
        assert!(log.columns[1].values[1].is_nan());
        assert_eq!(log.total_seconds(), 3.75);
    }

    /// Text in a numeric column names the file, line and column; a missing step column is named.
    #[test]
    fn bad_logs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), LOG_FILE, "step,kl\n1,0.1\n2,lots\n");
        let err = RunLog::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("log.csv") && err.contains("line 3") && err.contains("`kl`"),
            "{err}"
        );
        let path = write(dir.path(), "other.csv", "kl\n0.1\n");
        let err = RunLog::read(&path).unwrap_err().to_string();
        assert!(err.contains("other.csv") && err.contains("`step`"), "{err}");
        let path = write(dir.path(), "ragged.csv", "step,kl\n1,0.1\n2\n");
        let err = RunLog::read(&path).unwrap_err().to_string();
        assert!(err.contains("ragged.csv") && err.contains("line 3"), "{err}");
    }

    /// candidates.csv written by hand, and one whose header is not a run's.
    #[test]
    fn reads_candidates() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            CANDIDATES_FILE,
            "rank,smiles,first_step,total,qed,sas\n1,CCO,3,0.9,0.8,\n2,c1ccccc1,1,0.5,0.4,0.2\n",
        );
        let run = RunDir::open(dir.path()).unwrap();
        let c = run.candidates().unwrap();
        assert_eq!(c.components, ["qed", "sas"]);
        assert_eq!(c.rows.len(), 2);
        assert_eq!(
            (c.rows[0].rank, c.rows[0].smiles.as_str(), c.rows[0].first_step),
            (1, "CCO", 3)
        );
        assert_eq!(c.rows[1].scores, vec![0.4, 0.2]);
        assert!(c.rows[0].scores[1].is_nan());
        assert!(run.log().unwrap().is_none() && run.info().unwrap().is_none());
        write(dir.path(), CANDIDATES_FILE, "smiles,qed\nCCO,0.4\n");
        let err = run.candidates().unwrap_err().to_string();
        assert!(err.contains("rank,smiles,first_step,total"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = RunDir::open(empty.path())
            .unwrap()
            .candidates()
            .unwrap_err()
            .to_string();
        assert!(err.contains("no candidates.csv"), "{err}");
    }

    /// run.json as `run_tune` writes it.
    #[test]
    fn reads_run_info() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            RUN_INFO_FILE,
            "{\n  \"model_dir\": \"models/prior\"\n}\n",
        );
        let info = RunDir::open(dir.path()).unwrap().info().unwrap().unwrap();
        assert_eq!(info.model_dir, Path::new("models/prior"));
    }
}
