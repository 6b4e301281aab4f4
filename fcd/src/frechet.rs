//! The Fréchet distance of two Gaussians fitted to activations, as fcd_torch computes it:
//! `‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁Σ₂)`, with Σ the unbiased covariance (`np.cov`).
//! `tr √(Σ₁Σ₂)` is taken as `Σᵢ √λᵢ(S Σ₂ S)` with `S = √Σ₁`: the same eigenvalues as Σ₁Σ₂ (they
//! are similar matrices when Σ₁ is positive semi-definite), from two symmetric eigendecompositions
//! instead of scipy's Schur-form `sqrtm`.

use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// Mean and covariance of activations.
#[derive(Debug, Clone, PartialEq)]
pub struct Gaussian {
    /// Mean.
    pub mu: DVector<f64>,
    /// Covariance (unbiased, divides by n − 1).
    pub sigma: DMatrix<f64>,
}

impl Gaussian {
    /// From a mean and a covariance stored row by row (`mu.len()²` values).
    pub fn from_row_major(mu: Vec<f64>, sigma: &[f64]) -> Gaussian {
        let d = mu.len();
        assert_eq!(sigma.len(), d * d, "covariance of the wrong size");
        Gaussian {
            mu: DVector::from_vec(mu),
            sigma: DMatrix::from_row_slice(d, d, sigma),
        }
    }

    /// The mean and the covariance row by row.
    pub fn to_row_major(&self) -> (Vec<f64>, Vec<f64>) {
        (
            self.mu.iter().copied().collect(),
            self.sigma.transpose().iter().copied().collect(),
        )
    }

    /// Fits `n` rows of `dim` activations; `None` below two rows (fcd_torch gives NaN there).
    pub fn fit(activations: &[f32], dim: usize) -> Option<Gaussian> {
        let n = activations.len() / dim;
        if n < 2 {
            return None;
        }
        let x = DMatrix::from_fn(n, dim, |i, j| activations[i * dim + j] as f64);
        let mu = x.row_mean().transpose();
        let mut centred = x;
        for mut row in centred.row_iter_mut() {
            row -= mu.transpose();
        }
        let sigma = centred.tr_mul(&centred) / (n as f64 - 1.0);
        Some(Gaussian { mu, sigma })
    }
}

/// Symmetric positive semi-definite square root (negative eigenvalues from rounding taken as 0).
fn sqrt_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let eig = SymmetricEigen::new(m.clone());
    let roots = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    &eig.eigenvectors * DMatrix::from_diagonal(&roots) * eig.eigenvectors.transpose()
}

/// The Fréchet distance between two Gaussians of the same dimension.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> f64 {
    assert_eq!(a.mu.len(), b.mu.len(), "Gaussians of different dimensions");
    let diff = &a.mu - &b.mu;
    let s = sqrt_psd(&a.sigma);
    let inner = &s * &b.sigma * &s;
    // Symmetrise away rounding before the symmetric solver.
    let inner = (&inner + inner.transpose()) * 0.5;
    let tr_sqrt: f64 = SymmetricEigen::new(inner)
        .eigenvalues
        .iter()
        .map(|l| l.max(0.0).sqrt())
        .sum();
    diff.dot(&diff) + a.sigma.trace() + b.sigma.trace() - 2.0 * tr_sqrt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian(mu: &[f64], sigma: DMatrix<f64>) -> Gaussian {
        Gaussian {
            mu: DVector::from_column_slice(mu),
            sigma,
        }
    }

    #[test]
    fn diagonal_gaussians_in_closed_form() {
        // For commuting covariances, tr √(Σ₁Σ₂) = Σ √(a_i b_i): d² = Σ (μ diff)² + (√a − √b)².
        let a = gaussian(
            &[0.0, 1.0, 2.0],
            DMatrix::from_diagonal(&DVector::from_vec(vec![1.0, 4.0, 9.0])),
        );
        let b = gaussian(
            &[1.0, 1.0, 0.0],
            DMatrix::from_diagonal(&DVector::from_vec(vec![4.0, 1.0, 1.0])),
        );
        let expected = (1.0 + 0.0 + 4.0) + (1.0 + 1.0 + 4.0);
        assert!((frechet_distance(&a, &b) - expected).abs() < 1e-10);
        assert!(frechet_distance(&a, &a).abs() < 1e-10);
    }

    #[test]
    fn non_commuting_covariances_match_the_definition() {
        // Σ₁ = [[2,1],[1,2]], Σ₂ = diag(1, 4): Σ₁Σ₂ = [[2,4],[1,8]], eigenvalues 5 ± √13.
        let a = gaussian(&[0.0, 0.0], DMatrix::from_row_slice(2, 2, &[2.0, 1.0, 1.0, 2.0]));
        let b = gaussian(&[0.0, 0.0], DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, 4.0]));
        let r = 13f64.sqrt();
        let tr_sqrt = (5.0 + r).sqrt() + (5.0 - r).sqrt();
        let expected = 4.0 + 5.0 - 2.0 * tr_sqrt;
        assert!((frechet_distance(&a, &b) - expected).abs() < 1e-10);
    }

    #[test]
    fn fit_is_the_unbiased_covariance() {
        // Rows (1, 2), (3, 6): mean (2, 4); covariance [[2, 4], [4, 8]] with n − 1 = 1.
        let g = Gaussian::fit(&[1.0, 2.0, 3.0, 6.0], 2).unwrap();
        assert_eq!(g.mu.as_slice(), &[2.0, 4.0]);
        assert_eq!(g.sigma, DMatrix::from_row_slice(2, 2, &[2.0, 4.0, 4.0, 8.0]));
        assert!(Gaussian::fit(&[1.0, 2.0], 2).is_none());
    }
}
