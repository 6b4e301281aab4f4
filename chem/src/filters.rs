//! MOSES filters (molsets 0.3.1 `mol_passes_filters`): no ring of eight or more atoms, no formal
//! charge, only C N S O F Cl Br H, none of the MCF and PAINS SMARTS on the H-added molecule, and a
//! non-isomeric SMILES that parses again.

use crate::error::{rdkit, Result};
use crate::ffi::bridge;
use crate::molecule::Molecule;
use crate::patterns::SmartsPattern;

const MCF_CSV: &str = include_str!("../data/mcf.csv");
const PAINS_CSV: &str = include_str!("../data/wehi_pains.csv");

/// The MCF and PAINS SMARTS, in the order MOSES reads them.
pub fn moses_filter_smarts() -> Vec<String> {
    let mut smarts = Vec::new();
    // mcf.csv: header `names,smarts`; names have no comma, SMARTS with commas are quoted.
    for line in MCF_CSV.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let (_, s) = line.split_once(',').expect("mcf.csv rows are name,smarts");
        smarts.push(s.trim().trim_matches('"').to_string());
    }
    // wehi_pains.csv: no header, `"SMARTS   ","<regId=...>"`.
    for line in PAINS_CSV.lines().filter(|l| !l.trim().is_empty()) {
        let first = line
            .strip_prefix('"')
            .and_then(|rest| rest.split_once('"'))
            .map(|(s, _)| s);
        let s = first.unwrap_or_else(|| line.split(',').next().unwrap_or(""));
        smarts.push(s.trim_end().to_string());
    }
    smarts
}

thread_local! {
    // One compiled copy per thread, as for QED: shared recursive queries are matched under a mutex.
    static FILTERS: SmartsPattern =
        SmartsPattern::any_of(&moses_filter_smarts()).expect("MOSES filter SMARTS compile");
}

impl Molecule {
    /// True when the molecule passes the MOSES filters.
    pub fn passes_moses_filters(&self) -> Result<bool> {
        if !self
            .with(bridge::moses_structure_ok)
            .map_err(rdkit("MOSES filters"))?
        {
            return Ok(false);
        }
        Ok(!FILTERS.with(|f| f.any_match(self, true))?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_every_filter_row() {
        let smarts = super::moses_filter_smarts();
        assert_eq!(smarts.len(), 22 + 480);
        assert!(smarts.iter().all(|s| !s.is_empty() && !s.ends_with(' ')));
    }
}
