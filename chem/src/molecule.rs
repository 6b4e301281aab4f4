//! `Molecule`: an RDKit molecule behind a safe Rust API. No RDKit type leaves this crate.

use cxx::{let_cxx_string, SharedPtr};
use rdkit_sys::ro_mol_ffi::{self, ROMol};

use crate::count_fingerprint::{CountFingerprint, CountFingerprintKind};
use crate::error::{rdkit, ChemError, Result};
use crate::ffi::bridge;
use crate::fingerprint::Fingerprint;
use crate::patterns::SmartsPattern;

/// A parsed and sanitized molecule.
pub struct Molecule {
    mol: SharedPtr<ROMol>,
    /// Parsed from a long SMILES: RDKit recurses once per atom in places (canonical ranking, ring
    /// perception), so calls on it run on a thread with a large stack instead of overflowing ours.
    large: bool,
}

/// SMILES longer than this many bytes are counted invalid without asking RDKit. RDKit's stereo
/// perception grows faster than cubically with chain length (a 2,000-atom chain takes 12 s to parse,
/// a 10,000-atom one hours); drug-like SMILES are under 100 characters, large natural products and
/// peptides a few hundred.
pub const MAX_SMILES_LEN: usize = 1_000;

/// SMILES longer than this are handled on a large stack (drug-like SMILES are under 100 characters).
const LARGE_SMILES: usize = 300;
/// Stack for large molecules: reserved address space, touched only as deep as the recursion goes.
const LARGE_STACK_BYTES: usize = 512 << 20;

/// Makes a value `Send` for a scoped thread that runs while its owner waits: only one thread ever
/// touches the value at a time.
struct AssertSend<T>(T);
// SAFETY: see above; the owner is blocked in `join` for the whole life of the scoped thread.
unsafe impl<T> Send for AssertSend<T> {}

/// Runs `f` on a fresh thread with a large stack and waits for it.
fn on_large_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .stack_size(LARGE_STACK_BYTES)
            .spawn_scoped(scope, f)
            .expect("cannot spawn a thread for a large molecule");
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
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
    /// Rotatable bonds, RDKit's strict definition (as QED uses).
    pub rotb: u32,
}

impl Molecule {
    /// Parses and sanitizes a SMILES with RDKit (`MolFromSmiles`). The empty string, strings with
    /// NUL bytes (RDKit's C parser would stop at the NUL) and strings longer than [`MAX_SMILES_LEN`]
    /// are invalid without asking RDKit.
    pub fn from_smiles(smiles: &str) -> Result<Molecule> {
        Self::parse(smiles).ok_or_else(|| ChemError::InvalidSmiles(smiles.to_string()))
    }

    /// Like [`Molecule::from_smiles`], but `None` for an invalid SMILES.
    pub fn parse(smiles: &str) -> Option<Molecule> {
        crate::init();
        if smiles.is_empty() || smiles.len() > MAX_SMILES_LEN || smiles.contains('\0') {
            return None;
        }
        let parse = || {
            let_cxx_string!(text = smiles);
            match ro_mol_ffi::smiles_to_mol(&text) {
                Ok(mol) if !mol.is_null() => Some(AssertSend(mol)),
                _ => None,
            }
        };
        let large = smiles.len() > LARGE_SMILES;
        let mol = if large { on_large_stack(parse) } else { parse() }?.0;
        Some(Molecule { mol, large })
    }

    /// Runs an RDKit call on the molecule, on a large stack when the molecule is large.
    pub(crate) fn with<T: Send>(&self, f: impl FnOnce(&SharedPtr<ROMol>) -> T + Send) -> T {
        if self.large {
            let mol = AssertSend(&self.mol);
            on_large_stack(move || {
                let mol = mol;
                f(mol.0)
            })
        } else {
            f(&self.mol)
        }
    }

    /// RDKit's canonical isomeric SMILES (`Chem.MolToSmiles`).
    pub fn canonical_smiles(&self) -> String {
        self.with(ro_mol_ffi::mol_to_smiles)
    }

    /// Number of heavy atoms.
    pub fn heavy_atoms(&self) -> u32 {
        self.with(bridge::heavy_atom_count).unwrap_or(0)
    }

    /// Number of rings in the SSSR.
    pub fn ring_count(&self) -> u32 {
        self.with(bridge::ring_count).unwrap_or(0)
    }

    /// Morgan fingerprint, radius 2, 1024 bits (`GetMorganFingerprintAsBitVect(m, 2, nBits=1024)`).
    pub fn morgan_fingerprint(&self) -> Fingerprint {
        let words = self
            .with(|m| bridge::morgan_bits(m, 2, Fingerprint::BITS as u32))
            .expect("Morgan fingerprint of a sanitized molecule");
        Fingerprint::from_words(&words)
    }

