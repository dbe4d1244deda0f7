//! Gallery search at scale: a synthetic gallery of identities clustered like face embeddings,
//! searched exactly (the peer: every photo compared) and through an HNSW graph, with the
//! graph's answers scored against the exact ones.
//!
//! How the identities and their photos are drawn is a [`Synthesis`]. The default, [`Synthesis::Lfw`],
//! copies the second-order shape of real embeddings: MobileFaceNet's 192-d descriptors of LFW
//! span only a 60-dimensional subspace, with the between-person variance falling over it and
//! the within-person variance nearly flat (measured by `tools/reference/gallery_spectrum.py`).
//! [`Synthesis::FullRank`] spreads identities over all coordinates: a harder case for a graph
//! than any face network we measured. With the default spread, two photos of one person lie
//! about 0.7 apart and two people about 1.4 under either, as L2-normalised face embeddings
//! do. The report gives the measured distances.
//!
//! Probes are new photos of enrolled identities (genuine) and photos of identities never
//! enrolled (strangers). The decision threshold is calibrated on a separate set of strangers
//! at `far`, from the exact nearest distances, as `gallery calibrate` does.
//!
//! ```
//! use recog::bench::gallery::GalleryBenchParams;
//! use recog::gallery::IndexKind;
//! let r = GalleryBenchParams { people: 300, probes: 40, ..GalleryBenchParams::default() }
//!     .check().unwrap().run(&recog::NoProgress).unwrap();
//! assert_eq!(r.photos, 600);
//! let h = r.hnsw.unwrap();
//! assert!(h.points[0].recall_at_1 > 0.9);
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{mean, percentile};
use crate::gallery::hnsw::{fingerprint, Stamp};
use crate::gallery::{calibrate, Acceptance, Hnsw, HnswConfig, Index, IndexKind, Match};
use crate::metric::Distance;
use crate::{Error, Progress, Result};

/// How the synthetic identities and photos are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Synthesis {
    /// Shaped like MobileFaceNet's embeddings of LFW: identities from a Gaussian with the
    /// measured between-person eigenvalues and mean, photos with the measured within-person
    /// variances (scaled to `spread`), in a random 61-dimensional subspace of `dim` (at
    /// least 61). Those 60 directions hold all the variance of the real descriptors.
    #[default]
    Lfw,
    /// Unit identities from a Gaussian whose variance falls slowly over all `dim`
    /// coordinates (1 / (1 + i / 16)), photos with isotropic noise: every coordinate used,
    /// which real face embeddings do not do, and the hardest case for a graph.
    FullRank,
}

// Made by tools/reference/gallery_spectrum.py (MobileFaceNet, the default network, on LFW).
// 2899 photos of 423 people; numerical rank 60 of 192
// trace between 0.7340, within 0.2516 (of it along the first 60 between directions: 0.2516)
const LFW_MEAN_NORM: f32 = 0.1313;
const LFW_BETWEEN: [f32; 60] = [
    3.908e-02, 3.464e-02, 3.253e-02, 3.082e-02, 2.843e-02, 2.825e-02, 2.523e-02, 2.472e-02,
    2.224e-02, 2.169e-02, 1.968e-02, 1.910e-02, 1.905e-02, 1.838e-02, 1.730e-02, 1.655e-02,
    1.625e-02, 1.546e-02, 1.488e-02, 1.467e-02, 1.410e-02, 1.334e-02, 1.301e-02, 1.256e-02,
    1.250e-02, 1.185e-02, 1.163e-02, 1.091e-02, 1.032e-02, 9.950e-03, 9.791e-03, 9.237e-03,
    8.996e-03, 8.769e-03, 8.256e-03, 7.853e-03, 7.755e-03, 7.577e-03, 7.178e-03, 6.807e-03,
    6.585e-03, 6.232e-03, 6.118e-03, 5.611e-03, 5.179e-03, 5.074e-03, 4.953e-03, 4.628e-03,
    4.049e-03, 3.913e-03, 3.846e-03, 3.553e-03, 3.410e-03, 3.022e-03, 2.570e-03, 2.014e-03,
    1.479e-03, 3.874e-04, 1.244e-05, 5.189e-06,
];
const LFW_WITHIN: [f32; 60] = [
    3.554e-03, 3.965e-03, 3.684e-03, 3.762e-03, 4.403e-03, 3.860e-03, 3.930e-03, 3.944e-03,
    4.951e-03, 4.629e-03, 4.784e-03, 4.064e-03, 4.669e-03, 4.703e-03, 4.702e-03, 4.609e-03,
    4.823e-03, 4.836e-03, 4.844e-03, 5.188e-03, 4.460e-03, 4.835e-03, 4.648e-03, 4.633e-03,
    4.935e-03, 4.531e-03, 4.896e-03, 4.954e-03, 4.991e-03, 5.097e-03, 4.302e-03, 5.299e-03,
    4.401e-03, 4.264e-03, 5.000e-03, 4.549e-03, 4.589e-03, 4.503e-03, 4.438e-03, 4.503e-03,
    4.716e-03, 4.528e-03, 4.714e-03, 4.317e-03, 4.850e-03, 4.268e-03, 4.545e-03, 4.364e-03,
    4.005e-03, 4.323e-03, 4.101e-03, 3.928e-03, 3.880e-03, 4.125e-03, 4.232e-03, 2.563e-03,
    1.851e-03, 5.043e-04, 2.311e-05, 7.720e-06,
];

