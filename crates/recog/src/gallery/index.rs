//! Nearest-identity search over a flat, contiguous matrix of gallery embeddings.
//!
//! Exact by default: 100,000 x 128-d floats are 51 MB, and an exhaustive scan has no recall
//! loss and no graph to rebuild on enrolment. Rows are scanned in parallel chunks, each keeping
//! only its best two *distinct* people, so a query allocates nothing per row or per person.
//! With an HNSW graph attached ([`Index::with_hnsw`]) the graph proposes candidate rows and
//! only those are scanned, with the same exact distances.
//!
//! ```
//! use recog::gallery::Index;
//! use recog::metric::Distance;
//! let rows = vec![("ada".to_string(), vec![0.0, 0.0]), ("ada".to_string(), vec![0.0, 1.0]), ("bob".to_string(), vec![3.0, 0.0])];
//! let idx = Index::new(&rows, Distance::Euclidean).unwrap();
//! let m = idx.search(&[0.0, 0.9], 0.5).unwrap();
//! assert_eq!(m.name.as_deref(), Some("ada"));
//! assert_eq!(idx.people(), 2);
//! ```

use std::sync::Arc;

use super::hnsw::{Hnsw, HnswConfig, IndexKind};
use super::{Acceptance, Match};
use crate::{Error, Progress, Result};

use crate::metric::Distance;

/// Rows per thread below which one thread is faster than spawning more.
const ROWS_PER_THREAD: usize = 16_384;

/// Candidates asked of the graph, at most, while looking for a runner-up person before the
/// exact scan takes over (a person with more photos than this fills every candidate slot).
const MAX_CANDIDATES: usize = 4096;

/// A searchable copy of a gallery's embeddings.
#[derive(Debug, Clone)]
pub struct Index {
    dim: usize,
    metric: Distance,
    names: Vec<String>,
    owner: Vec<u32>,
    /// Row -> key (the gallery's photo id), ascending.
    keys: Vec<u64>,
    data: Vec<f32>,
    threads: usize,
    hnsw: Option<Arc<Hnsw>>,
    server: Option<Arc<Server>>,
}

/// A search the database server runs (pgvector's HNSW index). It returns candidate rows
/// as (person, vector); the index recomputes their exact distances, so a threshold means
/// the same as with an in-process search.
pub trait ServerSearch: Send + Sync + std::fmt::Debug {
    /// The `count` photos nearest to `query` (fewer if the gallery has fewer).
    fn nearest(&self, query: &[f32], count: usize) -> Result<Vec<(String, Vec<f32>)>>;
    /// The `count` photos nearest to `query` of anyone but `person`: the runner-up.
    fn nearest_other(
        &self,
        query: &[f32],
        person: &str,
        count: usize,
    ) -> Result<Vec<(String, Vec<f32>)>>;
    /// The search's candidate list (HNSW's ef).
    fn set_expansion_search(&self, ef: usize) -> Result<()>;
}

/// A server-side search with the gallery's size when it was opened.
#[derive(Debug)]
struct Server {
    search: Box<dyn ServerSearch>,
    rows: usize,
    people: usize,
    candidates: usize,
}

/// Best and runner-up distinct people of a scan: (squared distance, person).
#[derive(Debug, Clone, Copy)]
struct Top2 {
    best: (f32, u32),
    second: (f32, u32),
}

impl Top2 {
    const EMPTY: Top2 = Top2 {
        best: (f32::INFINITY, u32::MAX),
        second: (f32::INFINITY, u32::MAX),
    };

    #[inline]
    fn push(&mut self, d: f32, p: u32) {
        if d < self.best.0 {
            if self.best.1 != p {
                self.second = self.best;
            }
            self.best = (d, p);
        } else if p != self.best.1 && d < self.second.0 {
            self.second = (d, p);
        }
    }

    fn merge(mut self, o: Top2) -> Top2 {
        self.push(o.best.0, o.best.1);
        self.push(o.second.0, o.second.1);
        self
    }
}

/// Squared Euclidean distance with eight independent accumulators, so the compiler can keep
/// them in one SIMD register instead of summing serially. The search's hot loop; it is not
/// `metric::distance::squared_euclidean` because changing that one's summation order would
/// shift every figure computed with it in the last bits.
#[inline]
pub fn squared_l2(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += (x - y) * (x - y);
    }
    s
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter().map(|x| x / n).collect()
    } else {
        v.to_vec()
    }
}

