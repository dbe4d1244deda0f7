//! Triplet miners: from a batch's distances and labels to (anchor, positive, negative) indices.
//!
//! ```
//! use recog::metric::Miner;
//! use rand::SeedableRng;
//! let dist = recog::metric::Distance::Euclidean.pairwise_host(&[0.0, 1.0, 5.0, 6.0], 4, 1);
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let t = Miner::BatchHard.mine(&dist, &[0, 0, 1, 1], 0.2, &mut rng);
//! assert_eq!(t.len(), 4); // one (hardest positive, hardest negative) per anchor
//! ```

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Index triplets into a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Triplets {
    /// Anchor indices.
    pub anchors: Vec<usize>,
    /// Positive indices (same label as the anchor).
    pub positives: Vec<usize>,
    /// Negative indices (another label).
    pub negatives: Vec<usize>,
}

impl Triplets {
    /// Number of triplets.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// True when there is no triplet.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    fn push(&mut self, a: usize, p: usize, n: usize) {
        self.anchors.push(a);
        self.positives.push(p);
        self.negatives.push(n);
    }

    /// The notebook's layout: a batch of `3t` images holding t anchors, then t positives,
    /// then t negatives.
    pub fn stacked(t: usize) -> Self {
        Self {
            anchors: (0..t).collect(),
            positives: (t..2 * t).collect(),
            negatives: (2 * t..3 * t).collect(),
        }
    }
}

/// How triplets are chosen inside a P x K batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Miner {
    /// One random positive and one random negative per anchor (the notebook's random triplets,
    /// drawn inside the batch).
    Random,
    /// Every valid triplet (Hermans et al. 2017, "batch all").
    BatchAll,
    /// For each anchor, its farthest positive and nearest negative (Hermans et al. 2017).
    BatchHard,
    /// For each (anchor, positive) pair, the nearest negative farther than the positive
    /// (FaceNet's semi-hard; TF-Addons' fallback to the farthest negative when none is).
    SemiHard,
}

