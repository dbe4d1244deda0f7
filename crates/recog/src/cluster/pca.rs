//! Principal component analysis: the eigen-decomposition of the covariance matrix
//! (nalgebra's symmetric QR algorithm).
//!
//! Hand-written rather than linfa-reduction because linfa's ndarray 0.16 would clash with the
//! ndarray that burn pulls in; D is small (<= a few thousand), so a D x D covariance is cheap.
//!
//! ```
//! // Points on a line in 3-D: the first component explains all the variance.
//! let x: Vec<f32> = (0..10).flat_map(|i| { let t = i as f32; [t, 2.0 * t, -t] }).collect();
//! let pca = recog::cluster::Pca::fit(&x, 10, 3, 2);
//! assert!(pca.explained_ratio()[0] > 0.999);
//! assert_eq!(pca.transform(&x).len(), 20);
//! ```

/// A fitted PCA.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Mean of each input dimension.
    pub mean: Vec<f32>,
    /// Components, row-major `[k, d]`, unit length.
    pub components: Vec<Vec<f32>>,
    /// Variance along each component.
    pub explained_variance: Vec<f64>,
    /// Total variance of the data.
    pub total_variance: f64,
}

impl Pca {
    /// Fits `k` components to `n` rows of dimension `d` (row-major).
    pub fn fit(x: &[f32], n: usize, d: usize, k: usize) -> Pca {
        let mut mean = vec![0f64; d];
        for r in x.chunks(d) {
            for (m, v) in mean.iter_mut().zip(r) {
                *m += *v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
        let mut cov = vec![0f64; d * d];
        let mut c = vec![0f64; d];
        for r in x.chunks(d) {
            for j in 0..d {
                c[j] = r[j] as f64 - mean[j];
            }
            for i in 0..d {
                let ci = c[i];
                for j in i..d {
                    cov[i * d + j] += ci * c[j];
                }
            }
        }
        let denom = (n.max(2) - 1) as f64;
        for i in 0..d {
            for j in i..d {
                let v = cov[i * d + j] / denom;
                cov[i * d + j] = v;
                cov[j * d + i] = v;
            }
        }
        let total_variance: f64 = (0..d).map(|i| cov[i * d + i]).sum();
        let k = k.min(d);
        // Exact rather than power iteration: several components may share nearly one
        // eigenvalue (a face network's within-person spectrum is flat), where power iteration
        // stalls and deflation leaves the basis non-orthogonal.
        let m = nalgebra::DMatrix::from_row_slice(d, d, &cov);
        let (values, vectors) = match d {
            0 => (Vec::new(), None),
            _ => match nalgebra::SymmetricEigen::try_new(m, f64::EPSILON, 10_000) {
                Some(e) if e.eigenvalues.iter().all(|v| v.is_finite()) => {
                    (e.eigenvalues.as_slice().to_vec(), Some(e.eigenvectors))
                }
                // Non-finite input: no direction carries any known variance.
                _ => (vec![0.0; d], None),
            },
        };
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
        let mut components = Vec::with_capacity(k);
        let mut explained = Vec::with_capacity(k);
        for &j in order.iter().take(k) {
            let mut v: Vec<f64> = match &vectors {
                Some(e) => e.column(j).iter().copied().collect(),
                None => (0..d).map(|i| f64::from(u8::from(i == j))).collect(),
            };
            // Sign convention: the largest coordinate is positive.
            let big = v
                .iter()
                .cloned()
                .fold(0f64, |a, b| if b.abs() > a.abs() { b } else { a });
            if big < 0.0 {
                v.iter_mut().for_each(|a| *a = -*a);
            }
            components.push(v.iter().map(|&a| a as f32).collect());
            explained.push(values[j].max(0.0));
        }
        Pca {
            mean: mean.iter().map(|&m| m as f32).collect(),
            components,
            explained_variance: explained,
            total_variance,
        }
    }

    /// Fraction of the total variance each component explains.
    pub fn explained_ratio(&self) -> Vec<f64> {
        self.explained_variance
            .iter()
            .map(|v| {
                if self.total_variance > 0.0 {
                    v / self.total_variance
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// Projects rows of dimension `d` onto the components: `[n, k]` row-major.
    pub fn transform(&self, x: &[f32]) -> Vec<f32> {
        let d = self.mean.len();
        let mut out = Vec::with_capacity(x.len() / d.max(1) * self.components.len());
        for r in x.chunks(d) {
            for c in &self.components {
                out.push(
                    r.iter()
                        .zip(&self.mean)
                        .zip(c)
                        .map(|((v, m), w)| (v - m) * w)
                        .sum(),
                );
            }
        }
        out
    }
}

/// Reduces rows to 2-D: the rows themselves when `d <= 2`, else PCA.
pub fn to_2d(x: &[f32], n: usize, d: usize) -> Vec<f32> {
    match d {
        2 => x.to_vec(),
        1 => x.iter().flat_map(|&v| [v, 0.0]).collect(),
        _ => Pca::fit(x, n, d, 2).transform(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: power iteration with deflation, the former solver, stalled where
    /// eigenvalues tie (isotropic data) and returned a basis that was not orthonormal, which
    /// an HNSW projection cannot afford.
    #[test]
    fn components_are_orthonormal_when_eigenvalues_tie() {
        let d = 24;
        let x: Vec<f32> = (0..2000)
            .flat_map(|i| {
                (0..d).map(move |j| (((i * 7919 + j * 104_729) % 1009) as f32 / 1009.0) - 0.5)
            })
            .collect();
        let p = Pca::fit(&x, 2000, d, d);
        for a in 0..d {
            for b in 0..d {
                let dot: f32 = p.components[a]
                    .iter()
                    .zip(&p.components[b])
                    .map(|(x, y)| x * y)
                    .sum();
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5, "{a} . {b} = {dot}");
            }
        }
        assert!(p.explained_variance.windows(2).all(|w| w[0] >= w[1]));
        let sum: f64 = p.explained_variance.iter().sum();
        assert!((sum - p.total_variance).abs() < 1e-9 * p.total_variance.max(1.0));
    }

    #[test]
    fn finds_the_main_axis() {
        // points along (1, 1, 0) with small noise on z
        let mut x = Vec::new();
        for i in 0..50 {
            let t = i as f32 - 25.0;
            x.extend([t, t, if i % 2 == 0 { 0.1 } else { -0.1 }]);
        }
        let p = Pca::fit(&x, 50, 3, 2);
        let c = &p.components[0];
        let s = 1.0 / 2f32.sqrt();
        assert!(
            (c[0] - s).abs() < 1e-4 && (c[1] - s).abs() < 1e-4 && c[2].abs() < 1e-3,
            "{c:?}"
        );
        assert!(p.explained_ratio()[0] > 0.99);
        let y = p.transform(&x);
        assert_eq!(y.len(), 100);
    }
}
