//! Readers for SMILES files: CSV/TSV with a header, and .smi, plain or gzip-compressed (Parquet is
//! in `parquet.rs`).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::DatasetError;

/// One molecule as read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmilesRecord {
    /// The SMILES exactly as in the file (may be empty or invalid).
    pub smiles: String,
    /// The name (second field of a .smi line), if any.
    pub name: Option<String>,
    /// 1-based line number in the file.
    pub line: u64,
}

/// A file format we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated with a header.
    Csv,
    /// Tab-separated with a header.
    Tsv,
    /// One SMILES per line, optionally followed by whitespace and a name; no header.
    Smi,
    /// Apache Parquet (read through polars).
    Parquet,
}

impl Format {
    /// The format and whether the file is gzip-compressed, from its name.
    pub fn from_path(path: &Path) -> Result<(Format, bool), DatasetError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let (stem, gz) = match name.strip_suffix(".gz") {
            Some(stem) => (stem.to_string(), true),
            None => (name, false),
        };
        let format = match Path::new(&stem).extension().and_then(|e| e.to_str()) {
            Some("csv") => Format::Csv,
            Some("tsv") => Format::Tsv,
            Some("smi") | Some("smiles") => Format::Smi,
            Some("parquet") if !gz => Format::Parquet,
            _ => {
                return Err(DatasetError::UnknownFormat {
                    path: path.to_path_buf(),
                })
            }
        };
        Ok((format, gz))
    }
}

