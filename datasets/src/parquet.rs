//! Parquet in and out, through polars. CSV/TSV/.smi input stays with the line-exact readers
//! in `read.rs` (polars' CSV errors do not say which line is broken).

use std::fs::File;
use std::path::Path;

use polars::prelude::*;

use crate::error::DatasetError;
use crate::read::{SmilesRecord, SmilesTable};

fn polars_error(path: &Path, e: PolarsError) -> DatasetError {
    DatasetError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Reads a whole Parquet file.
fn read_frame(path: &Path) -> Result<DataFrame, DatasetError> {
    let file = File::open(path).map_err(|source| DatasetError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    ParquetReader::new(file)
        .finish()
        .map_err(|e| polars_error(path, e))
}

/// Picks the SMILES column: `column` if given, else `smiles`, `SMILES`, or any case of it.
pub(crate) fn pick_column<'a>(names: &[&'a str], column: Option<&str>) -> Option<&'a str> {
    match column {
        Some(c) => names.iter().copied().find(|n| *n == c),
        None => names
            .iter()
            .copied()
            .find(|n| *n == "smiles")
            .or_else(|| names.iter().copied().find(|n| *n == "SMILES"))
            .or_else(|| names.iter().copied().find(|n| n.eq_ignore_ascii_case("smiles"))),
    }
}

/// Reads the SMILES column (and a `name` column, if any) of a Parquet file. A null SMILES becomes
/// an empty string, which `chem` counts as invalid; `line` is the 1-based row number.
pub fn read_parquet(path: &Path, column: Option<&str>) -> Result<Vec<SmilesRecord>, DatasetError> {
    let frame = read_frame(path)?;
    let names: Vec<&str> = frame.get_column_names().iter().map(|n| n.as_str()).collect();
    let smiles_name = pick_column(&names, column).ok_or_else(|| DatasetError::MissingColumn {
        path: path.to_path_buf(),
        wanted: column.map_or("smiles (or SMILES)".to_string(), |c| format!("{c:?}")),
        available: names.join(","),
    })?;
    let text_column = |name: &str| -> Result<Vec<Option<String>>, DatasetError> {
        let column = frame.column(name).map_err(|e| polars_error(path, e))?;
        let strings = column.str().map_err(|_| DatasetError::Parquet {
            path: path.to_path_buf(),
            message: format!("column {name:?} holds {}, not strings", column.dtype()),
        })?;
        Ok(strings.iter().map(|s| s.map(str::to_string)).collect())
    };
    let smiles = text_column(smiles_name)?;
    let names_column = match names.iter().find(|n| **n == "name") {
        Some(n) => text_column(n)?,
        None => vec![None; smiles.len()],
    };
    if smiles.is_empty() {
        return Err(DatasetError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(smiles
        .into_iter()
        .zip(names_column)
        .enumerate()
        .map(|(i, (smiles, name))| SmilesRecord {
            smiles: smiles.unwrap_or_default(),
            name,
            line: i as u64 + 1,
        })
        .collect())
}

/// Reads a Parquet file as `read_parquet` does, keeping every other column as text (nulls empty).
pub(crate) fn read_parquet_table(path: &Path, column: Option<&str>) -> Result<SmilesTable, DatasetError> {
    let records = read_parquet(path, column)?;
    let frame = read_frame(path)?;
    let names: Vec<&str> = frame.get_column_names().iter().map(|n| n.as_str()).collect();
    let smiles_name = pick_column(&names, column).unwrap_or_default();
    let others: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| *n != smiles_name && *n != "name")
        .collect();
    let mut values = vec![Vec::with_capacity(others.len()); records.len()];
    for name in &others {
        let text = frame
            .column(name)
            .and_then(|c| c.cast(&DataType::String))
            .map_err(|e| polars_error(path, e))?;
        let text = text.str().map_err(|e| polars_error(path, e))?;
        for (row, value) in values.iter_mut().zip(text.iter()) {
            row.push(value.unwrap_or_default().to_string());
        }
    }
    Ok(SmilesTable {
        records,
        columns: others.iter().map(|n| n.to_string()).collect(),
        values,
    })
}

/// The type a text column is stored as in [`write_text_table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Text as it stands.
    Text,
    /// A 64-bit float.
    Float,
    /// A 64-bit integer.
    Int,
    /// A boolean written as `1`/`0` (or `true`/`false`).
    Flag,
}

