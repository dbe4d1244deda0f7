//! The SQLite store: people, their photos and the embeddings of those photos.
//!
//! Every embedding records the model that made it (name + weights SHA-256) and its dimension;
//! the gallery accepts only one model, and queries with another are refused. Writes run in
//! transactions, so an interrupted enrolment leaves the database as it was before it.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::calibration::{calibrate_rule, impostor_pairs, Calibration};
use super::decision::Rule;
use super::hnsw::{fingerprint, Hnsw, HnswConfig, IndexKind, Stamp, AUTO_HNSW_ROWS};
use super::Index;
use crate::metric::Distance;
use crate::{Error, NoProgress, Progress, Result};

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

/// The first 12 characters of a hash for messages; a shorter or non-ASCII string (from an
/// imported file) is shown whole instead of being sliced inside a character.
fn short_hash(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// The longest person name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// The one rule for a person's name, shared by enrolment, capture, import and the server:
/// 1 to [`MAX_NAME_CHARS`] characters once trimmed, no control character and no path
/// separator (a capture folder is named after the person). Returns the trimmed name.
///
/// ```
/// use recog::gallery::check_name;
/// assert_eq!(check_name("  Ada Lovelace ").unwrap(), "Ada Lovelace");
/// assert!(check_name("").is_err());
/// assert!(check_name("../etc").is_err());
/// assert!(check_name("a\nb").is_err());
/// ```
pub fn check_name(name: &str) -> Result<String> {
    let n = name.trim();
    let count = n.chars().count();
    if count == 0
        || count > MAX_NAME_CHARS
        || n.chars().any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(Error::InvalidArgument(format!(
            "{name:?}: a name must be 1-{MAX_NAME_CHARS} printable characters without / or \\"
        )));
    }
    Ok(n.to_string())
}

/// The gallery schema this recog writes. Galleries record theirs in `meta`
/// (`schema_version`); older ones are migrated on open, newer ones refused.
pub const SCHEMA_VERSION: u32 = 2;

/// Each migration: the version it brings a gallery to, and its SQL. Version 1 is the first
/// schema (galleries from before versions were recorded have it); a new file runs them all.
const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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
    ),
    // Version 2: `owner_of` (every enrolment asks it) and the cascade from people to photos
    // scanned the photos table.
    (
        2,
        "CREATE INDEX IF NOT EXISTS photos_by_sha256 ON photos(sha256);
         CREATE INDEX IF NOT EXISTS photos_by_person ON photos(person_id);",
    ),
];

/// The refusal of a gallery from a newer recog (`u32::MAX`: an unreadable version).
fn newer_schema(v: u32) -> String {
    let v = if v == u32::MAX {
        "unknown".to_string()
    } else {
        v.to_string()
    };
    format!("written by a newer recog (gallery schema {v}; this recog reads up to {SCHEMA_VERSION}): upgrade recog to open it")
}

/// What `gallery check` found; [`CheckReport::is_clean`] when nothing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckReport {
    /// The gallery file.
    pub path: PathBuf,
    /// Its schema version.
    pub schema_version: u32,
    /// People, photos and embeddings counted.
    pub people: usize,
    /// Photos.
    pub photos: usize,
    /// Embeddings.
    pub embeddings: usize,
    /// SQLite's `integrity_check` lines other than "ok".
    pub integrity: Vec<String>,
    /// Rows whose reference has no target (`foreign_key_check`), as "table row id".
    pub dangling: Vec<String>,
    /// Embeddings whose model, weights or dimension differ from the gallery's model, or
    /// whose stored vector is not `dim` floats, as "person: photo: problem".
    pub bad_embeddings: Vec<String>,
    /// Photos with no embedding, as "person: photo".
    pub photos_without_embedding: Vec<String>,
    /// People with no photo.
    pub people_without_photos: Vec<String>,
}

impl CheckReport {
    /// No problem found.
    pub fn is_clean(&self) -> bool {
        self.problems() == 0
    }