/// The synthetic gallery and what to run on it.
#[derive(Debug, Clone)]
pub struct GalleryBenchParams {
    /// Enrolled identities.
    pub people: usize,
    /// Photos per identity.
    pub per_person: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// Timed probes, half genuine, half strangers (plus half as many strangers again for
    /// the calibration).
    pub probes: usize,
    /// [`IndexKind::Exact`]: the exact search alone; otherwise the graph too.
    pub index: IndexKind,
    /// The graph's parameters.
    pub hnsw: HnswConfig,
    /// False-accept rate per probe the threshold is calibrated for.
    pub far: f64,
    /// Norm of a photo's noise around its identity, before renormalising.
    pub spread: f32,
    /// How identities and photos are drawn.
    pub synthesis: Synthesis,
    /// Seed of the generator.
    pub seed: u64,
    /// Search expansions (ef) to measure, one graph for all; empty: the config's.
    pub sweep: Vec<usize>,
    /// Keep the graph in this file: reused when it holds this gallery (same seed, sizes and
    /// graph parameters), else built and saved there. A temporary file when `None`.
    pub graph: Option<std::path::PathBuf>,
    /// A PostgreSQL server with pgvector (`postgres://...`): the same gallery is loaded into
    /// a database of its own there (`recog_bench_gallery`, kept for the next run with the
    /// same gallery) and searched through pgvector's HNSW index with the same graph
    /// parameters and ef sweep.
    pub postgres: Option<String>,
}

impl Default for GalleryBenchParams {
    /// 100,000 identities x 2 photos, 192-d (MobileFaceNet's width), 2,000 probes, HNSW
    /// with the default graph, FAR 1%.
    fn default() -> Self {
        Self {
            people: 100_000,
            per_person: 2,
            dim: 192,
            probes: 2_000,
            index: IndexKind::Hnsw,
            hnsw: HnswConfig::default(),
            far: 0.01,
            spread: 0.5,
            synthesis: Synthesis::Lfw,
            seed: 7,
            sweep: Vec::new(),
            graph: None,
            postgres: None,
        }
    }
}

/// Checked [`GalleryBenchParams`].
#[derive(Debug, Clone)]
pub struct ValidGalleryBenchParams(GalleryBenchParams);

impl GalleryBenchParams {
    /// Sizes positive, `far` in (0, 1), and the gallery's floats addressable.
    pub fn check(self) -> Result<ValidGalleryBenchParams> {
        if self.people == 0 || self.per_person == 0 || self.dim == 0 || self.probes < 2 {
            return Err(Error::InvalidArgument(
                "people, photos per person and dim must be positive, probes at least 2".into(),
            ));
        }
        if !(self.far > 0.0 && self.far < 1.0) {
            return Err(Error::InvalidArgument(format!(
                "far {}: must be in (0, 1)",
                self.far
            )));
        }
        if !(self.spread >= 0.0 && self.spread.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "spread {}: must be finite and >= 0",
                self.spread
            )));
        }
        if u32::try_from(self.people).is_err() {
            return Err(Error::InvalidArgument(format!(
                "{} identities: at most {}",
                self.people,
                u32::MAX
            )));
        }
        self.people
            .checked_mul(self.per_person)
            .and_then(|n| n.checked_mul(self.dim))
            .and_then(|n| n.checked_mul(4))
            .ok_or_else(|| Error::InvalidArgument("gallery too large to address".into()))?;
        if self.synthesis == Synthesis::Lfw && self.dim <= LFW_BETWEEN.len() {
            return Err(Error::InvalidArgument(format!(
                "dim {}: the LFW-shaped synthesis needs more than {} dimensions",
                self.dim,
                LFW_BETWEEN.len()
            )));
        }
        self.hnsw.check()?;
        if self.sweep.contains(&0) {
            return Err(Error::InvalidArgument("ef 0 in the sweep".into()));
        }
        Ok(ValidGalleryBenchParams(self))
    }
}

/// Query times, ms.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Latency {
    fn of(mut ms: Vec<f64>) -> Self {
        ms.sort_by(|a, b| a.total_cmp(b));
        Self {
            mean_ms: mean(&ms),
            p50_ms: percentile(&ms, 0.5),
            p99_ms: percentile(&ms, 0.99),
            max_ms: ms.last().copied().unwrap_or(0.0),
        }
    }
}

/// The graph searched with one ef, against the exact search.
#[derive(Debug, Clone, Serialize)]
pub struct HnswPoint {
    /// Search expansion.
    pub ef: usize,
    /// Query times (graph + exact re-ranking of the candidates), one thread.
    pub latency: Latency,
    /// Genuine probes whose nearest person is the exact search's.
    pub recall_at_1: f64,
    /// Probes (genuine and strangers) named or rejected exactly as the exact search does.
    pub decision_agreement: f64,
    /// Probes decided differently.
    pub decisions_differing: usize,
    /// Exact p99 over the graph's.
    pub speedup_p99: f64,
}

/// The graph's figures, against the exact search.
#[derive(Debug, Clone, Serialize)]
pub struct HnswReport {
    /// The graph's parameters (`expansion_search`: the first point's).
    pub config: HnswConfig,
    /// Building it on all cores, s: this run's part when it went on from a graph file
    /// holding `rows_before` photos; `None` when the file held the whole gallery.
    pub build_s: Option<f64>,
    /// Photos the graph file already held ([`ValidGalleryBenchParams::build_graph`]).
    pub rows_before: usize,
    /// Dimension of the graph's vectors (below the gallery's under [`crate::gallery::Reduction::Pca`]).
    pub graph_dim: usize,
    /// Graph and its vectors, bytes.
    pub graph_bytes: usize,
    /// Its file, bytes.
    pub file_bytes: u64,
    /// Writing the file, s.
    pub save_s: f64,
    /// Reading it back (checksum included), s.
    pub load_s: f64,
    /// One point per ef.
    pub points: Vec<HnswPoint>,
}