impl Miner {
    /// Mines triplets from the `n x n` distance matrix `dist` (row-major) of a batch with
    /// `labels`. `_margin` is accepted for miners that bound negatives by it; none of these
    /// four needs it (semi-hard takes any farther negative, as TF-Addons does).
    pub fn mine(self, dist: &[f32], labels: &[u32], _margin: f32, rng: &mut impl Rng) -> Triplets {
        let n = labels.len();
        debug_assert_eq!(dist.len(), n * n);
        let d = |i: usize, j: usize| dist[i * n + j];
        let mut t = Triplets::default();
        match self {
            Miner::Random => {
                for a in 0..n {
                    let pos: Vec<usize> = (0..n)
                        .filter(|&j| j != a && labels[j] == labels[a])
                        .collect();
                    let neg: Vec<usize> = (0..n).filter(|&j| labels[j] != labels[a]).collect();
                    if pos.is_empty() || neg.is_empty() {
                        continue;
                    }
                    let p = pos[rng.random_range(0..pos.len())];
                    let q = neg[rng.random_range(0..neg.len())];
                    t.push(a, p, q);
                }
            }
            Miner::BatchAll => {
                for a in 0..n {
                    for p in 0..n {
                        if p == a || labels[p] != labels[a] {
                            continue;
                        }
                        for q in 0..n {
                            if labels[q] != labels[a] {
                                t.push(a, p, q);
                            }
                        }
                    }
                }
            }
            Miner::BatchHard => {
                for a in 0..n {
                    let hp = (0..n)
                        .filter(|&j| j != a && labels[j] == labels[a])
                        .max_by(|&i, &j| d(a, i).total_cmp(&d(a, j)));
                    let hn = (0..n)
                        .filter(|&j| labels[j] != labels[a])
                        .min_by(|&i, &j| d(a, i).total_cmp(&d(a, j)));
                    if let (Some(p), Some(q)) = (hp, hn) {
                        t.push(a, p, q);
                    }
                }
            }
            Miner::SemiHard => {
                for a in 0..n {
                    for p in 0..n {
                        if p == a || labels[p] != labels[a] {
                            continue;
                        }
                        let dap = d(a, p);
                        let negs = (0..n).filter(|&j| labels[j] != labels[a]);
                        let outside = negs
                            .clone()
                            .filter(|&j| d(a, j) > dap)
                            .min_by(|&i, &j| d(a, i).total_cmp(&d(a, j)));
                        let q =
                            outside.or_else(|| negs.max_by(|&i, &j| d(a, i).total_cmp(&d(a, j))));
                        if let Some(q) = q {
                            t.push(a, p, q);
                        }
                    }
                }
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    // 1-D points: labels 0,0,1,1 at positions 0, 3, 1, 5
    fn setup() -> (Vec<f32>, Vec<u32>) {
        let x = [0.0f32, 3.0, 1.0, 5.0];
        let n = 4;
        let mut d = vec![0.0; 16];
        for i in 0..n {
            for j in 0..n {
                d[i * n + j] = (x[i] - x[j]).abs();
            }
        }
        (d, vec![0, 0, 1, 1])
    }

    fn rng() -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(0)
    }

    #[test]
    fn batch_all_is_every_valid_triplet() {
        let (d, l) = setup();
        let t = Miner::BatchAll.mine(&d, &l, 0.1, &mut rng());
        // each of 4 anchors has 1 positive and 2 negatives
        assert_eq!(t.len(), 8);
        for i in 0..t.len() {
            assert_eq!(l[t.anchors[i]], l[t.positives[i]]);
            assert_ne!(l[t.anchors[i]], l[t.negatives[i]]);
            assert_ne!(t.anchors[i], t.positives[i]);
        }
    }

    #[test]
    fn batch_hard_golden() {
        let (d, l) = setup();
        let t = Miner::BatchHard.mine(&d, &l, 0.1, &mut rng());
        // anchor 0 (x=0): positive 1, nearest negative is 2 (x=1)
        // anchor 1 (x=3): positive 0, negatives at 2 (d=2) and 3 (d=2): first minimum, 2
        // anchor 2 (x=1): positive 3, nearest negative 0 (d=1)
        // anchor 3 (x=5): positive 2, nearest negative 1 (d=2)
        assert_eq!(t.anchors, vec![0, 1, 2, 3]);
        assert_eq!(t.positives, vec![1, 0, 3, 2]);
        assert_eq!(t.negatives, vec![2, 2, 0, 1]);
    }

    #[test]
    fn semi_hard_golden() {
        let (d, l) = setup();
        let t = Miner::SemiHard.mine(&d, &l, 0.1, &mut rng());
        // (0,1): d_ap = 3; negatives 2 (1), 3 (5): the only farther one is 3.
        // (1,0): d_ap = 3; negatives 2 (2), 3 (2): none farther -> the farthest; tied, and
        // max_by returns the last maximum, so 3.
        // (2,3): d_ap = 4; negatives 0 (1), 1 (2): none farther -> farthest, 1.
        // (3,2): d_ap = 4; negatives 0 (5), 1 (2): farther: 0.
        assert_eq!(t.anchors, vec![0, 1, 2, 3]);
        assert_eq!(t.positives, vec![1, 0, 3, 2]);
        assert_eq!(t.negatives, vec![3, 3, 1, 0]);
    }

    #[test]
    fn random_triplets_are_valid_and_seeded() {
        let (d, l) = setup();
        let a = Miner::Random.mine(&d, &l, 0.1, &mut rng());
        let b = Miner::Random.mine(&d, &l, 0.1, &mut rng());
        assert_eq!(a, b);
        assert_eq!(a.len(), 4);
        for i in 0..a.len() {
            assert_eq!(l[a.anchors[i]], l[a.positives[i]]);
            assert_ne!(l[a.anchors[i]], l[a.negatives[i]]);
        }
    }

    #[test]
    fn stacked_layout() {
        let t = Triplets::stacked(2);
        assert_eq!(t.anchors, vec![0, 1]);
        assert_eq!(t.positives, vec![2, 3]);
        assert_eq!(t.negatives, vec![4, 5]);
    }
}
