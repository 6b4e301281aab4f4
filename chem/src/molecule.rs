//! `Molecule`: an RDKit molecule behind a safe Rust API. No RDKit type leaves this crate.

use cxx::{let_cxx_string, SharedPtr};
use rdkit_sys::ro_mol_ffi::{self, ROMol};

use crate::error::{rdkit, ChemError, Result};
use crate::ffi::bridge;
use crate::fingerprint::Fingerprint;
use crate::patterns::SmartsPattern;

/// A parsed and sanitized molecule.
pub struct Molecule {
    mol: SharedPtr<ROMol>,
}

// SAFETY: the molecule is owned by this value alone (nothing else holds the shared pointer), and an
// RDKit ROMol may be moved between threads. It is not `Sync`: RDKit caches ring info lazily.
unsafe impl Send for Molecule {}

/// Descriptors used for property windows and reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Descriptors {
    /// Average molecular weight (Descriptors.MolWt).
    pub mw: f64,
    /// Crippen logP (Crippen.MolLogP).
    pub logp: f64,
    /// Topological polar surface area, N and O only (MolSurf.TPSA).
    pub tpsa: f64,
    /// Lipinski H-bond donors (rdMolDescriptors.CalcNumHBD).
    pub hbd: u32,
    /// Lipinski H-bond acceptors (rdMolDescriptors.CalcNumHBA).
    pub hba: u32,
    /// Rotatable bonds, RDKit's default definition.
    pub rotb: u32,
}

impl Molecule {
    /// Parses and sanitizes a SMILES with RDKit (`MolFromSmiles`). The empty string and strings with
    /// NUL bytes are invalid without asking RDKit (its C parser would stop at the NUL).
    pub fn from_smiles(smiles: &str) -> Result<Molecule> {
        Self::parse(smiles).ok_or_else(|| ChemError::InvalidSmiles(smiles.to_string()))
    }

    /// Like [`Molecule::from_smiles`], but `None` for an invalid SMILES.
    pub fn parse(smiles: &str) -> Option<Molecule> {
        crate::init();
        if smiles.is_empty() || smiles.contains('\0') {
            return None;
        }
        let_cxx_string!(text = smiles);
        match ro_mol_ffi::smiles_to_mol(&text) {
            Ok(mol) if !mol.is_null() => Some(Molecule { mol }),
            _ => None,
        }
    }

    pub(crate) fn raw(&self) -> &SharedPtr<ROMol> {
        &self.mol
    }

    /// RDKit's canonical isomeric SMILES (`Chem.MolToSmiles`).
    pub fn canonical_smiles(&self) -> String {
        ro_mol_ffi::mol_to_smiles(&self.mol)
    }

    /// Number of heavy atoms.
    pub fn heavy_atoms(&self) -> u32 {
        bridge::heavy_atom_count(&self.mol).unwrap_or(0)
    }

    /// Number of rings in the SSSR.
    pub fn ring_count(&self) -> u32 {
        bridge::ring_count(&self.mol).unwrap_or(0)
    }

    /// Morgan fingerprint, radius 2, 1024 bits (`GetMorganFingerprintAsBitVect(m, 2, nBits=1024)`).
    pub fn morgan_fingerprint(&self) -> Fingerprint {
        let words = bridge::morgan_bits(&self.mol, 2, Fingerprint::BITS as u32)
            .expect("Morgan fingerprint of a sanitized molecule");
        Fingerprint::from_words(&words)
    }

    /// MW, logP, TPSA, HBD, HBA, rotatable bonds.
    pub fn descriptors(&self) -> Result<Descriptors> {
        let d = bridge::descriptors(&self.mol).map_err(rdkit("descriptors"))?;
        Ok(Descriptors { mw: d.mw, logp: d.logp, tpsa: d.tpsa, hbd: d.hbd, hba: d.hba, rotb: d.rotb })
    }

    /// Canonical SMILES of the Bemis–Murcko scaffold (`MurckoScaffold.GetScaffoldForMol`); empty when
    /// the molecule has no ring.
    pub fn murcko_scaffold(&self) -> Result<String> {
        bridge::murcko_scaffold_smiles(&self.mol).map_err(rdkit("Murcko scaffold"))
    }

    /// Number of rings of the Murcko scaffold (MOSES keeps scaffolds with at least two for Scaf/Test).
    pub fn murcko_scaffold_rings(&self) -> Result<u32> {
        bridge::murcko_scaffold_rings(&self.mol).map_err(rdkit("Murcko scaffold"))
    }

    /// SMILES of the fragments after cutting BRICS bonds (`FragmentOnBRICSBonds`), as MOSES Frag uses.
    pub fn brics_fragments(&self) -> Result<Vec<String>> {
        let joined = bridge::brics_fragments_smiles(&self.mol).map_err(rdkit("BRICS"))?;
        Ok(joined.split('.').filter(|s| !s.is_empty()).map(str::to_string).collect())
    }

    /// Does the molecule contain the SMARTS pattern?
    pub fn has_substructure(&self, pattern: &SmartsPattern) -> Result<bool> {
        pattern.any_match(self, false)
    }

    /// A 2D depiction as an SVG document (RDKit's MolDraw2DSVG).
    pub fn to_svg(&self, width: u32, height: u32) -> Result<String> {
        bridge::mol_to_svg(&self.mol, width, height).map_err(rdkit("depiction"))
    }
}

impl std::fmt::Debug for Molecule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Molecule").field(&self.canonical_smiles()).finish()
    }
}
