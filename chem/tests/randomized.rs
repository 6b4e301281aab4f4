//! Randomized SMILES (Augmented Memory's augmentation) name the same molecule: RDKit's canonical
//! SMILES of every randomized string equals the original's, stereo and charges included, and the
//! strings really vary with the seed.

use chem::Molecule;
use proptest::prelude::*;

const MOLECULES: &[&str] = &[
    "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "N[C@@H](Cc1ccccc1)C(=O)O",
    "C/C=C\\C(=O)OC",
    "c1ccc2[nH]c3ccccc3c2c1",
    "C[N+](C)(C)C.[Br-]",
    "C1CC2CC1C1CCCC21",
    "Nc1ccc(S(=O)(=O)Nc2nccs2)cc1",
    "[13CH3]C(=O)O",
    "O=C(O)C1=CC=CC=C1",
    "O=C1NC(=O)C(Cc2ccc(OCC3(C)CCc4c(C)c(O)c(C)c(C)c4O3)cc2)S1",
    "C[C@@H]1CC[C@H]2[C@@H](C)[C@@H](O)O[C@@H]3O[C@@]4(C)CC[C@@H]1[C@]32OO4",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn randomized_smiles_is_the_same_molecule(which in 0..MOLECULES.len(), seed in any::<u64>()) {
        let mol = Molecule::from_smiles(MOLECULES[which]).unwrap();
        let random = mol.randomized_smiles(seed).unwrap();
        let back = Molecule::from_smiles(&random).unwrap();
        prop_assert_eq!(back.canonical_smiles(), mol.canonical_smiles(), "{}", random);
        prop_assert_eq!(mol.randomized_smiles(seed).unwrap(), random);
    }
}

#[test]
fn randomized_smiles_vary_with_the_seed() {
    let mol = Molecule::from_smiles(MOLECULES[10]).unwrap();
    let strings: std::collections::HashSet<String> =
        (0..50).map(|seed| mol.randomized_smiles(seed).unwrap()).collect();
    // 36 heavy atoms give far more than 50 distinct walks; 40 leaves room for chance repeats.
    assert!(
        strings.len() >= 40,
        "{} distinct of 50: {strings:?}",
        strings.len()
    );
}