/// What [`ValidGalleryBenchParams::build_graph`] did.
#[derive(Debug, Clone, Serialize)]
pub struct GraphBuild {
    /// The graph file.
    pub file: std::path::PathBuf,
    /// Photos in the gallery.
    pub photos: usize,
    /// Photos the file held before.
    pub rows_before: usize,
    /// Photos it holds now: the gallery's when the build is complete.
    pub rows: usize,
    /// This call's building, s; `None` when the file was complete already.
    pub build_s: Option<f64>,
}

impl GraphBuild {
    /// Whether the graph holds the whole gallery.
    pub fn is_complete(&self) -> bool {
        self.rows == self.photos
    }
}

impl std::fmt::Display for GraphBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "graph {}: {} of {} photos (held {} before",
            self.file.display(),
            self.rows,
            self.photos,
            self.rows_before
        )?;
        match self.build_s {
            Some(s) => write!(f, "; {s:.0} s of building this run)")?,
            None => write!(f, ")")?,
        }
        if !self.is_complete() {
            write!(f, "; run the same command again to go on")?;
        }
        Ok(())
    }
}

/// A graph read from its file or started, and grown.
struct Grown {
    graph: Hnsw,
    rows_before: usize,
    build_s: Option<f64>,
    /// (key, fingerprint) of the rows in the graph.
    keys: Vec<(u64, u64)>,
}

/// The name of identity `i`.
fn name(i: usize) -> String {
    format!("id{i:08}")
}

/// Seeds the genuine probes' choice of people, apart from the gallery's own stream.
const PROBE_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

/// pgvector's figures on the same gallery, against the exact search.
#[derive(Debug, Clone, Serialize)]
pub struct PgvectorReport {
    /// The server's version.
    pub server: String,
    /// Enrolling the gallery (one transaction per 10,000 identities), s; `None` when the
    /// database from an earlier run held this gallery.
    pub insert_s: Option<f64>,
    /// Building the HNSW index on the server, s; `None` when it existed.
    pub build_s: Option<f64>,
    /// The database on disk, bytes.
    pub database_bytes: u64,
    /// The HNSW index, bytes.
    pub index_bytes: u64,
    /// One point per ef (queries over loopback, exact re-ranking included).
    pub points: Vec<HnswPoint>,
}

/// What the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct GalleryBenchReport {
    /// How the gallery was drawn.
    pub synthesis: Synthesis,
    /// Identities.
    pub people: usize,
    /// Photos (rows).
    pub photos: usize,
    /// Dimension.
    pub dim: usize,
    /// Genuine probes.
    pub genuine: usize,
    /// Stranger probes.
    pub strangers: usize,
    /// Mean distance between two photos of one identity; 0 with one photo per identity.
    pub same_person_mean: f64,
    /// Mean distance between photos of two identities.
    pub other_person_mean: f64,
    /// The calibrated threshold (Euclidean).
    pub threshold: f32,
    /// Its false-accept rate per probe.
    pub far: f64,
    /// Exact-search genuine probes named correctly.
    pub exact_identification_rate: f64,
    /// Exact-search strangers accepted as someone.
    pub exact_stranger_accepts: f64,
    /// Generating the gallery, s.
    pub generate_s: f64,
    /// Exact search times, all cores.
    pub exact: Latency,
    /// Threads the exact scan uses.
    pub threads: usize,
    /// The f32 vectors, bytes.
    pub vector_bytes: usize,
    /// The graph, unless the run was exact only.
    pub hnsw: Option<HnswReport>,
    /// pgvector, when a server was given.
    pub pgvector: Option<PgvectorReport>,
    /// Peak resident memory of the process, MB (Linux).
    pub peak_rss_mb: Option<f64>,
}

