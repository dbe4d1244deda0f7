//! The server backend: a PostgreSQL database with the pgvector extension
//! (`--db postgres://user@host:port/dbname`), for galleries that several processes or
//! machines share.
//!
//! The schema follows the SQLite one (people, photos, embeddings with model name, weights
//! hash and dimension, calibration in `meta`), with the vectors in pgvector's `vector` type,
//! sent and received in its binary format, so they are stored bit for bit. Enrolment is one
//! transaction, and the model check runs inside it. Search runs on the server through
//! pgvector's HNSW index (Malkov & Yashunin, "Efficient and robust approximate nearest
//! neighbor search using Hierarchical Navigable Small World graphs", 2018): the server
//! proposes the nearest photos and the runner-up person's nearest photo, and recog
//! recomputes their exact distances, so a calibrated threshold means the same on both
//! backends.
//!
//! The connection is unencrypted (loopback or a private network); a server that demands TLS
//! is refused with PostgreSQL's message.
//!
//! ```no_run
//! use recog::gallery::{Gallery, Location};
//! let g = Gallery::open_at(&"postgres://recog@127.0.0.1:5432/faces".parse()?)?;
//! println!("{} people", g.list()?.len());
//! # Ok::<(), recog::Error>(())
//! ```

use std::path::Path;
use std::sync::Mutex;

use pgvector::Vector;
use postgres::{Client, NoTls};

use super::hnsw::{HnswConfig, IndexKind};
use super::index::ServerSearch;
use super::store::{
    embedding_problems, model_mismatch, newer_schema, CheckReport, Location, ModelId, NewPhoto,
    Person, PhotoRow, Store, SCHEMA_VERSION,
};
use super::Index;
use crate::metric::Distance;
use crate::{Error, Progress, Result};

/// Serialises schema changes between processes that open one database at once.
const SCHEMA_LOCK: i64 = 0x7265_636f_6701;

