//! Gallery search at scale: a synthetic gallery of identities clustered like face embeddings,
//! searched exactly (the peer: every photo compared) and through an HNSW graph, with the
//! graph's answers scored against the exact ones.
//!
//! Identities are unit vectors drawn from an anisotropic Gaussian (variance falling with the
//! coordinate, as a network's embedding spends its variance unevenly); each photo is its
//! identity plus isotropic noise of norm `spread`, renormalised. With the default spread, two
//! photos of one person lie about 0.6 apart and two people about 1.4: the separation of
//! L2-normalised face embeddings. The report gives the measured distances.
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

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{mean, percentile};
use crate::gallery::hnsw::{fingerprint, Stamp};
use crate::gallery::{calibrate, Acceptance, Hnsw, HnswConfig, Index, IndexKind, Match};
use crate::metric::Distance;
use crate::{Error, Progress, Result};

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
        self.people
            .checked_mul(self.per_person)
            .and_then(|n| n.checked_mul(self.dim))
            .and_then(|n| n.checked_mul(4))
            .ok_or_else(|| Error::InvalidArgument("gallery too large to address".into()))?;
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
    /// Building it on all cores, s; `None` when read from `graph`.
    pub build_s: Option<f64>,
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
    /// Mean distance between two photos of one identity.
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

fn l2(a: &[f32], b: &[f32]) -> f64 {
    f64::from(crate::metric::distance::euclidean(a, b))
}

struct Synthetic<'a> {
    p: &'a GalleryBenchParams,
    scale: Vec<f32>,
}

impl Synthetic<'_> {
    fn identity(&self, r: &mut ChaCha8Rng) -> Vec<f32> {
        let mut c: Vec<f32> = self.scale.iter().map(|s| gauss(r) * s).collect();
        normalize(&mut c);
        c
    }

    fn photo(&self, identity: &[f32], r: &mut ChaCha8Rng, out: &mut [f32]) {
        let k = self.p.spread / (self.p.dim as f32).sqrt();
        for (o, c) in out.iter_mut().zip(identity) {
            *o = c + k * gauss(r);
        }
        normalize(out);
    }
}

