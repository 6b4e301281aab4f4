//! Times each scoring stage on one thread over a SMILES file (a developer's profiling aid).
//! usage: cargo run --release -p chem --example stage_timing -- bench/data/moses_test_10k.smi
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU time of this thread: unlike wall time, barely moved by other processes on a busy machine.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: stage_timing FILE.smi");
    let text = std::fs::read_to_string(path).unwrap();
    let smiles: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .take(2000)
        .collect();
    let _ = chem::score_smiles("CCO");
    let mols: Vec<chem::Molecule> = smiles.iter().filter_map(|s| chem::Molecule::parse(s)).collect();
    let n = smiles.len() as f64;
    let time = |name: &str, f: &dyn Fn()| {
        let t = thread_cpu_seconds();
        f();
        println!(
            "{name:<12} {:8.1} µs/mol (thread CPU time)",
            (thread_cpu_seconds() - t) * 1e6 / n
        );
    };
    time("parse", &|| {
        smiles.iter().for_each(|s| drop(chem::Molecule::parse(s)))
    });
    time("canonical", &|| {
        mols.iter().for_each(|m| drop(m.canonical_smiles()))
    });
    time("qed", &|| mols.iter().for_each(|m| drop(m.qed())));
    time("sa", &|| mols.iter().for_each(|m| drop(m.sa_score())));
    time("fingerprint", &|| {
        mols.iter().for_each(|m| {
            std::hint::black_box(m.morgan_fingerprint());
        })
    });
    time("scaffold", &|| {
        mols.iter().for_each(|m| drop(m.murcko_scaffold()))
    });
    time("filters", &|| {
        mols.iter().for_each(|m| drop(m.passes_moses_filters()))
    });
    time("descriptors", &|| mols.iter().for_each(|m| drop(m.descriptors())));
}
