//! Clustering quality: adjusted Rand index, normalised mutual information, purity (against
//! known labels) and the silhouette (without them).
//!
//! ```
//! use recog::cluster::metrics::{adjusted_rand_index, nmi, purity};
//! let truth = [0, 0, 1, 1];
//! let relabelled = [1, 1, 0, 0];
//! assert_eq!(adjusted_rand_index(&truth, &relabelled), 1.0);
//! assert!((nmi(&truth, &relabelled) - 1.0).abs() < 1e-12);
//! assert_eq!(purity(&truth, &[0, 0, 0, 0]), 0.5);
//! ```

use std::collections::HashMap;

type Counts<K> = HashMap<K, f64>;

fn contingency(a: &[usize], b: &[usize]) -> (Counts<(usize, usize)>, Counts<usize>, Counts<usize>) {
    let mut nij = HashMap::new();
    let mut ai = HashMap::new();
    let mut bj = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *nij.entry((x, y)).or_insert(0.0) += 1.0;
        *ai.entry(x).or_insert(0.0) += 1.0;
        *bj.entry(y).or_insert(0.0) += 1.0;
    }
    (nij, ai, bj)
}

fn comb2(n: f64) -> f64 {
    n * (n - 1.0) / 2.0
}

/// Adjusted Rand index (Hubert and Arabie, 1985):
/// `(sum_ij C(n_ij,2) - E) / (0.5 (sum_i C(a_i,2) + sum_j C(b_j,2)) - E)`,
/// `E = sum_i C(a_i,2) sum_j C(b_j,2) / C(n,2)`. 1 for identical partitions.
pub fn adjusted_rand_index(truth: &[usize], pred: &[usize]) -> f64 {
    let n = truth.len() as f64;
    let (nij, ai, bj) = contingency(truth, pred);
    let index: f64 = nij.values().map(|&v| comb2(v)).sum();
    let sa: f64 = ai.values().map(|&v| comb2(v)).sum();
    let sb: f64 = bj.values().map(|&v| comb2(v)).sum();
    let expected = sa * sb / comb2(n).max(1e-12);
    let max = 0.5 * (sa + sb);
    if (max - expected).abs() < 1e-12 {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

/// Normalised mutual information with the arithmetic-mean normalisation
/// `NMI = I(U, V) / ((H(U) + H(V)) / 2)` (scikit-learn's default).
pub fn nmi(truth: &[usize], pred: &[usize]) -> f64 {
    let n = truth.len() as f64;
    let (nij, ai, bj) = contingency(truth, pred);
    let h = |m: &HashMap<usize, f64>| -m.values().map(|&v| (v / n) * (v / n).ln()).sum::<f64>();
    let (hu, hv) = (h(&ai), h(&bj));
    let mi: f64 = nij
        .iter()
        .map(|(&(i, j), &v)| (v / n) * ((v * n) / (ai[&i] * bj[&j])).ln())
        .sum();
    if hu + hv <= 0.0 {
        return 1.0;
    }
    (mi / ((hu + hv) / 2.0)).clamp(0.0, 1.0)
}

/// Purity: each cluster counts its most common true label.
pub fn purity(truth: &[usize], pred: &[usize]) -> f64 {
    let (nij, _, _) = contingency(truth, pred);
    let mut best: HashMap<usize, f64> = HashMap::new();
    for (&(_, j), &v) in &nij {
        let e = best.entry(j).or_insert(0.0);
        *e = e.max(v);
    }
    best.values().sum::<f64>() / truth.len().max(1) as f64
}

/// Mean silhouette `(b - a) / max(a, b)` over rows, with Euclidean distances; `a` is the mean
/// distance to the row's own cluster, `b` the smallest mean distance to another cluster.
/// Rows alone in their cluster score 0. Needs 2 <= k < n.
pub fn silhouette(x: &[f32], n: usize, d: usize, labels: &[usize]) -> f64 {
    let k = labels.iter().copied().max().map_or(0, |m| m + 1);
    if k < 2 || n < 3 {
        return 0.0;
    }
    let mut sizes = vec![0usize; k];
    for &l in labels {
        sizes[l] += 1;
    }
    let mut total = 0.0;
    let mut sums = vec![0f64; k];
    for i in 0..n {
        sums.iter_mut().for_each(|s| *s = 0.0);
        let ri = &x[i * d..(i + 1) * d];
        for j in 0..n {
            if i != j {
                let dd: f64 = ri
                    .iter()
                    .zip(&x[j * d..(j + 1) * d])
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum::<f64>()
                    .sqrt();
                sums[labels[j]] += dd;
            }
        }
        let own = labels[i];
        if sizes[own] <= 1 {
            continue;
        }
        let a = sums[own] / (sizes[own] - 1) as f64;
        let b = (0..k)
            .filter(|&c| c != own && sizes[c] > 0)
            .map(|c| sums[c] / sizes[c] as f64)
            .fold(f64::MAX, f64::min);
        if b < f64::MAX {
            total += (b - a) / a.max(b).max(1e-12);
        }
    }
    total / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_and_relabelled_partitions_score_one() {
        let t = [0, 0, 1, 1, 2, 2];
        let p = [5, 5, 3, 3, 9, 9];
        assert!((adjusted_rand_index(&t, &p) - 1.0).abs() < 1e-12);
        assert!((nmi(&t, &p) - 1.0).abs() < 1e-12);
        assert_eq!(purity(&t, &p), 1.0);
    }

    /// Reference: scikit-learn 1.x gives adjusted_rand_score([0,0,0,1,1,1],[0,0,1,1,2,2])
    /// = 0.24242424, normalized_mutual_info_score = 0.51580374; purity by hand: clusters {0,0}, {0,1}, {1,1} -> (2 + 1 + 2) / 6.
    #[test]
    fn golden_values_match_scikit_learn() {
        let t = [0, 0, 0, 1, 1, 1];
        let p = [0, 0, 1, 1, 2, 2];
        assert!((adjusted_rand_index(&t, &p) - 0.242_424_24).abs() < 1e-6);
        assert!((nmi(&t, &p) - 0.515_803_74).abs() < 1e-6);
        assert!((purity(&t, &p) - 5.0 / 6.0).abs() < 1e-12);
    }

    /// Reference by hand: points 0, 1 (cluster 0) and 10, 12 (cluster 1) on a line.
    /// s(0) = (11 - 1)/11, s(1) = (10 - 1)/10, s(10) = (9.5 - 2)/9.5, s(12) = (11.5 - 2)/11.5;
    /// the mean, 0.85616289, is also scikit-learn's silhouette_score.
    #[test]
    fn silhouette_by_hand() {
        let x = [0.0f32, 1.0, 10.0, 12.0];
        let want: f64 = (10.0 / 11.0 + 9.0 / 10.0 + 7.5 / 9.5 + 9.5 / 11.5) / 4.0;
        assert!((want - 0.856_162_887).abs() < 1e-8);
        assert!((silhouette(&x, 4, 1, &[0, 0, 1, 1]) - want).abs() < 1e-9);
    }
}
