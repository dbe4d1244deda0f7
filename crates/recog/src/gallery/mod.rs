//! The gallery: people, their photos and the embeddings of those photos, in an embedded
//! SQLite database, with identification by nearest identity and a threshold calibrated
//! from impostor distances.
//!
//! Every embedding records the model that made it (name + weights SHA-256) and its dimension;
//! the gallery accepts only one model, and queries with another are refused. Writes run in
//! transactions, so an interrupted enrolment leaves the database as it was before it.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

pub mod index;
pub mod recognize;
pub use index::{Index, Metric};
pub use recognize::{model_id, Recognized, Recognizer};

/// Which model made the embeddings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelId {
    /// Model name (e.g. `face-resnet-dlib`).
    pub name: String,
    /// SHA-256 of the weights.
    pub sha256: String,
    /// Embedding dimension.
    pub dim: usize,
}

/// A photo to enrol.
#[derive(Debug, Clone)]
pub struct NewPhoto {
    /// Where it came from.
    pub path: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Its embedding.
    pub embedding: Vec<f32>,
    /// A small JPEG of the face, shown by the web UI (optional).
    pub thumbnail: Option<Vec<u8>>,
}

/// One person in the gallery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Person {
    /// Name (unique).
    pub name: String,
    /// Number of photos.
    pub photos: usize,
}

/// The answer for one face.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Match {
    /// The person, or `None` for "unknown".
    pub name: Option<String>,
    /// The nearest person even when rejected.
    pub nearest: Option<String>,
    /// Distance to the nearest person's closest photo.
    pub distance: f32,
    /// Distance to the runner-up person.
    pub runner_up: Option<f32>,
    /// `runner_up - distance`.
    pub margin: Option<f32>,
    /// `distance / runner_up`: near 1 when the nearest person is hardly nearer than the next.
    #[serde(default)]
    pub ratio: Option<f32>,
    /// The threshold applied (to the distance, or to the ratio under [`Rule::Ratio`]).
    pub threshold: f32,
    /// The rule the threshold applies to.
    #[serde(default)]
    pub rule: Rule,
}

/// What the calibrated threshold applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// Accept when the nearest person's distance is under the threshold (the notebook's rule).
    #[default]
    Distance,
    /// Lowe's ratio test: accept when `distance / runner-up distance` is under the threshold
    /// and the distance is under the pipeline's verification threshold (0.6 Euclidean), so a
    /// small gallery cannot accept a far face just because everyone else is farther. A
    /// stranger is about as far from their nearest enrolled face as from the next one; a
    /// genuine probe is much nearer its own.
    Ratio,
}

/// The largest distance a [`Rule::Ratio`] accepts: the model's verification distance
/// `euclidean` ([`crate::face::Embedder::match_distance`]; dlib's 0.6), or for cosine its
/// unit-vector equivalent `euclidean^2 / 2` (0.18 for dlib's).
pub fn verification_distance(metric: Metric, euclidean: f32) -> f32 {
    match metric {
        Metric::Euclidean => euclidean,
        Metric::Cosine => euclidean * euclidean / 2.0,
    }
}

/// A decision rule with its threshold: what turns a nearest match into a name or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Acceptance {
    /// The rule.
    pub rule: Rule,
    /// Its threshold.
    pub threshold: f32,
    /// The distance cap of [`Rule::Ratio`].
    pub max_distance: f32,
}

impl Acceptance {
    /// Accept at or under a distance.
    pub fn distance(threshold: f32) -> Self {
        Self {
            rule: Rule::Distance,
            threshold,
            max_distance: f32::MAX,
        }
    }

    /// The score the threshold applies to, from the nearest and the runner-up distances
    /// (lower is more confident).
    pub fn score(rule: Rule, nearest: f32, runner_up: Option<f32>) -> f32 {
        match rule {
            Rule::Distance => nearest,
            Rule::Ratio => match runner_up {
                Some(r) if r > 0.0 => nearest / r,
                Some(_) => 1.0,
                // One person in the gallery: only the distance cap decides.
                None => 0.0,
            },
        }
    }

    /// Fills in `name`, `threshold` and `rule` of a match found without a threshold.
    pub fn decide(&self, mut m: Match) -> Match {
        let s = Self::score(self.rule, m.distance, m.runner_up);
        let ok = m.nearest.is_some() && s <= self.threshold && m.distance <= self.max_distance;
        m.name = if ok { m.nearest.clone() } else { None };
        m.threshold = self.threshold;
        m.rule = self.rule;
        m
    }
}