/// The tables of schema version [`SCHEMA_VERSION`]. `embeddings.person_id` repeats the
/// photo's person so that the runner-up search can exclude a person without a join.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS people (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name TEXT UNIQUE NOT NULL);
    CREATE TABLE IF NOT EXISTS photos (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        person_id BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS photos_by_sha256 ON photos(sha256);
    CREATE INDEX IF NOT EXISTS photos_by_person ON photos(person_id);
    CREATE TABLE IF NOT EXISTS embeddings (
        photo_id BIGINT PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
        person_id BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        model_sha256 TEXT NOT NULL,
        dim INTEGER NOT NULL,
        vector vector NOT NULL);
    CREATE INDEX IF NOT EXISTS embeddings_by_person ON embeddings(person_id);
    CREATE TABLE IF NOT EXISTS thumbnails (
        photo_id BIGINT PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
        jpeg BYTEA NOT NULL);";

/// `url` with its database replaced by `name` (its query string kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let server = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

/// PostgreSQL's message with its detail and hint, or the client's error chain.
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = db.message().to_string();
        if let Some(d) = db.detail() {
            s.push_str(&format!(" ({d})"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!("; hint: {h}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

/// A gallery in a PostgreSQL database.
pub struct PgStore {
    client: Mutex<Client>,
    url: String,
    location: Location,
}

impl PgStore {
    /// Connects to `url` and creates the tables (and the `vector` extension) when missing.
    /// A database written by a newer recog is refused, untouched.
    pub fn connect(url: &str) -> Result<Self> {
        let location = Location::Postgres(url.to_string());
        let client = Client::connect(url, NoTls).map_err(|e| Error::Gallery {
            path: location.as_path(),
            problem: format!("connecting: {}", describe(&e)),
        })?;
        let s = Self {
            client: Mutex::new(client),
            url: url.to_string(),
            location,
        };
        s.migrate()?;
        Ok(s)
    }

    /// Creates (replacing any of that name) the empty database `name` on the server that
    /// `url` reaches, and returns the new database's URL: a fresh gallery for a test or a
    /// benchmark. `name` is lower-case letters, digits and `_`.
    pub fn create_database(url: &str, name: &str) -> Result<String> {
        let location = Location::Postgres(url.to_string());
        if name.is_empty()
            || name.len() > 63
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(Error::InvalidArgument(format!(
                "{name:?}: a database name here is 1-63 of a-z, 0-9 and _"
            )));
        }
        let err = |e: postgres::Error| Error::Gallery {
            path: location.as_path(),
            problem: describe(&e),
        };
        let mut c = Client::connect(url, NoTls).map_err(err)?;
        // One statement per call: a multi-statement batch is one transaction, which
        // DROP DATABASE refuses.
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .map_err(err)?;
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(err)?;
        Ok(with_database(url, name))
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Gallery {
            path: self.location.as_path(),
            problem: e.to_string(),
        }
    }

    fn pg(&self, e: postgres::Error) -> Error {
        self.err(describe(&e))
    }

    fn client(&self) -> std::sync::MutexGuard<'_, Client> {
        // A panic while holding the lock leaves the connection as usable as before it.
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn migrate(&self) -> Result<()> {
        let mut c = self.client();
        let mut tx = c.transaction().map_err(|e| self.pg(e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(|e| self.pg(e))?;
        let has_meta: bool = tx
            .query_one("SELECT to_regclass('meta') IS NOT NULL", &[])
            .map_err(|e| self.pg(e))?
            .get(0);
        if has_meta {
            let v: Option<String> = tx
                .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
                .map_err(|e| self.pg(e))?
                .map(|r| r.get(0));
            let v = v.map_or(u32::MAX, |v| v.trim().parse().unwrap_or(u32::MAX));
            if v > SCHEMA_VERSION {
                return Err(self.err(newer_schema(v)));
            }
            if v == SCHEMA_VERSION {
                return tx.commit().map_err(|e| self.pg(e));
            }
        }
        tx.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
            .map_err(|e| {
                self.err(format!(
                    "the pgvector extension is needed: {} (install pgvector on the server, or have an administrator run CREATE EXTENSION vector)",
                    describe(&e)
                ))
            })?;
        tx.batch_execute(SCHEMA).map_err(|e| self.pg(e))?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&SCHEMA_VERSION.to_string()],
        )
        .map_err(|e| self.pg(e))?;
        tx.commit().map_err(|e| self.pg(e))
    }

    /// The server's version string.
    pub fn server_version(&self) -> Result<String> {
        Ok(self
            .client()
            .query_one("SELECT version()", &[])
            .map_err(|e| self.pg(e))?
            .get(0))
    }

    /// The database's size on disk, bytes.
    pub fn database_bytes(&self) -> Result<u64> {
        let n: i64 = self
            .client()
            .query_one("SELECT pg_database_size(current_database())", &[])
            .map_err(|e| self.pg(e))?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The HNSW indexes on the embeddings, bytes (0: none built yet).
    pub fn index_bytes(&self) -> Result<u64> {
        let n: i64 = self
            .client()
            .query_one("SELECT COALESCE(SUM(pg_relation_size(i.indexrelid)), 0)::bigint FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = 'embeddings'::regclass AND a.amname = 'hnsw'", &[])
            .map_err(|e| self.pg(e))?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn count(&self, sql: &str) -> Result<usize> {
        let n: i64 = self
            .client()
            .query_one(sql, &[])
            .map_err(|e| self.pg(e))?
            .get(0);
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn strings(&self, sql: &str) -> Result<Vec<String>> {
        Ok(self
            .client()
            .query(sql, &[])
            .map_err(|e| self.pg(e))?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }
}

impl Store for PgStore {
    fn location(&self) -> &Location {
        &self.location
    }

    fn schema_version(&self) -> Result<u32> {
        let v = self.meta("schema_version")?;
        Ok(v.map_or(u32::MAX, |v| v.trim().parse().unwrap_or(u32::MAX)))
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .client()
            .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
            .map_err(|e| self.pg(e))?
            .map(|r| r.get(0)))
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.client()
            .execute("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", &[&key, &value])
            .map_err(|e| self.pg(e))?;
        Ok(())
    }

    fn insert(&mut self, model: &ModelId, people: &[(String, Vec<NewPhoto>)]) -> Result<usize> {
        let dim = i32::try_from(model.dim)
            .map_err(|_| Error::InvalidArgument(format!("{}-d embeddings", model.dim)))?;
        let model_json = serde_json::to_string(model).map_err(|e| self.err(e))?;
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let pg = |e: postgres::Error| Error::Gallery {
            path: self.location.as_path(),
            problem: describe(&e),
        };
        let mut tx = guard.transaction().map_err(pg)?;
        // A concurrent enrolment's model row is waited for and then read, so two writers with
        // different models cannot both pass.
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('model', $1) ON CONFLICT (key) DO NOTHING",
            &[&model_json],
        )
        .map_err(pg)?;
        let stored: String = tx
            .query_one("SELECT value FROM meta WHERE key = 'model'", &[])
            .map_err(pg)?
            .get(0);
        if let Ok(g) = serde_json::from_str::<ModelId>(&stored) {
            if &g != model {
                return Err(model_mismatch(&self.location, &g, model));
            }
        }
        let add_person = tx
            .prepare("INSERT INTO people (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id")
            .map_err(pg)?;
        let add_photo = tx
            .prepare(
                "INSERT INTO photos (person_id, path, sha256) VALUES ($1, $2, $3) RETURNING id",
            )
            .map_err(pg)?;
        let add_emb = tx
            .prepare("INSERT INTO embeddings (photo_id, person_id, model, model_sha256, dim, vector) VALUES ($1, $2, $3, $4, $5, $6)")
            .map_err(pg)?;
        let add_thumb = tx
            .prepare("INSERT INTO thumbnails (photo_id, jpeg) VALUES ($1, $2)")
            .map_err(pg)?;
        let mut n = 0;
        for (name, photos) in people.iter().filter(|(_, p)| !p.is_empty()) {
            let pid: i64 = tx.query_one(&add_person, &[name]).map_err(pg)?.get(0);
            for p in photos {
                let photo: i64 = tx
                    .query_one(&add_photo, &[&pid, &p.path, &p.sha256])
                    .map_err(pg)?
                    .get(0);
                let v = Vector::from(p.embedding.clone());
                tx.execute(
                    &add_emb,
                    &[&photo, &pid, &model.name, &model.sha256, &dim, &v],
                )
                .map_err(pg)?;
                if let Some(t) = &p.thumbnail {
                    tx.execute(&add_thumb, &[&photo, t]).map_err(pg)?;
                }
                n += 1;
            }
        }
        tx.commit().map_err(pg)?;
        Ok(n)
    }

    fn owner_of(&self, sha256: &str) -> Result<Option<String>> {
        Ok(self
            .client()
            .query_opt("SELECT p.name FROM photos ph JOIN people p ON p.id = ph.person_id WHERE ph.sha256 = $1 LIMIT 1", &[&sha256])
            .map_err(|e| self.pg(e))?
            .map(|r| r.get(0)))
    }

    fn list(&self) -> Result<Vec<Person>> {
        Ok(self
            .client()
            .query("SELECT p.name, COUNT(ph.id) FROM people p LEFT JOIN photos ph ON ph.person_id = p.id GROUP BY p.id, p.name ORDER BY p.name COLLATE \"C\"", &[])
            .map_err(|e| self.pg(e))?
            .iter()
            .map(|r| Person {
                name: r.get(0),
                photos: usize::try_from(r.get::<_, i64>(1)).unwrap_or(0),
            })
            .collect())
    }

    fn remove(&mut self, name: &str) -> Result<bool> {
        let n = self
            .client()
            .execute("DELETE FROM people WHERE name = $1", &[&name])
            .map_err(|e| self.pg(e))?;
        Ok(n > 0)
    }

    fn thumbnail(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .client()
            .query_opt("SELECT t.jpeg FROM thumbnails t JOIN photos ph ON ph.id = t.photo_id JOIN people p ON p.id = ph.person_id WHERE p.name = $1 ORDER BY ph.id LIMIT 1", &[&name])
            .map_err(|e| self.pg(e))?
            .map(|r| r.get(0)))
    }

    fn keyed_embeddings(&self) -> Result<Vec<(u64, String, Vec<f32>)>> {
        let rows = self
            .client()
            .query("SELECT e.photo_id, p.name, e.vector FROM embeddings e JOIN people p ON p.id = e.person_id ORDER BY e.photo_id", &[])
            .map_err(|e| self.pg(e))?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0) as u64,
                    r.get(1),
                    r.get::<_, Vector>(2).to_vec(),
                )
            })
            .collect())
    }

    fn person_embeddings(&self, name: &str) -> Result<Vec<(u64, Vec<f32>)>> {
        let rows = self
            .client()
            .query("SELECT e.photo_id, e.vector FROM embeddings e JOIN people p ON p.id = e.person_id WHERE p.name = $1 ORDER BY e.photo_id", &[&name])
            .map_err(|e| self.pg(e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, Vector>(1).to_vec()))
            .collect())
    }

    fn photos(&self) -> Result<Vec<PhotoRow>> {
        let rows = self
            .client()
            .query("SELECT p.name, ph.path, ph.sha256, e.vector FROM embeddings e JOIN photos ph ON ph.id = e.photo_id JOIN people p ON p.id = ph.person_id ORDER BY p.name COLLATE \"C\", ph.id", &[])
            .map_err(|e| self.pg(e))?;
        Ok(rows
            .iter()
            .map(|r| PhotoRow {
                name: r.get(0),
                path: r.get(1),
                sha256: r.get(2),
                embedding: r.get::<_, Vector>(3).to_vec(),
            })
            .collect())
    }

    fn check(&self) -> Result<CheckReport> {
        let model = self
            .meta("model")?
            .and_then(|s| serde_json::from_str::<ModelId>(&s).ok());
        let rows = self
            .client()
            .query("SELECT p.name, ph.path, e.model, e.model_sha256, e.dim, vector_dims(e.vector) FROM embeddings e JOIN photos ph ON ph.id = e.photo_id JOIN people p ON p.id = ph.person_id ORDER BY p.name COLLATE \"C\", ph.id", &[])
            .map_err(|e| self.pg(e))?;
        let mut bad_embeddings = Vec::new();
        for r in &rows {
            let (person, photo, name, sha): (String, String, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let (dim, stored): (i32, i32) = (r.get(4), r.get(5));
            let mut problems = embedding_problems(model.as_ref(), &name, &sha, i64::from(dim));
            if stored != dim {
                problems.push(format!("{stored} floats stored for {dim}"));
            }
            if !problems.is_empty() {
                bad_embeddings.push(format!("{person}: {photo}: {}", problems.join("; ")));
            }
        }
        // Photos whose embedding row names another person than the photo does.
        let dangling = self.strings("SELECT 'embeddings row ' || e.photo_id || ' -> people' FROM embeddings e JOIN photos ph ON ph.id = e.photo_id WHERE e.person_id <> ph.person_id ORDER BY e.photo_id")?;
        Ok(CheckReport {
            path: self.location.as_path(),
            schema_version: self.schema_version()?,
            people: self.count("SELECT COUNT(*) FROM people")?,
            photos: self.count("SELECT COUNT(*) FROM photos")?,
            embeddings: self.count("SELECT COUNT(*) FROM embeddings")?,
            // PostgreSQL enforces the references and checksums its pages itself.
            integrity: Vec::new(),
            dangling,
            bad_embeddings,
            photos_without_embedding: self.strings("SELECT p.name || ': ' || ph.path FROM photos ph JOIN people p ON p.id = ph.person_id LEFT JOIN embeddings e ON e.photo_id = ph.id WHERE e.photo_id IS NULL ORDER BY p.name COLLATE \"C\", ph.id")?,
            people_without_photos: self.strings("SELECT p.name FROM people p LEFT JOIN photos ph ON ph.person_id = p.id WHERE ph.id IS NULL ORDER BY p.name COLLATE \"C\"")?,
        })
    }

    fn backup(&self, dest: &Path) -> Result<()> {
        Err(Error::InvalidArgument(format!(
            "{}: a PostgreSQL gallery is backed up by the server's tools (pg_dump), or copied with `recog gallery export` (not to {})",
            self.location,
            dest.display()
        )))
    }

    fn server_index(
        &self,
        kind: IndexKind,
        metric: Distance,
        config: &HnswConfig,
        progress: &dyn Progress,
    ) -> Result<Option<Index>> {
        let rows = self.count("SELECT COUNT(*) FROM embeddings")?;
        if !kind.uses_graph(rows) {
            return Ok(None);
        }
        let Some(model) = self
            .meta("model")?
            .and_then(|s| serde_json::from_str::<ModelId>(&s).ok())
        else {
            return Err(self.err("the gallery holds embeddings but records no model"));
        };
        let people = self.count("SELECT COUNT(*) FROM people")?;
        let search = PgSearch::open(&self.url, &self.location, model.dim, metric, config)?;
        search.ensure_index(config, progress)?;
        Ok(Some(Index::on_server(
            Box::new(search),
            model.dim,
            metric,
            rows,
            people,
            config.candidates,
        )))
    }
}

