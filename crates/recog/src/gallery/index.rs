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

    /// Builds the index from a row-major matrix it takes over, without a copy: row `r` is
    /// key `r`, a photo of `names[owner[r]]` (names distinct). What a caller holding
    /// millions of rows uses, where [`Index::from_rows`] would need the matrix twice.
    pub fn from_matrix(
        mut data: Vec<f32>,
        dim: usize,
        names: Vec<String>,
        owner: Vec<u32>,
        metric: Distance,
    ) -> Result<Self> {
        if owner.len().checked_mul(dim) != Some(data.len()) {
            return Err(Error::Shape {
                name: "gallery matrix".into(),
                expected: vec![owner.len(), dim],
                got: vec![data.len()],
            });
        }
        if owner.iter().any(|&o| o as usize >= names.len()) {
            return Err(Error::InvalidArgument(
                "a row's owner is not among the names".into(),
            ));
        }
        if metric == Distance::Cosine && dim > 0 {
            for row in data.chunks_exact_mut(dim) {
                let v = normalized(row);
                row.copy_from_slice(&v);
            }
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            dim,
            metric,
            names,
            keys: (0..owner.len() as u64).collect(),
            owner,
            data,
            threads,
            hnsw: None,
            server: None,
        })
    }

    /// Row `r` as stored (normalised for the cosine metric); `r` below [`Index::len`].
    pub(crate) fn row_at(&self, r: usize) -> &[f32] {
        self.row(r)
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

    /// Brings one person's rows in line with `rows`, their (key, embedding) pairs as the
    /// gallery now holds them: rows the gallery no longer has are dropped (from the graph
    /// too), new ones added, so an enrolment or a removal costs about one pass over memory
    /// instead of re-reading the whole gallery and its graph. Returns `false`, changing
    /// nothing, where the change cannot be made in place: a server-side index, an empty
    /// index, a graph shared with a clone, or a new key that another person's row holds
    /// (the gallery changed elsewhere); the caller then reads the gallery again.
    pub fn sync_person(&mut self, name: &str, rows: &[(u64, Vec<f32>)]) -> Result<bool> {
        if self.server.is_some() || self.is_empty() {
            return Ok(false);
        }
        for (_, v) in rows {
            if v.len() != self.dim {
                return Err(Error::Shape {
                    name: format!("gallery embedding of {name}"),
                    expected: vec![self.dim],
                    got: vec![v.len()],
                });
            }
        }
        let stored: Vec<(u64, Vec<f32>)> = rows
            .iter()
            .map(|(k, v)| {
                let v = match self.metric {
                    Distance::Cosine => normalized(v),
                    Distance::Euclidean | Distance::SquaredEuclidean => v.clone(),
                };
                (*k, v)
            })
            .collect();
        let id = self.names.iter().position(|n| n == name);
        let wanted: std::collections::HashMap<u64, &[f32]> =
            stored.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        // This person's rows whose key is gone, or now names another vector.
        let stale: Vec<usize> = match id {
            Some(id) => (0..self.len())
                .filter(|&r| self.owner[r] as usize == id)
                .filter(|&r| wanted.get(&self.keys[r]) != Some(&self.row(r)))
                .collect(),
            None => Vec::new(),
        };
        let kept = |k: u64| match (id, self.keys.binary_search(&k)) {
            (Some(id), Ok(r)) => self.owner[r] as usize == id && !stale.contains(&r),
            _ => false,
        };
        let added: Vec<&(u64, Vec<f32>)> = stored.iter().filter(|(k, _)| !kept(*k)).collect();
        if added.iter().any(|(k, _)| {
            self.keys
                .binary_search(k)
                .is_ok_and(|r| Some(self.owner[r] as usize) != id)
        }) {
            return Ok(false);
        }
        if stale.is_empty() && added.is_empty() {
            return Ok(true);
        }
        let graph = match &mut self.hnsw {
            Some(h) => match Arc::get_mut(h) {
                Some(h) => Some(&*h),
                None => return Ok(false),
            },
            None => None,
        };
        if let Some(h) = graph {
            for &r in &stale {
                h.remove(self.keys[r])?;
            }
            let new: Vec<(u64, &[f32])> = added.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            h.add_all(&new, &crate::NoProgress)?;
        }
        self.drop_rows(&stale);
        let id = match self.names.iter().position(|n| n == name) {
            Some(id) => id,
            None => {
                self.names.push(name.to_string());
                self.names.len() - 1
            }
        };
        for (k, v) in added {
            let r = self.keys.partition_point(|&x| x < *k);
            self.keys.insert(r, *k);
            self.owner.insert(r, id as u32);
            self.data
                .splice(r * self.dim..r * self.dim, v.iter().copied());
        }
        // A person left with no photo is no longer one of the people.
        if !self.owner.iter().any(|&o| o as usize == id) {
            self.names.remove(id);
            for o in &mut self.owner {
                if *o as usize > id {
                    *o -= 1;
                }
            }
        }
        Ok(true)
    }

    /// Removes the rows `stale` (ascending) from the matrix, keys and owners.
    fn drop_rows(&mut self, stale: &[usize]) {
        if stale.is_empty() {
            return;
        }
        let d = self.dim;
        let mut next = stale.iter().peekable();
        let mut w = 0;
        for r in 0..self.keys.len() {
            if next.peek() == Some(&&r) {
                next.next();
                continue;
            }
            if w != r {
                self.keys[w] = self.keys[r];
                self.owner[w] = self.owner[r];
                self.data.copy_within(r * d..(r + 1) * d, w * d);
            }
            w += 1;
        }
        self.keys.truncate(w);
        self.owner.truncate(w);
        self.data.truncate(w * d);
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

    /// A gallery's (key, person, embedding) rows as SQLite keeps them, for the model below.
    type Rows = Vec<(u64, String, Vec<f32>)>;

    /// What [`Index::sync_person`] is given: one person's rows.
    fn of(rows: &Rows, name: &str) -> Vec<(u64, Vec<f32>)> {
        rows.iter()
            .filter(|(_, n, _)| n == name)
            .map(|(k, _, v)| (*k, v.clone()))
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Enrolments and removals applied in place give the index a fresh read of the
        /// gallery would: the same keys, matrix, owners and people, the same answers, and
        /// a graph holding exactly the rows. New photos take SQLite's rowid (the largest
        /// plus one), so a removed last photo's id comes back under another person.
        #[test]
        fn an_index_kept_in_place_equals_a_fresh_read(
            ops in proptest::collection::vec((0u8..6, 0usize..4), 1..24),
            cosine in proptest::bool::ANY,
            graph in proptest::bool::ANY,
        ) {
            let metric = if cosine { Distance::Cosine } else { Distance::Euclidean };
            let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(ops.len() as u64);
            let mut vector = || -> Vec<f32> { (0..6).map(|_| r.random_range(-1.0f32..1.0)).collect() };
            let mut rows: Rows = (0..5).map(|k| (k, format!("p{}", k % 2), vector())).collect();
            let mut idx = Index::keyed(&rows, metric).unwrap();
            if graph {
                let config = HnswConfig { reduction: super::super::hnsw::Reduction::Off, ..HnswConfig::default() };
                idx = idx.build_hnsw(&config, &crate::NoProgress).unwrap();
            }
            for (person, photos) in ops {
                let name = format!("p{person}");
                if photos == 0 {
                    rows.retain(|(_, n, _)| *n != name);
                } else {
                    for _ in 0..photos {
                        let key = rows.iter().map(|(k, _, _)| k + 1).max().unwrap_or(0);
                        rows.push((key, name.clone(), vector()));
                    }
                }
                let was_empty = idx.is_empty();
                let in_place = idx.sync_person(&name, &of(&rows, &name)).unwrap();
                if was_empty {
                    // Nothing to build on: the caller reads the gallery afresh.
                    proptest::prop_assert!(!in_place);
                    break;
                }
                proptest::prop_assert!(in_place);
                let fresh = Index::keyed(&rows, metric).unwrap();
                proptest::prop_assert_eq!(&idx.keys, &fresh.keys);
                proptest::prop_assert_eq!(&idx.data, &fresh.data);
                proptest::prop_assert_eq!(idx.people(), fresh.people());
                let owners = |i: &Index| i.owner.iter().map(|&o| i.names[o as usize].clone()).collect::<Vec<_>>();
                proptest::prop_assert_eq!(owners(&idx), owners(&fresh));
                if let Some(h) = idx.hnsw() {
                    proptest::prop_assert_eq!(h.len(), rows.len());
                    proptest::prop_assert!(rows.iter().all(|(k, _, _)| h.contains(*k)));
                }
                for (_, _, v) in rows.iter().step_by(3) {
                    let (a, b) = (idx.search(v, 0.5).unwrap(), fresh.search(v, 0.5).unwrap());
                    proptest::prop_assert_eq!((a.nearest, a.distance, a.runner_up), (b.nearest, b.distance, b.runner_up));
                }
            }
        }
    }

    /// The in-place update refuses, changing nothing, what only a fresh read can get right:
    /// a new key that another person's row holds (the gallery changed elsewhere), a graph
    /// shared with a clone, a server-side or empty index; and a wrong dimension is an error.
    #[test]
    fn an_index_not_kept_in_place_when_the_gallery_changed_elsewhere() {
        let rows: Rows = (0..4)
            .map(|k| (k, format!("p{}", k % 2), vec![k as f32; 3]))
            .collect();
        let mut idx = Index::keyed(&rows, Distance::Euclidean).unwrap();
        let before = idx.clone();
        // Key 1 is p1's; p0 cannot take it without p1's row going first.
        assert!(!idx
            .sync_person(
                "p0",
                &[(0, vec![0.0; 3]), (1, vec![9.0; 3]), (2, vec![2.0; 3])]
            )
            .unwrap());
        assert_eq!((&idx.keys, &idx.data), (&before.keys, &before.data));
        let err = idx.sync_person("p0", &[(9, vec![0.0; 2])]).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }), "{err}");
        let config = HnswConfig {
            reduction: super::super::hnsw::Reduction::Off,
            ..HnswConfig::default()
        };
        let mut shared = idx.build_hnsw(&config, &crate::NoProgress).unwrap();
        let clone = shared.clone();
        assert!(!shared.sync_person("p2", &[(7, vec![7.0; 3])]).unwrap());
        drop(clone);
        assert!(shared.sync_person("p2", &[(7, vec![7.0; 3])]).unwrap());
        assert_eq!(shared.hnsw().unwrap().len(), 5);
        let mut empty = Index::keyed(&[], Distance::Euclidean).unwrap();
        assert!(!empty.sync_person("p0", &[(0, vec![0.0; 3])]).unwrap());
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
