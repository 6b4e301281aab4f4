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
    /// FCD/TestSF.
    pub fcd_test_sf: f64,
    /// SNN/TestSF.
    pub snn_test_sf: f64,
    /// Frag/Test.
    pub frag_test: f64,
    /// Frag/TestSF.
    pub frag_test_sf: f64,
    /// Scaf/Test.
    pub scaf_test: f64,
    /// Scaf/TestSF.
    pub scaf_test_sf: f64,
}

impl PublishedBaseline {
    /// The same columns as [`crate::SetMetrics::reference_columns`].
    pub fn reference_columns(&self) -> [f64; 6] {
        [
            self.fcd_test_sf,
            self.snn_test_sf,
            self.frag_test,
            self.frag_test_sf,
            self.scaf_test,
            self.scaf_test_sf,
        ]
    }
}

/// A row in the README's column order: Valid, Unique@10k, FCD Test, FCD TestSF, SNN Test,
/// SNN TestSF, Frag Test, Frag TestSF, Scaf Test, Scaf TestSF, IntDiv, IntDiv2, Filters, Novelty.
const fn row(model: &'static str, v: [f64; 14]) -> PublishedBaseline {
    PublishedBaseline {
        model,
        valid: v[0],
        unique_at_10k: v[1],
        fcd_test: v[2],
        fcd_test_sf: v[3],
        snn_test: v[4],
        snn_test_sf: v[5],
        frag_test: v[6],
        frag_test_sf: v[7],
        scaf_test: v[8],
        scaf_test_sf: v[9],
        int_div1: v[10],
        int_div2: v[11],
        filters: v[12],
        novelty: v[13],
    }
}

/// The published baselines (means over three runs), in the paper's order; from the table in the
/// MOSES README (github.com/molecularsets/moses at commit dd7ed6a).
pub const PUBLISHED_BASELINES: [PublishedBaseline; 6] = [
    row(
        "Train set",
        [
            1.0, 1.0, 0.008, 0.4755, 0.6419, 0.5859, 1.0, 0.9986, 0.9907, 0.0, 0.8567, 0.8508, 1.0, 1.0,
        ],
    ),
    row(
        "CharRNN",
        [
            0.9748, 0.9994, 0.0732, 0.5204, 0.6015, 0.5649, 0.9998, 0.9983, 0.9242, 0.1101, 0.8562, 0.8503,
            0.9943, 0.8419,
        ],
    ),
    row(
        "VAE",
        [
            0.9767, 0.9984, 0.099, 0.567, 0.6257, 0.5783, 0.9994, 0.9984, 0.9386, 0.0588, 0.8558, 0.8498,
            0.997, 0.6949,
        ],
    ),
    row(
        "AAE",
        [
            0.9368, 0.9973, 0.5555, 1.0572, 0.6081, 0.5677, 0.991, 0.9905, 0.9022, 0.0789, 0.8557, 0.8499,
            0.996, 0.7931,
        ],
    ),
    row(
        "JTN-VAE",
        [
            1.0, 0.9996, 0.3954, 0.9382, 0.5477, 0.5194, 0.9965, 0.9947, 0.8964, 0.1009, 0.8551, 0.8493,
            0.976, 0.9143,
        ],
    ),
    row(
        "LatentGAN",
        [
            0.8966, 0.9968, 0.2968, 0.8281, 0.5371, 0.5132, 0.9986, 0.9972, 0.8867, 0.1072, 0.8565, 0.8505,
            0.9735, 0.9498,
        ],
    ),
];