/// A threshold calibrated for a false-accept rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Calibration {
    /// Accept below or at this distance.
    pub threshold: f32,
    /// Target false-accept rate.
    pub far: f64,
    /// Impostor scores used (one per gallery photo: its nearest other person; or one per
    /// photo of a labelled folder: its nearest gallery person of another name).
    pub impostors: usize,
    /// The distance the threshold applies to.
    #[serde(default)]
    pub metric: Metric,
    /// Where the impostor scores came from (`gallery`, or the labelled folder).
    #[serde(default)]
    pub source: Option<String>,
    /// What the threshold applies to.
    #[serde(default)]
    pub rule: Rule,
    /// The distance cap of [`Rule::Ratio`] (the model's verification distance in `metric`);
    /// absent in galleries calibrated before it was stored, which were dlib's (0.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_distance: Option<f32>,
}

impl Calibration {
    /// The decision this calibration stands for.
    pub fn acceptance(&self) -> Acceptance {
        Acceptance {
            rule: self.rule,
            threshold: self.threshold,
            max_distance: match self.rule {
                Rule::Distance => f32::MAX,
                Rule::Ratio => self
                    .max_distance
                    .unwrap_or_else(|| verification_distance(self.metric, 0.6)),
            },
        }
    }
}

/// Export format: everything but the thumbnails.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Export {
    /// The model.
    pub model: Option<ModelId>,
    /// The calibration.
    pub calibration: Option<Calibration>,
    /// People with their photos.
    pub people: Vec<ExportPerson>,
}

/// One exported person.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportPerson {
    /// Name.
    pub name: String,
    /// (path, sha256, embedding) per photo.
    pub photos: Vec<(String, String, Vec<f32>)>,
}

/// An open gallery database.
pub struct Gallery {
    conn: Connection,
    path: PathBuf,
}

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The distance of `metric` between two embeddings.
pub fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::Euclidean => crate::metric::distance::euclidean(a, b),
        Metric::Cosine => crate::metric::distance::cosine(a, b),
    }
}

impl Gallery {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let conn = Connection::open(path).map_err(|e| Error::Gallery {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })?;
        let g = Self {
            conn,
            path: path.to_path_buf(),
        };
        g.conn
            .execute_batch(
                "PRAGMA foreign_keys = ON;
                 PRAGMA journal_mode = WAL;
                 CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS people (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);
                 CREATE TABLE IF NOT EXISTS photos (
                     id INTEGER PRIMARY KEY,
                     person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
                     path TEXT NOT NULL,
                     sha256 TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS embeddings (
                     photo_id INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
                     model TEXT NOT NULL,
                     model_sha256 TEXT NOT NULL,
                     dim INTEGER NOT NULL,
                     vector BLOB NOT NULL);
                 CREATE TABLE IF NOT EXISTS thumbnails (
                     photo_id INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
                     jpeg BLOB NOT NULL);",
            )
            .map_err(|e| g.err(e))?;
        Ok(g)
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Gallery {
            path: self.path.clone(),
            problem: e.to_string(),
        }
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    fn meta_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.meta(key)?
            .map(|s| serde_json::from_str(&s).map_err(|e| self.err(e)))
            .transpose()
    }

    /// The model of the stored embeddings, if any were stored.
    pub fn model(&self) -> Result<Option<ModelId>> {
        self.meta_json("model")
    }

    /// Refuses a model other than the gallery's.
    pub fn check_model(&self, m: &ModelId) -> Result<()> {
        match self.model()? {
            Some(g) if &g != m => Err(self.err(format!(
                "the gallery holds embeddings of {} (weights {}, {}-d); this query uses {} (weights {}, {}-d): re-enrol with one model",
                g.name,
                &g.sha256[..g.sha256.len().min(12)],
                g.dim,
                m.name,
                &m.sha256[..m.sha256.len().min(12)],
                m.dim
            ))),
            _ => Ok(()),
        }
    }

    /// Adds photos of a person (created if new), all or nothing.
    pub fn enroll(&mut self, name: &str, model: &ModelId, photos: &[NewPhoto]) -> Result<usize> {
        self.enroll_many(model, &[(name.to_string(), photos.to_vec())])
    }