/// Search through pgvector's HNSW index, on a connection of its own.
pub struct PgSearch {
    client: Mutex<Client>,
    location: Location,
    dim: usize,
    metric: Distance,
    nearest: postgres::Statement,
    others: postgres::Statement,
}

impl std::fmt::Debug for PgSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgSearch({}, {}-d)", self.location, self.dim)
    }
}

impl PgSearch {
    /// pgvector's operator and operator class for `metric`: the squared Euclidean distance
    /// ranks like the Euclidean one.
    fn operator(metric: Distance) -> (&'static str, &'static str, &'static str) {
        match metric {
            Distance::Euclidean | Distance::SquaredEuclidean => ("<->", "vector_l2_ops", "l2"),
            Distance::Cosine => ("<=>", "vector_cosine_ops", "cosine"),
        }
    }

    fn open(
        url: &str,
        location: &Location,
        dim: usize,
        metric: Distance,
        config: &HnswConfig,
    ) -> Result<Self> {
        let err = |e: postgres::Error| Error::Gallery {
            path: location.as_path(),
            problem: describe(&e),
        };
        let mut client = Client::connect(url, NoTls).map_err(err)?;
        let (op, _, _) = Self::operator(metric);
        // Iterative scans (pgvector >= 0.8) keep the runner-up query, filtered by person,
        // from returning fewer rows than asked.
        client
            .batch_execute(&format!(
                "SET hnsw.ef_search = {}; SET hnsw.iterative_scan = relaxed_order;",
                config.expansion_search.clamp(1, 1000)
            ))
            .map_err(err)?;
        let nearest = client
            .prepare(&format!(
                "SELECT p.name, c.vector FROM (SELECT person_id, vector FROM embeddings ORDER BY vector::vector({dim}) {op} $1::vector({dim}) LIMIT $2) c JOIN people p ON p.id = c.person_id"
            ))
            .map_err(err)?;
        let others = client
            .prepare(&format!(
                "SELECT p.name, c.vector FROM (SELECT person_id, vector FROM embeddings WHERE person_id <> (SELECT id FROM people WHERE name = $2) ORDER BY vector::vector({dim}) {op} $1::vector({dim}) LIMIT $3) c JOIN people p ON p.id = c.person_id"
            ))
            .map_err(err)?;
        Ok(Self {
            client: Mutex::new(client),
            location: location.clone(),
            dim,
            metric,
            nearest,
            others,
        })
    }

