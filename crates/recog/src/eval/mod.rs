//! Retrieval evaluation: k-NN accuracy, Precision@1 and MAP@R (Musgrave et al., "A Metric
//! Learning Reality Check", 2020).
//!
//! ```
//! // Two classes far apart: every query's nearest reference has its label.
//! let refs = [0.0f32, 0.0, 0.1, 0.0, 5.0, 5.0, 5.1, 5.0];
//! let queries = [0.05f32, 0.0, 5.05, 5.0];
//! let m = recog::eval::retrieval_metrics(&refs, &[0, 0, 1, 1], &queries, &[0, 1], 2, &recog::NoProgress);
//! assert_eq!(m.knn1_accuracy, 1.0);
//! assert_eq!(m.map_at_r, 1.0);
//! ```

pub mod detection;
pub mod lfw;
pub mod lfw_view2;
pub mod openset_id;
pub mod retrieval;
pub mod roc;

use serde::Serialize;

use crate::progress::Progress;

/// Retrieval figures of a query set against a reference set.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RetrievalMetrics {
    /// Queries.
    pub queries: usize,
    /// Reference items.
    pub references: usize,
    /// 1-NN classification accuracy.
    pub knn1_accuracy: f64,
    /// 5-NN majority-vote accuracy (ties go to the class of the nearer neighbour).
    pub knn5_accuracy: f64,
    /// Precision@1: fraction of queries whose nearest reference shares their label. Equal to
    /// 1-NN accuracy when queries are not in the reference set, reported under both names.
    pub precision_at_1: f64,
    /// MAP@R, R = number of references with the query's label.
    pub map_at_r: f64,
}

/// Computes retrieval metrics by exact search (squared Euclidean ranks = Euclidean ranks).
///
/// `reference` is `[nr, d]`, `query` `[nq, d]`, row-major. Uses all cores.
pub fn retrieval_metrics(
    reference: &[f32],
    ref_labels: &[u32],
    query: &[f32],
    query_labels: &[u32],
    d: usize,
    progress: &dyn Progress,
) -> RetrievalMetrics {
    let nr = ref_labels.len();
    let nq = query_labels.len();
    let n_classes = ref_labels
        .iter()
        .chain(query_labels)
        .max()
        .map_or(0, |m| *m as usize + 1);
    let mut class_count = vec![0usize; n_classes];
    for &l in ref_labels {
        class_count[l as usize] += 1;
    }
    let ref_norm: Vec<f32> = reference
        .chunks(d)
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    progress.start("search", nq as u64);
    // per query: (hit1, hit5, ap)
    let mut results = vec![(false, false, 0f64); nq];
    let chunk = nq.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (t, res) in results.chunks_mut(chunk).enumerate() {
            let ref_norm = &ref_norm;
            let class_count = &class_count;
            s.spawn(move || {
                let mut dist: Vec<(f32, u32)> = Vec::with_capacity(nr);
                for (k, r) in res.iter_mut().enumerate() {
                    let qi = t * chunk + k;
                    let q = &query[qi * d..(qi + 1) * d];
                    let qn: f32 = q.iter().map(|v| v * v).sum();
                    dist.clear();
                    for (j, row) in reference.chunks(d).enumerate() {
                        let dot: f32 = row.iter().zip(q).map(|(a, b)| a * b).sum();
                        dist.push((qn + ref_norm[j] - 2.0 * dot, ref_labels[j]));
                    }
                    let ql = query_labels[qi];
                    let rr = class_count.get(ql as usize).copied().unwrap_or(0);
                    let top = rr.max(5).min(nr);
                    if top == 0 {
                        continue;
                    }
                    if top < nr {
                        dist.select_nth_unstable_by(top - 1, |a, b| a.0.total_cmp(&b.0));
                        dist.truncate(top);
                    }
                    dist.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
                    let hit1 = dist[0].1 == ql;
                    // 5-NN vote
                    let mut votes: Vec<(u32, usize, usize)> = Vec::new(); // label, count, first rank
                    for (rank, &(_, l)) in dist.iter().take(5).enumerate() {
                        match votes.iter_mut().find(|v| v.0 == l) {
                            Some(v) => v.1 += 1,
                            None => votes.push((l, 1, rank)),
                        }
                    }
                    let best = votes
                        .iter()
                        .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)))
                        .map(|v| v.0);
                    let hit5 = best == Some(ql);
                    // MAP@R
                    let mut ap = 0.0;
                    if rr > 0 {
                        let mut rel = 0usize;
                        for (i, &(_, l)) in dist.iter().take(rr).enumerate() {
                            if l == ql {
                                rel += 1;
                                ap += rel as f64 / (i + 1) as f64;
                            }
                        }
                        ap /= rr as f64;
                    }
                    *r = (hit1, hit5, ap);
                    if k % 256 == 255 {
                        progress.inc(256);
                    }
                }
            });
        }
    });
    progress.finish();
    let f = |c: usize| c as f64 / nq.max(1) as f64;
    let h1 = results.iter().filter(|r| r.0).count();
    let h5 = results.iter().filter(|r| r.1).count();
    RetrievalMetrics {
        queries: nq,
        references: nr,
        knn1_accuracy: f(h1),
        knn5_accuracy: f(h5),
        precision_at_1: f(h1),
        map_at_r: results.iter().map(|r| r.2).sum::<f64>() / nq.max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    #[test]
    fn golden_map_at_r() {
        // 1-D references: class 0 at 0, 1, 10 ; class 1 at 2, 3
        let reference = [0.0f32, 1.0, 10.0, 2.0, 3.0];
        let rl = [0u32, 0, 0, 1, 1];
        // query class 0 at 0.4: ranking 0(0),1(0),2(1),3(1),10(0); R = 3
        // AP@R = (1/1 + 2/2 + 0) / 3 = 2/3
        // query class 1 at 2.6: ranking 3(1),2(1),1(0),0(0),10(0); R = 2 -> AP = 1
        let q = [0.4f32, 2.6];
        let ql = [0u32, 1];
        let m = retrieval_metrics(&reference, &rl, &q, &ql, 1, &NoProgress);
        assert!((m.map_at_r - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-9, "{m:?}");
        assert_eq!(m.knn1_accuracy, 1.0);
        assert_eq!(m.precision_at_1, 1.0);
        // 5-NN for the first query: labels 0,0,1,1,0 -> class 0
        // second: 1,1,0,0,0 -> class 0 wins 3 to 2: a miss
        assert_eq!(m.knn5_accuracy, 0.5);
    }
}