/// Writes rows of text cells as Parquet with typed columns; an empty cell is a null. A cell that
/// does not parse as its column's kind is an error naming the column and the row (1-based).
pub fn write_text_table(
    path: &Path,
    header: &[&str],
    kinds: &[ColumnKind],
    rows: &[Vec<String>],
) -> Result<(), DatasetError> {
    assert_eq!(header.len(), kinds.len(), "one kind per column");
    let bad = |name: &str, row: usize, cell: &str, what: &str| DatasetError::Parquet {
        path: path.to_path_buf(),
        message: format!("column {name:?}, row {}: {cell:?} is not {what}", row + 1),
    };
    let mut columns = Vec::with_capacity(header.len());
    for (c, (&name, &kind)) in header.iter().zip(kinds).enumerate() {
        let cells = rows.iter().map(|r| r.get(c).map_or("", String::as_str));
        let column = match kind {
            ColumnKind::Text => Column::new(
                name.into(),
                cells.map(|v| Some(v.to_string())).collect::<Vec<_>>(),
            ),
            ColumnKind::Float => {
                let values = cells
                    .enumerate()
                    .map(|(r, v)| match v {
                        "" => Ok(None),
                        v => v
                            .parse::<f64>()
                            .map(Some)
                            .map_err(|_| bad(name, r, v, "a number")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Column::new(name.into(), values)
            }
            ColumnKind::Int => {
                let values = cells
                    .enumerate()
                    .map(|(r, v)| match v {
                        "" => Ok(None),
                        v => v
                            .parse::<i64>()
                            .map(Some)
                            .map_err(|_| bad(name, r, v, "an integer")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Column::new(name.into(), values)
            }
            ColumnKind::Flag => {
                let values = cells
                    .enumerate()
                    .map(|(r, v)| match v {
                        "" => Ok(None),
                        "1" | "true" => Ok(Some(true)),
                        "0" | "false" => Ok(Some(false)),
                        v => Err(bad(name, r, v, "1/0 or true/false")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Column::new(name.into(), values)
            }
        };
        columns.push(column);
    }
    let mut frame = DataFrame::new(rows.len(), columns).map_err(|e| polars_error(path, e))?;
    write_parquet(path, &mut frame)
}

/// Writes a table as Parquet.
pub fn write_parquet(path: &Path, frame: &mut DataFrame) -> Result<(), DatasetError> {
    let file = File::create(path).map_err(|source| DatasetError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    ParquetWriter::new(file)
        .finish(frame)
        .map_err(|e| polars_error(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_tables_round_trip_with_types_and_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let header = ["smiles", "qed", "rings", "ok"];
        let kinds = [
            ColumnKind::Text,
            ColumnKind::Float,
            ColumnKind::Int,
            ColumnKind::Flag,
        ];
        let rows = vec![
            vec!["CCO".into(), "0.406795".into(), "0".into(), "1".into()],
            vec!["C1CC".into(), "".into(), "".into(), "".into()],
        ];
        write_text_table(&path, &header, &kinds, &rows).unwrap();
        let frame = read_frame(&path).unwrap();
        assert_eq!(frame.column("qed").unwrap().dtype(), &DataType::Float64);
        assert_eq!(frame.column("rings").unwrap().dtype(), &DataType::Int64);
        assert_eq!(frame.column("ok").unwrap().dtype(), &DataType::Boolean);
        let table = read_parquet_table(&path, None).unwrap();
        assert_eq!(table.columns, ["qed", "rings", "ok"]);
        assert_eq!(table.values[0], ["0.406795", "0", "true"]);
        assert_eq!(table.values[1], ["", "", ""]);

        let wrong = vec![vec!["CCO".into(), "high".into(), "0".into(), "1".into()]];
        let e = write_text_table(&path, &header, &kinds, &wrong)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("column \"qed\", row 1: \"high\" is not a number"),
            "{e}"
        );
    }

    #[test]
    fn bad_parquet_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let corrupt = dir.path().join("corrupt.parquet");
        std::fs::write(&corrupt, b"PAR1 this is not parquet").unwrap();
        let e = read_parquet(&corrupt, None).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: Parquet error", corrupt.display())),
            "{e}"
        );

        let numbers = dir.path().join("numbers.parquet");
        let mut frame = DataFrame::new(2, vec![Column::new("smiles".into(), [1i64, 2])]).unwrap();
        write_parquet(&numbers, &mut frame).unwrap();
        let e = read_parquet(&numbers, None).unwrap_err().to_string();
        assert!(e.contains("numbers.parquet") && e.contains("not strings"), "{e}");

        let other = dir.path().join("other.parquet");
        let mut frame = DataFrame::new(1, vec![Column::new("mol".into(), ["CCO"])]).unwrap();
        write_parquet(&other, &mut frame).unwrap();
        let e = read_parquet(&other, None).unwrap_err().to_string();
        assert!(
            e.contains("other.parquet") && e.contains("no column") && e.contains("mol"),
            "{e}"
        );
        assert_eq!(read_parquet(&other, Some("mol")).unwrap()[0].smiles, "CCO");
    }
}
