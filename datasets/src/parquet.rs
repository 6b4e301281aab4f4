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