    /// Adds photos of several people in one transaction: all or nothing.
    pub fn enroll_many(
        &mut self,
        model: &ModelId,
        people: &[(String, Vec<NewPhoto>)],
    ) -> Result<usize> {
        self.check_model(model)?;
        if let Some((name, _)) = people.iter().find(|(n, _)| n.trim().is_empty()) {
            return Err(self.err(format!("a person needs a non-empty name, not {name:?}")));
        }
        let path = self.path.clone();
        let wrap = |e: rusqlite::Error| Error::Gallery {
            path: path.clone(),
            problem: e.to_string(),
        };
        let tx = self.conn.transaction().map_err(wrap)?;
        let model_json = serde_json::to_string(model).unwrap_or_default();
        tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('model', ?1)",
            [&model_json],
        )
        .map_err(wrap)?;
        let mut n = 0;
        {
            let mut add_person = tx
                .prepare("INSERT OR IGNORE INTO people (name) VALUES (?1)")
                .map_err(wrap)?;
            let mut person_id = tx
                .prepare("SELECT id FROM people WHERE name = ?1")
                .map_err(wrap)?;
            let mut add_photo = tx
                .prepare("INSERT INTO photos (person_id, path, sha256) VALUES (?1, ?2, ?3)")
                .map_err(wrap)?;
            let mut add_emb = tx
                .prepare("INSERT INTO embeddings (photo_id, model, model_sha256, dim, vector) VALUES (?1, ?2, ?3, ?4, ?5)")
                .map_err(wrap)?;
            let mut add_thumb = tx
                .prepare("INSERT INTO thumbnails (photo_id, jpeg) VALUES (?1, ?2)")
                .map_err(wrap)?;
            for (name, photos) in people {
                add_person.execute([name]).map_err(wrap)?;
                let pid: i64 = person_id.query_row([name], |r| r.get(0)).map_err(wrap)?;
                for p in photos {
                    if p.embedding.len() != model.dim {
                        return Err(Error::Shape {
                            name: format!("embedding of {}", p.path),
                            expected: vec![model.dim],
                            got: vec![p.embedding.len()],
                        });
                    }
                    add_photo
                        .execute(params![pid, p.path, p.sha256])
                        .map_err(wrap)?;
                    let photo = tx.last_insert_rowid();
                    add_emb
                        .execute(params![
                            photo,
                            model.name,
                            model.sha256,
                            model.dim as i64,
                            to_blob(&p.embedding)
                        ])
                        .map_err(wrap)?;
                    if let Some(t) = &p.thumbnail {
                        add_thumb.execute(params![photo, t]).map_err(wrap)?;
                    }
                    n += 1;
                }
            }
        }
        tx.commit().map_err(wrap)?;
        Ok(n)
    }

    /// Who a photo (by the SHA-256 of its file) is enrolled under, if anyone: what makes
    /// enrolment safe to re-run.
    pub fn owner_of(&self, sha256: &str) -> Result<Option<String>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT p.name FROM photos ph JOIN people p ON p.id = ph.person_id WHERE ph.sha256 = ?1 LIMIT 1")
            .map_err(|e| self.err(e))?;
        let mut rows = st.query([sha256]).map_err(|e| self.err(e))?;
        match rows.next().map_err(|e| self.err(e))? {
            Some(r) => Ok(Some(r.get(0).map_err(|e| self.err(e))?)),
            None => Ok(None),
        }
    }

    /// People and their photo counts, by name.
    pub fn list(&self) -> Result<Vec<Person>> {
        let mut st = self
            .conn
            .prepare("SELECT p.name, COUNT(ph.id) FROM people p LEFT JOIN photos ph ON ph.person_id = p.id GROUP BY p.id ORDER BY p.name")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(Person {
                    name: r.get(0)?,
                    photos: r.get::<_, i64>(1)? as usize,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }

    /// Removes a person with all photos and embeddings; false if there was no such person.
    pub fn remove(&mut self, name: &str) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM people WHERE name = ?1", [name])
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// The first stored thumbnail of a person, if any.
    pub fn thumbnail(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.conn
            .query_row(
                "SELECT t.jpeg FROM thumbnails t JOIN photos ph ON ph.id = t.photo_id JOIN people p ON p.id = ph.person_id WHERE p.name = ?1 ORDER BY ph.id LIMIT 1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every stored embedding with its person's name.
    pub fn embeddings(&self) -> Result<Vec<(String, Vec<f32>)>> {
        let mut st = self
            .conn
            .prepare("SELECT p.name, e.vector FROM embeddings e JOIN photos ph ON ph.id = e.photo_id JOIN people p ON p.id = ph.person_id ORDER BY p.name, ph.id")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, from_blob(&r.get::<_, Vec<u8>>(1)?)))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }

    /// The stored calibration, if any.
    pub fn calibration(&self) -> Result<Option<Calibration>> {
        self.meta_json("calibration")
    }

    /// Stores a calibration.
    pub fn set_calibration(&self, c: &Calibration) -> Result<()> {
        let s = serde_json::to_string(c).unwrap_or_default();
        self.conn
            .execute("INSERT INTO meta (key, value) VALUES ('calibration', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [s])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Calibrates on the gallery itself, leaving one person out at a time: each photo's
    /// distance to the nearest photo of anyone else is what a probe of a stranger would score,
    /// so the threshold that accepts a fraction `far` of those is the open-set threshold for
    /// a false-accept rate `far` per probe (not per comparison, which would be far too lax
    /// against a large gallery).
    pub fn calibrate_self(&self, far: f64, metric: Metric, rule: Rule) -> Result<Calibration> {
        let e = self.embeddings()?;
        let pairs = impostor_pairs(&e, &e, metric);
        if pairs.is_empty() {
            return Err(self.err("calibration needs photos of at least two people"));
        }
        let cap = verification_distance(metric, self.match_distance()?);
        Ok(calibrate_rule(&pairs, far, metric, rule, cap, "gallery"))
    }

    /// The Euclidean verification distance of the model that made the gallery's embeddings.
    fn match_distance(&self) -> Result<f32> {
        Ok(self
            .model()?
            .and_then(|m| crate::face::FaceModel::from_name(&m.name))
            .unwrap_or_default()
            .match_distance())
    }

    /// Calibrates on a labelled set of photos (e.g. LFW): each photo's distance to the
    /// nearest gallery photo of a person with another name is a stranger's score.
    pub fn calibrate_labelled(
        &self,
        labelled: &[(String, Vec<f32>)],
        far: f64,
        metric: Metric,
        rule: Rule,
        source: &str,
    ) -> Result<Calibration> {
        let e = self.embeddings()?;
        let pairs = impostor_pairs(&e, labelled, metric);
        if pairs.is_empty() {
            return Err(self.err(format!(
                "calibration from {source}: no photo has a gallery person of another name to compare with"
            )));
        }
        let cap = verification_distance(metric, self.match_distance()?);
        Ok(calibrate_rule(&pairs, far, metric, rule, cap, source))
    }

    /// A searchable index of the stored embeddings, with the calibrated metric (Euclidean if
    /// the gallery was never calibrated).
    pub fn index(&self) -> Result<Index> {
        let metric = self.calibration()?.map(|c| c.metric).unwrap_or_default();
        Index::new(&self.embeddings()?, metric)
    }

    /// Exports everything (no thumbnails).
    pub fn export(&self) -> Result<Export> {
        let mut st = self
            .conn
            .prepare("SELECT p.name, ph.path, ph.sha256, e.vector FROM embeddings e JOIN photos ph ON ph.id = e.photo_id JOIN people p ON p.id = ph.person_id ORDER BY p.name, ph.id")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    from_blob(&r.get::<_, Vec<u8>>(3)?),
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut people: Vec<ExportPerson> = Vec::new();
        for row in rows {
            let (name, path, sha, v) = row.map_err(|e| self.err(e))?;
            match people.last_mut() {
                Some(p) if p.name == name => p.photos.push((path, sha, v)),
                _ => people.push(ExportPerson {
                    name,
                    photos: vec![(path, sha, v)],
                }),
            }
        }
        Ok(Export {
            model: self.model()?,
            calibration: self.calibration()?,
            people,
        })
    }

    /// Imports an export in one transaction (people are added to; the model must match).
    pub fn import(&mut self, x: &Export) -> Result<usize> {
        let Some(model) = &x.model else { return Ok(0) };
        let people: Vec<(String, Vec<NewPhoto>)> = x
            .people
            .iter()
            .map(|p| {
                let photos = p
                    .photos
                    .iter()
                    .map(|(path, sha, v)| NewPhoto {
                        path: path.clone(),
                        sha256: sha.clone(),
                        embedding: v.clone(),
                        thumbnail: None,
                    })
                    .collect();
                (p.name.clone(), photos)
            })
            .collect();
        let n = self.enroll_many(model, &people)?;
        if let Some(c) = &x.calibration {
            self.set_calibration(c)?;
        }
        Ok(n)
    }
}

/// The gallery's people ranked by their nearest photo to `query` (ties by name), leaving out
/// the person named `exclude`: a hash map of per-person minima, the plain way.
fn ranked_people<'g>(
    gallery: &'g [(String, Vec<f32>)],
    query: &[f32],
    metric: Metric,
    exclude: Option<&str>,
) -> Vec<(&'g str, f32)> {
    let mut best: std::collections::HashMap<&str, f32> = std::collections::HashMap::new();
    for (name, v) in gallery.iter().filter(|(n, _)| Some(n.as_str()) != exclude) {
        let d = distance(metric, v, query);
        let e = best.entry(name.as_str()).or_insert(f32::MAX);
        *e = e.min(d);
    }
    let mut ranked: Vec<(&str, f32)> = best.into_iter().collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)));
    ranked
}

