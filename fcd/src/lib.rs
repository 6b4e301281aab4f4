//! Fréchet ChemNet Distance (Preuer et al. 2018) as molsets 0.3.1 reports it through fcd_torch
//! 1.0.7: ChemNet's penultimate-layer activations of canonical SMILES, a Gaussian fitted to them,
//! and the Fréchet distance to the reference set's Gaussian.

mod chemnet;
mod frechet;
mod torch_file;

use std::path::PathBuf;

pub use chemnet::{symbol_indices, ChemNet, ACTIVATION_DIM, PAD_LEN};
pub use frechet::{frechet_distance, Gaussian};
pub use torch_file::LegacyTorchFile;

/// The file name of ChemNet's weights inside the fcd_torch wheel.
pub const WEIGHTS_FILE: &str = "ChemNet_v0.13_pretrained.pt";

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The weight file is missing, unreadable or not ChemNet.
    #[error("{path}: {why}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}
