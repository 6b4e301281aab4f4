//! The private C++ bridge: the RDKit calls rdkit-sys 0.4 does not offer.
//! Every call is declared `Result`, so a C++ exception becomes an `Err` instead of an abort.

#[cxx::bridge(namespace = "smirl")]
pub(crate) mod bridge {
    /// The eight inputs of QED, as `QED.properties`.
    #[derive(Debug, Clone, Copy)]
    struct QedInputs {
        mw: f64,
        alogp: f64,
        hba: u32,
        hbd: u32,
        psa: f64,
        rotb: u32,
        arom: u32,
        alerts: u32,
        /// Lipinski's acceptor count (not one of QED's inputs; reported beside them).
        lipinski_hba: u32,
    }

    /// What `sascorer.calculateScore` reads off a molecule.
    #[derive(Debug, Clone)]
    struct SaInputs {
        fragment_ids: Vec<u32>,
        fragment_counts: Vec<u32>,
        n_atoms: u32,
        n_chiral_centers: u32,
        n_spiro: u32,
        n_bridgeheads: u32,
        n_macrocycles: u32,
    }

    /// A molecule's graph as BertzCT and the 2D pharmacophore fingerprint read it.
    #[derive(Debug, Clone)]
    struct MolGraph {
        atomic_numbers: Vec<u32>,
        /// Begin and end atom of each bond, flattened.
        bond_atoms: Vec<u32>,
        /// Each bond's order as a number (aromatic 1.5).
        bond_orders: Vec<f64>,
        /// The n × n distance matrix, row-major.
        distances: Vec<f64>,
    }

    /// A V2000 molfile block and what went differently from the plain recipe (empty if nothing).
    #[derive(Debug, Clone)]
    struct MolBlock {
        text: String,
        note: String,
    }

    unsafe extern "C++" {
        include!("chem/cpp/bridge.h");

        #[namespace = "RDKit"]
        type ROMol = rdkit_sys::ro_mol_ffi::ROMol;
        type PatternSet;
        type FeatureFactory;

        fn silence_rdkit_logs() -> Result<()>;

        fn pattern_set_new(smarts: &Vec<String>) -> Result<UniquePtr<PatternSet>>;
        fn pattern_set_len(set: &PatternSet) -> usize;
        fn pattern_set_any_match(
            set: &PatternSet,
            mol: &SharedPtr<ROMol>,
            add_hs: bool,
            screen: bool,
        ) -> Result<bool>;
        fn pattern_set_count_matching(
            set: &PatternSet,
            mol: &SharedPtr<ROMol>,
            add_hs: bool,
            screen: bool,
        ) -> Result<usize>;

        fn heavy_atom_count(mol: &SharedPtr<ROMol>) -> Result<u32>;
        fn ring_count(mol: &SharedPtr<ROMol>) -> Result<u32>;
        fn morgan_bits(mol: &SharedPtr<ROMol>, radius: u32, n_bits: u32) -> Result<Vec<u64>>;
        fn qed_inputs(
            mol: &SharedPtr<ROMol>,
            acceptors: &PatternSet,
            alerts: &PatternSet,
            aliphatic_rings: &PatternSet,
            rotatable: &PatternSet,
            lipinski_hba: &PatternSet,
        ) -> Result<QedInputs>;
        fn rdkit_strict_rotatable_bonds(mol: &SharedPtr<ROMol>) -> Result<u32>;
        fn rdkit_num_hba(mol: &SharedPtr<ROMol>) -> Result<u32>;
        fn sa_inputs(mol: &SharedPtr<ROMol>) -> Result<SaInputs>;
        fn murcko_scaffold_smiles(mol: &SharedPtr<ROMol>) -> Result<String>;
        fn randomized_smiles(mol: &SharedPtr<ROMol>, seed: u64) -> Result<String>;
        fn murcko_scaffold_rings(mol: &SharedPtr<ROMol>) -> Result<u32>;
        fn brics_fragments_smiles(mol: &SharedPtr<ROMol>) -> Result<String>;
        fn moses_structure_ok(mol: &SharedPtr<ROMol>) -> Result<bool>;
        fn morgan_counts(mol: &SharedPtr<ROMol>, radius: u32, use_features: bool) -> Result<Vec<u64>>;
        fn atom_pair_counts(mol: &SharedPtr<ROMol>, max_length: u32) -> Result<Vec<u64>>;
        fn aromatic_ring_count(mol: &SharedPtr<ROMol>) -> Result<u32>;
        fn element_counts_with_hs(mol: &SharedPtr<ROMol>) -> Result<Vec<u32>>;
        fn mol_graph(mol: &SharedPtr<ROMol>, bond_order_distances: bool) -> Result<MolGraph>;
        fn feature_factory_new(fdef: &str) -> Result<UniquePtr<FeatureFactory>>;
        fn feature_factory_families(factory: &FeatureFactory) -> Result<Vec<String>>;
        fn feature_factory_features(factory: &FeatureFactory, mol: &SharedPtr<ROMol>) -> Result<Vec<u32>>;
        fn mol_block(mol: &SharedPtr<ROMol>, name: &str, three_d: bool, seed: u32) -> Result<MolBlock>;
        fn mol_to_svg(mol: &SharedPtr<ROMol>, width: u32, height: u32) -> Result<String>;
    }
}

// SAFETY: a PatternSet is built once and then only read; RDKit's substructure matching on a const
// query is thread-safe (Debian builds RDKit with RDK_BUILD_THREADSAFE_SSS).
unsafe impl Send for bridge::PatternSet {}
unsafe impl Sync for bridge::PatternSet {}
// SAFETY: as for PatternSet: built once, then only read; feature search is substructure matching
// on const queries.
unsafe impl Send for bridge::FeatureFactory {}
unsafe impl Sync for bridge::FeatureFactory {}
