//! Times each scoring stage on long chains (a developer's aid for the fuzz test's budget).
use std::time::Instant;
fn main() {
    for n in [500usize, 1000, 2000] {
        let s = "C".repeat(n);
        let t = Instant::now();
        let m = chem::Molecule::parse(&s).unwrap();
        let mut line = format!("C x{n}: parse {:?}", t.elapsed());
        let mut stage = |name: &str, f: &dyn Fn()| {
            let t = Instant::now();
            f();
            line.push_str(&format!(", {name} {:?}", t.elapsed()));
        };
        stage("canonical", &|| drop(m.canonical_smiles()));
        stage("qed", &|| drop(m.qed()));
        stage("sa", &|| drop(m.sa_score()));
        stage("fp", &|| drop(m.morgan_fingerprint()));
        stage("scaffold", &|| drop(m.murcko_scaffold()));
        stage("filters", &|| drop(m.passes_moses_filters()));
        stage("brics", &|| drop(m.brics_fragments()));
        println!("{line}");
    }
}
