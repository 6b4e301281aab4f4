//! Published MOSES results (Polykovskiy et al. 2020, MOSES benchmark README), MOSES test set, means.

/// One published row of the MOSES table.
#[derive(Debug, Clone, Copy)]
pub struct PublishedBaseline {
    /// Model name.
    pub model: &'static str,
    /// Fraction valid.
    pub valid: f64,
    /// Unique@10k.
    pub unique_at_10k: f64,
    /// Novelty.
    pub novelty: f64,
    /// IntDiv1.
    pub int_div1: f64,
    /// IntDiv2.
    pub int_div2: f64,
    /// Filters.
    pub filters: f64,
    /// FCD/Test.
    pub fcd_test: f64,
    /// SNN/Test.
    pub snn_test: f64,
}

const fn row(model: &'static str, v: [f64; 8]) -> PublishedBaseline {
    PublishedBaseline {
        model,
        valid: v[0],
        unique_at_10k: v[1],
        novelty: v[2],
        int_div1: v[3],
        int_div2: v[4],
        filters: v[5],
        fcd_test: v[6],
        snn_test: v[7],
    }
}

/// The published baselines, in the paper's order.
pub const PUBLISHED_BASELINES: [PublishedBaseline; 6] = [
    row("Train set", [1.0, 1.0, 1.0, 0.8567, 0.8508, 1.0, 0.008, 0.6419]),
    row(
        "CharRNN",
        [0.9748, 0.9994, 0.8419, 0.8562, 0.8503, 0.9943, 0.0732, 0.6015],
    ),
    row(
        "VAE",
        [0.9767, 0.9984, 0.6949, 0.8558, 0.8498, 0.997, 0.099, 0.6257],
    ),
    row(
        "AAE",
        [0.9368, 0.9973, 0.7931, 0.8557, 0.8499, 0.996, 0.5555, 0.6081],
    ),
    row(
        "JTN-VAE",
        [1.0, 0.9996, 0.9143, 0.8551, 0.8493, 0.976, 0.3954, 0.5477],
    ),
    row(
        "LatentGAN",
        [0.8966, 0.9968, 0.9498, 0.8565, 0.8505, 0.9735, 0.2968, 0.5371],
    ),
];