impl Index {
    /// Builds the index from `(person, embedding)` rows; every embedding must have the same
    /// dimension. Rows are keyed 0, 1, 2...
    pub fn new(entries: &[(String, Vec<f32>)], metric: Distance) -> Result<Self> {
        Self::from_rows(
            entries.len(),
            entries
                .iter()
                .enumerate()
                .map(|(i, (n, v))| (i as u64, n.as_str(), v.as_slice())),
            metric,
        )
    }

    /// Builds the index from `(key, person, embedding)` rows, keys strictly ascending (a
    /// gallery's photo ids): the keys an HNSW graph names its candidates by.
    pub fn keyed(entries: &[(u64, String, Vec<f32>)], metric: Distance) -> Result<Self> {
        Self::from_rows(
            entries.len(),
            entries
                .iter()
                .map(|(k, n, v)| (*k, n.as_str(), v.as_slice())),
            metric,
        )
    }

    /// Builds the index from `len` rows of (key, person, embedding), keys strictly ascending:
    /// what a caller with its vectors in one flat matrix uses instead of [`Index::keyed`].
    pub fn from_rows<'a>(
        len: usize,
        entries: impl Iterator<Item = (u64, &'a str, &'a [f32])>,
        metric: Distance,
    ) -> Result<Self> {
        let mut entries = entries.peekable();
        let dim = entries.peek().map_or(0, |e| e.2.len());
        let mut names: Vec<String> = Vec::new();
        let mut ids: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        let mut owner = Vec::with_capacity(len);
        let mut keys = Vec::with_capacity(len);
        let mut data = Vec::with_capacity(len.saturating_mul(dim));
        for (key, name, v) in entries {
            if v.len() != dim {
                return Err(Error::Shape {
                    name: format!("gallery embedding of {name}"),
                    expected: vec![dim],
                    got: vec![v.len()],
                });
            }
            let id = *ids.entry(name).or_insert_with(|| {
                names.push(name.to_string());
                (names.len() - 1) as u32
            });
            if keys.last().is_some_and(|&k| k >= key) {
                return Err(Error::InvalidArgument(
                    "index rows must have strictly ascending keys".into(),
                ));
            }
            owner.push(id);
            keys.push(key);
            match metric {
                Distance::Euclidean | Distance::SquaredEuclidean => data.extend_from_slice(v),
                Distance::Cosine => data.extend(normalized(v)),
            }
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            dim,
            metric,
            names,
            owner,
            keys,
            data,
            threads,
            hnsw: None,
            server: None,
        })
    }

    /// An index whose search runs on a database server (see [`ServerSearch`]); `rows` and
    /// `people` are the gallery's size, `candidates` the photos asked per query.
    pub fn on_server(
        search: Box<dyn ServerSearch>,
        dim: usize,
        metric: Distance,
        rows: usize,
        people: usize,
        candidates: usize,
    ) -> Self {
        Self {
            dim,
            metric,
            names: Vec::new(),
            owner: Vec::new(),
            keys: Vec::new(),
            data: Vec::new(),
            threads: 1,
            hnsw: None,
            server: Some(Arc::new(Server {
                search,
                rows,
                people,
                candidates: candidates.max(1),
            })),
        }
    }

    /// Searches through `hnsw`, a graph over this index's rows by key (see
    /// [`Index::build_hnsw`]).
    pub fn with_hnsw(mut self, hnsw: Hnsw) -> Self {
        self.hnsw = Some(Arc::new(hnsw));
        self
    }

    /// Builds an HNSW graph over the rows on all cores and searches through it.
    pub fn build_hnsw(self, config: &HnswConfig, progress: &dyn Progress) -> Result<Self> {
        let h = Hnsw::build(self.dim.max(1), config, &self.rows(), progress)?;
        Ok(self.with_hnsw(h))
    }

    /// Every row as (key, stored vector): normalised for the cosine metric, as searched.
    pub fn rows(&self) -> Vec<(u64, &[f32])> {
        self.keys
            .iter()
            .enumerate()
            .map(|(r, &k)| (k, self.row(r)))
            .collect()
    }

    fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.dim..(r + 1) * self.dim]
    }

    /// The keys of the rows, ascending.
    pub fn keys(&self) -> &[u64] {
        &self.keys
    }

    /// Changes the attached graph's search expansion (ef); an error without a graph, or
    /// while a clone of this index shares it.
    pub fn set_expansion_search(&mut self, ef: usize) -> Result<()> {
        if let Some(s) = &self.server {
            return s.search.set_expansion_search(ef);
        }
        let h = self
            .hnsw
            .as_mut()
            .and_then(Arc::get_mut)
            .ok_or_else(|| Error::InvalidArgument("no graph of its own to set ef on".into()))?;
        h.set_expansion_search(ef)
    }

    /// The attached graph, if any.
    pub fn hnsw(&self) -> Option<&Hnsw> {
        self.hnsw.as_deref()
    }

    /// How the index searches: [`IndexKind::Hnsw`] with a graph, else [`IndexKind::Exact`].
    pub fn kind(&self) -> IndexKind {
        if self.hnsw.is_some() || self.server.is_some() {
            IndexKind::Hnsw
        } else {
            IndexKind::Exact
        }
    }

    /// Limits the threads one query uses (default: all cores).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Number of photos (rows).
    pub fn len(&self) -> usize {
        self.server.as_ref().map_or(self.owner.len(), |s| s.rows)
    }

    /// Whether the index holds no photo.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of distinct people.
    pub fn people(&self) -> usize {
        self.server.as_ref().map_or(self.names.len(), |s| s.people)
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric.
    pub fn metric(&self) -> Distance {
        self.metric
    }

    fn scan(&self, q: &[f32], rows: std::ops::Range<usize>) -> Top2 {
        let mut t = Top2::EMPTY;
        let d = self.dim;
        for r in rows {
            t.push(squared_l2(&self.data[r * d..(r + 1) * d], q), self.owner[r]);
        }
        t
    }

    fn distance(&self, squared: f32) -> f32 {
        match self.metric {
            Distance::Euclidean => squared.max(0.0).sqrt(),
            Distance::SquaredEuclidean => squared.max(0.0),
            // For unit vectors |a - b|^2 = 2 - 2 cos(a, b).
            Distance::Cosine => squared.max(0.0) / 2.0,
        }
    }

    /// The nearest person (minimum over their photos), the runner-up person's distance, and
    /// "unknown" when the nearest is farther than `threshold`. `query` must have the index's
    /// dimension.
    pub fn search(&self, query: &[f32], threshold: f32) -> Result<Match> {
        if query.len() != self.dim {
            return Err(Error::Shape {
                name: "query embedding".into(),
                expected: vec![self.dim],
                got: vec![query.len()],
            });
        }
        let q = match self.metric {
            Distance::Euclidean | Distance::SquaredEuclidean => query.to_vec(),
            Distance::Cosine => normalized(query),
        };
        if let Some(s) = &self.server {
            return self.search_server(s, &q, threshold);
        }
        let top = match &self.hnsw {
            Some(h) => self.scan_candidates(h, &q)?,
            None => self.scan_all(&q),
        };
        let name_of = |p: u32| self.names.get(p as usize).cloned();
        let nearest = name_of(top.best.1);
        let distance = if nearest.is_some() {
            self.distance(top.best.0)
        } else {
            f32::MAX
        };
        let runner_up = name_of(top.second.1).map(|_| self.distance(top.second.0));
        Ok(Match::by_distance(nearest, distance, runner_up, threshold))
    }

    /// Exact distances to the graph's candidates. Asks for more candidates while they hold
    /// no runner-up person (one person's many photos can fill them), then scans everything.
    /// The server's candidates re-ranked exactly; when none is of a second person, the
    /// server is asked for the nearest photo of anyone else.
    fn search_server(&self, s: &Server, q: &[f32], threshold: f32) -> Result<Match> {
        let exact = |rows: Vec<(String, Vec<f32>)>| -> Result<Vec<(f32, String)>> {
            rows.into_iter()
                .map(|(name, v)| {
                    if v.len() != self.dim {
                        return Err(Error::Shape {
                            name: format!("gallery embedding of {name}"),
                            expected: vec![self.dim],
                            got: vec![v.len()],
                        });
                    }
                    let v = match self.metric {
                        Distance::Cosine => normalized(&v),
                        _ => v,
                    };
                    Ok((squared_l2(&v, q), name))
                })
                .collect()
        };
        let mut found = exact(s.search.nearest(q, s.candidates)?)?;
        found.sort_by(|a, b| a.0.total_cmp(&b.0));
        let Some((best, nearest)) = found.first().cloned() else {
            return Ok(Match::by_distance(None, f32::MAX, None, threshold));
        };
        let mut second = found.iter().find(|(_, n)| *n != nearest).cloned();
        if second.is_none() && s.people > 1 {
            second = exact(s.search.nearest_other(q, &nearest, 1)?)?
                .into_iter()
                .min_by(|a, b| a.0.total_cmp(&b.0));
        }
        Ok(Match::by_distance(
            Some(nearest),
            self.distance(best),
            second.map(|(d, _)| self.distance(d)),
            threshold,
        ))
    }

    fn scan_candidates(&self, h: &Hnsw, q: &[f32]) -> Result<Top2> {
        let mut count = h.config().candidates;
        loop {
            let mut t = Top2::EMPTY;
            for k in h.search(q, count)? {
                if let Ok(r) = self.keys.binary_search(&k) {
                    t.push(squared_l2(self.row(r), q), self.owner[r]);
                }
            }
            if t.second.1 != u32::MAX || self.names.len() < 2 || count >= self.len() {
                return Ok(t);
            }
            if count >= MAX_CANDIDATES {
                return Ok(self.scan_all(q));
            }
            count = count.saturating_mul(4);
        }
    }

    fn scan_all(&self, q: &[f32]) -> Top2 {
        let n = self.len();
        let threads = self.threads.min(n.div_ceil(ROWS_PER_THREAD)).max(1);
        if threads == 1 {
            self.scan(q, 0..n)
        } else {
            let chunk = n.div_ceil(threads);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| s.spawn(move || self.scan(q, t * chunk..((t + 1) * chunk).min(n))))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or(Top2::EMPTY))
                    .fold(Top2::EMPTY, Top2::merge)
            })
        }
    }

    /// [`Index::search`] under any decision rule.
    pub fn decide(&self, query: &[f32], acceptance: &Acceptance) -> Result<Match> {
        Ok(acceptance.decide(self.search(query, f32::MAX)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::distance::euclidean;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, people: usize, dim: usize, seed: u64) -> Vec<(String, Vec<f32>)> {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                (
                    format!("p{}", i % people),
                    (0..dim).map(|_| r.random_range(-1.0f32..1.0)).collect(),
                )
            })
            .collect()
    }

    /// Against the naive per-person minimum with a hash map (`gallery::identify`), with
    /// several threads over chunks smaller than the data so the merge is exercised.
    #[test]
    fn matches_naive_search() {
        let g = random(40_000, 700, 19, 1);
        let queries = random(30, 1, 19, 2);
        let mut idx = Index::new(&g, Distance::Euclidean).unwrap().with_threads(3);
        assert_eq!(idx.people(), 700);
        for (_, q) in &queries {
            let a = idx.search(q, 1.0).unwrap();
            let b = super::super::identify(&g, q, 1.0);
            assert_eq!(a.nearest, b.nearest);
            assert!((a.distance - b.distance).abs() < 1e-4);
            assert!((a.runner_up.unwrap() - b.runner_up.unwrap()).abs() < 1e-4);
            assert_eq!(a.name, b.name);
        }
        idx = idx.with_threads(1);
        let a = idx.search(&queries[0].1, 0.0).unwrap();
        assert_eq!(a.name, None);
        assert!(a.nearest.is_some());
    }

    /// Cosine distance `1 - a.b / (|a||b|)` by hand; self-distance 0 for both metrics.
    #[test]
    fn cosine_and_self_distance() {
        let g = vec![
            ("a".to_string(), vec![3.0, 0.0]),
            ("b".to_string(), vec![0.0, 1.0]),
        ];
        let idx = Index::new(&g, Distance::Cosine).unwrap();
        let m = idx.search(&[1.0, 1.0], 1.0).unwrap();
        let want = 1.0 - 1.0 / 2f32.sqrt();
        assert!((m.distance - want).abs() < 1e-6);
        assert!((m.runner_up.unwrap() - want).abs() < 1e-6);
        let m = idx.search(&[6.0, 0.0], 0.0).unwrap();
        assert_eq!(m.name.as_deref(), Some("a"));
        assert!(m.distance.abs() < 1e-6);
        let e = Index::new(&g, Distance::Euclidean).unwrap();
        assert_eq!(e.search(&[0.0, 1.0], 0.0).unwrap().distance, 0.0);
        assert!(
            (squared_l2(&[1.0; 13], &[0.0; 13]) - euclidean(&[1.0; 13], &[0.0; 13]).powi(2)).abs()
                < 1e-5
        );
    }

    #[test]
    fn errors_on_shapes_and_empty() {
        let g = vec![
            ("a".to_string(), vec![1.0, 0.0]),
            ("b".to_string(), vec![1.0]),
        ];
        assert!(matches!(
            Index::new(&g, Distance::Euclidean),
            Err(Error::Shape { .. })
        ));
        let idx = Index::new(&g[..1], Distance::Euclidean).unwrap();
        assert!(matches!(idx.search(&[1.0], 1.0), Err(Error::Shape { .. })));
        let empty = Index::new(&[], Distance::Euclidean).unwrap();
        let m = empty.search(&[], 1.0).unwrap();
        assert_eq!(m.name, None);
        assert_eq!(m.nearest, None);
    }
}
