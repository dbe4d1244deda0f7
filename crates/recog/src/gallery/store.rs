//! The gallery: people, their photos and the embeddings of those photos, kept by a [`Store`]
//! backend: an SQLite file ([`super::sqlite`], the default) or a PostgreSQL database with
//! pgvector ([`super::postgres`]), chosen by a [`Location`].
//!
//! Every embedding records the model that made it (name + weights SHA-256) and its dimension;
//! the gallery accepts only one model, and queries with another are refused. Writes run in
//! transactions, so an interrupted enrolment leaves the database as it was before it. The
//! policy (names, the model check, calibration, the index) lives in [`Gallery`], once for
//! both backends.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::calibration::{calibrate_rule, impostor_pairs, Calibration};
use super::decision::Rule;
use super::hnsw::{fingerprint, Hnsw, HnswConfig, IndexKind, Stamp};
use super::postgres::PgStore;
use super::sqlite::SqliteStore;
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// The gallery schema this recog writes (both backends number theirs alike). Galleries
/// record theirs in `meta` (`schema_version`); older ones are migrated on open, newer ones
/// refused.
pub const SCHEMA_VERSION: u32 = 2;

/// The refusal of a gallery from a newer recog (`u32::MAX`: an unreadable version).
pub(crate) fn newer_schema(v: u32) -> String {
    let v = if v == u32::MAX {
        "unknown".to_string()
    } else {
        v.to_string()
    };
    format!("written by a newer recog (gallery schema {v}; this recog reads up to {SCHEMA_VERSION}): upgrade recog to open it")
}

/// The refusal of embeddings from another model.
pub(crate) fn model_mismatch(at: &Location, gallery: &ModelId, query: &ModelId) -> Error {
    Error::ModelMismatch {
        path: at.as_path(),
        problem: format!(
            "the gallery holds embeddings of {} (weights {}, {}-d); this query uses {} (weights {}, {}-d): re-enrol with one model",
            gallery.name,
            short_hash(&gallery.sha256),
            gallery.dim,
            query.name,
            short_hash(&query.sha256),
            query.dim
        ),
    }
}

/// What `gallery check` says of one stored embedding's model columns against the gallery's.
pub(crate) fn embedding_problems(
    model: Option<&ModelId>,
    name: &str,
    sha: &str,
    dim: i64,
) -> Vec<String> {
    let mut problems = Vec::new();
    match model {
        None => problems.push("the gallery records no model".to_string()),
        Some(m) => {
            if m.name != name || m.sha256 != sha {
                problems.push(format!(
                    "made by {name} ({}), not the gallery's {} ({})",
                    short_hash(sha),
                    m.name,
                    short_hash(&m.sha256)
                ));
            }
            if usize::try_from(dim).ok() != Some(m.dim) {
                problems.push(format!("{dim}-d, the model's are {}-d", m.dim));
            }
        }
    }
    problems
}

/// Where a gallery lives: an SQLite file, or a PostgreSQL database given by its URL
/// (`postgres://user@host:port/dbname`). Parsed from a `--db` argument: a `postgres://` or
/// `postgresql://` URL names a server, anything else a file.
///
/// ```
/// use recog::gallery::Location;
/// let l: Location = "postgres://ann:secret@127.0.0.1:5432/faces".parse().unwrap();
/// assert!(matches!(l, Location::Postgres(_)));
/// assert_eq!(l.to_string(), "postgres://ann:***@127.0.0.1:5432/faces");
/// let f: Location = "gallery.sqlite".parse().unwrap();
/// assert_eq!(f, Location::Sqlite("gallery.sqlite".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl std::str::FromStr for Location {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Location::Postgres(s.to_string()))
        } else if s.is_empty() {
            Err(Error::InvalidArgument(
                "an empty gallery location: give a file or a postgres:// URL".into(),
            ))
        } else {
            Ok(Location::Sqlite(PathBuf::from(s)))
        }
    }
}

impl std::fmt::Display for Location {
    /// The file, or the URL with its password masked: fit for messages and logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "{}", p.display()),
            Location::Postgres(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                let (auth, host) = match rest.rsplit_once('@') {
                    Some((a, h)) => (Some(a), h),
                    None => (None, rest),
                };
                match auth.and_then(|a| a.split_once(':')) {
                    Some((user, _)) => write!(f, "{scheme}://{user}:***@{host}"),
                    None => write!(f, "{url}"),
                }
            }
        }
    }
}

