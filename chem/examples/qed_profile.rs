//! Runs QED over a SMILES file in a loop, for `perf record` (a developer's profiling aid).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn main() {
    let path = std::env::args().nth(1).expect("usage: qed_profile FILE.smi");
    let text = std::fs::read_to_string(path).unwrap();
    let mols: Vec<chem::Molecule> = text
        .lines()
        .take(3000)
        .filter_map(chem::Molecule::parse)
        .collect();
    let mut total = 0.0;
    for m in &mols {
        total += m.qed().unwrap();
    }
    println!("mean QED {:.4}", total / mols.len() as f64);
}