fn gauss(r: &mut ChaCha8Rng) -> f32 {
    let u: f32 = r.random::<f32>().max(1e-12);
    let v: f32 = r.random();
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// Takes out of `v` its component along the unit vector `b` (a Gram-Schmidt step).
fn remove_along(v: &mut [f32], b: &[f32]) {
    let dot: f32 = v.iter().zip(b).map(|(x, y)| x * y).sum();
    v.iter_mut().zip(b).for_each(|(x, y)| *x -= dot * y);
}

fn l2(a: &[f32], b: &[f32]) -> f64 {
    f64::from(crate::metric::distance::euclidean(a, b))
}

/// The generator: for [`Synthesis::Lfw`], an orthonormal basis of the subspace (rows: the
/// 60 spectrum directions, then the mean's) and the per-direction standard deviations.
struct Synthetic {
    synthesis: Synthesis,
    dim: usize,
    spread: f32,
    scale: Vec<f32>,
    basis: Vec<Vec<f32>>,
    within: Vec<f32>,
}

impl Synthetic {
    fn new(p: &GalleryBenchParams, r: &mut ChaCha8Rng) -> Self {
        let d = p.dim;
        match p.synthesis {
            Synthesis::FullRank => Self {
                synthesis: p.synthesis,
                dim: d,
                spread: p.spread,
                scale: (0..d)
                    .map(|i| 1.0 / (1.0 + i as f32 / 16.0).sqrt())
                    .collect(),
                basis: Vec::new(),
                within: Vec::new(),
            },
            Synthesis::Lfw => {
                // Gram-Schmidt on Gaussian vectors: a uniformly random subspace.
                let mut basis: Vec<Vec<f32>> = Vec::with_capacity(LFW_BETWEEN.len() + 1);
                while basis.len() <= LFW_BETWEEN.len() {
                    let mut v: Vec<f32> = (0..d).map(|_| gauss(r)).collect();
                    for b in &basis {
                        remove_along(&mut v, b);
                    }
                    normalize(&mut v);
                    basis.push(v);
                }
                let total: f32 = LFW_WITHIN.iter().sum();
                let k = p.spread / total.sqrt();
                Self {
                    synthesis: p.synthesis,
                    dim: d,
                    spread: p.spread,
                    scale: LFW_BETWEEN.iter().map(|v| v.sqrt()).collect(),
                    basis,
                    within: LFW_WITHIN.iter().map(|v| k * v.sqrt()).collect(),
                }
            }
        }
    }

    /// `out += sum_i coef_i * basis_i`.
    fn add_in_basis(&self, coef: &[f32], out: &mut [f32]) {
        for (c, b) in coef.iter().zip(&self.basis) {
            out.iter_mut().zip(b).for_each(|(o, x)| *o += c * x);
        }
    }

    fn identity(&self, r: &mut ChaCha8Rng) -> Vec<f32> {
        match self.synthesis {
            Synthesis::FullRank => {
                let mut c: Vec<f32> = self.scale.iter().map(|s| gauss(r) * s).collect();
                normalize(&mut c);
                c
            }
            Synthesis::Lfw => {
                let mut coef: Vec<f32> = self.scale.iter().map(|s| gauss(r) * s).collect();
                coef.push(LFW_MEAN_NORM);
                let mut c = vec![0f32; self.dim];
                self.add_in_basis(&coef, &mut c);
                c
            }
        }
    }

    fn photo(&self, identity: &[f32], r: &mut ChaCha8Rng, out: &mut [f32]) {
        out.copy_from_slice(identity);
        match self.synthesis {
            Synthesis::FullRank => {
                let k = self.spread / (self.dim as f32).sqrt();
                out.iter_mut().for_each(|o| *o += k * gauss(r));
            }
            Synthesis::Lfw => {
                let coef: Vec<f32> = self.within.iter().map(|s| gauss(r) * s).collect();
                self.add_in_basis(&coef, out);
            }
        }
        normalize(out);
    }
}

impl ValidGalleryBenchParams {
    /// The gallery as an index over its rows (row `r` a photo of identity `r / per_person`),
    /// drawn from `rng`, with the identity vectors of `keep` (the genuine probes' people):
    /// only those are held, so that 10 million identities need the matrix once.
    fn generate(
        &self,
        rng: &mut ChaCha8Rng,
        syn: &Synthetic,
        keep: &[usize],
        progress: &dyn Progress,
    ) -> Result<(Index, HashMap<usize, Vec<f32>>)> {
        let p = &self.0;
        let d = p.dim;
        let n = p.people * p.per_person;
        let wanted: std::collections::HashSet<usize> = keep.iter().copied().collect();
        let mut kept = HashMap::with_capacity(wanted.len());
        progress.start("generating the gallery", p.people as u64);
        let mut data = vec![0f32; n * d];
        for i in 0..p.people {
            let c = syn.identity(rng);
            for j in 0..p.per_person {
                let row = i * p.per_person + j;
                syn.photo(&c, rng, &mut data[row * d..(row + 1) * d]);
            }
            if wanted.contains(&i) {
                kept.insert(i, c);
            }
            if i % 4096 == 4095 {
                progress.inc(4096);
            }
        }
        progress.finish();
        let names: Vec<String> = (0..p.people).map(name).collect();
        let owner = (0..n).map(|r| (r / p.per_person) as u32).collect();
        let index = Index::from_matrix(data, d, names, owner, Distance::Euclidean)?;
        Ok((index, kept))
    }

    /// Generates the gallery and builds its graph into [`GalleryBenchParams::graph`] for at
    /// most `budget`, continuing what an earlier call left there; saves what it has either
    /// way. A graph too long to build in one sitting (10 million photos take hours on 2
    /// cores) is built over several; [`ValidGalleryBenchParams::run`] then reads it whole.
    pub fn build_graph(&self, budget: Duration, progress: &dyn Progress) -> Result<GraphBuild> {
        let p = &self.0;
        let file = p.graph.clone().ok_or_else(|| {
            Error::InvalidArgument("a graph built in parts needs a file to keep it in".into())
        })?;
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let syn = Synthetic::new(p, &mut rng);
        let (index, _) = self.generate(&mut rng, &syn, &[], progress)?;
        let deadline = Instant::now() + budget;
        let grown = self.grow(&index, &file, Some(deadline), progress)?;
        if grown.build_s.is_some() {
            grown.graph.save(&file, &grown.keys, &self.stamp())?;
        }
        Ok(GraphBuild {
            file,
            photos: index.len(),
            rows_before: grown.rows_before,
            rows: grown.graph.len(),
            build_s: grown.build_s,
        })
    }

    /// Reads the graph file when it holds this gallery (whole, or its first rows from a
    /// [`ValidGalleryBenchParams::build_graph`] cut short), else starts a graph; adds the
    /// missing rows until `deadline`. Saving is the caller's.
    fn grow(
        &self,
        index: &Index,
        file: &std::path::Path,
        deadline: Option<Instant>,
        progress: &dyn Progress,
    ) -> Result<Grown> {
        let p = &self.0;
        let stamp = self.stamp();
        let rows = index.rows();
        let keys: Vec<(u64, u64)> = rows.iter().map(|(k, v)| (*k, fingerprint(v))).collect();
        let (graph, rows_before) = match Hnsw::load(file) {
            Ok((mut h, k, s))
                if s == stamp
                    && k.len() <= keys.len()
                    && k[..] == keys[..k.len()]
                    && h.len() == k.len()
                    && h.config().builds_same_graph(&p.hnsw) =>
            {
                h.set_search(&p.hnsw)?;
                (h, k.len())
            }
            _ => (Hnsw::fitted(index.dim(), &p.hnsw, &rows)?, 0),
        };
        if rows_before == rows.len() {
            return Ok(Grown {
                graph,
                rows_before,
                build_s: None,
                keys,
            });
        }
        // Parts small enough to stop near the deadline, large enough to keep both cores
        // busy; at least one part per call, so that every call gets somewhere.
        let part = (rows.len() / 16).clamp(1024, 65_536);
        let t = Instant::now();
        let mut done = rows_before;
        progress.start("HNSW index", (rows.len() - rows_before) as u64);
        loop {
            let end = (done + part).min(rows.len());
            graph.add_all(&rows[done..end], &crate::NoProgress)?;
            progress.inc((end - done) as u64);
            done = end;
            if done == rows.len() || deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        progress.finish();
        let build_s = Some(t.elapsed().as_secs_f64());
        let mut keys = keys;
        keys.truncate(done);
        Ok(Grown {
            graph,
            rows_before,
            build_s,
            keys,
        })
    }

    fn stamp(&self) -> Stamp {
        Stamp {
            metric: Distance::Euclidean,
            model_sha256: format!("synthetic {}", self.gallery_id()),
        }
    }

    /// Generates the gallery, calibrates, times both searches and compares their answers.
    pub fn run(&self, progress: &dyn Progress) -> Result<GalleryBenchReport> {
        let p = &self.0;
        let d = p.dim;
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let syn = Synthetic::new(p, &mut rng);
        let t = Instant::now();
        let n = p.people * p.per_person;
        // Probes: genuine (new photos of enrolled identities), then strangers; and strangers
        // for the calibration. The genuine probes' people are drawn first, from a stream of
        // their own, so that only their identity vectors need keeping.
        let genuine = p.probes / 2;
        let strangers = p.probes - genuine;
        let calibration = strangers.div_ceil(2).max(100);
        let mut pick = ChaCha8Rng::seed_from_u64(p.seed ^ PROBE_STREAM);
        let who: Vec<usize> = (0..genuine)
            .map(|_| pick.random_range(0..p.people))
            .collect();
        let (index, identities) = self.generate(&mut rng, &syn, &who, progress)?;
        let generate_s = t.elapsed().as_secs_f64();
        let row = |r: usize| index.row_at(r);
        // Distances, from pairs of rows.
        let pairs = 2_000.min(n);
        let (mut same, mut other) = (Vec::new(), Vec::new());
        for _ in 0..pairs {
            let a = rng.random_range(0..n);
            let b = rng.random_range(0..n);
            if a / p.per_person != b / p.per_person {
                other.push(l2(row(a), row(b)));
            }
            if p.per_person > 1 {
                let base = a / p.per_person * p.per_person;
                let (x, y) = (base, base + 1 + rng.random_range(0..p.per_person - 1));
                same.push(l2(row(x), row(y)));
            }
        }
        let mut probes: Vec<(Option<usize>, Vec<f32>)> = Vec::with_capacity(p.probes);
        let mut buf = vec![0f32; d];
        for k in 0..p.probes + calibration {
            let who = who.get(k).copied();
            match who.and_then(|i| identities.get(&i)) {
                Some(c) => syn.photo(c, &mut rng, &mut buf),
                None => {
                    let c = syn.identity(&mut rng);
                    syn.photo(&c, &mut rng, &mut buf);
                }
            }
            probes.push((who, buf.clone()));
        }
        let cal = probes.split_off(p.probes);

        progress.start(
            "exact search (the reference)",
            (p.probes + calibration) as u64,
        );
        let mut impostor = Vec::with_capacity(calibration);
        for (_, q) in &cal {
            impostor.push(index.search(q, f32::MAX)?.distance);
            progress.inc(1);
        }
        let threshold = calibrate(&impostor, p.far, Distance::Euclidean, "strangers").threshold;
        let acceptance = Acceptance::distance(threshold);
        let _ = index.search(&probes[0].1, threshold)?;
        let mut exact_ms = Vec::with_capacity(p.probes);
        let mut exact: Vec<Match> = Vec::with_capacity(p.probes);
        for (_, q) in &probes {
            let t = Instant::now();
            let m = index.decide(q, &acceptance)?;
            exact_ms.push(t.elapsed().as_secs_f64() * 1e3);
            exact.push(m);
            progress.inc(1);
        }
        progress.finish();
        let named_right = probes
            .iter()
            .zip(&exact)
            .filter(|((who, _), m)| {
                who.is_some_and(|i| m.name.as_deref() == Some(name(i).as_str()))
            })
            .count();
        let stranger_accepts = probes
            .iter()
            .zip(&exact)
            .filter(|((who, _), m)| who.is_none() && m.name.is_some())
            .count();
        let exact_latency = Latency::of(exact_ms);
        let vector_bytes = index.len() * d * 4;
        let pgvector = match &p.postgres {
            Some(url) => Some(self.pgvector(
                url,
                &index,
                &probes,
                &exact,
                &acceptance,
                exact_latency.p99_ms,
                progress,
            )?),
            None => None,
        };

        let hnsw = if p.index == IndexKind::Exact {
            None
        } else {
            Some(self.graph(
                index,
                &probes,
                &exact,
                &acceptance,
                exact_latency.p99_ms,
                progress,
            )?)
        };
        Ok(GalleryBenchReport {
            synthesis: p.synthesis,
            people: p.people,
            photos: n,
            dim: d,
            genuine,
            strangers,
            same_person_mean: mean(&same),
            other_person_mean: mean(&other),
            threshold,
            far: p.far,
            exact_identification_rate: named_right as f64 / genuine.max(1) as f64,
            exact_stranger_accepts: stranger_accepts as f64 / strangers.max(1) as f64,
            generate_s,
            exact: exact_latency,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            vector_bytes,
            hnsw,
            pgvector,
            peak_rss_mb: super::train::peak_rss_kb().map(|kb| kb as f64 / 1024.0),
        })
    }
}

impl ValidGalleryBenchParams {
    /// Builds (or reads) the graph and measures it at every ef of the sweep.
    fn graph(
        &self,
        index: Index,
        probes: &[(Option<usize>, Vec<f32>)],
        exact: &[Match],
        acceptance: &Acceptance,
        exact_p99: f64,
        progress: &dyn Progress,
    ) -> Result<HnswReport> {
        let p = &self.0;
        let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let file = p
            .graph
            .clone()
            .unwrap_or_else(|| dir.path().join("bench.hnsw"));
        let Grown {
            graph: h,
            rows_before,
            build_s,
            keys,
        } = self.grow(&index, &file, None, progress)?;
        let t = Instant::now();
        h.save(&file, &keys, &self.stamp())?;
        let save_s = t.elapsed().as_secs_f64();
        let file_bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
        // The graph searched is the one read back, so that the reading is timed without
        // holding two graphs at once: at 10 million photos each is several GB.
        drop(h);
        let t = Instant::now();
        let (mut h, _, _) = Hnsw::load(&file)?;
        let load_s = t.elapsed().as_secs_f64();
        h.set_search(&p.hnsw)?;
        let graph_bytes = h.memory_bytes();
        let graph_dim = h.graph_dim();
        let efs = self.efs();
        let mut graph = index.with_hnsw(h);
        let points = sweep(
            &mut graph, "HNSW", &efs, probes, exact, acceptance, exact_p99, progress,
        )?;
        Ok(HnswReport {
            config: HnswConfig {
                expansion_search: points.first().map_or(p.hnsw.expansion_search, |x| x.ef),
                ..p.hnsw
            },
            build_s,
            rows_before,
            graph_dim,
            graph_bytes,
            file_bytes,
            save_s,
            load_s,
            points,
        })
    }

    /// What makes one synthetic gallery: a saved graph or database is reused only for it.
    fn gallery_id(&self) -> String {
        let p = &self.0;
        format!(
            "{:?} seed {} people {} x {} dim {} spread {}",
            p.synthesis, p.seed, p.people, p.per_person, p.dim, p.spread
        )
    }

    /// The search expansions to measure: the sweep, or the config's one.
    fn efs(&self) -> Vec<usize> {
        let p = &self.0;
        if p.sweep.is_empty() {
            vec![p.hnsw.expansion_search]
        } else {
            p.sweep.clone()
        }
    }

    /// Loads the gallery into PostgreSQL (unless an earlier run did), builds pgvector's
    /// index and measures it at every ef of the sweep.
    #[allow(clippy::too_many_arguments)]
    fn pgvector(
        &self,
        server: &str,
        index: &Index,
        probes: &[(Option<usize>, Vec<f32>)],
        exact: &[Match],
        acceptance: &Acceptance,
        exact_p99: f64,
        progress: &dyn Progress,
    ) -> Result<PgvectorReport> {
        use crate::gallery::postgres::PgStore;
        use crate::gallery::{Gallery, Location, ModelId, NewPhoto, Store};
        let p = &self.0;
        let d = p.dim;
        let model = ModelId {
            name: "synthetic".into(),
            sha256: self.gallery_id(),
            dim: d,
        };
        let db = "recog_bench_gallery";
        let url = crate::gallery::postgres::with_database(server, db);
        let n = index.len();
        let reuse = PgStore::connect(&url).ok().is_some_and(|s| {
            s.meta("model").ok().flatten() == serde_json::to_string(&model).ok()
                && s.list().map(|l| l.len()).ok() == Some(p.people)
        });
        let insert_s = if reuse {
            None
        } else {
            let url = PgStore::create_database(server, db)?;
            let mut g = Gallery::open_at(&Location::Postgres(url))?;
            let t = Instant::now();
            progress.start("enrolling into PostgreSQL", p.people as u64);
            for chunk in (0..p.people).collect::<Vec<_>>().chunks(10_000) {
                let people: Vec<(String, Vec<NewPhoto>)> = chunk
                    .iter()
                    .map(|&i| {
                        let photos = (0..p.per_person)
                            .map(|j| {
                                let r = i * p.per_person + j;
                                NewPhoto {
                                    path: format!("{r}"),
                                    sha256: format!("{r}"),
                                    embedding: index.row_at(r).to_vec(),
                                    thumbnail: None,
                                }
                            })
                            .collect();
                        (name(i), photos)
                    })
                    .collect();
                g.enroll_many(&model, &people)?;
                progress.inc(chunk.len() as u64);
            }
            progress.finish();
            Some(t.elapsed().as_secs_f64())
        };
        let store = PgStore::connect(&url)?;
        let before = store.index_bytes()?;
        let g = Gallery::open_at(&Location::Postgres(url.clone()))?;
        let t = Instant::now();
        let mut index = g.index_with(IndexKind::Hnsw, &p.hnsw, progress)?;
        let build_s = (before == 0).then(|| t.elapsed().as_secs_f64());
        if index.len() != n {
            return Err(Error::InvalidArgument(format!(
                "{url}: holds {} photos, the benchmark {n}",
                index.len()
            )));
        }
        let efs = self.efs();
        let points = sweep(
            &mut index, "pgvector", &efs, probes, exact, acceptance, exact_p99, progress,
        )?;
        Ok(PgvectorReport {
            server: store.server_version()?,
            insert_s,
            build_s,
            database_bytes: store.database_bytes()?,
            index_bytes: store.index_bytes()?,
            points,
        })
    }
}

/// Searches every probe at every ef and compares with the exact answers.
#[allow(clippy::too_many_arguments)]
fn sweep(
    graph: &mut Index,
    what: &str,
    efs: &[usize],
    probes: &[(Option<usize>, Vec<f32>)],
    exact: &[Match],
    acceptance: &Acceptance,
    exact_p99: f64,
    progress: &dyn Progress,
) -> Result<Vec<HnswPoint>> {
    let genuine = probes.iter().filter(|(who, _)| who.is_some()).count();
    let mut points = Vec::new();
    for &ef in efs {
        graph.set_expansion_search(ef)?;
        // Untimed warm-up, so the first ef is not charged for cold caches.
        for (_, q) in probes.iter().take(WARM_UP) {
            graph.decide(q, acceptance)?;
        }
        progress.start(&format!("{what} search, ef {ef}"), probes.len() as u64);
        let mut ms = Vec::with_capacity(probes.len());
        let (mut hits, mut same_decision) = (0usize, 0usize);
        for ((who, q), e) in probes.iter().zip(exact) {
            let t = Instant::now();
            let m = graph.decide(q, acceptance)?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            if who.is_some() && m.nearest == e.nearest {
                hits += 1;
            }
            if m.name == e.name {
                same_decision += 1;
            }
            progress.inc(1);
        }
        progress.finish();
        let latency = Latency::of(ms);
        points.push(HnswPoint {
            ef,
            speedup_p99: exact_p99 / latency.p99_ms.max(1e-9),
            latency,
            recall_at_1: hits as f64 / genuine.max(1) as f64,
            decision_agreement: same_decision as f64 / probes.len().max(1) as f64,
            decisions_differing: probes.len() - same_decision,
        });
    }
    Ok(points)
}

/// Probes searched untimed before each ef's timed pass.
const WARM_UP: usize = 200;

fn mb(b: f64) -> f64 {
    b / 1e6
}

impl std::fmt::Display for GalleryBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} identities x {} photos = {} photos, {}-d, {} synthesis (generated in {:.1} s)",
            self.people,
            self.photos / self.people.max(1),
            self.photos,
            self.dim,
            match self.synthesis {
                Synthesis::Lfw => "LFW-shaped",
                Synthesis::FullRank => "full-rank",
            },
            self.generate_s
        )?;
        if self.photos > self.people {
            write!(
                f,
                "  distances: same person {:.3} mean, ",
                self.same_person_mean
            )?;
        } else {
            write!(f, "  distances: one photo per identity, ")?;
        }
        writeln!(
            f,
            "other person {:.3} mean; threshold {:.3} for FAR {} per probe",
            self.other_person_mean, self.threshold, self.far
        )?;
        writeln!(
            f,
            "  exact ({} threads, {:.0} MB of vectors): p50 {:.2} ms, p99 {:.2} ms; {} genuine probes named right {:.2}%, {} strangers accepted {:.2}%",
            self.threads,
            mb(self.vector_bytes as f64),
            self.exact.p50_ms,
            self.exact.p99_ms,
            self.genuine,
            100.0 * self.exact_identification_rate,
            self.strangers,
            100.0 * self.exact_stranger_accepts
        )?;
        if let Some(h) = &self.hnsw {
            let c = &h.config;
            let built = match (h.build_s, h.rows_before) {
                (None, _) => "read from its file".to_string(),
                (Some(s), 0) => format!("built in {s:.1} s"),
                (Some(s), n) => format!(
                    "{s:.1} s to add the last {} photos to {n} from its file",
                    self.photos - n
                ),
            };
            writeln!(
                f,
                "  HNSW (M {}, efConstruction {}, {} candidates, {:?}, {}-d): {built}, {:.0} MB; file {:.0} MB, saved {:.1} s, loaded {:.1} s",
                c.connectivity,
                c.expansion_add,
                c.candidates,
                c.precision,
                h.graph_dim,
                mb(h.graph_bytes as f64),
                mb(h.file_bytes as f64),
                h.save_s,
                h.load_s
            )?;
            for x in &h.points {
                point(f, x)?;
            }
        }
        if let Some(pg) = &self.pgvector {
            let time = |s: Option<f64>, what: &str| {
                s.map_or(format!("{what} by an earlier run"), |s| {
                    format!("{what} in {s:.1} s")
                })
            };
            writeln!(
                f,
                "  pgvector ({}): {}, index {}; database {:.0} MB, index {:.0} MB",
                pg.server.split(" on ").next().unwrap_or(&pg.server),
                time(pg.insert_s, "enrolled"),
                time(pg.build_s, "built"),
                mb(pg.database_bytes as f64),
                mb(pg.index_bytes as f64)
            )?;
            for x in &pg.points {
                point(f, x)?;
            }
        }
        match self.peak_rss_mb {
            Some(m) => write!(f, "  peak RSS {m:.0} MB"),
            None => write!(f, "  peak RSS unknown"),
        }
    }
}

