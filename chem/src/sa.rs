//! Synthetic accessibility score (Ertl & Schuffenhauer 2009) exactly as RDKit Contrib's
//! `sascorer.py`: fragment contributions from `fpscores.pkl.gz` over unhashed Morgan radius-2
//! environments, minus size, stereo, spiro, bridgehead and macrocycle penalties, plus a symmetry
//! correction, scaled to 1 (easy) … 10 (hard).

use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

use serde_pickle::{DeOptions, Value};

use crate::error::{rdkit, ChemError, Result};
use crate::ffi::bridge;
use crate::molecule::Molecule;

/// The fragment table, embedded at build time from Debian's rdkit-data.
static FPSCORES_GZ: &[u8] = include_bytes!(env!("SMIRL_FPSCORES_PATH"));

fn fragment_scores() -> &'static HashMap<u32, f64> {
    static TABLE: OnceLock<HashMap<u32, f64>> = OnceLock::new();
    TABLE.get_or_init(|| parse_fragment_scores(FPSCORES_GZ).expect("embedded fpscores.pkl.gz is readable"))
}

/// Parses the gzipped pickle: a list of lists `[score, fragment_id, fragment_id, ...]`.
pub(crate) fn parse_fragment_scores(gz: &[u8]) -> Result<HashMap<u32, f64>> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .map_err(|e| ChemError::FragmentTable(e.to_string()))?;
    let value = serde_pickle::value_from_slice(&raw, DeOptions::new())
        .map_err(|e| ChemError::FragmentTable(e.to_string()))?;
    let Value::List(rows) = value else {
        return Err(ChemError::FragmentTable("top level is not a list".into()));
    };
    let mut table = HashMap::with_capacity(rows.len() * 2);
    for row in rows {
        let Value::List(items) = row else {
            return Err(ChemError::FragmentTable("row is not a list".into()));
        };
        let score = match items.first() {
            Some(Value::F64(x)) => *x,
            Some(Value::I64(x)) => *x as f64,
            _ => return Err(ChemError::FragmentTable("row without a numeric score".into())),
        };
        for id in &items[1..] {
            match id {
                Value::I64(id) => {
                    table.insert(*id as u32, score);
                }
                Value::Int(id) => {
                    let id: u32 = id
                        .try_into()
                        .map_err(|_| ChemError::FragmentTable(format!("fragment id {id} out of range")))?;
                    table.insert(id, score);
                }
                _ => return Err(ChemError::FragmentTable("fragment id is not an integer".into())),
            }
        }
    }
    Ok(table)
}

impl Molecule {
    /// SA score in [1, 10].
    pub fn sa_score(&self) -> Result<f64> {
        let inputs = self.with(bridge::sa_inputs).map_err(rdkit("SA score"))?;
        let table = fragment_scores();

        // Fragment score: mean contribution over all environments, unknown ones counting -4.
        let mut score1 = 0.0;
        let mut nf = 0u64;
        for (id, count) in inputs.fragment_ids.iter().zip(&inputs.fragment_counts) {
            nf += *count as u64;
            score1 += table.get(id).copied().unwrap_or(-4.0) * *count as f64;
        }
        if nf > 0 {
            score1 /= nf as f64;
        }

        let n_atoms = inputs.n_atoms as f64;
        let size_penalty = n_atoms.powf(1.005) - n_atoms;
        let stereo_penalty = (inputs.n_chiral_centers as f64 + 1.0).log10();
        let spiro_penalty = (inputs.n_spiro as f64 + 1.0).log10();
        let bridge_penalty = (inputs.n_bridgeheads as f64 + 1.0).log10();
        // sascorer.py uses log10(2) for any number of macrocycles (not the paper's log10(n + 1)).
        let macrocycle_penalty = if inputs.n_macrocycles > 0 {
            2f64.log10()
        } else {
            0.0
        };
        let score2 = -size_penalty - stereo_penalty - spiro_penalty - bridge_penalty - macrocycle_penalty;

        // Correction for fingerprint density: symmetric molecules are easier to make.
        let n_fragments = inputs.fragment_ids.len() as f64;
        let score3 = if n_atoms > n_fragments {
            (n_atoms / n_fragments).ln() * 0.5
        } else {
            0.0
        };

        let raw = score1 + score2 + score3;
        let (min, max) = (-4.0, 2.5);
        let mut sa = 11.0 - (raw - min + 1.0) / (max - min) * 9.0;
        if sa > 8.0 {
            sa = 8.0 + (sa + 1.0 - 9.0).ln();
        }
        Ok(sa.clamp(1.0, 10.0))
    }
}
