//! Batch samplers: the notebook's random triplets and P x K batches for online mining.
//!
//! ```
//! use rand::SeedableRng;
//! let by_class = vec![vec![0, 1, 2], vec![3, 4, 5]];
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
//! let batch = recog::data::sampler::pk_batch(&by_class, 2, 2, &mut rng);
//! assert_eq!(batch.len(), 4);
//! ```

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;

/// Draws the notebook's random triplets: a random anchor, another image of its class, and an
/// image of a different class. Returns `3t` data set indices laid out as
/// [`Triplets::stacked`](crate::metric::Triplets::stacked) expects.
pub fn random_triplets(by_class: &[Vec<usize>], t: usize, rng: &mut impl Rng) -> Vec<usize> {
    let usable: Vec<usize> = (0..by_class.len())
        .filter(|&c| by_class[c].len() >= 2)
        .collect();
    let mut a = Vec::with_capacity(t);
    let mut p = Vec::with_capacity(t);
    let mut n = Vec::with_capacity(t);
    let nonempty: Vec<usize> = (0..by_class.len())
        .filter(|&c| !by_class[c].is_empty())
        .collect();
    if usable.is_empty() || nonempty.len() < 2 {
        return Vec::new();
    }
    for _ in 0..t {
        let c = usable[rng.random_range(0..usable.len())];
        let imgs = &by_class[c];
        let i = rng.random_range(0..imgs.len());
        let mut j = rng.random_range(0..imgs.len() - 1);
        if j >= i {
            j += 1;
        }
        let choices: Vec<usize> = nonempty.iter().copied().filter(|&x| x != c).collect();
        let c2 = choices[rng.random_range(0..choices.len())];
        let others = &by_class[c2];
        a.push(imgs[i]);
        p.push(imgs[j]);
        n.push(others[rng.random_range(0..others.len())]);
    }
    a.extend(p);
    a.extend(n);
    a
}

/// P x K batches: P classes, K images each, drawn without replacement within an epoch where
/// possible (classes with fewer than K images repeat images).
pub fn pk_batch(by_class: &[Vec<usize>], p: usize, k: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut classes: Vec<usize> = (0..by_class.len())
        .filter(|&c| !by_class[c].is_empty())
        .collect();
    classes.shuffle(rng);
    classes.truncate(p);
    let mut out = Vec::with_capacity(p * k);
    for c in classes {
        let imgs = &by_class[c];
        if imgs.len() >= k {
            out.extend(imgs.choose_multiple(rng, k).copied());
        } else {
            out.extend((0..k).map(|_| imgs[rng.random_range(0..imgs.len())]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn classes() -> Vec<Vec<usize>> {
        vec![vec![0, 1, 2], vec![3, 4], vec![], vec![5, 6, 7, 8]]
    }

    fn class_of(i: usize) -> usize {
        match i {
            0..=2 => 0,
            3..=4 => 1,
            _ => 3,
        }
    }

    #[test]
    fn random_triplets_are_valid() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let v = random_triplets(&classes(), 50, &mut rng);
        assert_eq!(v.len(), 150);
        for i in 0..50 {
            let (a, p, n) = (v[i], v[50 + i], v[100 + i]);
            assert_ne!(a, p);
            assert_eq!(class_of(a), class_of(p));
            assert_ne!(class_of(a), class_of(n));
        }
    }

    #[test]
    fn pk_has_p_classes_of_k() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let v = pk_batch(&classes(), 2, 3, &mut rng);
        assert_eq!(v.len(), 6);
        assert_eq!(class_of(v[0]), class_of(v[2]));
        assert_eq!(class_of(v[3]), class_of(v[5]));
        assert_ne!(class_of(v[0]), class_of(v[3]));
    }
}