    /// How many problems were found.
    pub fn problems(&self) -> usize {
        self.integrity.len()
            + self.dangling.len()
            + self.bad_embeddings.len()
            + self.photos_without_embedding.len()
            + self.people_without_photos.len()
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: schema {}, {} people, {} photos, {} embeddings",
            self.path.display(),
            self.schema_version,
            self.people,
            self.photos,
            self.embeddings
        )?;
        let groups: [(&str, &Vec<String>); 5] = [
            ("integrity", &self.integrity),
            ("dangling reference", &self.dangling),
            ("bad embedding", &self.bad_embeddings),
            ("photo without embedding", &self.photos_without_embedding),
            ("person without photos", &self.people_without_photos),
        ];
        for (what, items) in groups {
            for i in items {
                writeln!(f, "  {what}: {i}")?;
            }
        }
        if self.is_clean() {
            write!(f, "clean")
        } else {
            write!(f, "{} problem(s)", self.problems())
        }
    }
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

impl Gallery {
    /// Opens (creating if needed) the database at `path`, migrating an older schema to
    /// [`SCHEMA_VERSION`]. A gallery written by a newer recog is refused, untouched.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let conn = Connection::open(path).map_err(|e| Error::Gallery {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })?;
        let mut g = Self {
            conn,
            path: path.to_path_buf(),
        };
        // A busy writer (the server, another enrolment) is waited for, not failed on.
        g.conn
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| g.err(e))?;
        g.conn
            .execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(|e| g.err(e))?;
        g.migrate()?;
        Ok(g)
    }

    /// The schema version a file records: 0 for a new file, 1 for galleries from before the
    /// version was recorded.
    fn stored_schema(conn: &Connection) -> rusqlite::Result<u32> {
        let has_meta: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
            [],
            |r| r.get(0),
        )?;
        if !has_meta {
            return Ok(0);
        }
        let v: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        // An unreadable version is treated as newer than any: refused rather than rewritten.
        Ok(v.map_or(1, |v| v.trim().parse().unwrap_or(u32::MAX)))
    }

    /// Brings the schema to [`SCHEMA_VERSION`], one transaction for all steps.
    fn migrate(&mut self) -> Result<()> {
        let v = Self::stored_schema(&self.conn).map_err(|e| self.err(e))?;
        if v > SCHEMA_VERSION {
            return Err(self.newer(v));
        }
        if v == SCHEMA_VERSION {
            return Ok(());
        }
        // WAL lets readers (a server, `gallery backup`) run beside one writer.
        self.conn
            .execute_batch("PRAGMA journal_mode = WAL;")
            .map_err(|e| self.err(e))?;
        let path = self.path.clone();
        let wrap = |e: rusqlite::Error| Error::Gallery {
            path: path.clone(),
            problem: format!("migrating the gallery's schema: {e}"),
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(wrap)?;
        // Another process may have migrated while this one waited for the lock.
        let v = Self::stored_schema(&tx).map_err(wrap)?;
        if v > SCHEMA_VERSION {
            return Err(Error::Gallery {
                path: self.path.clone(),
                problem: newer_schema(v),
            });
        }
        for (to, sql) in MIGRATIONS {
            if v < *to {
                tx.execute_batch(sql).map_err(wrap)?;
            }
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(wrap)?;
        tx.commit().map_err(wrap)
    }

    fn newer(&self, v: u32) -> Error {
        self.err(newer_schema(v))
    }

    /// The schema version of the open gallery.
    pub fn schema_version(&self) -> Result<u32> {
        Self::stored_schema(&self.conn).map_err(|e| self.err(e))
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
            Some(g) if &g != m => Err(Error::ModelMismatch { path: self.path.clone(), problem: format!(
                "the gallery holds embeddings of {} (weights {}, {}-d); this query uses {} (weights {}, {}-d): re-enrol with one model",
                g.name,
                short_hash(&g.sha256),
                g.dim,
                m.name,
                short_hash(&m.sha256),
                m.dim
            )}),
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
        for (name, _) in people {
            if check_name(name)? != *name {
                return Err(Error::InvalidArgument(format!(
                    "{name:?}: a person's name has no leading or trailing spaces"
                )));
            }
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
            // A person is only created with a photo: `gallery check` counts one without any
            // as a problem.
            for (name, photos) in people.iter().filter(|(_, p)| !p.is_empty()) {
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
    pub fn calibrate_self(&self, far: f64, metric: Distance, rule: Rule) -> Result<Calibration> {
        let e = self.embeddings()?;
        let pairs = impostor_pairs(&e, &e, metric);
        if pairs.is_empty() {
            return Err(self.err("calibration needs photos of at least two people"));
        }
        let cap = metric.of_euclidean(self.verification_distance()?);
        Ok(calibrate_rule(&pairs, far, metric, rule, cap, "gallery"))
    }

    /// The Euclidean verification distance of the model that made the gallery's embeddings.
    fn verification_distance(&self) -> Result<f32> {
        Ok(self
            .model()?
            .and_then(|m| crate::face::FaceModel::from_name(&m.name))
            .unwrap_or_default()
            .verification_distance())
    }

    /// Calibrates on a labelled set of photos (e.g. LFW): each photo's distance to the
    /// nearest gallery photo of a person with another name is a stranger's score.
    pub fn calibrate_labelled(
        &self,
        labelled: &[(String, Vec<f32>)],
        far: f64,
        metric: Distance,
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
        let cap = metric.of_euclidean(self.verification_distance()?);
        Ok(calibrate_rule(&pairs, far, metric, rule, cap, source))
    }

    /// A searchable index of the stored embeddings, with the calibrated metric (Euclidean if
    /// the gallery was never calibrated): [`IndexKind::Auto`] with the default graph.
    pub fn index(&self) -> Result<Index> {
        self.index_with(IndexKind::Auto, &HnswConfig::default(), &NoProgress)
    }

    /// Every stored embedding keyed by its photo id (ascending), with its person's name.
    pub fn keyed_embeddings(&self) -> Result<Vec<(u64, String, Vec<f32>)>> {
        let mut st = self
            .conn
            .prepare("SELECT e.photo_id, p.name, e.vector FROM embeddings e JOIN photos ph ON ph.id = e.photo_id JOIN people p ON p.id = ph.person_id ORDER BY e.photo_id")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, String>(1)?,
                    from_blob(&r.get::<_, Vec<u8>>(2)?),
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }

    /// Where the gallery's HNSW graph is kept: `<db>.hnsw` beside the database.
    pub fn hnsw_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".hnsw");
        PathBuf::from(p)
    }

    /// A searchable index searched as `kind` says. With a graph, the one saved beside the
    /// database is loaded and brought up to date (photos enrolled since added, removed ones
    /// taken out) and saved again; it is built from scratch when missing, unreadable, or made
    /// for another metric, network or `config`. A graph that cannot be saved (a read-only
    /// folder) is still used, with a warning.
    pub fn index_with(
        &self,
        kind: IndexKind,
        config: &HnswConfig,
        progress: &dyn Progress,
    ) -> Result<Index> {
        config.check()?;
        let metric = self.calibration()?.map(|c| c.metric).unwrap_or_default();
        let index = Index::keyed(&self.keyed_embeddings()?, metric)?;
        let graph = match kind {
            IndexKind::Exact => false,
            IndexKind::Hnsw => !index.is_empty(),
            IndexKind::Auto => index.len() >= AUTO_HNSW_ROWS,
        };
        if !graph {
            return Ok(index);
        }
        let stamp = Stamp {
            metric,
            model_sha256: self.model()?.map(|m| m.sha256).unwrap_or_default(),
        };
        let path = self.hnsw_path();
        let saved = match Hnsw::load(&path) {
            Ok((h, keys, s)) if s == stamp && h.config() == config => Some((h, keys)),
            Ok(_) => {
                progress.warn(&format!(
                    "{}: made for another metric, network or configuration; rebuilding",
                    path.display()
                ));
                None
            }
            Err(e) if e.kind() == crate::ErrorKind::NotFound => None,
            Err(e) => {
                progress.warn(&format!("{e}; rebuilding"));
                None
            }
        };
        let rows = index.rows();
        let keys: Vec<(u64, u64)> = rows.iter().map(|(k, v)| (*k, fingerprint(v))).collect();
        let (h, changed) = match saved {
            Some((h, saved_keys)) => {
                let now: std::collections::HashMap<u64, u64> = keys.iter().copied().collect();
                let mut changed = false;
                // Gone from the gallery, or the key now names another photo's vector.
                for (k, f) in saved_keys {
                    if now.get(&k) != Some(&f) && h.remove(k)? {
                        changed = true;
                    }
                }
                let missing: Vec<(u64, &[f32])> = rows
                    .iter()
                    .copied()
                    .filter(|(k, _)| !h.contains(*k))
                    .collect();
                changed |= !missing.is_empty();
                h.add_all(&missing, progress)?;
                (h, changed)
            }
            None => (Hnsw::build(index.dim(), config, &rows, progress)?, true),
        };
        if h.len() != index.len() {
            return Err(Error::Hnsw {
                path,
                problem: format!(
                    "holds {} photos after updating, the gallery {}",
                    h.len(),
                    index.len()
                ),
            });
        }
        if changed {
            if let Err(e) = h.save(&path, &keys, &stamp) {
                progress.warn(&format!("{e}; the graph will be rebuilt next time"));
            }
        }
        Ok(index.with_hnsw(h))
    }

    /// Checks the gallery: SQLite's integrity and foreign keys, every embedding against the
    /// gallery's model (name, weights, dimension, stored length), photos without an
    /// embedding and people without photos. Reads only.
    pub fn check(&self) -> Result<CheckReport> {
        let e = |e: rusqlite::Error| self.err(e);
        let strings = |sql: &str| -> Result<Vec<String>> {
            let mut st = self.conn.prepare(sql).map_err(e)?;
            let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(e)?;
            rows.collect::<std::result::Result<Vec<_>, _>>().map_err(e)
        };
        let count = |table: &str| -> Result<usize> {
            self.conn
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| usize::try_from(n).unwrap_or(0))
                .map_err(e)
        };
        let integrity = strings("PRAGMA integrity_check")?
            .into_iter()
            .filter(|l| l != "ok")
            .collect();
        let dangling = {
            let mut st = self.conn.prepare("PRAGMA foreign_key_check").map_err(e)?;
            let rows = st
                .query_map([], |r| {
                    Ok(format!(
                        "{} row {} -> {}",
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<i64>>(1)?.unwrap_or(-1),
                        r.get::<_, String>(2)?
                    ))
                })
                .map_err(e)?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(e)?
        };
        let model = self.model()?;
        let mut bad_embeddings = Vec::new();
        {
            let mut st = self
                .conn
                .prepare("SELECT p.name, ph.path, e.model, e.model_sha256, e.dim, length(e.vector) FROM embeddings e JOIN photos ph ON ph.id = e.photo_id JOIN people p ON p.id = ph.person_id ORDER BY p.name, ph.id")
                .map_err(e)?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .map_err(e)?;
            for row in rows {
                let (person, photo, name, sha, dim, bytes) = row.map_err(e)?;
                let mut problems = Vec::new();
                match &model {
                    None => problems.push("the gallery records no model".to_string()),
                    Some(m) => {
                        if m.name != name || m.sha256 != sha {
                            problems.push(format!(
                                "made by {name} ({}), not the gallery's {} ({})",
                                short_hash(&sha),
                                m.name,
                                short_hash(&m.sha256)
                            ));
                        }
                        if usize::try_from(dim).ok() != Some(m.dim) {
                            problems.push(format!("{dim}-d, the model's are {}-d", m.dim));
                        }
                    }
                }
                if dim.checked_mul(4) != Some(bytes) {
                    problems.push(format!("{bytes} bytes stored for {dim} floats"));
                }
                if !problems.is_empty() {
                    bad_embeddings.push(format!("{person}: {photo}: {}", problems.join("; ")));
                }
            }
        }
        Ok(CheckReport {
            path: self.path.clone(),
            schema_version: self.schema_version()?,
            people: count("people")?,
            photos: count("photos")?,
            embeddings: count("embeddings")?,
            integrity,
            dangling,
            bad_embeddings,
            photos_without_embedding: strings("SELECT p.name || ': ' || ph.path FROM photos ph JOIN people p ON p.id = ph.person_id LEFT JOIN embeddings e ON e.photo_id = ph.id WHERE e.photo_id IS NULL ORDER BY p.name, ph.id")?,
            people_without_photos: strings("SELECT p.name FROM people p LEFT JOIN photos ph ON ph.person_id = p.id WHERE ph.id IS NULL ORDER BY p.name")?,
        })
    }

    /// Writes a consistent copy of the gallery to `dest` (SQLite's `VACUUM INTO`): a
    /// snapshot, safe while a server or an enrolment writes. `dest` must not exist.
    pub fn backup(&self, dest: &Path) -> Result<()> {
        if dest.exists() {
            return Err(Error::InvalidArgument(format!(
                "{} exists; a backup does not overwrite",
                dest.display()
            )));
        }
        let Some(d) = dest.to_str() else {
            return Err(Error::InvalidArgument(format!(
                "{}: a backup path must be UTF-8",
                dest.display()
            )));
        };
        self.conn
            .execute("VACUUM INTO ?1", [d])
            .map_err(|e| self.err(format!("backing up to {}: {e}", dest.display())))?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::*;
    use crate::metric::Distance;

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

    /// Counts warnings, so a test can tell an incremental update from a rebuild.
    #[derive(Default)]
    struct Warnings(std::sync::Mutex<Vec<String>>);
    impl Progress for Warnings {
        fn start(&self, label: &str, total: u64) {
            self.0
                .lock()
                .unwrap()
                .push(format!("start {label} {total}"));
        }
        fn inc(&self, _: u64) {}
        fn message(&self, _: &str) {}
        fn finish(&self) {}
        fn warn(&self, msg: &str) {
            self.0.lock().unwrap().push(format!("warn {msg}"));
        }
    }

    fn people(range: std::ops::Range<usize>, dim: usize) -> Vec<(String, Vec<NewPhoto>)> {
        range
            .map(|i| {
                let v = |j: usize| -> Vec<f32> {
                    use rand::{Rng, SeedableRng};
                    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64((i * 2 + j) as u64);
                    (0..dim).map(|_| r.random::<f32>()).collect()
                };
                (format!("p{i:04}"), vec![photo(v(0)), photo(v(1))])
            })
            .collect()
    }

    /// The graph beside the gallery follows every change without a rebuild: enrolments are
    /// added, a removed person taken out, and a photo id SQLite reuses after removing the
    /// last person carries its new vector, not the old one. Its answers match the exact
    /// search's throughout.
    #[test]
    fn hnsw_file_follows_enrolments_removals_and_reused_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Gallery::open(&dir.path().join("g.sqlite")).unwrap();
        let m = model(8);
        g.enroll_many(&m, &people(0..300, 8)).unwrap();
        let cfg = HnswConfig::default();
        let same_as_exact = |g: &Gallery, w: &Warnings| {
            let h = g.index_with(IndexKind::Hnsw, &cfg, w).unwrap();
            assert_eq!(h.kind(), IndexKind::Hnsw);
            let e = g.index_with(IndexKind::Exact, &cfg, w).unwrap();
            assert_eq!(e.kind(), IndexKind::Exact);
            assert_eq!(h.hnsw().unwrap().len(), e.len());
            for (_, _, v) in g.keyed_embeddings().unwrap().iter().step_by(7) {
                let (a, b) = (h.search(v, 0.5).unwrap(), e.search(v, 0.5).unwrap());
                assert_eq!((a.nearest, a.distance), (b.nearest, b.distance));
            }
        };
        let w = Warnings::default();
        same_as_exact(&g, &w);
        assert!(g.hnsw_path().exists());
        assert_eq!(w.0.lock().unwrap().as_slice(), ["start HNSW index 600"]);

        let w = Warnings::default();
        g.enroll_many(&m, &people(300..310, 8)).unwrap();
        assert!(g.remove("p0005").unwrap());
        same_as_exact(&g, &w);
        assert_eq!(w.0.lock().unwrap().as_slice(), ["start HNSW index 20"]);

        // The last person's photo ids come back for the next enrolment.
        let w = Warnings::default();
        let last = g.keyed_embeddings().unwrap().last().unwrap().0;
        assert!(g.remove("p0309").unwrap());
        g.enroll_many(&m, &people(900..901, 8)).unwrap();
        assert_eq!(g.keyed_embeddings().unwrap().last().unwrap().0, last);
        same_as_exact(&g, &w);
        assert_eq!(w.0.lock().unwrap().as_slice(), ["start HNSW index 2"]);
        let v = &people(900..901, 8)[0].1[1].embedding;
        assert_eq!(
            g.index_with(IndexKind::Hnsw, &cfg, &w)
                .unwrap()
                .search(v, 0.1)
                .unwrap()
                .name
                .as_deref(),
            Some("p0900")
        );

        // A damaged file is rebuilt, with a warning naming it.
        let w = Warnings::default();
        std::fs::write(g.hnsw_path(), b"RECOGHNSW\nshort").unwrap();
        same_as_exact(&g, &w);
        let said = w.0.lock().unwrap().join("\n");
        assert!(
            said.contains("g.sqlite.hnsw") && said.contains("rebuilding"),
            "{said}"
        );
        assert!(said.contains("start HNSW index 618"), "{said}");

        // Auto stays exact for a small gallery.
        assert_eq!(g.index().unwrap().kind(), IndexKind::Exact);
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
        let c = calibrate(&imp, 0.2, Distance::Euclidean, "t");
        assert!((c.threshold - 0.25).abs() < 1e-6);
        let accepted = imp.iter().filter(|&&d| d <= c.threshold).count();
        assert_eq!(accepted, 2);
        assert!(calibrate(&imp, 0.0, Distance::Euclidean, "t").threshold < 0.1);
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
        let p = impostor_pairs(&g, &probes, Distance::Euclidean);
        assert!((p[0].0 - 1.0).abs() < 1e-6 && (p[0].1.unwrap() - 18f32.sqrt()).abs() < 1e-5);
        assert!(p[1].0.abs() < 1e-6 && (p[1].1.unwrap() - 5f32.sqrt()).abs() < 1e-5);
        // Ratio rule, threshold 0.5, cap 0.6 (Euclidean).
        let acc = Acceptance {
            rule: Rule::Ratio,
            threshold: 0.5,
            verification_distance: Distance::Euclidean.of_euclidean(0.6),
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
        let c = calibrate_rule(&pairs, 0.2, Distance::Euclidean, Rule::Ratio, 0.6, "t");
        assert!((c.threshold - 0.25).abs() < 1e-4, "{}", c.threshold);
        assert_eq!(c.acceptance().verification_distance, 0.6);
        pairs.push((0.9, Some(10.0)));
        let c = calibrate_rule(&pairs, 0.0, Distance::Euclidean, Rule::Ratio, 0.6, "t");
        assert!(c.threshold < 0.1);
        // Another network's verification distance is the cap, stored with the calibration;
        // a calibration stored before the cap was (dlib galleries) reads back as 0.6, and
        // under cosine the cap is the unit-vector equivalent d^2 / 2.
        let c = calibrate_rule(&pairs, 0.2, Distance::Euclidean, Rule::Ratio, 1.06, "t");
        assert_eq!(c.acceptance().verification_distance, 1.06);
        let mut old: serde_json::Value = serde_json::to_value(&c).unwrap();
        old.as_object_mut().unwrap().remove("verification_distance");
        let old: Calibration = serde_json::from_value(old).unwrap();
        assert_eq!(old.acceptance().verification_distance, 0.6);
        assert!((Distance::Cosine.of_euclidean(1.06) - 0.5618).abs() < 1e-6);
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
        let s = impostor_scores(&g, &probes, Distance::Euclidean);
        assert_eq!(s.len(), 3);
        assert!((s[0] - 18f32.sqrt()).abs() < 1e-6);
        assert!((s[1] - 2.0).abs() < 1e-6 && (s[2] - 1.0).abs() < 1e-6);
        // Self-distance 0; cosine of orthogonal vectors 1, of opposite ones 2.
        assert_eq!(Distance::Cosine.between(&[1.0, 0.0], &[0.0, 2.0]), 1.0);
        assert_eq!(Distance::Cosine.between(&[1.0, 0.0], &[-2.0, 0.0]), 2.0);
        assert_eq!(Distance::Euclidean.between(&[0.3, 0.4], &[0.3, 0.4]), 0.0);
        let dir = tempfile::tempdir().unwrap();
        let mut db = Gallery::open(&dir.path().join("g.sqlite")).unwrap();
        db.enroll("a", &model(2), &[photo(vec![0.0, 0.0])]).unwrap();
        db.enroll("b", &model(2), &[photo(vec![3.0, 4.0])]).unwrap();
        let c = db
            .calibrate_labelled(&probes, 0.0, Distance::Euclidean, Rule::Distance, "folder")
            .unwrap();
        assert!(c.threshold < 1.0 && c.threshold > 0.99);
        assert_eq!(db.thumbnail("a").unwrap(), Some(vec![0xff, 0xd8]));
        assert_eq!(db.thumbnail("zed").unwrap(), None);
        assert_eq!(c.source.as_deref(), Some("folder"));
        db.set_calibration(&c).unwrap();
        assert_eq!(db.index().unwrap().len(), 2);
    }

    /// Three name rules disagreed: the CLI refused path separators, the server refused
    /// control characters and names over 100 bytes, the library only empty names. One rule
    /// now, applied by the gallery itself, so no front end can store a name another refuses.
    #[test]
    fn one_name_rule_for_every_front_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Gallery::open(&dir.path().join("g.sqlite")).unwrap();
        for bad in ["", "   ", "a/b", "a\\b", "line\nbreak", &"x".repeat(101)] {
            let e = db
                .enroll(bad, &model(2), &[photo(vec![0.0, 1.0])])
                .unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::BadInput, "{bad:?}: {e}");
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        // 100 characters of a multi-byte script are fine (the server counted bytes).
        let long = "é".repeat(100);
        assert_eq!(check_name(&long).unwrap(), long);
        db.enroll(&long, &model(2), &[photo(vec![0.0, 1.0])])
            .unwrap();
        // Untrimmed names are refused by the store; front ends trim with `check_name`.
        assert!(db
            .enroll(" ada", &model(2), &[photo(vec![1.0, 1.0])])
            .is_err());
        assert_eq!(check_name(" ada ").unwrap(), "ada");
    }

    #[test]
    fn errors_tell_a_model_mismatch_from_storage() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Gallery::open(&dir.path().join("g.sqlite")).unwrap();
        db.enroll("ada", &model(2), &[photo(vec![0.0, 1.0])])
            .unwrap();
        let e = db.check_model(&model(3)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::ModelMismatch, "{e}");
        // A non-ASCII hash from an imported file is shown whole, not sliced mid-character.
        let odd = ModelId {
            name: "m".into(),
            sha256: "aéééééé".into(),
            dim: 2,
        };
        assert!(db
            .check_model(&odd)
            .unwrap_err()
            .to_string()
            .contains("aéééééé"));
        let junk = dir.path().join("junk.sqlite");
        std::fs::write(&junk, vec![7u8; 4096]).unwrap();
        let e = Gallery::open(&junk).err().unwrap();
        assert_eq!(e.kind(), crate::ErrorKind::Storage, "{e}");
    }

    /// A gallery from before schema versions (version 1: the tables, no `schema_version`)
    /// is migrated on open; one from a newer recog is refused and left as it was.
    #[test]
    fn an_old_gallery_is_migrated_and_a_newer_one_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("v1.sqlite");
        {
            let c = Connection::open(&old).unwrap();
            c.execute_batch(MIGRATIONS[0].1).unwrap();
            c.execute("INSERT INTO people (name) VALUES ('ada')", [])
                .unwrap();
            c.execute(
                "INSERT INTO photos (person_id, path, sha256) VALUES (1, 'a.jpg', 'h')",
                [],
            )
            .unwrap();
        }
        let g = Gallery::open(&old).unwrap();
        assert_eq!(g.schema_version().unwrap(), SCHEMA_VERSION);
        let indexes: i64 = g
            .conn
            .query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'photos_by_%'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(indexes, 2);
        assert_eq!(
            g.list().unwrap()[0].photos,
            1,
            "the data survives the migration"
        );
        drop(g);
        let newer = dir.path().join("v9.sqlite");
        Gallery::open(&newer).unwrap();
        {
            let c = Connection::open(&newer).unwrap();
            c.execute(
                "UPDATE meta SET value = '9' WHERE key = 'schema_version'",
                [],
            )
            .unwrap();
        }
        let before = std::fs::read(&newer).unwrap();
        let e = Gallery::open(&newer).err().unwrap().to_string();
        assert!(e.contains("newer recog") && e.contains("schema 9"), "{e}");
        assert_eq!(
            std::fs::read(&newer).unwrap(),
            before,
            "a refused gallery is not written"
        );
    }

    /// `gallery check` names each kind of damage, and a clean gallery reports none.
    #[test]
    fn check_names_each_problem_and_backup_copies_a_clean_gallery() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Gallery::open(&dir.path().join("g.sqlite")).unwrap();
        g.enroll("ann", &model(2), &[photo(vec![0.0, 1.0])])
            .unwrap();
        g.enroll("bob", &model(2), &[photo(vec![1.0, 0.0])])
            .unwrap();
        // No photos, no person: an empty enrolment leaves nothing to find.
        g.enroll("cy", &model(2), &[]).unwrap();
        let r = g.check().unwrap();
        assert!(r.is_clean(), "{r}");
        assert_eq!((r.people, r.photos, r.embeddings), (2, 2, 2));
        let copy = dir.path().join("copy.sqlite");
        g.backup(&copy).unwrap();
        assert!(g.backup(&copy).is_err(), "a backup does not overwrite");
        let b = Gallery::open(&copy).unwrap();
        assert_eq!(b.embeddings().unwrap(), g.embeddings().unwrap());
        assert!(b.check().unwrap().is_clean());
        // Damage: a person without photos, a photo without embedding, a 3-d vector in a
        // 2-d gallery, another model's embedding.
        g.conn
            .execute_batch(
                "INSERT INTO people (name) VALUES ('dee');
             INSERT INTO photos (person_id, path, sha256) VALUES (1, 'lost.jpg', 'x');
             UPDATE embeddings SET vector = zeroblob(12), dim = 3 WHERE photo_id = 1;
             UPDATE embeddings SET model = 'other' WHERE photo_id = 2;",
            )
            .unwrap();
        let r = g.check().unwrap();
        assert_eq!(r.people_without_photos, vec!["dee".to_string()]);
        assert_eq!(
            r.photos_without_embedding,
            vec!["ann: lost.jpg".to_string()]
        );
        assert_eq!(r.bad_embeddings.len(), 2, "{r}");
        assert!(
            r.bad_embeddings[0].contains("3-d, the model's are 2-d"),
            "{r}"
        );
        assert!(r.bad_embeddings[1].contains("made by other"), "{r}");
        assert_eq!(r.problems(), 4);
        assert!(r.to_string().ends_with("4 problem(s)"), "{r}");
    }
}