/// One ef's line of the report.
fn point(f: &mut std::fmt::Formatter<'_>, x: &HnswPoint) -> std::fmt::Result {
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    writeln!(
                    f,
                    "    ef {}: 1 thread p50 {:.3} ms, p99 {:.3} ms (< 5 ms: {}), {:.1}x under exact p99; recall@1 {:.4} (>= 0.99: {}); same decision {:.3}%, {} differ (>= 99.9%: {})",
                    x.ef,
                    x.latency.p50_ms,
                    x.latency.p99_ms,
                    met(x.latency.p99_ms < 5.0),
                    x.speedup_p99,
                    x.recall_at_1,
                    met(x.recall_at_1 >= 0.99),
                    100.0 * x.decision_agreement,
                    x.decisions_differing,
                    met(x.decision_agreement >= 0.999)
                )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_params_are_refused() {
        let base = GalleryBenchParams::default;
        for p in [
            GalleryBenchParams {
                people: 0,
                ..base()
            },
            GalleryBenchParams { far: 1.0, ..base() },
            GalleryBenchParams {
                spread: f32::NAN,
                ..base()
            },
            GalleryBenchParams {
                people: usize::MAX / 2,
                ..base()
            },
            GalleryBenchParams { dim: 60, ..base() },
        ] {
            assert!(matches!(p.check(), Err(Error::InvalidArgument(_))));
        }
    }

    /// The exact search names nearly every genuine probe at the default spread, so the
    /// synthetic gallery is separable the way a face gallery is; the graph agrees with it.
    #[test]
    fn synthetic_gallery_is_separable_and_the_graph_agrees_with_exact() {
        let r = GalleryBenchParams {
            people: 2_000,
            probes: 400,
            ..GalleryBenchParams::default()
        }
        .check()
        .unwrap()
        .run(&crate::NoProgress)
        .unwrap();
        assert!(r.exact_identification_rate > 0.95, "{r}");
        assert!(r.exact_stranger_accepts < 0.1, "{r}");
        assert!(r.same_person_mean < r.other_person_mean * 0.6, "{r}");
        let h = r.hnsw.unwrap();
        let x = &h.points[0];
        assert!(x.recall_at_1 >= 0.99, "{}", x.recall_at_1);
        assert!(x.decision_agreement >= 0.99, "{}", x.decision_agreement);
        assert!(h.file_bytes > 0 && h.build_s.is_some());
    }

    /// One photo per identity has no same-person pairs: the report says so instead of a
    /// mean of nothing (it printed "same person -0.000 mean" at 10 million).
    #[test]
    fn one_photo_per_identity_reports_no_same_person_distance() {
        let r = GalleryBenchParams {
            people: 500,
            per_person: 1,
            probes: 100,
            index: IndexKind::Exact,
            ..GalleryBenchParams::default()
        }
        .check()
        .unwrap()
        .run(&crate::NoProgress)
        .unwrap();
        assert_eq!(r.same_person_mean, 0.0);
        assert!(r.same_person_mean.is_sign_positive());
        let text = r.to_string();
        assert!(text.contains("one photo per identity"), "{text}");
        assert!(!text.contains("same person"), "{text}");
    }

    /// A graph built over several calls (as 10 million photos must be on 2 cores): each
    /// call adds at least one part and saves it; the benchmark then adds the rest to what
    /// the file holds, on the principal subspace fitted by the first call, and agrees with
    /// the exact search; a last run reads the whole file. Another gallery in the same file
    /// is started afresh, not continued.
    #[test]
    fn a_graph_built_in_parts_goes_on_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let params = |seed| {
            GalleryBenchParams {
                people: 6_000,
                probes: 200,
                seed,
                graph: Some(dir.path().join("g.hnsw")),
                ..GalleryBenchParams::default()
            }
            .check()
            .unwrap()
        };
        let p = params(7);
        let first = p.build_graph(Duration::ZERO, &crate::NoProgress).unwrap();
        assert_eq!(
            (first.rows_before, first.rows, first.photos),
            (0, 1024, 12_000)
        );
        assert!(
            !first.is_complete() && first.to_string().contains("again"),
            "{first}"
        );
        let second = p.build_graph(Duration::ZERO, &crate::NoProgress).unwrap();
        assert_eq!((second.rows_before, second.rows), (1024, 2048));
        let r = p.run(&crate::NoProgress).unwrap();
        let h = r.hnsw.as_ref().unwrap();
        assert_eq!(h.rows_before, 2048);
        assert_eq!(h.graph_dim, 64, "projected as a single build would be");
        assert!(
            h.build_s.is_some() && r.to_string().contains("from its file"),
            "{r}"
        );
        assert!(
            h.points[0].recall_at_1 >= 0.98,
            "{}",
            h.points[0].recall_at_1
        );
        let again = p.run(&crate::NoProgress).unwrap();
        assert_eq!(again.hnsw.unwrap().build_s, None);
        let done = p.build_graph(Duration::ZERO, &crate::NoProgress).unwrap();
        assert!(done.is_complete() && done.build_s.is_none());
        let other = params(8)
            .build_graph(Duration::ZERO, &crate::NoProgress)
            .unwrap();
        assert_eq!((other.rows_before, other.rows), (0, 1024));
    }

    /// The LFW-shaped synthesis keeps what `tools/reference/gallery_spectrum.py` measured on
    /// MobileFaceNet's LFW descriptors: every photo in a 61-dimensional subspace, photos of
    /// one person 0.694 apart on average and of two people 1.399.
    #[test]
    fn lfw_synthesis_has_the_measured_rank_and_distances() {
        let p = GalleryBenchParams::default();
        let mut r = ChaCha8Rng::seed_from_u64(3);
        let syn = Synthetic::new(&p, &mut r);
        let mut photos = Vec::new();
        for _ in 0..400 {
            let c = syn.identity(&mut r);
            for _ in 0..2 {
                let mut v = vec![0f32; p.dim];
                syn.photo(&c, &mut r, &mut v);
                photos.push(v);
            }
        }
        for v in &photos {
            let mut rest = v.clone();
            for b in &syn.basis {
                remove_along(&mut rest, b);
            }
            let out: f32 = rest.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!(out < 1e-4, "{out} of a unit photo outside the subspace");
        }
        let pairs = photos.len() / 2;
        let same = (0..pairs)
            .map(|i| l2(&photos[2 * i], &photos[2 * i + 1]))
            .sum::<f64>()
            / pairs as f64;
        let other = (0..pairs - 1)
            .map(|i| l2(&photos[2 * i], &photos[2 * i + 2]))
            .sum::<f64>()
            / (pairs - 1) as f64;
        assert!((same - 0.694).abs() < 0.03, "same person {same}");
        assert!((other - 1.399).abs() < 0.03, "other person {other}");
    }
}
