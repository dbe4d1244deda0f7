//! ROC curves and the figures read off them: one implementation for face verification
//! (distances, lower is "same") and for open-set recognition (unknown scores, higher is
//! "unknown").
//!
//! ```
//! use recog::eval::roc::{auc, auroc, roc_curve};
//! // Same-person pairs at distances 0.1 and 0.4, different ones at 0.3 and 0.9.
//! let roc = roc_curve(&[(0.1, true), (0.4, true), (0.3, false), (0.9, false)]);
//! assert_eq!(auc(&roc), 0.75);
//! // The same ranking as unknown scores: higher is more surely positive.
//! assert_eq!(auroc(&[0.9, 0.6, 0.7, 0.1], &[true, true, false, false]), 0.75);
//! ```

/// ROC points (FAR, TAR) sweeping the threshold over every distinct distance, from (0, 0)
/// to (1, 1).
pub fn roc_curve(d: &[(f64, bool)]) -> Vec<(f64, f64)> {
    let mut v = d.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let pos = v.iter().filter(|x| x.1).count().max(1) as f64;
    let neg = v.iter().filter(|x| !x.1).count().max(1) as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut out = vec![(0.0, 0.0)];
    for i in 0..v.len() {
        if v[i].1 {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        if i + 1 == v.len() || v[i + 1].0 > v[i].0 {
            out.push((fp / neg, tp / pos));
        }
    }
    out
}

/// Trapezoidal area under ROC points.
pub fn auc(roc: &[(f64, f64)]) -> f64 {
    roc.windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum()
}

/// Equal error rate: where FAR = 1 - TAR (interpolated between ROC points).
pub fn eer(roc: &[(f64, f64)]) -> f64 {
    for w in roc.windows(2) {
        let (f0, t0) = w[0];
        let (f1, t1) = w[1];
        let (g0, g1) = (f0 - (1.0 - t0), f1 - (1.0 - t1));
        if g0 <= 0.0 && g1 >= 0.0 {
            let a = if (g1 - g0).abs() < 1e-12 {
                0.0
            } else {
                -g0 / (g1 - g0)
            };
            return f0 + a * (f1 - f0);
        }
    }
    1.0
}

/// Area under the ROC curve of `scores` separating positives (`true`, expected to score
/// higher) from negatives, with ties counted half (the Mann-Whitney statistic); NaN when
/// either class is empty.
pub fn auroc(scores: &[f32], positive: &[bool]) -> f64 {
    let n_pos = positive.iter().filter(|&&p| p).count();
    if n_pos == 0 || n_pos == positive.len() {
        return f64::NAN;
    }
    // A positive is "accepted" first as the threshold sweeps down from the top score.
    let flipped: Vec<(f64, bool)> = scores
        .iter()
        .zip(positive)
        .map(|(&s, &p)| (-f64::from(s), p))
        .collect();
    auc(&roc_curve(&flipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The Mann-Whitney statistic by its definition: pairs ranked right, ties half.
    fn pairs_ranked_right(scores: &[f32], positive: &[bool]) -> f64 {
        let (mut right, mut n) = (0.0, 0.0);
        for (i, &si) in scores.iter().enumerate() {
            for (j, &sj) in scores.iter().enumerate() {
                if positive[i] && !positive[j] {
                    n += 1.0;
                    right += if si > sj {
                        1.0
                    } else if si == sj {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        right / n
    }

    #[test]
    fn golden_auroc() {
        let s = [0.9f32, 0.4, 0.6, 0.1];
        let p = [true, true, false, false];
        assert!((auroc(&s, &p) - 0.75).abs() < 1e-12);
        assert_eq!(auroc(&[1.0, 0.0], &[true, false]), 1.0);
        assert!((auroc(&[0.5, 0.5], &[true, false]) - 0.5).abs() < 1e-12);
        assert!(auroc(&[0.5], &[true]).is_nan());
    }

    proptest! {
        /// The area of the trapezoids equals the pair count, ties included (scores on a
        /// coarse grid make ties common).
        #[test]
        fn auroc_is_the_mann_whitney_statistic(v in prop::collection::vec((0u8..6, any::<bool>()), 2..40)) {
            let scores: Vec<f32> = v.iter().map(|x| f32::from(x.0)).collect();
            let positive: Vec<bool> = v.iter().map(|x| x.1).collect();
            let n_pos = positive.iter().filter(|&&p| p).count();
            prop_assume!(n_pos > 0 && n_pos < positive.len());
            prop_assert!((auroc(&scores, &positive) - pairs_ranked_right(&scores, &positive)).abs() < 1e-9);
        }
    }
}
