//! `smirl`: generate drug-like molecules with a SMILES GPT tuned by policy gradient.
//! The binary is glue: it parses arguments and calls the library crates.

mod cli;

// mimalloc, with its `override` feature, also serves RDKit's C++ allocations (glibc malloc/free took
// about a fifth of scoring time in a profile).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

// From mimalloc.h (v3, the version the mimalloc crate builds): `mi_option_set` and the index of
// `mi_option_purge_delay` in its option enum.
extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

fn main() -> ExitCode {
    // mimalloc hands freed memory back to the OS after 10 ms by default. Training and RL steps free
    // and reallocate the same tens of megabytes every step, and each fresh page then faults and is
    // zeroed by the kernel (up to a tenth of a step in profiles, more in VMs). Keep it instead,
    // unless MIMALLOC_PURGE_DELAY says otherwise.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain option setter of the allocator this binary links (see above).
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    // mimalloc asks for transparent huge pages on its arenas, and then every first touch of a
    // sparsely used arena makes the kernel zero a whole 2 MiB page: 2.5-7 s of system time per
    // process that loads a model (`smirl bench model`, `bench rl`), against 0.4-0.7 s with 4 KiB
    // pages, and no measurable change in training, sampling or RL steps once warm. So no huge
    // pages for this process, unless SMIRL_THP is set.
    #[cfg(target_os = "linux")]
    if std::env::var_os("SMIRL_THP").is_none() {
        // SAFETY: prctl with an integer option and integer arguments touches no memory of ours.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
    // Before any tensor work: candle's spinning elementwise pool fights GEMM for 2 cores otherwise.
    model::configure_cpu_env();
    // This thread joins rayon's pool as one of its workers, instead of handing each parallel
    // loop to the pool and sleeping until it is done: the training pass runs hundreds of short
    // parallel loops a step, and each hand-off woke sleeping workers and then this thread again
    // (one thread more than the cores, one of them always waiting).
    if let Err(err) = rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
    {
        eprintln!("warning: rayon's thread pool: {err}");
    }
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            if model::stop_requested() {
                ExitCode::from(130) // the shell's code for a run stopped by Ctrl-C
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The error and its causes joined by ": ", leaving out a cause whose text the message before it
/// already holds (the library errors quote their OS error, which is also their `source`).
fn error_chain(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}