impl ValidGalleryBenchParams {
    /// Generates the gallery, calibrates, times both searches and compares their answers.
    pub fn run(&self, progress: &dyn Progress) -> Result<GalleryBenchReport> {
        let p = &self.0;
        let d = p.dim;
        let syn = Synthetic {
            p,
            scale: (0..d)
                .map(|i| 1.0 / (1.0 + i as f32 / 16.0).sqrt())
                .collect(),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let t = Instant::now();
        let n = p.people * p.per_person;
        progress.start("generating the gallery", p.people as u64);
        let mut identities = Vec::with_capacity(p.people * d);
        let mut data = vec![0f32; n * d];
        for i in 0..p.people {
            let c = syn.identity(&mut rng);
            for j in 0..p.per_person {
                let row = i * p.per_person + j;
                syn.photo(&c, &mut rng, &mut data[row * d..(row + 1) * d]);
            }
            identities.extend(c);
            if i % 4096 == 4095 {
                progress.inc(4096);
            }
        }
        progress.finish();
        let names: Vec<String> = (0..p.people).map(|i| format!("id{i:08}")).collect();
        let index = Index::from_rows(
            n,
            (0..n).map(|r| {
                (
                    r as u64,
                    names[r / p.per_person].as_str(),
                    &data[r * d..(r + 1) * d],
                )
            }),
            Distance::Euclidean,
        )?;
        let generate_s = t.elapsed().as_secs_f64();
        let identity = |i: usize| &identities[i * d..(i + 1) * d];
        let row = |r: usize| &data[r * d..(r + 1) * d];
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
        // Probes: genuine (new photos of enrolled identities), then strangers; and strangers
        // for the calibration.
        let genuine = p.probes / 2;
        let strangers = p.probes - genuine;
        let calibration = strangers.div_ceil(2).max(100);
        let mut probes: Vec<(Option<usize>, Vec<f32>)> = Vec::with_capacity(p.probes);
        let mut buf = vec![0f32; d];
        for k in 0..p.probes + calibration {
            let who = (k < genuine).then(|| rng.random_range(0..p.people));
            match who {
                Some(i) => syn.photo(identity(i), &mut rng, &mut buf),
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
                who.is_some_and(|i| m.name.as_deref() == Some(names[i].as_str()))
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
                &names,
                &data,
                &probes,
                &exact,
                &acceptance,
                exact_latency.p99_ms,
                progress,
            )?),
            None => None,
        };
        drop(data);

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
        let stamp = Stamp {
            metric: Distance::Euclidean,
            model_sha256: format!(
                "synthetic seed {} people {} x {} dim {} spread {}",
                p.seed, p.people, p.per_person, p.dim, p.spread
            ),
        };
        let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let file = p
            .graph
            .clone()
            .unwrap_or_else(|| dir.path().join("bench.hnsw"));
        let rows = index.rows();
        let keys: Vec<(u64, u64)> = rows.iter().map(|(k, v)| (*k, fingerprint(v))).collect();
        let reuse = match Hnsw::load(&file) {
            Ok((h, k, s)) if s == stamp && k == keys && *h.config() == p.hnsw => Some(h),
            _ => None,
        };
        let (h, build_s) = match reuse {
            Some(h) => (h, None),
            None => {
                let t = Instant::now();
                let h = Hnsw::build(index.dim(), &p.hnsw, &rows, progress)?;
                (h, Some(t.elapsed().as_secs_f64()))
            }
        };
        let t = Instant::now();
        h.save(&file, &keys, &stamp)?;
        let save_s = t.elapsed().as_secs_f64();
        let file_bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
        let t = Instant::now();
        drop(Hnsw::load(&file)?);
        let load_s = t.elapsed().as_secs_f64();
        let graph_bytes = h.memory_bytes();
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
            graph_bytes,
            file_bytes,
            save_s,
            load_s,
            points,
        })
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
        names: &[String],
        data: &[f32],
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
            sha256: format!(
                "seed {} people {} x {} dim {} spread {}",
                p.seed, p.people, p.per_person, p.dim, p.spread
            ),
            dim: d,
        };
        let db = "recog_bench_gallery";
        let url = crate::gallery::postgres::with_database(server, db);
        let n = names.len() * p.per_person;
        let reuse = PgStore::connect(&url).ok().is_some_and(|s| {
            s.meta("model").ok().flatten() == serde_json::to_string(&model).ok()
                && s.list().map(|l| l.len()).ok() == Some(names.len())
        });
        let insert_s = if reuse {
            None
        } else {
            let url = PgStore::create_database(server, db)?;
            let mut g = Gallery::open_at(&Location::Postgres(url))?;
            let t = Instant::now();
            progress.start("enrolling into PostgreSQL", names.len() as u64);
            for chunk in (0..names.len()).collect::<Vec<_>>().chunks(10_000) {
                let people: Vec<(String, Vec<NewPhoto>)> = chunk
                    .iter()
                    .map(|&i| {
                        let photos = (0..p.per_person)
                            .map(|j| {
                                let r = i * p.per_person + j;
                                NewPhoto {
                                    path: format!("{r}"),
                                    sha256: format!("{r}"),
                                    embedding: data[r * d..(r + 1) * d].to_vec(),
                                    thumbnail: None,
                                }
                            })
                            .collect();
                        (names[i].clone(), photos)
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
        let _ = graph.decide(&probes[0].1, acceptance)?;
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

fn mb(b: f64) -> f64 {
    b / 1e6
}

impl std::fmt::Display for GalleryBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} identities x {} photos = {} photos, {}-d (generated in {:.1} s)",
            self.people,
            self.photos / self.people.max(1),
            self.photos,
            self.dim,
            self.generate_s
        )?;
        writeln!(
            f,
            "  distances: same person {:.3} mean, other person {:.3} mean; threshold {:.3} for FAR {} per probe",
            self.same_person_mean, self.other_person_mean, self.threshold, self.far
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
            let built = h.build_s.map_or("read from its file".to_string(), |s| {
                format!("built in {s:.1} s")
            });
            writeln!(
                f,
                "  HNSW (M {}, efConstruction {}, {} candidates, {:?}): {built}, {:.0} MB; file {:.0} MB, saved {:.1} s, loaded {:.1} s",
                c.connectivity,
                c.expansion_add,
                c.candidates,
                c.precision,
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
}
