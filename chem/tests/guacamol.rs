//! The goal-directed objectives against the values the guacamol 0.5.5 package itself computes
//! (scripts/golden_guacamol.py, Debian's RDKit 2022.09): every task on every golden molecule within a
//! relative 1e-6 (the issue asks for 1e-3), invalid inputs included, and the descriptors the tasks are
//! built from one by one.
//!
//! One deliberate difference: RDKit parses the empty string as a molecule with no atoms, which
//! guacamol then scores; smirl counts it invalid everywhere (as MOSES does), so its score is `None`.

use chem::{Molecule, Oracle, ORACLE_IDS};

struct Golden {
    header: Vec<String>,
    /// (line number in the file, fields)
    rows: Vec<(usize, Vec<String>)>,
}

fn golden() -> Golden {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden_guacamol.csv");
    let text = std::fs::read_to_string(path).unwrap();
    // The first line is a `#` comment naming the versions.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let header = reader.headers().unwrap().iter().map(str::to_string).collect();
    let rows = reader
        .records()
        .enumerate()
        .map(|(i, r)| (i + 3, r.unwrap().iter().map(str::to_string).collect()))
        .collect();
    Golden { header, rows }
}

impl Golden {
    fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }
}

/// Fails listing the first 40 mismatches, if any.
fn assert_none_failed(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures[..failures.len().min(40)].join("\n")
    );
}

#[test]
fn every_task_matches_guacamol() {
    let g = golden();
    assert!(g.rows.len() > 500, "golden set too small: {}", g.rows.len());
    let mut failures = Vec::new();
    for id in ORACLE_IDS {
        let oracle = Oracle::new(id).unwrap();
        let c = g.col(id);
        let (mut valid, mut invalid) = (0, 0);
        for (line, fields) in g.rows.iter().filter(|(_, f)| !f[0].is_empty()) {
            let expected: f64 = fields[c].parse().unwrap();
            match (oracle.score_smiles(&fields[0]), expected) {
                (None, -1.0) => invalid += 1,
                // Relative 1e-6 (far inside the 1e-3 the issue asks for), so that the tiny values of
                // the tight multi-property tasks are compared too.
                (Some(got), e) if e >= 0.0 && (got - e).abs() <= 1e-6 * e + 1e-12 => valid += 1,
                (got, e) => failures.push(format!(
                    "{id} line {line} {:?}: got {got:?}, guacamol {e}",
                    fields[0]
                )),
            }
        }
        assert!(
            valid > 500 && invalid > 5,
            "{id}: {valid} valid, {invalid} invalid rows"
        );
    }
    assert_none_failed(&failures);
}

#[test]
fn the_tasks_spread_over_their_range() {
    // A golden set on which a task is nearly constant would test little: every task must take many
    // distinct non-zero values and come above 0.25 on some molecule. valsartan_smarts is zero unless
    // its SMARTS matches, which only the hand-picked analogues do: six of them are asked for there.
    let g = golden();
    for id in ORACLE_IDS {
        let c = g.col(id);
        let values: Vec<f64> = g
            .rows
            .iter()
            .map(|(_, f)| f[c].parse::<f64>().unwrap())
            .filter(|&v| v > 0.0)
            .collect();
        let max = values.iter().cloned().fold(0.0, f64::max);
        let distinct = {
            let mut v: Vec<i64> = values.iter().map(|x| (x * 1e6) as i64).collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        let wanted = if id == "valsartan_smarts" { 6 } else { 20 };
        assert!(
            distinct >= wanted,
            "{id}: only {distinct} distinct non-zero values"
        );
        assert!(max > 0.25, "{id}: max {max}");
    }
}

#[test]
fn descriptors_match_guacamol() {
    let g = golden();
    let cols: Vec<usize> = [
        "logp",
        "tpsa",
        "bertz",
        "mol_weight",
        "num_h_donors",
        "num_rotatable_bonds",
        "num_rings",
        "num_aromatic_rings",
        "num_atoms",
        "num_h",
        "num_f",
    ]
    .iter()
    .map(|n| g.col(n))
    .collect();
    let mut failures = Vec::new();
    for (line, fields) in g.rows.iter().filter(|(_, f)| !f[0].is_empty()) {
        let Some(mol) = Molecule::parse(&fields[0]) else {
            assert!(
                fields[cols[0]].is_empty(),
                "line {line}: RDKit Python parsed {:?}",
                fields[0]
            );
            continue;
        };
        let d = mol.descriptors().unwrap();
        let elements = mol.element_counts_with_hs().unwrap();
        let got = [
            d.logp,
            d.tpsa,
            mol.bertz_ct().unwrap(),
            d.mw,
            d.hbd as f64,
            d.rotb as f64,
            mol.ring_count() as f64,
            mol.aromatic_ring_count().unwrap() as f64,
            elements.iter().sum::<u32>() as f64,
            elements.get(1).copied().unwrap_or(0) as f64,
            elements.get(9).copied().unwrap_or(0) as f64,
        ];
        for (k, &c) in cols.iter().enumerate() {
            let expected: f64 = fields[c].parse().unwrap();
            if (got[k] - expected).abs() > 1e-6 * expected.abs().max(1.0) {
                failures.push(format!(
                    "line {line} {} {}: got {}, guacamol {expected}",
                    fields[0], g.header[c], got[k]
                ));
            }
        }
    }
    assert_none_failed(&failures);
}

#[test]
fn pharmacophore_fingerprint_matches_rdkit() {
    // RDKit's Gen2DFingerprint(MolFromSmiles(deco_hop start), Gobbi_Pharm2D.factory): 667 bits set,
    // the first and last of them as below.
    let mol = Molecule::from_smiles("CCCOc1cc2ncnc(Nc3ccc4ncsc4c3)c2cc1S(=O)(=O)C(C)(C)C").unwrap();
    let bits = mol.pharmacophore_bits().unwrap();
    assert_eq!(bits.len(), 667);
    assert_eq!(&bits[..8], &[56, 57, 58, 59, 60, 61, 62, 63]);
    assert_eq!(
        &bits[bits.len() - 6..],
        &[30402, 30495, 30509, 30558, 30565, 30579]
    );
}