/// For each probe, the distances to the nearest and the runner-up gallery *people* among
/// those with another name: what the probe would score as a stranger.
pub fn impostor_pairs(
    gallery: &[(String, Vec<f32>)],
    probes: &[(String, Vec<f32>)],
    metric: Metric,
) -> Vec<(f32, Option<f32>)> {
    probes
        .iter()
        .filter_map(|(name, v)| {
            let ranked = ranked_people(gallery, v, metric, Some(name));
            ranked.first().map(|r| (r.1, ranked.get(1).map(|r| r.1)))
        })
        .collect()
}

/// Calibrates a rule on impostor (nearest, runner-up) pairs; `verify` is the ratio rule's
/// distance cap ([`verification_distance`]).
pub fn calibrate_rule(
    pairs: &[(f32, Option<f32>)],
    far: f64,
    metric: Metric,
    rule: Rule,
    verify: f32,
    source: &str,
) -> Calibration {
    let cap = match rule {
        Rule::Distance => f32::MAX,
        Rule::Ratio => verify,
    };
    // A stranger beyond the cap is rejected whatever the score: give it an infinite score so
    // that the FAR counts it among the rejected.
    let scores: Vec<f32> = pairs
        .iter()
        .map(|&(d1, d2)| {
            if d1 > cap {
                f32::INFINITY
            } else {
                Acceptance::score(rule, d1, d2)
            }
        })
        .collect();
    let mut c = calibrate(&scores, far, metric, source);
    c.rule = rule;
    if rule == Rule::Ratio {
        c.max_distance = Some(cap);
    }
    if !c.threshold.is_finite() {
        c.threshold = f32::MAX;
    }
    c
}

