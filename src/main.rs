//! `smirl`: generate drug-like molecules with a SMILES GPT tuned by policy gradient.
//! The binary is glue: it parses arguments and calls the library crates.

mod cli;

// mimalloc, with its `override` feature, also serves RDKit's C++ allocations (glibc malloc/free took
// about a fifth of scoring time in a profile).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before any tensor work: candle's spinning elementwise pool fights GEMM for 2 cores otherwise.
    model::configure_cpu_env();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
