//! Hostile input never crashes chem: 10,000 random and mutated strings (brackets, digits, `%`,
//! unicode, empty, 10k-character strings, NUL bytes) go through scoring; every one is either a valid
//! molecule with a stable canonical SMILES, or a counted invalid one.

use proptest::prelude::*;

const SEEDS: &[&str] = &[
    "CC(=O)Oc1ccccc1C(=O)O",
    "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "C[C@H](N)C(=O)O",
    "F/C=C/F",
    "c1ccc2c(c1)[nH]c1ccccc12",
    "[NH4+].[Cl-]",
    "C1CC2CCC1C2",
    "O=S(=O)(Nc1ncccn1)c1ccc(N)cc1",
    "[2H]C([2H])([2H])O",
    "C%10CCCCC%10",
];

fn mutate(seed: &str, edits: &[(u8, usize, char)]) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    for &(kind, pos, c) in edits {
        let at = if chars.is_empty() {
            0
        } else {
            pos % (chars.len() + 1)
        };
        match kind % 3 {
            0 => chars.insert(at, c),
            1 if at < chars.len() => {
                chars.remove(at);
            }
            _ if at < chars.len() => chars[at] = c,
            _ => chars.push(c),
        }
    }
    chars.into_iter().collect()
}

fn smiles_char() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => prop::sample::select("CNOSPFIBrcnosp()[]=#@+-123456789%0/\\.Hl*:$~".chars().collect::<Vec<_>>()),
        1 => any::<char>(),
        1 => Just('\0'),
    ]
}

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(smiles_char(), 0..40).prop_map(|v| v.into_iter().collect()),
        4 => (prop::sample::select(SEEDS), prop::collection::vec((any::<u8>(), any::<usize>(), smiles_char()), 1..6))
            .prop_map(|(seed, edits)| mutate(seed, &edits)),
        1 => Just(String::new()),
        1 => (prop::sample::select(vec!["C", "c1", "(", "C(", "[", "%99", "1", "é", "\0"]), prop_oneof![1usize..100, 1_000usize..10_000])
            .prop_map(|(unit, n)| unit.repeat(n).chars().take(10_000).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn hostile_smiles_are_valid_or_counted_invalid(batch in prop::collection::vec(hostile_string(), 1..4)) {
        let scored = chem::score_batch(&batch);
        prop_assert_eq!(scored.len(), batch.len());
        for (input, props) in batch.iter().zip(&scored) {
            prop_assert_eq!(props.is_some(), chem::Molecule::parse(input).is_some());
            if input.is_empty() || input.contains('\0') {
                prop_assert!(props.is_none());
            }
            if let Some(p) = props {
                // RDKit's canonical SMILES need not parse again (e.g. odd aromatic systems), so only
                // ask that it is a non-empty ASCII string and the same on a second parse.
                prop_assert!(!p.canonical.is_empty() && p.canonical.is_ascii());
                prop_assert_eq!(chem::Molecule::parse(input).map(|m| m.canonical_smiles()), Some(p.canonical.clone()));
                prop_assert!(p.sa.is_nan() || (1.0..=10.0).contains(&p.sa));
                prop_assert!(p.qed.is_nan() || (0.0..1.0).contains(&p.qed));
            }
        }
    }
}

#[test]
fn long_and_deep_strings_do_not_crash() {
    let cases = [
        "C".repeat(chem::MAX_SMILES_LEN + 1),
        "C(".repeat(5_000),
        format!("{}C{}", "C(".repeat(3_000), ")".repeat(3_000)),
        "c1".repeat(5_000),
        "[".repeat(10_000),
        "%99".repeat(3_000),
        "é".repeat(5_000),
        "\0".repeat(10_000),
    ];
    let scored = chem::score_batch(&cases);
    assert_eq!(scored.len(), cases.len());
    // Over the length limit is invalid without parsing; unbalanced brackets and NUL bytes are invalid.
    assert!(scored[0].is_none());
    assert!(scored[1].is_none());
    assert!(scored[4].is_none());
    assert!(scored[7].is_none());
    // Just under the limit RDKit still decides, on a large stack (no overflow in its recursion).
    let chain = "C".repeat(400);
    let p = chem::score_smiles(&chain).expect("a 400-carbon chain is valid");
    assert_eq!(p.heavy_atoms, 400);
    assert_eq!(
        chem::Molecule::parse(&p.canonical).map(|m| m.heavy_atoms()),
        Some(400)
    );
}