/// For each probe `(name, embedding)`, the distance to the nearest gallery photo whose person
/// has another name (probes with no such photo give no score).
pub fn impostor_scores(
    gallery: &[(String, Vec<f32>)],
    probes: &[(String, Vec<f32>)],
    metric: Metric,
) -> Vec<f32> {
    impostor_pairs(gallery, probes, metric)
        .into_iter()
        .map(|p| p.0)
        .collect()
}

/// The threshold that accepts at most a fraction `far` of impostor distances
/// (distance <= threshold is accepted).
pub fn calibrate(impostors: &[f32], far: f64, metric: Metric, source: &str) -> Calibration {
    let mut d = impostors.to_vec();
    d.sort_by(|a, b| a.total_cmp(b));
    let allowed = ((far * d.len() as f64).floor() as usize).min(d.len());
    // Accept the `allowed` smallest impostor distances at most: put the threshold just below
    // the next one.
    let threshold = if allowed == 0 {
        d[0] - 1e-6
    } else {
        let next = d.get(allowed).copied().unwrap_or(d[d.len() - 1] + 1e-6);
        let prev = d[allowed - 1];
        if next > prev {
            (prev + next) / 2.0
        } else {
            prev - 1e-6
        }
    };
    Calibration {
        threshold,
        far,
        impostors: d.len(),
        metric,
        source: Some(source.to_string()),
        rule: Rule::Distance,
        max_distance: None,
    }
}

/// Nearest identity (minimum over each person's photos) with the runner-up person's
/// distance, by Euclidean distance: the plain reference implementation (a hash map per query)
/// that [`Index::search`] is tested and benchmarked against.
pub fn identify(gallery: &[(String, Vec<f32>)], query: &[f32], threshold: f32) -> Match {
    let ranked = ranked_people(gallery, query, Metric::Euclidean, None);
    let (nearest, distance) = ranked
        .first()
        .map_or((None, f32::MAX), |r| (Some(r.0.to_string()), r.1));
    let runner_up = ranked.get(1).map(|r| r.1);
    Match::by_distance(nearest, distance, runner_up, threshold)
}

