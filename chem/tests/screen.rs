//! The pattern-fingerprint screen in front of SMARTS matching must never change an answer: for every
//! MOSES filter SMARTS, the number of queries matching with the screen equals the plain RDKit count
//! without it, on the golden molecules (which include filter failures) and 1,000 MOSES molecules.

use chem::{moses_filter_smarts, Molecule, SmartsPattern};

fn molecules() -> Vec<Molecule> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let golden = std::fs::read_to_string(format!("{dir}/golden_public.csv")).unwrap();
    // One copy of the MOSES sample serves every crate: the workspace's tests/data.
    let moses = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/moses_test_sample.smi"
    ))
    .unwrap();
    let body = golden
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let mut smiles: Vec<String> = reader.records().map(|r| r.unwrap()[0].to_string()).collect();
    smiles.extend(moses.lines().map(str::to_string));
    smiles.iter().filter_map(|s| Molecule::parse(s)).collect()
}

#[test]
fn screen_never_changes_a_filter_match() {
    let mols = molecules();
    assert!(mols.len() > 1_400);
    let filters = SmartsPattern::any_of(&moses_filter_smarts()).unwrap();
    let mut some_fail = 0;
    for mol in &mols {
        let screened = filters.count_matching(mol, true).unwrap();
        let plain = filters.count_matching_unscreened(mol, true).unwrap();
        assert_eq!(screened, plain, "{}", mol.canonical_smiles());
        assert_eq!(filters.any_match(mol, true).unwrap(), plain > 0);
        some_fail += (plain > 0) as usize;
    }
    // The set exercises the filters: some molecules match at least one filter.
    assert!(some_fail >= 10, "only {some_fail} molecules hit a filter");
}

#[test]
fn once_compiled_descriptor_patterns_equal_rdkit_functions() {
    // qed_rotb and the Lipinski HBA column come from SMARTS compiled once per thread; RDKit's own
    // functions (which copy the query per call) must give the same counts on every molecule.
    for mol in molecules() {
        let (rotb, hba) = chem::rdkit_reference_counts(&mol);
        let (q, d) = mol.qed_properties_and_descriptors().unwrap();
        assert_eq!(q.rotb, rotb, "rotatable bonds of {}", mol.canonical_smiles());
        assert_eq!(d.rotb, rotb);
        assert_eq!(d.hba, hba, "HBA of {}", mol.canonical_smiles());
    }
}
