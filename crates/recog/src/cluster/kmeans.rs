//! K-means with k-means++ seeding and restarts (Lloyd, 1982; Arthur and Vassilvitskii,
//! "k-means++: The Advantages of Careful Seeding", SODA 2007), on host rows.
//!
//! ```
//! // An elbow at k = 3: Kneedle finds it.
//! let ks = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let inertia = [100.0, 50.0, 10.0, 8.0, 7.0, 6.5];
//! assert_eq!(recog::cluster::kneedle(&ks, &inertia), Some(2)); // the index of k = 3
//! ```

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// A k-means solution.
#[derive(Debug, Clone, Serialize)]
pub struct KMeans {
    /// Number of clusters.
    pub k: usize,
    /// Centres, `k x d` row-major.
    pub centres: Vec<f32>,
    /// Cluster of each row.
    pub labels: Vec<usize>,
    /// Sum of squared distances of rows to their centres.
    pub inertia: f64,
    /// Lloyd iterations of the kept restart.
    pub iterations: usize,
}

fn sq(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
}

/// k-means++ seeding: each next centre is drawn with probability proportional to the squared
/// distance to the nearest centre chosen so far.
fn seed(x: &[f32], n: usize, d: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut centres = Vec::with_capacity(k * d);
    let first = rng.random_range(0..n);
    centres.extend_from_slice(&x[first * d..(first + 1) * d]);
    let mut nearest: Vec<f64> = (0..n)
        .map(|i| sq(&x[i * d..(i + 1) * d], &centres[..d]))
        .collect();
    for _ in 1..k {
        let total: f64 = nearest.iter().sum();
        let pick = if total <= 0.0 {
            rng.random_range(0..n)
        } else {
            let mut r = rng.random::<f64>() * total;
            let mut idx = n - 1;
            for (i, &w) in nearest.iter().enumerate() {
                if r < w {
                    idx = i;
                    break;
                }
                r -= w;
            }
            idx
        };
        let c = x[pick * d..(pick + 1) * d].to_vec();
        for (i, v) in nearest.iter_mut().enumerate() {
            *v = v.min(sq(&x[i * d..(i + 1) * d], &c));
        }
        centres.extend(c);
    }
    centres
}

/// Runs k-means `restarts` times from k-means++ seeds and keeps the lowest inertia.
/// The same seed gives the same result.
pub fn kmeans(x: &[f32], n: usize, d: usize, k: usize, restarts: usize, seed_v: u64) -> KMeans {
    let k = k.clamp(1, n.max(1));
    let mut best: Option<KMeans> = None;
    for r in 0..restarts.max(1) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed_v.wrapping_add(r as u64 * 7919));
        let mut centres = seed(x, n, d, k, &mut rng);
        let mut labels = vec![0usize; n];
        let mut iterations = 0;
        for it in 0..100 {
            iterations = it + 1;
            let mut changed = false;
            for i in 0..n {
                let row = &x[i * d..(i + 1) * d];
                let mut bl = 0;
                let mut bd = f64::MAX;
                for c in 0..k {
                    let dd = sq(row, &centres[c * d..(c + 1) * d]);
                    if dd < bd {
                        bd = dd;
                        bl = c;
                    }
                }
                if labels[i] != bl || it == 0 {
                    changed |= labels[i] != bl;
                    labels[i] = bl;
                }
            }
            let mut sums = vec![0f64; k * d];
            let mut counts = vec![0usize; k];
            for i in 0..n {
                counts[labels[i]] += 1;
                for j in 0..d {
                    sums[labels[i] * d + j] += x[i * d + j] as f64;
                }
            }
            for c in 0..k {
                if counts[c] > 0 {
                    for j in 0..d {
                        centres[c * d + j] = (sums[c * d + j] / counts[c] as f64) as f32;
                    }
                }
            }
            if !changed && it > 0 {
                break;
            }
        }
        let inertia: f64 = (0..n)
            .map(|i| {
                sq(
                    &x[i * d..(i + 1) * d],
                    &centres[labels[i] * d..(labels[i] + 1) * d],
                )
            })
            .sum();
        if best.as_ref().is_none_or(|b| inertia < b.inertia) {
            best = Some(KMeans {
                k,
                centres,
                labels,
                inertia,
                iterations,
            });
        }
    }
    best.unwrap_or(KMeans {
        k,
        centres: vec![],
        labels: vec![0; n],
        inertia: 0.0,
        iterations: 0,
    })
}

