//! Threshold-based agglomerative clustering for unknown k and very uneven cluster sizes
//! (real photo collections): average linkage on Euclidean distances, merging while the
//! closest pair of clusters is nearer than a distance threshold (for face descriptors, the
//! verification threshold). Exact, O(n^2) memory, O(n^2 log n)-ish time with a lazy heap.
//!
//! ```
//! let x = [0.0f32, 0.0, 0.2, 0.0, 9.0, 0.0];
//! // Cut at distance 1: the two near points merge, the far one stays alone.
//! let l = recog::cluster::agglomerative::average_linkage(&x, 3, 2, 1.0);
//! assert_eq!(l[0], l[1]);
//! assert_ne!(l[0], l[2]);
//! ```

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(PartialEq)]
struct Cand(f64, usize, usize, usize, usize);

impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.total_cmp(&self.0) // min-heap on distance
    }
}

/// Average-linkage clustering cut at `threshold`: returns a cluster index per row (0-based,
/// in order of first appearance).
pub fn average_linkage(x: &[f32], n: usize, d: usize, threshold: f64) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    // Pairwise distances (sum of distances between members, and sizes, per active cluster).
    let mut sum = vec![0f64; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let dd: f64 = x[i * d..(i + 1) * d]
                .iter()
                .zip(&x[j * d..(j + 1) * d])
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            sum[i * n + j] = dd;
            sum[j * n + i] = dd;
        }
    }
    let mut size = vec![1usize; n];
    let mut version = vec![0usize; n];
    let mut alive = vec![true; n];
    let mut parent: Vec<usize> = (0..n).collect();
    let mut heap = BinaryHeap::new();
    for i in 0..n {
        for j in i + 1..n {
            heap.push(Cand(sum[i * n + j], i, j, 0, 0));
        }
    }
    while let Some(Cand(dist, i, j, vi, vj)) = heap.pop() {
        if !alive[i] || !alive[j] || version[i] != vi || version[j] != vj {
            continue;
        }
        if dist > threshold {
            break;
        }
        // Merge j into i.
        alive[j] = false;
        parent[j] = i;
        size[i] += size[j];
        version[i] += 1;
        for k in 0..n {
            if alive[k] && k != i {
                let s = sum[i * n + k] + sum[j * n + k];
                sum[i * n + k] = s;
                sum[k * n + i] = s;
            }
        }
        for k in 0..n {
            if alive[k] && k != i {
                let avg = sum[i * n + k] / (size[i] * size[k]) as f64;
                let (a, b) = if i < k { (i, k) } else { (k, i) };
                heap.push(Cand(avg, a, b, version[a], version[b]));
            }
        }
    }
    let root = |mut r: usize| {
        while parent[r] != r {
            r = parent[r];
        }
        r
    };
    let mut ids = std::collections::HashMap::new();
    (0..n)
        .map(|i| {
            let r = root(i);
            let next = ids.len();
            *ids.entry(r).or_insert(next)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: by hand. {0, 1, 2} and {10, 11} and {30}: average distances inside groups
    /// are <= 2, between groups >= 8.5, so a threshold of 5 gives three clusters of sizes
    /// 3, 2 and 1; a threshold of 100 merges everything.
    #[test]
    fn uneven_groups_by_threshold() {
        let x = [0.0f32, 1.0, 2.0, 10.0, 11.0, 30.0];
        assert_eq!(average_linkage(&x, 6, 1, 5.0), vec![0, 0, 0, 1, 1, 2]);
        assert_eq!(average_linkage(&x, 6, 1, 100.0), vec![0; 6]);
        assert_eq!(average_linkage(&x, 6, 1, 0.5), vec![0, 1, 2, 3, 4, 5]);
    }
}