    /// Creates the HNSW index for this dimension, metric and configuration unless it exists;
    /// pgvector then keeps it up to date on every enrolment and removal.
    fn ensure_index(&self, config: &HnswConfig, progress: &dyn Progress) -> Result<()> {
        let (_, opclass, tag) = Self::operator(self.metric);
        let name = format!(
            "embeddings_hnsw_{tag}_{}_m{}_efc{}",
            self.dim, config.connectivity, config.expansion_add
        );
        let mut c = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let err = |e: postgres::Error| Error::Gallery {
            path: self.location.as_path(),
            problem: format!("creating pgvector's HNSW index: {}", describe(&e)),
        };
        let exists: bool = c
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
            .map_err(err)?
            .get(0);
        if exists {
            return Ok(());
        }
        progress.message(&format!(
            "building pgvector's HNSW index {name} on the server"
        ));
        let mut tx = c.transaction().map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(err)?;
        tx.batch_execute(&format!(
            "CREATE INDEX IF NOT EXISTS {name} ON embeddings USING hnsw ((vector::vector({})) {opclass}) WITH (m = {}, ef_construction = {})",
            self.dim, config.connectivity, config.expansion_add
        ))
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    fn rows(
        &self,
        stmt: &postgres::Statement,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<(String, Vec<f32>)>> {
        let mut c = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let rows = c.query(stmt, params).map_err(|e| Error::Gallery {
            path: self.location.as_path(),
            problem: describe(&e),
        })?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get::<_, Vector>(1).to_vec()))
            .collect())
    }
}

impl ServerSearch for PgSearch {
    fn nearest(&self, query: &[f32], count: usize) -> Result<Vec<(String, Vec<f32>)>> {
        let q = Vector::from(query.to_vec());
        let k = i64::try_from(count).unwrap_or(i64::MAX);
        self.rows(&self.nearest, &[&q, &k])
    }

    fn nearest_other(
        &self,
        query: &[f32],
        person: &str,
        count: usize,
    ) -> Result<Vec<(String, Vec<f32>)>> {
        let q = Vector::from(query.to_vec());
        let k = i64::try_from(count).unwrap_or(i64::MAX);
        self.rows(&self.others, &[&q, &person, &k])
    }

    fn set_expansion_search(&self, ef: usize) -> Result<()> {
        let mut c = self.client.lock().unwrap_or_else(|p| p.into_inner());
        c.batch_execute(&format!("SET hnsw.ef_search = {}", ef.clamp(1, 1000)))
            .map_err(|e| Error::Gallery {
                path: self.location.as_path(),
                problem: describe(&e),
            })
    }
}