/// The knee of a decreasing, convex curve by Kneedle (Satopää et al., "Finding a 'Kneedle'
/// in a Haystack", 2011): normalise x and y to [0, 1], and take the point farthest above the
/// straight line from the first to the last point of `1 - y`.
pub fn kneedle(xs: &[f64], ys: &[f64]) -> Option<usize> {
    if xs.len() < 3 {
        return None;
    }
    let (x0, x1) = (xs[0], xs[xs.len() - 1]);
    let (ymin, ymax) = ys
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &y| (a.min(y), b.max(y)));
    if (x1 - x0).abs() < 1e-12 || (ymax - ymin).abs() < 1e-12 {
        return None;
    }
    let diff: Vec<f64> = xs
        .iter()
        .zip(ys)
        .map(|(&x, &y)| {
            let xn = (x - x0) / (x1 - x0);
            let yn = (ymax - y) / (ymax - ymin); // decreasing curve flipped to increasing
            yn - xn
        })
        .collect();
    let (i, &m) = diff.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    if m <= 0.0 {
        None
    } else {
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs() -> (Vec<f32>, Vec<usize>) {
        let mut x = Vec::new();
        let mut y = Vec::new();
        let centres = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]];
        for (c, ctr) in centres.iter().enumerate() {
            for i in 0..20 {
                let e = ((i * 37 % 11) as f32 - 5.0) * 0.1;
                let f = ((i * 53 % 7) as f32 - 3.0) * 0.1;
                x.extend([ctr[0] + e, ctr[1] + f]);
                y.push(c);
            }
        }
        (x, y)
    }

    #[test]
    fn finds_four_blobs_and_is_deterministic() {
        let (x, y) = blobs();
        let a = kmeans(&x, 80, 2, 4, 5, 1);
        let b = kmeans(&x, 80, 2, 4, 5, 1);
        assert_eq!(a.labels, b.labels);
        assert_eq!(
            crate::cluster::metrics::adjusted_rand_index(&y, &a.labels),
            1.0
        );
        // Inertia equals the naive sum of squared distances to the assigned centres.
        let naive: f64 = (0..80)
            .map(|i| {
                sq(
                    &x[i * 2..i * 2 + 2],
                    &a.centres[a.labels[i] * 2..a.labels[i] * 2 + 2],
                )
            })
            .sum();
        assert!((a.inertia - naive).abs() < 1e-9);
    }

    #[test]
    fn elbow_of_four_blobs_is_four() {
        let (x, _) = blobs();
        let ks: Vec<f64> = (1..=10).map(|k| k as f64).collect();
        let inertia: Vec<f64> = (1..=10)
            .map(|k| kmeans(&x, 80, 2, k, 3, 0).inertia)
            .collect();
        assert_eq!(kneedle(&ks, &inertia).map(|i| i + 1), Some(4));
    }
}

/// One point of the elbow curve.
#[derive(Debug, Clone, Serialize)]
pub struct ElbowPoint {
    /// k.
    pub k: usize,
    /// K-means inertia at k.
    pub inertia: f64,
    /// Mean silhouette at k (`None` for k = 1), on at most `silhouette_sample` rows.
    pub silhouette: Option<f64>,
}

/// Runs k-means for k = 1..=k_max (threads over k) and the silhouette of each solution on a
/// fixed, seeded sample of at most `silhouette_sample` rows (the silhouette is O(n^2)).
pub fn sweep(
    x: &[f32],
    n: usize,
    d: usize,
    k_max: usize,
    restarts: usize,
    seed: u64,
    silhouette_sample: usize,
) -> (Vec<KMeans>, Vec<ElbowPoint>) {
    let k_max = k_max.clamp(1, n.max(1));
    let threads = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .min(k_max);
    let mut sols: Vec<Option<KMeans>> = (0..k_max).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    // Interleaved k so that threads get similar work.
                    (0..k_max)
                        .filter(|k| k % threads == t)
                        .map(|k| (k, kmeans(x, n, d, k + 1, restarts, seed)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            if let Ok(v) = h.join() {
                for (k, sol) in v {
                    sols[k] = Some(sol);
                }
            }
        }
    });
    let sols: Vec<KMeans> = sols.into_iter().flatten().collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut idx: Vec<usize> = (0..n).collect();
    if n > silhouette_sample {
        for i in 0..silhouette_sample {
            let j = rng.random_range(i..n);
            idx.swap(i, j);
        }
        idx.truncate(silhouette_sample);
    }
    let xs: Vec<f32> = idx
        .iter()
        .flat_map(|&i| x[i * d..(i + 1) * d].iter().copied())
        .collect();
    let points = sols
        .iter()
        .map(|s| ElbowPoint {
            k: s.k,
            inertia: s.inertia,
            silhouette: (s.k >= 2 && s.k < idx.len()).then(|| {
                let l: Vec<usize> = idx.iter().map(|&i| s.labels[i]).collect();
                crate::cluster::metrics::silhouette(&xs, idx.len(), d, &l)
            }),
        })
        .collect();
    (sols, points)
}