impl Location {
    /// What errors name as the gallery's path (the masked URL for a server).
    pub fn as_path(&self) -> PathBuf {
        match self {
            Location::Sqlite(p) => p.clone(),
            l @ Location::Postgres(_) => PathBuf::from(l.to_string()),
        }
    }
}

/// One stored photo for export: its person, file, file hash and embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoRow {
    /// The person's name.
    pub name: String,
    /// Where the photo came from.
    pub path: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Its embedding.
    pub embedding: Vec<f32>,
}

/// A gallery backend: storage and retrieval, with no policy. [`Gallery`] checks names,
/// models and dimensions before [`Store::insert`], and builds indexes from
/// [`Store::keyed_embeddings`]. Implemented by [`super::sqlite::SqliteStore`] and
/// [`super::postgres::PgStore`].
pub trait Store: Send {
    /// Where the gallery lives.
    fn location(&self) -> &Location;
    /// The schema version the database records.
    fn schema_version(&self) -> Result<u32>;
    /// A value of the `meta` table (model, calibration, schema version).
    fn meta(&self, key: &str) -> Result<Option<String>>;
    /// Sets a value of the `meta` table.
    fn set_meta(&self, key: &str, value: &str) -> Result<()>;
    /// Adds photos of several people (created if new) in one transaction, all or nothing.
    /// Records `model` as the gallery's if it has none, and refuses another model inside the
    /// transaction, so concurrent writers with different models cannot both succeed.
    fn insert(&mut self, model: &ModelId, people: &[(String, Vec<NewPhoto>)]) -> Result<usize>;
    /// Who a photo (by the SHA-256 of its file) is enrolled under, if anyone.
    fn owner_of(&self, sha256: &str) -> Result<Option<String>>;
    /// People and their photo counts, by name.
    fn list(&self) -> Result<Vec<Person>>;
    /// Removes a person with all photos and embeddings; false if there was no such person.
    fn remove(&mut self, name: &str) -> Result<bool>;
    /// The first stored thumbnail of a person, if any.
    fn thumbnail(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Every embedding keyed by its photo id (ascending), with its person's name.
    fn keyed_embeddings(&self) -> Result<Vec<(u64, String, Vec<f32>)>>;
    /// One person's embeddings keyed by photo id (ascending); empty for nobody by that name.
    fn person_embeddings(&self, name: &str) -> Result<Vec<(u64, Vec<f32>)>>;
    /// A number that changes whenever *another* connection commits a change (SQLite's
    /// `data_version`), so that an index kept up to date with this connection's own writes
    /// knows when it must re-read everything; `None` when the backend cannot tell.
    fn foreign_version(&self) -> Result<Option<u64>> {
        Ok(None)
    }
    /// Every photo with its embedding, by person name then photo id.
    fn photos(&self) -> Result<Vec<PhotoRow>>;
    /// Checks the stored data (see [`CheckReport`]). Reads only.
    fn check(&self) -> Result<CheckReport>;
    /// Writes a consistent copy to the file `dest`, which must not exist.
    fn backup(&self, dest: &Path) -> Result<()>;
    /// An index searched by the database server itself, when the backend has one and `kind`
    /// asks for it ([`IndexKind::Hnsw`], or [`IndexKind::Auto`] from [`super::hnsw::AUTO_HNSW_ROWS`]
    /// photos); `None` to search in-process.
    fn server_index(
        &self,
        kind: IndexKind,
        metric: Distance,
        config: &HnswConfig,
        progress: &dyn Progress,
    ) -> Result<Option<Index>> {
        let _ = (kind, metric, config, progress);
        Ok(None)
    }
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

/// An open gallery: a [`Store`] with the policy every front end shares.
pub struct Gallery {
    store: Box<dyn Store>,
}

impl Gallery {
    /// Opens (creating if needed) the SQLite gallery at `path`, migrating an older schema to
    /// [`SCHEMA_VERSION`]. A gallery written by a newer recog is refused, untouched.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self::with_store(Box::new(SqliteStore::open(path)?)))
    }

    /// Opens (creating the tables if needed) the gallery at `location`: an SQLite file or a
    /// PostgreSQL database with the pgvector extension.
    pub fn open_at(location: &Location) -> Result<Self> {
        match location {
            Location::Sqlite(p) => Self::open(p),
            Location::Postgres(url) => Ok(Self::with_store(Box::new(PgStore::connect(url)?))),
        }
    }

    /// A gallery over any backend.
    pub fn with_store(store: Box<dyn Store>) -> Self {
        Self { store }
    }

    /// Where the gallery lives.
    pub fn location(&self) -> &Location {
        self.store.location()
    }

    /// The schema version of the open gallery.
    pub fn schema_version(&self) -> Result<u32> {
        self.store.schema_version()
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Gallery {
            path: self.location().as_path(),
            problem: e.to_string(),
        }
    }

    fn meta_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.store
            .meta(key)?
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
            Some(g) if &g != m => Err(model_mismatch(self.location(), &g, m)),
            _ => Ok(()),
        }
    }

    /// Adds photos of a person (created if new), all or nothing.
    pub fn enroll(&mut self, name: &str, model: &ModelId, photos: &[NewPhoto]) -> Result<usize> {
        self.enroll_many(model, &[(name.to_string(), photos.to_vec())])
    }

    /// Adds photos of several people in one transaction: all or nothing. A person is only
    /// created with a photo: `gallery check` counts one without any as a problem.
    pub fn enroll_many(
        &mut self,
        model: &ModelId,
        people: &[(String, Vec<NewPhoto>)],
    ) -> Result<usize> {
        self.check_model(model)?;
        for (name, photos) in people {
            if check_name(name)? != *name {
                return Err(Error::InvalidArgument(format!(
                    "{name:?}: a person's name has no leading or trailing spaces"
                )));
            }
            for p in photos {
                if p.embedding.len() != model.dim {
                    return Err(Error::Shape {
                        name: format!("embedding of {}", p.path),
                        expected: vec![model.dim],
                        got: vec![p.embedding.len()],
                    });
                }
            }
        }
        self.store.insert(model, people)
    }

    /// Who a photo (by the SHA-256 of its file) is enrolled under, if anyone: what makes
    /// enrolment safe to re-run.
    pub fn owner_of(&self, sha256: &str) -> Result<Option<String>> {
        self.store.owner_of(sha256)
    }

    /// People and their photo counts, by name.
    pub fn list(&self) -> Result<Vec<Person>> {
        self.store.list()
    }

    /// Removes a person with all photos and embeddings; false if there was no such person.
    pub fn remove(&mut self, name: &str) -> Result<bool> {
        self.store.remove(name)
    }

    /// The first stored thumbnail of a person, if any.
    pub fn thumbnail(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.store.thumbnail(name)
    }

    /// Every stored embedding with its person's name, by name then photo.
    pub fn embeddings(&self) -> Result<Vec<(String, Vec<f32>)>> {
        Ok(self
            .store
            .photos()?
            .into_iter()
            .map(|p| (p.name, p.embedding))
            .collect())
    }

    /// The stored calibration, if any.
    pub fn calibration(&self) -> Result<Option<Calibration>> {
        self.meta_json("calibration")
    }

    /// Stores a calibration.
    pub fn set_calibration(&self, c: &Calibration) -> Result<()> {
        let s = serde_json::to_string(c).map_err(|e| self.err(e))?;
        self.store.set_meta("calibration", &s)
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
        self.store.keyed_embeddings()
    }

    /// One person's embeddings keyed by photo id (ascending): what
    /// [`Index::sync_person`] needs after that person's enrolment or removal.
    pub fn person_embeddings(&self, name: &str) -> Result<Vec<(u64, Vec<f32>)>> {
        self.store.person_embeddings(name)
    }

    /// See [`Store::foreign_version`].
    pub fn foreign_version(&self) -> Result<Option<u64>> {
        self.store.foreign_version()
    }

    /// Where an SQLite gallery's HNSW graph is kept: `<db>.hnsw` beside the database
    /// (`None` for a server, whose database keeps its own index).
    pub fn hnsw_path(&self) -> Option<PathBuf> {
        match self.location() {
            Location::Sqlite(p) => {
                let mut p = p.clone().into_os_string();
                p.push(".hnsw");
                Some(PathBuf::from(p))
            }
            Location::Postgres(_) => None,
        }
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
        if let Some(index) = self.store.server_index(kind, metric, config, progress)? {
            return Ok(index);
        }
        let index = Index::keyed(&self.keyed_embeddings()?, metric)?;
        if !kind.uses_graph(index.len()) {
            return Ok(index);
        }
        let stamp = Stamp {
            metric,
            model_sha256: self.model()?.map(|m| m.sha256).unwrap_or_default(),
        };
        let Some(path) = self.hnsw_path() else {
            return Ok(index);
        };
        let saved = match Hnsw::load(&path) {
            Ok((mut h, keys, s)) if s == stamp && h.config().builds_same_graph(config) => {
                h.set_search(config)?;
                Some((h, keys))
            }
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

    /// Checks the gallery: the database's own integrity checks, every embedding against the
    /// gallery's model (name, weights, dimension, stored length), photos without an
    /// embedding and people without photos. Reads only.
    pub fn check(&self) -> Result<CheckReport> {
        self.store.check()
    }

    /// Writes a consistent copy of the gallery to the file `dest` (SQLite's `VACUUM INTO`):
    /// a snapshot, safe while a server or an enrolment writes. `dest` must not exist. A
    /// PostgreSQL gallery is backed up by `pg_dump` or `recog gallery export`.
    pub fn backup(&self, dest: &Path) -> Result<()> {
        self.store.backup(dest)
    }

    /// Exports everything (no thumbnails). Every `f32` is written in its shortest form that
    /// reads back to the same bits, so export then import copies embeddings exactly.
    pub fn export(&self) -> Result<Export> {
        let mut people: Vec<ExportPerson> = Vec::new();
        for row in self.store.photos()? {
            let photo = (row.path, row.sha256, row.embedding);
            match people.last_mut() {
                Some(p) if p.name == row.name => p.photos.push(photo),
                _ => people.push(ExportPerson {
                    name: row.name,
                    photos: vec![photo],
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
    use crate::NoProgress;

    /// The backends a store test runs on.
    #[derive(Debug, Clone, Copy)]
    enum Backend {
        Sqlite,
        Postgres,
    }

    /// The server the PostgreSQL tests use (`tools/pg/start.sh` prints it); with
    /// `RECOG_TEST_DATA=required` (CI) a missing server fails the test instead of skipping it.
    pub(crate) fn postgres_server() -> Option<String> {
        match std::env::var("RECOG_TEST_POSTGRES") {
            Ok(u) if !u.is_empty() => Some(u),
            _ => {
                assert_ne!(
                    std::env::var("RECOG_TEST_DATA").as_deref(),
                    Ok("required"),
                    "RECOG_TEST_POSTGRES is not set: start a server with tools/pg/start.sh"
                );
                eprintln!("skipped: RECOG_TEST_POSTGRES is not set");
                None
            }
        }
    }

    /// A new, empty gallery called `name` on `backend`; `None` when the PostgreSQL tests are
    /// skipped.
    fn fresh(backend: Backend, dir: &Path, name: &str) -> Option<Gallery> {
        match backend {
            Backend::Sqlite => Some(Gallery::open(&dir.join(format!("{name}.sqlite"))).unwrap()),
            Backend::Postgres => {
                let server = postgres_server()?;
                let db = format!("recog_unit_{name}_{}", std::process::id());
                let url = crate::gallery::postgres::PgStore::create_database(&server, &db).unwrap();
                Some(Gallery::open_at(&Location::Postgres(url)).unwrap())
            }
        }
    }

    /// `#[test]`s of one body on both backends.
    macro_rules! on_both {
        ($body:ident: $sqlite:ident, $postgres:ident) => {
            #[test]
            fn $sqlite() {
                $body(Backend::Sqlite);
            }
            #[test]
            fn $postgres() {
                $body(Backend::Postgres);
            }
        };
    }

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
        assert!(g.hnsw_path().unwrap().exists());
        assert_eq!(w.0.lock().unwrap().as_slice(), ["start HNSW index 600"]);

        // Regression: another ef or candidate count reused the file only after a rebuild.
        let w = Warnings::default();
        let other = HnswConfig {
            expansion_search: 40,
            candidates: 8,
            ..cfg
        };
        let h = g.index_with(IndexKind::Hnsw, &other, &w).unwrap();
        let got = h.hnsw().unwrap().config();
        assert_eq!((got.expansion_search, got.candidates), (40, 8));
        assert!(w.0.lock().unwrap().is_empty(), "{:?}", w.0.lock().unwrap());

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
        std::fs::write(g.hnsw_path().unwrap(), b"RECOGHNSW\nshort").unwrap();
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

    /// On PostgreSQL, search through pgvector's HNSW index answers like the exact in-process
    /// search (nearest person, distance and runner-up), before and after enrolments and
    /// removals, which pgvector applies to its index itself; likewise under the cosine metric.
    #[test]
    fn postgres_server_search_matches_exact_through_changes() {
        let dir = tempfile::tempdir().unwrap();
        let Some(mut g) = fresh(Backend::Postgres, dir.path(), "search") else {
            return;
        };
        let m = model(8);
        g.enroll_many(&m, &people(0..300, 8)).unwrap();
        let cfg = HnswConfig::default();
        let same_as_exact = |g: &Gallery| {
            let h = g.index_with(IndexKind::Hnsw, &cfg, &NoProgress).unwrap();
            assert_eq!(h.kind(), IndexKind::Hnsw);
            assert!(h.rows().is_empty(), "the server holds the vectors");
            let e = g.index_with(IndexKind::Exact, &cfg, &NoProgress).unwrap();
            assert_eq!((h.len(), h.people()), (e.len(), e.people()));
            let mut probes: Vec<Vec<f32>> = g
                .keyed_embeddings()
                .unwrap()
                .into_iter()
                .step_by(7)
                .map(|r| r.2.iter().map(|x| x + 0.01).collect())
                .collect();
            probes.push(vec![5.0; 8]);
            for v in &probes {
                let (a, b) = (h.search(v, 0.5).unwrap(), e.search(v, 0.5).unwrap());
                assert_eq!(
                    (&a.nearest, a.distance, a.runner_up, &a.name),
                    (&b.nearest, b.distance, b.runner_up, &b.name)
                );
            }
        };
        same_as_exact(&g);
        g.enroll_many(&m, &people(300..310, 8)).unwrap();
        assert!(g.remove("p0005").unwrap());
        same_as_exact(&g);
        let c = g
            .calibrate_self(0.05, Distance::Cosine, Rule::Distance)
            .unwrap();
        g.set_calibration(&c).unwrap();
        same_as_exact(&g);
        // A gallery of one person has no runner-up, on the server as in-process.
        let Some(mut one) = fresh(Backend::Postgres, dir.path(), "search_one") else {
            return;
        };
        one.enroll_many(&m, &people(0..1, 8)).unwrap();
        same_as_exact(&one);
    }

    /// Export from SQLite, import into PostgreSQL, export again: every embedding keeps its
    /// bits, through JSON both ways, for values of every magnitude.
    #[test]
    fn export_import_between_backends_keeps_every_bit() {
        use rand::{Rng, SeedableRng};
        let dir = tempfile::tempdir().unwrap();
        let Some(mut pg) = fresh(Backend::Postgres, dir.path(), "migrate") else {
            return;
        };
        let mut lite = fresh(Backend::Sqlite, dir.path(), "migrate").unwrap();
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let dim = 64;
        let people: Vec<(String, Vec<NewPhoto>)> = (0..50)
            .map(|i| {
                let photos = (0..3)
                    .map(|_| {
                        photo(
                            (0..dim)
                                .map(|_| {
                                    let e: i32 = r.random_range(-40..40);
                                    r.random_range(-1.0f32..1.0) * 2f32.powi(e)
                                })
                                .collect(),
                        )
                    })
                    .collect();
                (format!("person {i}"), photos)
            })
            .collect();
        lite.enroll_many(&model(dim), &people).unwrap();
        let bits = |x: &Export| -> Vec<Vec<u32>> {
            x.people
                .iter()
                .flat_map(|p| {
                    p.photos
                        .iter()
                        .map(|(_, _, v)| v.iter().map(|f| f.to_bits()).collect())
                })
                .collect()
        };
        let json = serde_json::to_string(&lite.export().unwrap()).unwrap();
        let x: Export = serde_json::from_str(&json).unwrap();
        assert_eq!(pg.import(&x).unwrap(), 150);
        let back = pg.export().unwrap();
        assert_eq!(bits(&back), bits(&lite.export().unwrap()));
        assert_eq!(back.people.len(), 50);
        let json = serde_json::to_string(&back).unwrap();
        let mut again = fresh(Backend::Sqlite, dir.path(), "again").unwrap();
        again.import(&serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(bits(&again.export().unwrap()), bits(&back));
    }

    /// Two processes enrolling with different models into one empty PostgreSQL gallery at
    /// once: exactly one succeeds, and the gallery holds only its embeddings.
    #[test]
    fn postgres_refuses_a_second_model_under_concurrent_enrolment() {
        let dir = tempfile::tempdir().unwrap();
        let Some(g) = fresh(Backend::Postgres, dir.path(), "race") else {
            return;
        };
        let at = g.location().clone();
        let results: Vec<bool> = std::thread::scope(|s| {
            let hs: Vec<_> = ["a", "b"]
                .iter()
                .map(|sha| {
                    let at = at.clone();
                    s.spawn(move || {
                        let mut g = Gallery::open_at(&at).unwrap();
                        let m = ModelId {
                            sha256: sha.to_string(),
                            ..model(2)
                        };
                        g.enroll_many(&m, &people(0..200, 2)).is_ok()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|ok| **ok).count(), 1, "{results:?}");
        assert_eq!(g.embeddings().unwrap().len(), 400);
        assert!(g.check().unwrap().is_clean());
    }

    /// `gallery check` on PostgreSQL: clean after enrolments, then names a person without
    /// photos, a photo without embedding and a vector of the wrong length; a backup is
    /// refused with the way to do it; an unreachable server is a storage error.
    #[test]
    fn postgres_check_backup_and_connection_errors() {
        let dir = tempfile::tempdir().unwrap();
        let Some(mut g) = fresh(Backend::Postgres, dir.path(), "check") else {
            return;
        };
        g.enroll("ann", &model(2), &[photo(vec![0.0, 1.0])])
            .unwrap();
        g.enroll("bob", &model(2), &[photo(vec![1.0, 0.0])])
            .unwrap();
        let r = g.check().unwrap();
        assert!(r.is_clean(), "{r}");
        assert_eq!((r.people, r.photos, r.embeddings), (2, 2, 2));
        assert_eq!(r.schema_version, SCHEMA_VERSION);
        let Location::Postgres(url) = g.location().clone() else {
            unreachable!()
        };
        let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        c.batch_execute(
            "INSERT INTO people (name) VALUES ('dee');
             INSERT INTO photos (person_id, path, sha256) SELECT id, 'lost.jpg', 'x' FROM people WHERE name = 'ann';
             UPDATE embeddings SET vector = '[1,2,3]' WHERE person_id = (SELECT id FROM people WHERE name = 'bob');",
        )
        .unwrap();
        let r = g.check().unwrap();
        assert_eq!(r.people_without_photos, vec!["dee".to_string()]);
        assert_eq!(
            r.photos_without_embedding,
            vec!["ann: lost.jpg".to_string()]
        );
        assert_eq!(r.bad_embeddings.len(), 1, "{r}");
        assert!(r.bad_embeddings[0].contains("3 floats stored for 2"), "{r}");
        let e = g
            .backup(&dir.path().join("b.sqlite"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pg_dump"), "{e}");
        let e = Gallery::open_at(&"postgres://nobody:pw@127.0.0.1:9/none".parse().unwrap())
            .err()
            .unwrap();
        assert_eq!(e.kind(), crate::ErrorKind::Storage, "{e}");
        let said = e.to_string();
        assert!(
            said.contains("connecting") && !said.contains(":pw@"),
            "{said}"
        );
    }

    on_both!(enroll_list_identify_remove_export_import: enroll_list_identify_remove_export_import_sqlite, enroll_list_identify_remove_export_import_postgres);
    fn enroll_list_identify_remove_export_import(b: Backend) {
        let dir = tempfile::tempdir().unwrap();
        let Some(mut g) = fresh(b, dir.path(), "elire") else {
            return;
        };
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
        let mut g2 = fresh(b, dir.path(), "elire2").unwrap();
        assert_eq!(g2.import(&x).unwrap(), 3);
        assert_eq!(g2.list().unwrap().len(), 2);
        assert_eq!(g2.export().unwrap().people, x.people);
    }

    on_both!(an_index_follows_its_own_writes_in_place: index_follows_own_writes_sqlite, index_follows_own_writes_postgres);
    /// What the server does after each enrolment and removal: one person's rows read back
    /// ([`Gallery::person_embeddings`]) and applied in place give the index a fresh read
    /// gives, through enrolments, a second enrolment of the same person, a removal and a
    /// removed last photo's id coming back. SQLite's `data_version` moves only when another
    /// connection writes, which is what tells the server to re-read everything instead.
    fn an_index_follows_its_own_writes_in_place(b: Backend) {
        let dir = tempfile::tempdir().unwrap();
        let Some(mut g) = fresh(b, dir.path(), "ifow") else {
            return;
        };
        let m = model(8);
        g.enroll_many(&m, &people(0..40, 8)).unwrap();
        let mut idx = g
            .index_with(IndexKind::Exact, &HnswConfig::default(), &crate::NoProgress)
            .unwrap();
        let version = g.foreign_version().unwrap();
        let mut step = |g: &mut Gallery, name: &str| {
            assert!(idx
                .sync_person(name, &g.person_embeddings(name).unwrap())
                .unwrap());
            let fresh = g
                .index_with(IndexKind::Exact, &HnswConfig::default(), &crate::NoProgress)
                .unwrap();
            assert_eq!(idx.keys(), fresh.keys());
            assert_eq!(idx.rows(), fresh.rows());
            assert_eq!(idx.people(), fresh.people());
            for (_, _, v) in g.keyed_embeddings().unwrap().iter().step_by(5) {
                let (a, b) = (idx.search(v, 0.5).unwrap(), fresh.search(v, 0.5).unwrap());
                assert_eq!(
                    (a.nearest, a.distance, a.runner_up),
                    (b.nearest, b.distance, b.runner_up)
                );
            }
        };
        g.enroll_many(&m, &people(40..41, 8)).unwrap();
        step(&mut g, "p0040");
        let more = people(41..42, 8).remove(0).1;
        g.enroll("p0040", &m, &more).unwrap();
        step(&mut g, "p0040");
        assert!(g.remove("p0007").unwrap());
        step(&mut g, "p0007");
        assert!(g.remove("p0040").unwrap());
        step(&mut g, "p0040");
        g.enroll_many(&m, &people(50..51, 8)).unwrap();
        step(&mut g, "p0050");
        assert_eq!(g.person_embeddings("nobody").unwrap(), vec![]);
        match b {
            Backend::Sqlite => {
                assert!(version.is_some());
                assert_eq!(g.foreign_version().unwrap(), version, "own writes");
                let mut other = Gallery::open(&dir.path().join("ifow.sqlite")).unwrap();
                other.enroll_many(&m, &people(60..61, 8)).unwrap();
                assert_ne!(
                    g.foreign_version().unwrap(),
                    version,
                    "another connection's write"
                );
            }
            Backend::Postgres => assert_eq!(version, None),
        }
    }

    on_both!(another_model_is_refused_and_a_failed_enrolment_leaves_nothing: another_model_refused_sqlite, another_model_refused_postgres);
    fn another_model_is_refused_and_a_failed_enrolment_leaves_nothing(b: Backend) {
        let dir = tempfile::tempdir().unwrap();
        let Some(mut g) = fresh(b, dir.path(), "amr") else {
            return;
        };
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

    on_both!(errors_tell_a_model_mismatch_from_storage: errors_tell_mismatch_from_storage_sqlite, errors_tell_mismatch_from_storage_postgres);
    fn errors_tell_a_model_mismatch_from_storage(b: Backend) {
        let dir = tempfile::tempdir().unwrap();
        let Some(mut db) = fresh(b, dir.path(), "etm") else {
            return;
        };
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
            let c = rusqlite::Connection::open(&old).unwrap();
            c.execute_batch(crate::gallery::sqlite::MIGRATIONS[0].1)
                .unwrap();
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
        let indexes: i64 = rusqlite::Connection::open(&old)
            .unwrap()
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
            let c = rusqlite::Connection::open(&newer).unwrap();
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
        rusqlite::Connection::open(dir.path().join("g.sqlite"))
            .unwrap()
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
