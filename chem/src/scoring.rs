//! Per-molecule scoring: everything `smirl score` reports for one SMILES, and the same for a batch
//! in parallel. An invalid SMILES is a row with `props = None`, never an error.

use rayon::prelude::*;

use crate::fingerprint::Fingerprint;
use crate::molecule::{Descriptors, Molecule};
use crate::qed::QedProperties;

/// What `chem` computes for one valid molecule. A value RDKit failed to compute is NaN (numbers) or
/// `None`; the molecule still counts as valid.
#[derive(Debug, Clone)]
pub struct MoleculeProps {
    /// RDKit canonical isomeric SMILES.
    pub canonical: String,
    /// QED (NaN when RDKit failed).
    pub qed: f64,
    /// QED's eight inputs.
    pub qed_properties: Option<QedProperties>,
    /// SA score in [1, 10] (NaN when RDKit failed).
    pub sa: f64,
    /// Heavy atom count.
    pub heavy_atoms: u32,
    /// SSSR ring count.
    pub rings: u32,
    /// Bemis–Murcko scaffold SMILES ('' for acyclic molecules).
    pub scaffold: Option<String>,
    /// Passes the MOSES filters.
    pub passes_filters: Option<bool>,
    /// Common descriptors (MW, logP, TPSA, HBD, HBA, strict rotatable bonds) of the molecule with
    /// hydrogens removed (shared with QED's inputs).
    pub descriptors: Option<Descriptors>,
    /// Morgan radius-2, 1024-bit fingerprint.
    pub fingerprint: Fingerprint,
}

/// Scores one SMILES; `None` when RDKit finds it invalid.
pub fn score_smiles(smiles: &str) -> Option<MoleculeProps> {
    let mol = Molecule::parse(smiles)?;
    Some(score_molecule(&mol))
}

/// Scores one parsed molecule.
pub fn score_molecule(mol: &Molecule) -> MoleculeProps {
    let (qed_properties, descriptors) = match mol.qed_properties_and_descriptors() {
        Ok((q, d)) => (Some(q), Some(d)),
        Err(_) => (None, None),
    };
    MoleculeProps {
        canonical: mol.canonical_smiles(),
        qed: qed_properties.map_or(f64::NAN, |p| p.qed()),
        qed_properties,
        sa: mol.sa_score().unwrap_or(f64::NAN),
        heavy_atoms: mol.heavy_atoms(),
        rings: mol.ring_count(),
        scaffold: mol.murcko_scaffold().ok(),
        passes_filters: mol.passes_moses_filters().ok(),
        descriptors,
        fingerprint: mol.morgan_fingerprint(),
    }
}

/// Scores a batch in parallel, keeping the input order.
pub fn score_batch<S: AsRef<str> + Sync>(smiles: &[S]) -> Vec<Option<MoleculeProps>> {
    smiles.par_iter().map(|s| score_smiles(s.as_ref())).collect()
}

/// Canonical SMILES of each input (`None` when invalid), in parallel.
pub fn canonicalize_batch<S: AsRef<str> + Sync>(smiles: &[S]) -> Vec<Option<String>> {
    smiles
        .par_iter()
        .map(|s| Molecule::parse(s.as_ref()).map(|m| m.canonical_smiles()))
        .collect()
}