impl Match {
    /// The answer of the distance rule: `nearest` is named when `distance <= threshold`.
    pub fn by_distance(
        nearest: Option<String>,
        distance: f32,
        runner_up: Option<f32>,
        threshold: f32,
    ) -> Self {
        Match {
            name: if nearest.is_some() && distance <= threshold {
                nearest.clone()
            } else {
                None
            },
            nearest,
            distance,
            runner_up,
            margin: runner_up.map(|r| r - distance),
            ratio: runner_up.map(|r| if r > 0.0 { distance / r } else { 1.0 }),
            threshold,
            rule: Rule::Distance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(dim: usize) -> ModelId {
        ModelId {
            name: "m".into(),
            sha256: "abc".into(),
            dim,
        }
    }

    fn photo(v: Vec<f32>) -> NewPhoto {
        NewPhoto {
            path: "p.jpg".into(),
            sha256: "h".into(),
            embedding: v,
            thumbnail: Some(vec![0xff, 0xd8]),
        }
    }

    #[test]
    fn enroll_list_identify_remove_export_import() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Gallery::open(&dir.path().join("g.sqlite")).unwrap();
        g.enroll(
            "ann",
            &model(2),
            &[photo(vec![0.0, 0.0]), photo(vec![0.1, 0.0])],
        )
        .unwrap();
        g.enroll("bob", &model(2), &[photo(vec![1.0, 1.0])])
            .unwrap();
        let l = g.list().unwrap();
        assert_eq!(
            (l[0].name.as_str(), l[0].photos, l[1].photos),
            ("ann", 2, 1)
        );
        let e = g.embeddings().unwrap();
        let m = identify(&e, &[0.09, 0.0], 0.5);
        assert_eq!(m.name.as_deref(), Some("ann"));
        assert!((m.distance - 0.01).abs() < 1e-6);
        // runner-up: bob at sqrt(0.91^2 + 1)
        assert!((m.runner_up.unwrap() - (0.91f32 * 0.91 + 1.0).sqrt()).abs() < 1e-5);
        let far = identify(&e, &[5.0, 5.0], 0.5);
        assert_eq!((far.name, far.nearest.as_deref()), (None, Some("bob")));
        let x = g.export().unwrap();
        assert!(g.remove("ann").unwrap());
        assert!(!g.remove("ann").unwrap());
        assert_eq!(
            g.embeddings().unwrap().len(),
            1,
            "photos and embeddings go with the person"
        );
        let mut g2 = Gallery::open(&dir.path().join("g2.sqlite")).unwrap();
        assert_eq!(g2.import(&x).unwrap(), 3);
        assert_eq!(g2.list().unwrap().len(), 2);
    }

    #[test]
    fn another_model_is_refused_and_a_failed_enrolment_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Gallery::open(&dir.path().join("g.sqlite")).unwrap();
        g.enroll("ann", &model(2), &[photo(vec![0.0, 0.0])])
            .unwrap();
        let other = ModelId {
            sha256: "zzz".into(),
            ..model(2)
        };
        let err = g
            .enroll("bob", &other, &[photo(vec![0.0, 0.0])])
            .unwrap_err()
            .to_string();
        assert!(err.contains("re-enrol with one model"), "{err}");
        // The second photo has the wrong dimension: the whole enrolment is rolled back.
        let bad = g.enroll("cy", &model(2), &[photo(vec![1.0, 1.0]), photo(vec![1.0])]);
        assert!(bad.is_err());
        assert_eq!(g.list().unwrap().len(), 1);
        assert_eq!(g.embeddings().unwrap().len(), 1);
    }

    /// Reference: 10 impostor distances 0.1..1.0; FAR 0.2 accepts the 2 smallest (0.1, 0.2),
    /// so the threshold lies between 0.2 and 0.3.
    #[test]
    fn calibration_accepts_the_target_fraction_of_impostors() {
        let imp: Vec<f32> = (1..=10).map(|i| i as f32 / 10.0).collect();
        let c = calibrate(&imp, 0.2, Metric::Euclidean, "t");
        assert!((c.threshold - 0.25).abs() < 1e-6);
        let accepted = imp.iter().filter(|&&d| d <= c.threshold).count();
        assert_eq!(accepted, 2);
        assert!(calibrate(&imp, 0.0, Metric::Euclidean, "t").threshold < 0.1);
    }

    /// By hand: gallery a (0,0) and (1,0), b (3,4), c (0,2). Probe "a" at (0,1) is compared
    /// with b (sqrt(18) = 4.243) and c (1) only: (1, 4.243). Probe "z" at (1,0): a at 0 (its
    /// nearer photo), c at sqrt(5) = 2.236, b at sqrt(20): (0, 2.236).
    #[test]
    fn impostor_pairs_and_the_ratio_rule_by_hand() {
        let g = vec![
            ("a".to_string(), vec![0.0, 0.0]),
            ("a".to_string(), vec![1.0, 0.0]),
            ("b".to_string(), vec![3.0, 4.0]),
            ("c".to_string(), vec![0.0, 2.0]),
        ];
        let probes = vec![
            ("a".to_string(), vec![0.0, 1.0]),
            ("z".to_string(), vec![1.0, 0.0]),
        ];
        let p = impostor_pairs(&g, &probes, Metric::Euclidean);
        assert!((p[0].0 - 1.0).abs() < 1e-6 && (p[0].1.unwrap() - 18f32.sqrt()).abs() < 1e-5);
        assert!(p[1].0.abs() < 1e-6 && (p[1].1.unwrap() - 5f32.sqrt()).abs() < 1e-5);
        // Ratio rule, threshold 0.5, cap 0.6 (Euclidean).
        let acc = Acceptance {
            rule: Rule::Ratio,
            threshold: 0.5,
            max_distance: verification_distance(Metric::Euclidean, 0.6),
        };
        let m = |d1: f32, d2: Option<f32>| Match {
            name: None,
            nearest: Some("x".into()),
            distance: d1,
            runner_up: d2,
            margin: None,
            ratio: None,
            threshold: 0.0,
            rule: Rule::Distance,
        };
        assert_eq!(acc.decide(m(0.3, Some(0.9))).name.as_deref(), Some("x")); // 1/3
        assert_eq!(acc.decide(m(0.3, Some(0.5))).name, None); // 0.6 > 0.5
        assert_eq!(acc.decide(m(0.7, Some(5.0))).name, None); // beyond the cap
        assert_eq!(acc.decide(m(0.3, None)).name.as_deref(), Some("x")); // one person: cap only
        assert_eq!(acc.decide(m(0.3, Some(0.9))).rule, Rule::Ratio);
        // Calibrating the ratio on 10 impostors with ratios 0.1..1.0 (all under the cap) at
        // FAR 0.2 puts the threshold between 0.2 and 0.3; one beyond the cap counts as rejected.
        let mut pairs: Vec<(f32, Option<f32>)> = (1..=10)
            .map(|i| (0.05, Some(0.05 / (i as f32 / 10.0))))
            .collect();
        let c = calibrate_rule(&pairs, 0.2, Metric::Euclidean, Rule::Ratio, 0.6, "t");
        assert!((c.threshold - 0.25).abs() < 1e-4, "{}", c.threshold);
        assert_eq!(c.acceptance().max_distance, 0.6);
        pairs.push((0.9, Some(10.0)));
        let c = calibrate_rule(&pairs, 0.0, Metric::Euclidean, Rule::Ratio, 0.6, "t");
        assert!(c.threshold < 0.1);
        // Another network's verification distance is the cap, stored with the calibration;
        // a calibration stored before the cap was (dlib galleries) reads back as 0.6, and
        // under cosine the cap is the unit-vector equivalent d^2 / 2.
        let c = calibrate_rule(&pairs, 0.2, Metric::Euclidean, Rule::Ratio, 1.06, "t");
        assert_eq!(c.acceptance().max_distance, 1.06);
        let mut old: serde_json::Value = serde_json::to_value(&c).unwrap();
        old.as_object_mut().unwrap().remove("max_distance");
        let old: Calibration = serde_json::from_value(old).unwrap();
        assert_eq!(old.acceptance().max_distance, 0.6);
        assert!((verification_distance(Metric::Cosine, 1.06) - 0.5618).abs() < 1e-6);
    }

