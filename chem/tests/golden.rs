//! chem against the golden reference values computed by RDKit's own Python (QED.py, Contrib
//! sascorer.py, MolToSmiles, MurckoScaffold, MOSES filter rules): see tests/data/README.md.

use chem::{score_smiles, Molecule};

struct GoldenRow {
    line: usize,
    fields: csv::StringRecord,
}

fn golden_rows() -> (csv::StringRecord, Vec<GoldenRow>) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/golden_public.csv"
    ))
    .unwrap();
    // First line is a `#` comment naming the RDKit version.
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body.as_bytes());
    let header = reader.headers().unwrap().clone();
    let rows = reader
        .records()
        .enumerate()
        .map(|(i, r)| GoldenRow {
            line: i + 3,
            fields: r.unwrap(),
        })
        .collect();
    (header, rows)
}

fn col(header: &csv::StringRecord, name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("golden column {name}"))
}

fn close(ours: f64, golden: &str, tol: f64) -> bool {
    let g: f64 = golden.parse().unwrap();
    (ours - g).abs() <= tol
}

#[test]
fn every_golden_row_agrees_with_rdkit_python() {
    let (h, rows) = golden_rows();
    assert!(rows.len() > 500);
    let mut failures = Vec::new();
    let mut n_valid = 0;
    for row in &rows {
        let f = |name: &str| row.fields.get(col(&h, name)).unwrap();
        let smiles = f("smiles");
        let props = score_smiles(smiles);
        let golden_valid = f("valid") == "1";
        if props.is_some() != golden_valid {
            failures.push(format!(
                "line {}: {smiles:?} valid ours={} golden={}",
                row.line,
                props.is_some(),
                golden_valid
            ));
            continue;
        }
        let Some(p) = props else { continue };
        n_valid += 1;
        let mut check = |what: &str, ok: bool, ours: String| {
            if !ok {
                failures.push(format!(
                    "line {}: {smiles:?} {what}: ours={ours} golden={}",
                    row.line,
                    f(what)
                ));
            }
        };
        // Canonical SMILES: identical, or identical after re-canonicalizing the golden string here.
        let canon_ok = p.canonical == f("canonical")
            || Molecule::parse(f("canonical")).map(|m| m.canonical_smiles()) == Some(p.canonical.clone());
        check("canonical", canon_ok, p.canonical.clone());
        check("qed", close(p.qed, f("qed"), 1e-3), format!("{:.6}", p.qed));
        check("sa", close(p.sa, f("sa"), 1e-3), format!("{:.6}", p.sa));
        let q = p.qed_properties.expect("QED properties of a valid molecule");
        check("qed_mw", close(q.mw, f("qed_mw"), 1e-3), format!("{:.4}", q.mw));
        check(
            "qed_alogp",
            close(q.alogp, f("qed_alogp"), 1e-3),
            format!("{:.4}", q.alogp),
        );
        check(
            "qed_psa",
            close(q.psa, f("qed_psa"), 1e-3),
            format!("{:.4}", q.psa),
        );
        check("qed_hba", q.hba.to_string() == f("qed_hba"), q.hba.to_string());
        check("qed_hbd", q.hbd.to_string() == f("qed_hbd"), q.hbd.to_string());
        check(
            "qed_rotb",
            q.rotb.to_string() == f("qed_rotb"),
            q.rotb.to_string(),
        );
        check(
            "qed_arom",
            q.arom.to_string() == f("qed_arom"),
            q.arom.to_string(),
        );
        check(
            "qed_alerts",
            q.alerts.to_string() == f("qed_alerts"),
            q.alerts.to_string(),
        );
        check(
            "heavy_atoms",
            p.heavy_atoms.to_string() == f("heavy_atoms"),
            p.heavy_atoms.to_string(),
        );
        check("rings", p.rings.to_string() == f("rings"), p.rings.to_string());
        let scaffold = p.scaffold.clone().unwrap_or_default();
        let scaffold_ok = scaffold == f("scaffold")
            || (!scaffold.is_empty()
                && Molecule::parse(f("scaffold")).map(|m| m.canonical_smiles()) == Some(scaffold.clone()));
        check("scaffold", scaffold_ok, scaffold);
        let filters = if p.passes_filters == Some(true) { "1" } else { "0" };
        check(
            "moses_filters",
            filters == f("moses_filters"),
            filters.to_string(),
        );
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(n_valid > 450, "only {n_valid} valid golden rows");
}

#[test]
fn tanimoto_agrees_with_rdkit_python() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/tanimoto_public.csv"
    ))
    .unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut n = 0;
    for (i, r) in reader.records().enumerate() {
        let r = r.unwrap();
        let a = Molecule::from_smiles(&r[0]).unwrap().morgan_fingerprint();
        let b = Molecule::from_smiles(&r[1]).unwrap().morgan_fingerprint();
        let golden: f64 = r[2].parse().unwrap();
        let ours = a.tanimoto(&b);
        assert!(
            (ours - golden).abs() <= 1e-6,
            "row {}: {} vs {}: ours {ours} golden {golden}",
            i + 2,
            &r[0],
            &r[1]
        );
        n += 1;
    }
    assert!(n >= 200);
}
