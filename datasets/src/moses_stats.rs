//! molsets' precomputed statistics of the MOSES test sets (`test_stats.npz`,
//! `test_scaffolds_stats.npz` in the molsets 0.3.1 wheel), which its `get_all_metrics` uses in place
//! of the test SMILES: FCD mean and covariance, the SNN fingerprints, fragment and scaffold counts,
//! and logP, SA, QED and molecular weight of every test molecule.
//!
//! An `.npz` is a zip of `.npy` files; this one holds a single object array (`stats.npy`) whose
//! payload is a pickled dict of dicts. numpy arrays in it pickle as `_reconstruct` + `BUILD` with
//! the raw bytes as a latin-1 string; serde-pickle keeps those states.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_pickle::{DeOptions, HashableValue, Value};

/// Reading the statistics failed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct StatsError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub why: String,
}

/// The statistics of one MOSES test set, as molsets stores them.
#[derive(Debug, Clone)]
pub struct MosesStats {
    /// FCD: mean of the ChemNet activations (512).
    pub fcd_mu: Vec<f64>,
    /// FCD: their covariance, row-major (512 × 512).
    pub fcd_sigma: Vec<f64>,
    /// SNN: Morgan fingerprints (radius 2, 1024 bits), 128 bytes each, bit i of the fingerprint in
    /// byte i / 8 at position i % 8.
    pub fingerprints: Vec<[u8; 128]>,
    /// Frag: BRICS fragment counts.
    pub fragments: HashMap<String, u64>,
    /// Scaf: Murcko scaffold counts.
    pub scaffolds: HashMap<String, u64>,
    /// Crippen logP of every molecule.
    pub logp: Vec<f64>,
    /// SA score of every molecule.
    pub sa: Vec<f64>,
    /// QED of every molecule.
    pub qed: Vec<f64>,
    /// Average molecular weight of every molecule.
    pub weight: Vec<f64>,
}

/// The statistics file molsets keeps next to a MOSES split: `test.csv.gz` → `test_stats.npz`.
pub fn stats_path_for(split: &Path) -> Option<PathBuf> {
    let name = split.file_name()?.to_str()?;
    let stem = name.split('.').next()?;
    let candidate = split.with_file_name(format!("{stem}_stats.npz"));
    candidate.is_file().then_some(candidate)
}

fn get<'a>(dict: &'a Value, key: &str) -> Option<&'a Value> {
    match dict {
        Value::Dict(map) => map.get(&HashableValue::String(key.to_string())),
        _ => None,
    }
}