    /// A sparse count fingerprint (Morgan counts, feature-Morgan counts or atom pairs), as GuacaMol uses.
    pub fn count_fingerprint(&self, kind: CountFingerprintKind) -> Result<CountFingerprint> {
        let packed = match kind {
            CountFingerprintKind::Ecfp4 => self.with(|m| bridge::morgan_counts(m, 2, false)),
            CountFingerprintKind::Ecfp6 => self.with(|m| bridge::morgan_counts(m, 3, false)),
            CountFingerprintKind::Fcfp4 => self.with(|m| bridge::morgan_counts(m, 2, true)),
            CountFingerprintKind::AtomPair => self.with(|m| bridge::atom_pair_counts(m, 10)),
        }
        .map_err(rdkit("count fingerprint"))?;
        Ok(CountFingerprint::from_packed(&packed))
    }

    /// The set bits of the Gobbi 2D pharmacophore fingerprint (`Gen2DFingerprint(m, Gobbi_Pharm2D.factory)`).
    pub fn pharmacophore_bits(&self) -> Result<Vec<u32>> {
        crate::pharmacophore::gobbi_fingerprint(self)
    }

    /// Number of aromatic rings (`rdMolDescriptors.CalcNumAromaticRings`).
    pub fn aromatic_ring_count(&self) -> Result<u32> {
        self.with(bridge::aromatic_ring_count)
            .map_err(rdkit("aromatic rings"))
    }

    /// Atoms per atomic number once implicit hydrogens are made explicit (`Chem.AddHs`); index 1
    /// counts every hydrogen.
    pub fn element_counts_with_hs(&self) -> Result<Vec<u32>> {
        self.with(bridge::element_counts_with_hs).map_err(rdkit("AddHs"))
    }

    /// Bertz's complexity index (`GraphDescriptors.BertzCT`).
    pub fn bertz_ct(&self) -> Result<f64> {
        Ok(crate::bertz::bertz_ct(&self.graph(true)?))
    }

    /// Atoms, bonds and the topological (or, with `bond_order_distances`, bond-order-weighted)
    /// distance matrix.
    pub(crate) fn graph(&self, bond_order_distances: bool) -> Result<bridge::MolGraph> {
        self.with(|m| bridge::mol_graph(m, bond_order_distances))
            .map_err(rdkit("distance matrix"))
    }

    /// MW, logP, TPSA, HBD, HBA, rotatable bonds (strict), on the molecule with hydrogens removed:
    /// the same pass as QED's inputs (see [`Molecule::qed_properties_and_descriptors`]).
    pub fn descriptors(&self) -> Result<Descriptors> {
        Ok(self.qed_properties_and_descriptors()?.1)
    }

    /// Canonical SMILES of the Bemis–Murcko scaffold (`MurckoScaffold.GetScaffoldForMol`); empty when
    /// the molecule has no ring.
    pub fn murcko_scaffold(&self) -> Result<String> {
        self.with(bridge::murcko_scaffold_smiles)
            .map_err(rdkit("Murcko scaffold"))
    }

    /// A random SMILES of the same molecule (REINVENT's `randomize_smiles`: atoms numbered in an
    /// order drawn from `seed`, then written non-canonically), isomeric like
    /// [`Molecule::canonical_smiles`]. The same seed gives the same string.
    pub fn randomized_smiles(&self, seed: u64) -> Result<String> {
        self.with(|m| bridge::randomized_smiles(m, seed))
            .map_err(rdkit("randomized SMILES"))
    }

    /// Number of rings of the Murcko scaffold (MOSES keeps scaffolds with at least two for Scaf/Test).
    pub fn murcko_scaffold_rings(&self) -> Result<u32> {
        self.with(bridge::murcko_scaffold_rings)
            .map_err(rdkit("Murcko scaffold"))
    }

    /// SMILES of the fragments after cutting BRICS bonds (`FragmentOnBRICSBonds`), as MOSES Frag uses.
    pub fn brics_fragments(&self) -> Result<Vec<String>> {
        let joined = self
            .with(bridge::brics_fragments_smiles)
            .map_err(rdkit("BRICS"))?;
        Ok(joined
            .split('.')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// Does the molecule contain the SMARTS pattern?
    pub fn has_substructure(&self, pattern: &SmartsPattern) -> Result<bool> {
        pattern.any_match(self, false)
    }

    /// A 2D depiction as an SVG document (RDKit's MolDraw2DSVG).
    pub fn to_svg(&self, width: u32, height: u32) -> Result<String> {
        self.with(|m| bridge::mol_to_svg(m, width, height))
            .map_err(rdkit("depiction"))
    }
}

impl std::fmt::Debug for Molecule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Molecule").field(&self.canonical_smiles()).finish()
    }
}

/// `smiles` rewritten as a random SMILES of the same molecule, the atom order drawn from `seed`
/// (see [`Molecule::randomized_smiles`]); `None` where it does not parse or RDKit cannot write it.
/// Randomized-SMILES pretraining and Augmented Memory both rewrite their molecules here.
pub fn randomize_smiles(smiles: &str, seed: u64) -> Option<String> {
    Molecule::parse(smiles)?.randomized_smiles(seed).ok()
}
