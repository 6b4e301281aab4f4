//! The SMILES grammar that `smirl sample --grammar` masks with never refuses a molecule RDKit
//! accepts: the embedded 10,000 MOSES test molecules and every valid golden input (charges,
//! stereo, brackets, odd ring closures), both as written and as RDKit's canonical SMILES.
//! (All 1.76 M molecules of MOSES train and test pass too; too many for a test.)

use std::path::Path;

#[test]
fn the_grammar_accepts_every_molecule_rdkit_accepts() {
    let golden = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("chem/tests/data/golden_public.csv"),
    )
    .unwrap();
    let golden_inputs = golden.lines().filter(|l| !l.starts_with('#')).skip(1).map(|l| {
        // The SMILES is the first field (quoted when it holds a comma).
        let l = l.trim_start_matches('"');
        l.split([',', '"']).next().unwrap_or("").to_string()
    });
    let mut checked = 0;
    for smiles in datasets::embedded_test_set().into_iter().chain(golden_inputs) {
        let Some(mol) = chem::Molecule::parse(&smiles) else {
            continue;
        };
        for form in [smiles.clone(), mol.canonical_smiles()] {
            assert!(model::grammar::grammatical(&form), "the grammar refuses {form:?}");
            assert!(model::grammar::purr_reads(&form), "purr refuses {form:?}");
        }
        checked += 1;
    }
    assert!(checked > 10_400, "only {checked} molecules checked");
}