fn open(path: &Path, gz: bool) -> Result<Box<dyn Read>, DatasetError> {
    let file = File::open(path).map_err(|source| DatasetError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(if gz {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

/// Reads every molecule of a SMILES file. `column` names the SMILES column of a CSV/TSV (default:
/// `smiles`, else `SMILES`, else any column named so case-insensitively).
pub fn read_smiles(path: &Path, column: Option<&str>) -> Result<Vec<SmilesRecord>, DatasetError> {
    let (format, gz) = Format::from_path(path)?;
    if format == Format::Parquet {
        return crate::parquet::read_parquet(path, column);
    }
    let reader = open(path, gz)?;
    let records = match format {
        Format::Parquet => unreachable!("handled above"),
        Format::Smi => read_smi(path, reader)?,
        Format::Csv => read_delimited(path, reader, b',', "CSV", column)?,
        Format::Tsv => read_delimited(path, reader, b'\t', "TSV", column)?,
    };
    if records.is_empty() {
        return Err(DatasetError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(records)
}

fn read_smi(path: &Path, reader: Box<dyn Read>) -> Result<Vec<SmilesRecord>, DatasetError> {
    let mut reader = BufReader::new(reader);
    let mut records = Vec::new();
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| DatasetError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let text = std::str::from_utf8(&buf).map_err(|_| DatasetError::NotUtf8 {
            path: path.to_path_buf(),
            line: line_no,
        })?;
        // Surrounding blanks are layout, as in a CSV field (which is trimmed too).
        let text = text.trim();
        if text.is_empty() {
            continue; // blank lines hold no molecule
        }
        let mut fields = text.splitn(2, [' ', '\t']);
        let smiles = fields.next().unwrap_or("").to_string();
        let name = fields
            .next()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty());
        records.push(SmilesRecord {
            smiles,
            name,
            line: line_no,
        });
    }
    Ok(records)
}

fn find_column(header: &csv::StringRecord, column: Option<&str>) -> Option<usize> {
    let names: Vec<&str> = header.iter().collect();
    let name = crate::parquet::pick_column(&names, column)?;
    names.iter().position(|n| *n == name)
}

fn read_delimited(
    path: &Path,
    reader: Box<dyn Read>,
    delimiter: u8,
    what: &'static str,
    column: Option<&str>,
) -> Result<Vec<SmilesRecord>, DatasetError> {
    Ok(read_delimited_table(path, reader, delimiter, what, column, false)?.records)
}

/// A SMILES file with its other columns kept as text (for writers that carry them along, e.g. SD
/// tags).
#[derive(Debug, Clone, Default)]
pub struct SmilesTable {
    /// The molecules, as `read_smiles` gives them.
    pub records: Vec<SmilesRecord>,
    /// Names of the columns other than the SMILES and `name` columns, in file order.
    pub columns: Vec<String>,
    /// Per record, the values of `columns`.
    pub values: Vec<Vec<String>>,
}

/// Reads a SMILES file as `read_smiles` does, keeping every other column as text (a `.smi` file
/// has none beyond the name).
pub fn read_smiles_table(path: &Path, column: Option<&str>) -> Result<SmilesTable, DatasetError> {
    let (format, gz) = Format::from_path(path)?;
    let table = match format {
        Format::Parquet => crate::parquet::read_parquet_table(path, column)?,
        Format::Smi => {
            let records = read_smiles(path, column)?;
            let values = vec![Vec::new(); records.len()];
            SmilesTable {
                records,
                columns: Vec::new(),
                values,
            }
        }
        Format::Csv => read_delimited_table(path, open(path, gz)?, b',', "CSV", column, true)?,
        Format::Tsv => read_delimited_table(path, open(path, gz)?, b'\t', "TSV", column, true)?,
    };
    if table.records.is_empty() {
        return Err(DatasetError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(table)
}

fn read_delimited_table(
    path: &Path,
    reader: Box<dyn Read>,
    delimiter: u8,
    what: &'static str,
    column: Option<&str>,
    keep_other_columns: bool,
) -> Result<SmilesTable, DatasetError> {
    let p = || -> PathBuf { path.to_path_buf() };
    // Comment lines (`# ...`) before the header are skipped, as in RDKit-generated reference files;
    // after the header a `#` is data (it could be a broken SMILES).
    let mut reader = BufReader::new(reader);
    let mut skipped = 0u64;
    loop {
        let buf = reader
            .fill_buf()
            .map_err(|source| DatasetError::Read { path: p(), source })?;
        if buf.first() != Some(&b'#') {
            break;
        }
        let mut line = Vec::new();
        reader
            .read_until(b'\n', &mut line)
            .map_err(|source| DatasetError::Read { path: p(), source })?;
        skipped += 1;
    }
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .from_reader(reader);
    let mut rows = csv.byte_records();
    let to_error = |e: csv::Error| -> DatasetError {
        let line = e.position().map_or(0, |pos| pos.line()) + skipped;
        match e.kind() {
            csv::ErrorKind::Io(_) => match e.into_kind() {
                csv::ErrorKind::Io(source) => DatasetError::Read { path: p(), source },
                _ => unreachable!(),
            },
            _ => DatasetError::Malformed {
                path: p(),
                line,
                what,
                message: e.to_string(),
            },
        }
    };
    let Some(header) = rows.next() else {
        return Err(DatasetError::Empty { path: p() });
    };
    let header = header.map_err(to_error)?;
    let header = csv::StringRecord::from_byte_record(header).map_err(|_| DatasetError::NotUtf8 {
        path: p(),
        line: skipped + 1,
    })?;
    let idx = find_column(&header, column).ok_or_else(|| DatasetError::MissingColumn {
        path: p(),
        wanted: column.map_or("smiles (or SMILES)".to_string(), |c| format!("{c:?}")),
        available: header.iter().collect::<Vec<_>>().join(","),
    })?;
    // A `name` column (any case), as a .smi line's second field and a Parquet `name` column.
    let name_idx = header
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case("name"))
        .filter(|&i| i != idx);
    let others: Vec<usize> = if keep_other_columns {
        (0..header.len())
            .filter(|&i| i != idx && Some(i) != name_idx)
            .collect()
    } else {
        Vec::new()
    };
    let mut table = SmilesTable {
        columns: others.iter().map(|&i| header[i].trim().to_string()).collect(),
        ..SmilesTable::default()
    };
    for row in rows {
        let row = row.map_err(to_error)?;
        let line = row.position().map_or(0, |pos| pos.line()) + skipped;
        let text = |i: usize| -> Result<&str, DatasetError> {
            std::str::from_utf8(row.get(i).unwrap_or(b""))
                .map_err(|_| DatasetError::NotUtf8 { path: p(), line })
        };
        let smiles = text(idx)?.trim().to_string();
        let name = match name_idx {
            Some(i) => Some(text(i)?.trim().to_string()).filter(|n| !n.is_empty()),
            None => None,
        };
        table.records.push(SmilesRecord { smiles, name, line });
        if keep_other_columns {
            table.values.push(
                others
                    .iter()
                    .map(|&i| text(i).map(|t| t.trim().to_string()))
                    .collect::<Result<_, _>>()?,
            );
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn reads_csv_tsv_smi_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(&dir, "a.csv", b"id,SMILES\n1,CCO\n2,\n3,c1ccccc1\n");
        let r = read_smiles(&csv, None).unwrap();
        assert_eq!(
            r.iter().map(|r| r.smiles.as_str()).collect::<Vec<_>>(),
            ["CCO", "", "c1ccccc1"]
        );
        assert_eq!(r[2].line, 4);
        let tsv = write(&dir, "a.tsv", b"mol\tother\nCCN\tx\n");
        assert_eq!(read_smiles(&tsv, Some("mol")).unwrap()[0].smiles, "CCN");
        let smi = write(&dir, "a.smi", b"CCO ethanol\n\nc1ccccc1\tbenzene ring\nC\n");
        let r = read_smiles(&smi, None).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].name.as_deref(), Some("benzene ring"));
        assert_eq!(r[1].line, 3);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"SMILES\nCCO\nCCC\n").unwrap();
        let gz = write(&dir, "a.csv.gz", &gz.finish().unwrap());
        assert_eq!(read_smiles(&gz, None).unwrap().len(), 2);
    }

    /// The table reader keeps every column but SMILES and name, in file order, row by row.
    #[test]
    fn table_keeps_other_columns() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(
            &dir,
            "t.csv",
            b"qed,smiles,Name,note\n0.5,CCO,ethanol,\"a, b\"\n,c1ccccc1,,x\n",
        );
        let t = read_smiles_table(&csv, None).unwrap();
        assert_eq!(t.columns, ["qed", "note"]);
        assert_eq!(t.records[0].name.as_deref(), Some("ethanol"));
        assert_eq!(t.values, [vec!["0.5", "a, b"], vec!["", "x"]]);
        let smi = write(&dir, "t.smi", b"CCO ethanol\n");
        let t = read_smiles_table(&smi, None).unwrap();
        assert!(t.columns.is_empty() && t.values == [Vec::<String>::new()]);
        let bad = write(&dir, "bad.csv", b"smiles,qed\nCCO,1\nCCC,1,2\n");
        let e = read_smiles_table(&bad, None).unwrap_err().to_string();
        assert!(e.contains("bad.csv:3"), "{e}");
    }

    /// A CSV `name` column is read as a .smi name is; a leading blank is layout in both formats.
    #[test]
    fn names_and_blanks_agree_across_formats() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(&dir, "n.csv", b"smiles,Name\n CCO ,ethanol\nCCN,\n");
        let smi = write(&dir, "n.smi", b" CCO ethanol\nCCN\n");
        for path in [csv, smi] {
            let r = read_smiles(&path, None).unwrap();
            assert_eq!(r[0].smiles, "CCO", "{}", path.display());
            assert_eq!(r[0].name.as_deref(), Some("ethanol"), "{}", path.display());
            assert_eq!(r[1].name, None, "{}", path.display());
        }
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.csv");
        let e = read_smiles(&missing, None).unwrap_err().to_string();
        assert!(e.contains("nope.csv") && e.contains("cannot open"), "{e}");

        let unknown = write(&dir, "a.xlsx", b"x");
        assert!(read_smiles(&unknown, None)
            .unwrap_err()
            .to_string()
            .contains("unknown file type"));

        let nocol = write(&dir, "b.csv", b"id,name\n1,x\n");
        let e = read_smiles(&nocol, None).unwrap_err().to_string();
        assert!(
            e.contains("b.csv") && e.contains("no column") && e.contains("id,name"),
            "{e}"
        );

        let bad = write(&dir, "c.smi", b"CCO\nC\xff\xfeC\n");
        assert_eq!(
            read_smiles(&bad, None).unwrap_err().to_string(),
            format!("{}:2: not valid UTF-8", bad.display())
        );

        let ragged = write(&dir, "d.csv", b"smiles,x\nCCO,1\nCCC,1,2\n");
        let e = read_smiles(&ragged, None).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:3: malformed CSV", ragged.display())),
            "{e}"
        );

        let empty = write(&dir, "e.smi", b"\n\n");
        assert!(read_smiles(&empty, None)
            .unwrap_err()
            .to_string()
            .contains("empty file"));
        let header_only = write(&dir, "f.csv", b"smiles\n");
        assert!(read_smiles(&header_only, None)
            .unwrap_err()
            .to_string()
            .contains("empty file"));
    }
}
