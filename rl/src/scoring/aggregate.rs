//! Pure aggregation of component scores: weighted arithmetic or geometric means, with the
//! weights normalised over the components that did not fail (NaN is masked, as in REINVENT 4's
//! `aggregators/means.py`). A molecule whose every component failed aggregates to NaN.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How component scores are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Σ wᵢ sᵢ / Σ wᵢ.
    #[default]
    Arithmetic,
    /// Π sᵢ^(wᵢ / Σ w): one zero component zeroes the total.
    Geometric,
}

/// Combines `columns[c][m]` (component c, molecule m) with `weights[c]` into one score per
/// molecule. Errors if a column's length differs from the first one's.
pub fn aggregate(
    kind: Aggregation,
    names: &[String],
    columns: &[Vec<f64>],
    weights: &[f64],
) -> Result<Vec<f64>> {
    let n = columns.first().map_or(0, Vec::len);
    for (c, col) in columns.iter().enumerate() {
        if col.len() != n {
            return Err(Error::LengthMismatch {
                name: names.get(c).cloned().unwrap_or_else(|| c.to_string()),
                got: col.len(),
                expected: n,
            });
        }
    }
    Ok((0..n)
        .map(|m| {
            let mut wsum = 0.0;
            let mut acc = 0.0;
            for (col, &w) in columns.iter().zip(weights) {
                let s = col[m];
                if s.is_nan() {
                    continue;
                }
                wsum += w;
                acc += match kind {
                    Aggregation::Arithmetic => w * s,
                    Aggregation::Geometric => w * s.max(0.0).ln(),
                };
            }
            if wsum == 0.0 {
                return f64::NAN;
            }
            match kind {
                Aggregation::Arithmetic => acc / wsum,
                Aggregation::Geometric => (acc / wsum).exp(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    /// Weighted means, NaN masked with weights renormalised, geometric zero, length check.
    #[test]
    fn weighted_means_mask_nan() {
        let cols = vec![vec![1.0, 0.5, f64::NAN, f64::NAN], vec![0.0, 0.5, 0.8, f64::NAN]];
        let w = [3.0, 1.0];
        let a = aggregate(Aggregation::Arithmetic, &names(2), &cols, &w).unwrap();
        assert!((a[0] - 0.75).abs() < 1e-12 && (a[1] - 0.5).abs() < 1e-12);
        assert!((a[2] - 0.8).abs() < 1e-12 && a[3].is_nan());
        let g = aggregate(Aggregation::Geometric, &names(2), &cols, &w).unwrap();
        assert_eq!(g[0], 0.0);
        assert!((g[1] - 0.5).abs() < 1e-12 && (g[2] - 0.8).abs() < 1e-12);
        let g2 = aggregate(
            Aggregation::Geometric,
            &names(2),
            &[vec![0.25], vec![1.0]],
            &[1.0, 1.0],
        )
        .unwrap();
        assert!((g2[0] - 0.5).abs() < 1e-12);
        let err = aggregate(Aggregation::Arithmetic, &names(2), &[vec![1.0], vec![]], &w).unwrap_err();
        assert!(err.to_string().contains("c1"));
    }
}
