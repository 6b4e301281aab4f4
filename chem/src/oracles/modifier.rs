//! GuacaMol's score modifiers (`guacamol.score_modifier`): maps from a raw property to [0, 1].

/// One modifier, as GuacaMol defines it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Modifier {
    /// The raw value unchanged (`LinearModifier(slope=1)`).
    Identity,
    /// exp(−½((x − μ)/σ)²).
    Gaussian { mu: f64, sigma: f64 },
    /// 1 for x ≤ μ, the Gaussian's right half above (`MinGaussianModifier`).
    MinGaussian { mu: f64, sigma: f64 },
    /// 1 for x ≥ μ, the Gaussian's left half below (`MaxGaussianModifier`).
    MaxGaussian { mu: f64, sigma: f64 },
    /// Linear from 0 at x = 0 to 1 at x = `upper_x`, clipped to [0, 1] (`ClippedScoreModifier`).
    Clipped { upper_x: f64 },
}

impl Modifier {
    pub(crate) fn apply(self, x: f64) -> f64 {
        let gaussian = |x: f64, mu: f64, sigma: f64| (-0.5 * ((x - mu) / sigma).powi(2)).exp();
        match self {
            Modifier::Identity => x,
            Modifier::Gaussian { mu, sigma } => gaussian(x, mu, sigma),
            Modifier::MinGaussian { mu, sigma } => gaussian(x.max(mu), mu, sigma),
            Modifier::MaxGaussian { mu, sigma } => gaussian(x.min(mu), mu, sigma),
            Modifier::Clipped { upper_x } => {
                // lower_x 0, low score 0, high score 1: slope 1/upper_x through the origin.
                (x / upper_x).clamp(0.0, 1.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_forms() {
        let g = Modifier::Gaussian { mu: 2.0, sigma: 0.5 };
        assert_eq!(g.apply(2.0), 1.0);
        assert!((g.apply(2.5) - (-0.5f64).exp()).abs() < 1e-15);
        let min = Modifier::MinGaussian { mu: 4.0, sigma: 1.0 };
        assert_eq!(min.apply(-3.0), 1.0);
        assert!((min.apply(5.0) - (-0.5f64).exp()).abs() < 1e-15);
        let max = Modifier::MaxGaussian {
            mu: 90.0,
            sigma: 10.0,
        };
        assert_eq!(max.apply(120.0), 1.0);
        assert!((max.apply(80.0) - (-0.5f64).exp()).abs() < 1e-15);
        let clipped = Modifier::Clipped { upper_x: 0.8 };
        assert_eq!(clipped.apply(0.9), 1.0);
        assert!((clipped.apply(0.4) - 0.5).abs() < 1e-15);
        assert_eq!(clipped.apply(-0.1), 0.0);
    }
}