    /// By hand: gallery a (0,0), b (3,4); labelled photos a' (0,1) (compared with b only:
    /// |(0,1)-(3,4)| = sqrt(18)), c (0,2) (nearest of anyone: a at 2), d (3,3) (b at 1).
    #[test]
    fn impostor_scores_skip_the_same_name() {
        let g = vec![
            ("a".to_string(), vec![0.0, 0.0]),
            ("b".to_string(), vec![3.0, 4.0]),
        ];
        let probes = vec![
            ("a".to_string(), vec![0.0, 1.0]),
            ("c".to_string(), vec![0.0, 2.0]),
            ("d".to_string(), vec![3.0, 3.0]),
        ];
        let s = impostor_scores(&g, &probes, Metric::Euclidean);
        assert_eq!(s.len(), 3);
        assert!((s[0] - 18f32.sqrt()).abs() < 1e-6);
        assert!((s[1] - 2.0).abs() < 1e-6 && (s[2] - 1.0).abs() < 1e-6);
        // Self-distance 0; cosine of orthogonal vectors 1, of opposite ones 2.
        assert_eq!(distance(Metric::Cosine, &[1.0, 0.0], &[0.0, 2.0]), 1.0);
        assert_eq!(distance(Metric::Cosine, &[1.0, 0.0], &[-2.0, 0.0]), 2.0);
        assert_eq!(distance(Metric::Euclidean, &[0.3, 0.4], &[0.3, 0.4]), 0.0);
        let dir = tempfile::tempdir().unwrap();
        let mut db = Gallery::open(&dir.path().join("g.sqlite")).unwrap();
        db.enroll("a", &model(2), &[photo(vec![0.0, 0.0])]).unwrap();
        db.enroll("b", &model(2), &[photo(vec![3.0, 4.0])]).unwrap();
        let c = db
            .calibrate_labelled(&probes, 0.0, Metric::Euclidean, Rule::Distance, "folder")
            .unwrap();
        assert!(c.threshold < 1.0 && c.threshold > 0.99);
        assert_eq!(db.thumbnail("a").unwrap(), Some(vec![0xff, 0xd8]));
        assert_eq!(db.thumbnail("zed").unwrap(), None);
        assert_eq!(c.source.as_deref(), Some("folder"));
        db.set_calibration(&c).unwrap();
        assert_eq!(db.index().unwrap().len(), 2);
    }
}

/// Open-set identification figures (watch-list protocol): one photo per enrolled person,
/// probes of enrolled people (should be named) and of people never enrolled (should be
/// `unknown`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenSetIdReport {
    /// Enrolled people.
    pub enrolled: usize,
    /// Probes of enrolled people.
    pub known_probes: usize,
    /// Probes of people never enrolled.
    pub unknown_probes: usize,
    /// The calibration used (leave-one-person-out impostor scores of the enrolled photos,
    /// under the evaluated rule).
    pub calibration: Calibration,
    /// Rank-1 detection-and-identification rate at the calibrated threshold.
    pub dir_at_threshold: f64,
    /// Fraction of never-enrolled probes answered `unknown` at the calibrated threshold.
    pub unknown_rejected_at_threshold: f64,
    /// Rank-1 identification rate without a threshold (closed set).
    pub rank1_closed_set: f64,
    /// The curve: (FAR on never-enrolled probes, DIR), one point per distinct threshold of the
    /// rule's score.
    pub curve: Vec<(f64, f64)>,
}

