//! Exact gallery search: random unit vectors in a temporary SQLite gallery; loading the
//! index, searching on all cores and on one, against the plain reference search
//! ([`crate::gallery::identify`], a hash map per query).
//!
//! ```
//! use recog::bench::gallery::GalleryBenchParams;
//! let r = GalleryBenchParams { entries: 200, per_person: 2, dim: 8, queries: 5 }
//!     .check().unwrap().run().unwrap();
//! assert_eq!(r.people, 100);
//! assert_eq!(r.reference_agreement, "5/5");
//! ```

use std::time::Instant;

use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::{mean, percentile};
use crate::face::DLIB_VERIFICATION_DISTANCE;
use crate::gallery::{self, Gallery, Index, ModelId, NewPhoto};
use crate::{Error, Result};

/// The synthetic gallery.
#[derive(Debug, Clone)]
pub struct GalleryBenchParams {
    /// Gallery photos (rows).
    pub entries: usize,
    /// Photos per person.
    pub per_person: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// Timed queries.
    pub queries: usize,
}

/// Checked [`GalleryBenchParams`].
#[derive(Debug, Clone)]
pub struct ValidGalleryBenchParams(GalleryBenchParams);

impl GalleryBenchParams {
    /// Sizes must be positive.
    pub fn check(self) -> Result<ValidGalleryBenchParams> {
        if self.entries == 0 || self.dim == 0 || self.queries == 0 {
            return Err(Error::InvalidArgument(
                "entries, dim and queries must be positive".into(),
            ));
        }
        Ok(ValidGalleryBenchParams(GalleryBenchParams {
            per_person: self.per_person.max(1),
            ..self
        }))
    }
}

/// Search times.
#[derive(Debug, Clone, Serialize)]
pub struct GalleryBenchReport {
    /// Rows.
    pub entries: usize,
    /// People.
    pub people: usize,
    /// Dimension.
    pub dim: usize,
    /// Timed queries.
    pub queries: usize,
    /// Cores used by the index.
    pub threads: usize,
    /// Writing the gallery in one transaction, s.
    pub sqlite_write_s: f64,
    /// Opening it and loading the index, s.
    pub load_index_s: f64,
    /// Query time on all cores, ms.
    pub ms_mean: f64,
    /// Median, ms.
    pub ms_p50: f64,
    /// 99th percentile, ms.
    pub ms_p99: f64,
    /// Query time on one core, ms.
    pub ms_mean_1_thread: f64,
    /// The peer.
    pub reference: String,
    /// The peer's query time, ms.
    pub reference_ms_mean: f64,
    /// Peer time over the index's.
    pub speedup_vs_reference: f64,
    /// Queries where both found the same nearest person, "k/n".
    pub reference_agreement: String,
    /// The p99 target, ms.
    pub target_ms: f64,
}

impl ValidGalleryBenchParams {
    /// Builds the gallery in a temporary folder (removed after), then times the searches.
    pub fn run(&self) -> Result<GalleryBenchReport> {
        let a = &self.0;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let unit = |rng: &mut rand_chacha::ChaCha8Rng| -> Vec<f32> {
            let v: Vec<f32> = (0..a.dim).map(|_| rng.random::<f32>() - 0.5).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.into_iter().map(|x| x / n).collect()
        };
        let mut people: Vec<(String, Vec<NewPhoto>)> = Vec::new();
        for i in 0..a.entries {
            if i % a.per_person == 0 {
                people.push((format!("person{:06}", i / a.per_person), Vec::new()));
            }
            if let Some(last) = people.last_mut() {
                last.1.push(NewPhoto {
                    path: format!("synthetic/{i}"),
                    sha256: String::new(),
                    embedding: unit(&mut rng),
                    thumbnail: None,
                });
            }
        }
        let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let db = dir.path().join("bench.sqlite");
        let model = ModelId {
            name: "synthetic".into(),
            sha256: "0".into(),
            dim: a.dim,
        };
        let t = Instant::now();
        Gallery::open(&db)?.enroll_many(&model, &people)?;
        let sqlite_write_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let g = Gallery::open(&db)?;
        let stored = g.embeddings()?;
        let index = g.index()?;
        let load_index_s = t.elapsed().as_secs_f64();
        // Queries: a stored photo plus noise, so each has a true nearest person.
        let queries: Vec<Vec<f32>> = (0..a.queries)
            .map(|_| {
                let r = &stored[rng.random_range(0..stored.len())].1;
                r.iter()
                    .map(|x| x + (rng.random::<f32>() - 0.5) * 0.02)
                    .collect()
            })
            .collect();
        let threshold = DLIB_VERIFICATION_DISTANCE;
        let time = |idx: &Index| -> Result<Vec<f64>> {
            let mut ms = Vec::new();
            let _ = idx.search(&queries[0], threshold)?;
            for q in &queries {
                let t = Instant::now();
                std::hint::black_box(idx.search(q, threshold)?);
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            ms.sort_by(|x, y| x.total_cmp(y));
            Ok(ms)
        };
        let all = time(&index)?;
        let one = time(&index.clone().with_threads(1))?;
        let n_ref = a.queries.min(20);
        let mut ref_ms = Vec::new();
        let mut agree = 0;
        for q in &queries[..n_ref] {
            let t = Instant::now();
            let m = gallery::identify(&stored, q, threshold);
            ref_ms.push(t.elapsed().as_secs_f64() * 1e3);
            if index.search(q, threshold)?.nearest == m.nearest {
                agree += 1;
            }
        }
        Ok(GalleryBenchReport {
            entries: a.entries,
            people: people.len(),
            dim: a.dim,
            queries: a.queries,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            sqlite_write_s,
            load_index_s,
            ms_mean: mean(&all),
            ms_p50: percentile(&all, 0.5),
            ms_p99: percentile(&all, 0.99),
            ms_mean_1_thread: mean(&one),
            reference: "gallery::identify (hash map per query)".into(),
            reference_ms_mean: mean(&ref_ms),
            speedup_vs_reference: mean(&ref_ms) / mean(&all).max(1e-9),
            reference_agreement: format!("{agree}/{n_ref}"),
            target_ms: 20.0,
        })
    }
}

impl std::fmt::Display for GalleryBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "exact search, {} entries ({} people) x {}-d, {} queries:",
            self.entries, self.people, self.dim, self.queries
        )?;
        let met = if self.ms_p99 < self.target_ms {
            "met"
        } else {
            "not met"
        };
        writeln!(
            f,
            "  {} threads: {:.2} ms mean, {:.2} ms p50, {:.2} ms p99 (target < 20 ms: {met})",
            self.threads, self.ms_mean, self.ms_p50, self.ms_p99
        )?;
        writeln!(f, "  1 thread: {:.2} ms mean", self.ms_mean_1_thread)?;
        writeln!(
            f,
            "  reference ({}): {:.2} ms mean; {:.1}x faster; same answer on {}",
            self.reference,
            self.reference_ms_mean,
            self.speedup_vs_reference,
            self.reference_agreement
        )?;
        write!(
            f,
            "  SQLite: write {:.1} s (one transaction), open + load index {:.2} s",
            self.sqlite_write_s, self.load_index_s
        )
    }
}
