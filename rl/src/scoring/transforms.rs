//! Transforms map a raw component value (a property, a score) into [0, 1].
//!
//! Closed forms, with the logistic function σ(z) = 1 / (1 + e^(−z)) and the window width
//! w = high − low (so `k` is dimensionless: the same `k` gives the same shape for a MW window of
//! 300 Da and a logP window of 3 units):
//!
//! - `sigmoid`: f(x) = σ(10·k·(x − (low + high)/2) / w). Rises from σ(−5k) at `low` to σ(5k) at
//!   `high` (0.7 % → 99.3 % for k = 1), 0.5 at the midpoint.
//! - `reverse_sigmoid`: 1 − sigmoid (high values are bad).
//! - `double_sigmoid`: f(x) = σ(10·k·(x − low)/w) · σ(10·k·(high − x)/w). A soft window: ≈ 0.5 at
//!   either edge, σ(5k)² at the centre (0.987 for k = 1), falling towards 0 outside.
//! - `step`: 1 if low ≤ x ≤ high, else 0 (a hard window).
//! - `none`: the value unchanged (for components already in [0, 1]).
//!
//! NaN (a failed component) stays NaN. REINVENT 4's `transforms/sigmoids.py` is the model; its
//! sigmoid uses base 10 and a different double sigmoid parametrisation.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

fn default_k() -> f64 {
    1.0
}

/// A transform, tagged by `type` in TOML (`{ type = "sigmoid", low = 200, high = 500 }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Transform {
    /// Identity.
    #[default]
    None,
    /// Increasing logistic between `low` and `high`.
    Sigmoid {
        /// Value where the curve is σ(−5k).
        low: f64,
        /// Value where the curve is σ(5k).
        high: f64,
        /// Steepness (dimensionless; default 1).
        #[serde(default = "default_k")]
        k: f64,
    },
    /// Decreasing logistic between `low` and `high`.
    ReverseSigmoid {
        /// Value where the curve is 1 − σ(−5k).
        low: f64,
        /// Value where the curve is 1 − σ(5k).
        high: f64,
        /// Steepness (dimensionless; default 1).
        #[serde(default = "default_k")]
        k: f64,
    },
    /// Soft window: product of a rising logistic at `low` and a falling one at `high`.
    DoubleSigmoid {
        /// Lower edge of the window (value ≈ 0.5 there).
        low: f64,
        /// Upper edge of the window (value ≈ 0.5 there).
        high: f64,
        /// Steepness (dimensionless; default 1).
        #[serde(default = "default_k")]
        k: f64,
    },
    /// Hard window: 1 inside `[low, high]`, 0 outside.
    Step {
        /// Lower bound (inclusive).
        low: f64,
        /// Upper bound (inclusive).
        high: f64,
    },
}

fn logistic(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Transform {
    /// Checks the parameters; `field` is the config path of this transform, for the error.
    pub fn validate(&self, field: &str) -> Result<()> {
        let (low, high, k) = match *self {
            Transform::None => return Ok(()),
            Transform::Sigmoid { low, high, k }
            | Transform::ReverseSigmoid { low, high, k }
            | Transform::DoubleSigmoid { low, high, k } => (low, high, k),
            Transform::Step { low, high } => (low, high, 1.0),
        };
        if !low.is_finite() || !high.is_finite() {
            return Err(Error::config(
                format!("{field}.low"),
                "low and high must be finite",
            ));
        }
        let strict = !matches!(self, Transform::Step { .. });
        if high < low || (strict && high == low) {
            return Err(Error::config(
                format!("{field}.high"),
                format!("high ({high}) must be greater than low ({low})"),
            ));
        }
        if !(k.is_finite() && k > 0.0) {
            return Err(Error::config(format!("{field}.k"), "k must be > 0"));
        }
        Ok(())
    }

    /// Applies the transform to one value.
    pub fn apply(&self, x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        match *self {
            Transform::None => x,
            Transform::Sigmoid { low, high, k } => {
                logistic(10.0 * k * (x - 0.5 * (low + high)) / (high - low))
            }
            Transform::ReverseSigmoid { low, high, k } => {
                1.0 - logistic(10.0 * k * (x - 0.5 * (low + high)) / (high - low))
            }
            Transform::DoubleSigmoid { low, high, k } => {
                let s = 10.0 * k / (high - low);
                logistic(s * (x - low)) * logistic(s * (high - x))
            }
            Transform::Step { low, high } => {
                if (low..=high).contains(&x) {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }

    /// Applies the transform to every value.
    pub fn apply_all(&self, xs: &[f64]) -> Vec<f64> {
        xs.iter().map(|&x| self.apply(x)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    /// Every transform at known points of its closed form.
    #[test]
    fn transforms_at_known_points() {
        let sig = Transform::Sigmoid {
            low: 200.0,
            high: 500.0,
            k: 1.0,
        };
        close(sig.apply(350.0), 0.5);
        close(sig.apply(200.0), 1.0 / (1.0 + 5f64.exp()));
        close(sig.apply(500.0), 1.0 / (1.0 + (-5f64).exp()));
        let rev = Transform::ReverseSigmoid {
            low: 0.0,
            high: 5.0,
            k: 0.5,
        };
        close(rev.apply(2.5), 0.5);
        close(rev.apply(5.0), 1.0 - 1.0 / (1.0 + (-2.5f64).exp()));
        let dbl = Transform::DoubleSigmoid {
            low: 1.0,
            high: 3.0,
            k: 1.0,
        };
        let s5 = 1.0 / (1.0 + (-5f64).exp());
        close(dbl.apply(2.0), s5 * s5);
        close(dbl.apply(1.0), 0.5 * 1.0 / (1.0 + (-10f64).exp()));
        assert!(dbl.apply(-3.0) < 1e-8 && dbl.apply(7.0) < 1e-8);
        let step = Transform::Step { low: 0.0, high: 5.0 };
        assert_eq!(step.apply_all(&[-0.1, 0.0, 5.0, 5.1]), vec![0.0, 1.0, 1.0, 0.0]);
        close(Transform::None.apply(0.3), 0.3);
        assert!(sig.apply(f64::NAN).is_nan());
    }

    /// Bad parameters are refused and the error names the field.
    #[test]
    fn validate_names_the_field() {
        let bad = Transform::Sigmoid {
            low: 5.0,
            high: 1.0,
            k: 1.0,
        };
        let err = bad.validate("scoring.components[0].transform").unwrap_err();
        assert!(err.to_string().contains("components[0].transform.high"), "{err}");
        let bad_k = Transform::DoubleSigmoid {
            low: 0.0,
            high: 1.0,
            k: 0.0,
        };
        assert!(bad_k.validate("t").unwrap_err().to_string().contains("t.k"));
        let t: Transform = toml::from_str("type = \"double_sigmoid\"\nlow = 1\nhigh = 2").unwrap();
        assert_eq!(
            t,
            Transform::DoubleSigmoid {
                low: 1.0,
                high: 2.0,
                k: 1.0
            }
        );
        assert!(toml::from_str::<Transform>("type = \"step\"\nlow = 1\nhigh = 2\nk = 3").is_err());
    }
}