/// A numpy array as serde-pickle leaves it: `(version, shape, dtype state, fortran, raw bytes)`.
fn array<'a>(value: &'a Value, item_size: usize, shape: &[usize]) -> Result<&'a [u8], String> {
    let Value::Tuple(state) = value else {
        return Err("not a numpy array".into());
    };
    let got: Vec<usize> = match state.get(1) {
        Some(Value::Tuple(dims)) => dims
            .iter()
            .map(|d| match d {
                Value::I64(n) => Ok(*n as usize),
                _ => Err("bad array shape".to_string()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("not a numpy array".into()),
    };
    if got.len() != shape.len() || got.iter().zip(shape).any(|(g, s)| *s != 0 && g != s) {
        return Err(format!("array of shape {got:?}, expected {shape:?}"));
    }
    if matches!(state.get(3), Some(Value::Bool(true))) {
        return Err("Fortran-ordered array".into());
    }
    let Some(Value::Bytes(bytes)) = state.get(4) else {
        return Err("array without data".into());
    };
    if bytes.len() != got.iter().product::<usize>() * item_size {
        return Err(format!("{} bytes for shape {got:?}", bytes.len()));
    }
    Ok(bytes)
}

fn floats(value: &Value) -> Result<Vec<f64>, String> {
    match value {
        Value::List(items) => items
            .iter()
            .map(|v| match v {
                Value::F64(x) => Ok(*x),
                Value::I64(x) => Ok(*x as f64),
                _ => Err("a value is not a number".to_string()),
            })
            .collect(),
        _ => Err("not a list of numbers".into()),
    }
}

/// `Counter(dict)` pickles as a reduction whose state serde-pickle keeps as `(dict,)`.
fn counts(value: &Value) -> Result<HashMap<String, u64>, String> {
    let dict = match value {
        Value::Tuple(args) if args.len() == 1 => &args[0],
        Value::Dict(_) => value,
        _ => return Err("not a Counter".into()),
    };
    let Value::Dict(map) = dict else {
        return Err("not a Counter".into());
    };
    map.iter()
        .map(|(k, v)| match (k, v) {
            (HashableValue::String(k), Value::I64(n)) if *n >= 0 => Ok((k.clone(), *n as u64)),
            _ => Err("a count is not (string, non-negative integer)".to_string()),
        })
        .collect()
}

/// Reads molsets' statistics of one test set.
pub fn read_moses_stats(path: &Path) -> Result<MosesStats, StatsError> {
    let fail = |why: String| StatsError {
        path: path.to_path_buf(),
        why,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| fail(format!("not an .npz (zip) file: {e}")))?;
    let mut npy = Vec::new();
    zip.by_name("stats.npy")
        .map_err(|e| fail(format!("no stats.npy inside: {e}")))?
        .read_to_end(&mut npy)
        .map_err(|e| fail(format!("stats.npy: {e}")))?;
    // .npy: magic, version (2 bytes), header length (u16 in version 1), header, payload.
    if npy.len() < 10 || &npy[..6] != b"\x93NUMPY" {
        return Err(fail("stats.npy is not a .npy array".into()));
    }
    let header_len = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let header = String::from_utf8_lossy(npy.get(10..10 + header_len).unwrap_or_default());
    if !header.contains("'descr': '|O'") {
        return Err(fail(format!(
            "stats.npy is not an object array ({})",
            header.trim()
        )));
    }
    let options = DeOptions::new().keep_restore_state().replace_unresolved_globals();
    let value = serde_pickle::value_from_slice(&npy[10 + header_len..], options)
        .map_err(|e| fail(format!("unreadable pickle in stats.npy: {e}")))?;
    // A 0-d object array pickles as its one element wrapped by numpy; find the stats dict.
    let stats = find_stats_dict(&value).ok_or_else(|| fail("no FCD/SNN statistics inside".into()))?;
    let section = |name: &str, key: &str| {
        get(stats, name)
            .and_then(|s| get(s, key))
            .ok_or_else(|| fail(format!("no {name}/{key}")))
    };
    let with = |what: &str, r: Result<Vec<f64>, String>| r.map_err(|e| fail(format!("{what}: {e}")));
    let mu = array(section("FCD", "mu")?, 4, &[512]).map_err(|e| fail(format!("FCD/mu: {e}")))?;
    let sigma =
        array(section("FCD", "sigma")?, 8, &[512, 512]).map_err(|e| fail(format!("FCD/sigma: {e}")))?;
    let fps = array(section("SNN", "fps")?, 1, &[0, 1024]).map_err(|e| fail(format!("SNN/fps: {e}")))?;
    let fingerprints = fps
        .chunks_exact(1024)
        .map(|bits| {
            let mut packed = [0u8; 128];
            for (i, &b) in bits.iter().enumerate() {
                packed[i / 8] |= u8::from(b != 0) << (i % 8);
            }
            packed
        })
        .collect();
    Ok(MosesStats {
        fcd_mu: mu
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
            .collect(),
        fcd_sigma: sigma
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect(),
        fingerprints,
        fragments: counts(section("Frag", "frag")?).map_err(|e| fail(format!("Frag: {e}")))?,
        scaffolds: counts(section("Scaf", "scaf")?).map_err(|e| fail(format!("Scaf: {e}")))?,
        logp: with("logP", floats(section("logP", "values")?))?,
        sa: with("SA", floats(section("SA", "values")?))?,
        qed: with("QED", floats(section("QED", "values")?))?,
        weight: with("weight", floats(section("weight", "values")?))?,
    })
}

fn find_stats_dict(value: &Value) -> Option<&Value> {
    if get(value, "FCD").is_some() {
        return Some(value);
    }
    match value {
        Value::Tuple(items) | Value::List(items) => items.iter().find_map(find_stats_dict),
        Value::Dict(map) => map.values().find_map(find_stats_dict),
        _ => None,
    }
}