/// Evaluates open-set identification; `far` is the calibration target.
/// `verify` is the model's Euclidean verification distance (the ratio rule's cap).
pub fn evaluate_open_set(
    enrolled: &[(String, Vec<f32>)],
    known: &[(String, Vec<f32>)],
    unknown: &[Vec<f32>],
    far: f64,
    rule: Rule,
    verify: f32,
) -> Result<OpenSetIdReport> {
    let metric = Metric::Euclidean;
    let pairs = impostor_pairs(enrolled, enrolled, metric);
    let calibration = if pairs.is_empty() {
        Calibration {
            threshold: 0.6,
            far,
            impostors: 0,
            metric,
            source: None,
            rule: Rule::Distance,
            max_distance: None,
        }
    } else {
        calibrate_rule(&pairs, far, metric, rule, verify, "gallery")
    };
    let cap = calibration.acceptance().max_distance;
    let index = Index::new(enrolled, metric)?;
    let t = calibration.threshold;
    let score = |m: &Match| {
        if m.distance > cap {
            f32::INFINITY
        } else {
            Acceptance::score(rule, m.distance, m.runner_up)
        }
    };
    // (score, correct identity) for known probes; the score for unknown probes.
    let known_scored: Vec<(f32, bool)> = known
        .iter()
        .map(|(name, q)| {
            let m = index.search(q, f32::MAX)?;
            Ok((score(&m), m.nearest.as_deref() == Some(name.as_str())))
        })
        .collect::<Result<_>>()?;
    let unknown_d: Vec<f32> = unknown
        .iter()
        .map(|q| Ok(score(&index.search(q, f32::MAX)?)))
        .collect::<Result<_>>()?;
    let nk = known_scored.len().max(1) as f64;
    let nu = unknown_d.len().max(1) as f64;
    let dir_at = |th: f32| {
        known_scored
            .iter()
            .filter(|(d, ok)| *ok && *d <= th)
            .count() as f64
            / nk
    };
    let far_at = |th: f32| unknown_d.iter().filter(|&&d| d <= th).count() as f64 / nu;
    let mut ths: Vec<f32> = unknown_d
        .iter()
        .copied()
        .filter(|d| d.is_finite())
        .collect();
    ths.sort_by(|a, b| a.total_cmp(b));
    ths.dedup();
    let mut curve: Vec<(f64, f64)> =
        vec![(0.0, dir_at(ths.first().copied().unwrap_or(0.0) - 1e-6))];
    let step = (ths.len() / 500).max(1);
    for th in ths.iter().step_by(step) {
        curve.push((far_at(*th), dir_at(*th)));
    }
    curve.push((far_at(f32::MAX), dir_at(f32::MAX)));
    Ok(OpenSetIdReport {
        enrolled: enrolled.len(),
        known_probes: known.len(),
        unknown_probes: unknown.len(),
        dir_at_threshold: dir_at(t),
        unknown_rejected_at_threshold: 1.0 - far_at(t),
        rank1_closed_set: known_scored.iter().filter(|(_, ok)| *ok).count() as f64 / nk,
        calibration,
        curve,
    })
}

#[cfg(test)]
mod open_set_tests {
    use super::*;

    /// By hand: enrolled a at (0,0), b at (10,0); known probes a' at (0.5,0) (right, d 0.5) and
    /// b' at (4,0) (nearest a: wrong); unknown u at (5,5) (d sqrt(50)).
    #[test]
    fn dir_and_rejection_by_hand() {
        let enrolled = vec![
            ("a".to_string(), vec![0.0, 0.0]),
            ("b".to_string(), vec![10.0, 0.0]),
        ];
        let known = vec![
            ("a".to_string(), vec![0.5, 0.0]),
            ("b".to_string(), vec![4.0, 0.0]),
        ];
        let unknown = vec![vec![5.0, 5.0]];
        let r = evaluate_open_set(&enrolled, &known, &unknown, 0.0, Rule::Distance, 0.6).unwrap();
        // Each enrolled photo's nearest impostor is at 10; FAR 0 puts the threshold just below.
        assert!(r.calibration.threshold < 10.0 && r.calibration.threshold > 9.9);
        assert_eq!(r.rank1_closed_set, 0.5);
        assert_eq!(r.dir_at_threshold, 0.5);
        // sqrt(50) = 7.07 is below the threshold: the unknown probe is (wrongly) accepted.
        assert_eq!(r.unknown_rejected_at_threshold, 0.0);
    }
}
