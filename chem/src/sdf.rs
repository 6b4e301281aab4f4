//! SD files (MDL V2000 molfiles with data tags), the format chemists' tools import: each record is a
//! molfile block with 2D depiction coordinates or a 3D conformer, then `>  <tag>` data items, then
//! `$$$$`.

use crate::error::{rdkit, Result};
use crate::ffi::bridge;
use crate::molecule::Molecule;

/// Where a record's atom coordinates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coordinates {
    /// RDKit's 2D depiction (`rdDepictor.Compute2DCoords`).
    Flat,
    /// One ETKDGv3 conformer with explicit hydrogens, minimised with MMFF94 (RDKit's recipe:
    /// `AddHs`, `EmbedMolecule(ETKDGv3, randomSeed=seed)`, `MMFFOptimizeMolecule`).
    Conformer {
        /// The embedding's random seed: the same seed gives the same conformer.
        seed: u32,
    },
}

/// One SD record and what went differently from the plain recipe.
#[derive(Debug, Clone)]
pub struct SdfRecord {
    /// The record's text, from the title line to `$$$$` and its newline.
    pub text: String,
    /// E.g. "no MMFF94 parameters: ETKDG geometry not minimised"; `None` when nothing did.
    pub note: Option<String>,
}

/// A tag name as SD readers take it: no angle brackets, no line breaks, no leading/trailing blanks.
pub fn sd_tag_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if matches!(c, '<' | '>' | '\n' | '\r') {
                '_'
            } else {
                c
            }
        })
        .collect();
    cleaned.trim().to_string()
}

/// A value on one line: a data item ends at the first blank line, so line breaks become spaces.
fn one_line(value: &str) -> String {
    value.replace(['\r', '\n'], " ")
}

/// Writes `mol` as one SD record titled `name`, with `tags` (name, value) as data items in order,
/// then a `conformer_note` item when the 3D recipe went differently (see [`SdfRecord::note`]).
/// A failed 3D embedding is an error naming the reason; the caller decides whether it is fatal.
pub fn sdf_record(
    mol: &Molecule,
    name: &str,
    tags: &[(&str, &str)],
    coordinates: Coordinates,
) -> Result<SdfRecord> {
    let (three_d, seed) = match coordinates {
        Coordinates::Flat => (false, 0),
        Coordinates::Conformer { seed } => (true, seed),
    };
    let title = one_line(name);
    let block = mol
        .with(|m| bridge::mol_block(m, &title, three_d, seed))
        .map_err(rdkit(if three_d { "3D embedding" } else { "2D depiction" }))?;
    let mut text = block.text;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    for (tag, value) in tags {
        text.push_str(&format!(">  <{}>\n{}\n\n", sd_tag_name(tag), one_line(value)));
    }
    if !block.note.is_empty() {
        text.push_str(&format!(">  <conformer_note>\n{}\n\n", block.note));
    }
    text.push_str("$$$$\n");
    Ok(SdfRecord {
        text,
        note: Some(block.note).filter(|n| !n.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_record_has_title_atoms_tags_and_terminator() {
        let mol = Molecule::from_smiles("CC(=O)Oc1ccccc1C(=O)O").unwrap();
        let rec = sdf_record(
            &mol,
            "aspirin",
            &[("QED", "0.55"), ("a<b>", "x\ny")],
            Coordinates::Flat,
        )
        .unwrap();
        let lines: Vec<&str> = rec.text.lines().collect();
        assert_eq!(lines[0], "aspirin");
        // Counts line: 13 heavy atoms, 13 bonds, V2000.
        assert!(lines[3].starts_with(" 13 13"), "{}", lines[3]);
        assert!(lines[3].ends_with("V2000"));
        assert!(rec.text.contains(">  <QED>\n0.55\n\n"));
        assert!(rec.text.contains(">  <a_b_>\nx y\n\n"));
        assert!(rec
            .text
            .ends_with("M  END\n>  <QED>\n0.55\n\n>  <a_b_>\nx y\n\n$$$$\n"));
        assert!(rec.note.is_none());
        // 2D: every z coordinate is zero, and not every x is.
        let atoms = &lines[4..17];
        assert!(atoms.iter().all(|l| l[20..30].trim() == "0.0000"));
        assert!(atoms.iter().any(|l| l[0..10].trim() != "0.0000"));
    }

    #[test]
    fn conformer_has_hydrogens_and_depth_and_is_reproducible() {
        let mol = Molecule::from_smiles("CCO").unwrap();
        let a = sdf_record(&mol, "ethanol", &[], Coordinates::Conformer { seed: 7 }).unwrap();
        let b = sdf_record(&mol, "ethanol", &[], Coordinates::Conformer { seed: 7 }).unwrap();
        assert_eq!(a.text, b.text);
        let lines: Vec<&str> = a.text.lines().collect();
        // 3 heavy atoms + 6 hydrogens, 8 bonds.
        assert!(lines[3].starts_with("  9  8"), "{}", lines[3]);
        assert!(lines[1].contains("3D"), "{}", lines[1]);
        assert!(lines[4..13].iter().any(|l| l[20..30].trim() != "0.0000"));
        // Bond lengths of a minimised conformer: C–C ≈ 1.51–1.53 Å, C–O ≈ 1.42 Å.
        let xyz: Vec<[f64; 3]> = lines[4..13]
            .iter()
            .map(|l| {
                let f = |r: std::ops::Range<usize>| l[r].trim().parse::<f64>().unwrap();
                [f(0..10), f(10..20), f(20..30)]
            })
            .collect();
        let d = |i: usize, j: usize| -> f64 {
            (0..3)
                .map(|k| (xyz[i][k] - xyz[j][k]).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        assert!((1.49..1.55).contains(&d(0, 1)), "C-C {}", d(0, 1));
        assert!((1.39..1.45).contains(&d(1, 2)), "C-O {}", d(1, 2));
    }
}
