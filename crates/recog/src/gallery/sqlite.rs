//! The embedded backend: one SQLite file, the default (`--db gallery.sqlite`).
//!
//! WAL journalling lets readers (a server, `gallery backup`) run beside one writer; a busy
//! writer is waited for, not failed on. Vectors are little-endian `f32` blobs.
//!
//! ```
//! use recog::gallery::{sqlite::SqliteStore, Store};
//! let dir = tempfile::tempdir().unwrap();
//! let s = SqliteStore::open(&dir.path().join("g.sqlite")).unwrap();
//! assert_eq!(s.schema_version().unwrap(), recog::gallery::SCHEMA_VERSION);
//! assert!(s.list().unwrap().is_empty());
//! ```

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use super::store::{
    embedding_problems, model_mismatch, newer_schema, CheckReport, Location, ModelId, NewPhoto,
    Person, PhotoRow, Store, SCHEMA_VERSION,
};
use crate::{Error, Result};

/// Each migration: the version it brings a gallery to, and its SQL. Version 1 is the first
/// schema (galleries from before versions were recorded have it); a new file runs them all.
pub(crate) const MIGRATIONS: &[(u32, &str)] = &[
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

/// A gallery in an SQLite file.
pub struct SqliteStore {
    pub(crate) conn: Connection,
    path: PathBuf,
    location: Location,
}

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl SqliteStore {
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
            location: Location::Sqlite(path.to_path_buf()),
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
            return Err(self.err(newer_schema(v)));
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

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Gallery {
            path: self.path.clone(),
            problem: e.to_string(),
        }
    }
}

impl Store for SqliteStore {
    fn location(&self) -> &Location {
        &self.location
    }

    fn schema_version(&self) -> Result<u32> {
        Self::stored_schema(&self.conn).map_err(|e| self.err(e))
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [key, value])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn insert(&mut self, model: &ModelId, people: &[(String, Vec<NewPhoto>)]) -> Result<usize> {
        let path = self.path.clone();
        let wrap = |e: rusqlite::Error| Error::Gallery {
            path: path.clone(),
            problem: e.to_string(),
        };
        // Immediate: the model recorded below is read under the write lock, so two processes
        // enrolling with different models cannot both pass.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(wrap)?;
        let model_json = serde_json::to_string(model).unwrap_or_default();
        tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('model', ?1)",
            [&model_json],
        )
        .map_err(wrap)?;
        let stored: String = tx
            .query_row("SELECT value FROM meta WHERE key = 'model'", [], |r| {
                r.get(0)
            })
            .map_err(wrap)?;
        if let Ok(g) = serde_json::from_str::<ModelId>(&stored) {
            if &g != model {
                return Err(model_mismatch(&self.location, &g, model));
            }
        }
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
            for (name, photos) in people.iter().filter(|(_, p)| !p.is_empty()) {
                add_person.execute([name]).map_err(wrap)?;
                let pid: i64 = person_id.query_row([name], |r| r.get(0)).map_err(wrap)?;
                for p in photos {
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

    fn owner_of(&self, sha256: &str) -> Result<Option<String>> {
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

    fn list(&self) -> Result<Vec<Person>> {
        let mut st = self
            .conn
            .prepare("SELECT p.name, COUNT(ph.id) FROM people p LEFT JOIN photos ph ON ph.person_id = p.id GROUP BY p.id ORDER BY p.name")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(Person {
                    name: r.get(0)?,
                    photos: usize::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }

    fn remove(&mut self, name: &str) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM people WHERE name = ?1", [name])
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    fn thumbnail(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.conn
            .query_row(
                "SELECT t.jpeg FROM thumbnails t JOIN photos ph ON ph.id = t.photo_id JOIN people p ON p.id = ph.person_id WHERE p.name = ?1 ORDER BY ph.id LIMIT 1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn keyed_embeddings(&self) -> Result<Vec<(u64, String, Vec<f32>)>> {
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

    fn person_embeddings(&self, name: &str) -> Result<Vec<(u64, Vec<f32>)>> {
        let mut st = self
            .conn
            .prepare("SELECT e.photo_id, e.vector FROM embeddings e JOIN photos ph ON ph.id = e.photo_id JOIN people p ON p.id = ph.person_id WHERE p.name = ?1 ORDER BY e.photo_id")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([name], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    from_blob(&r.get::<_, Vec<u8>>(1)?),
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }

    fn foreign_version(&self) -> Result<Option<u64>> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
            .map(|v| Some(v as u64))
            .map_err(|e| self.err(e))
    }

    fn photos(&self) -> Result<Vec<PhotoRow>> {
        let mut st = self
            .conn
            .prepare("SELECT p.name, ph.path, ph.sha256, e.vector FROM embeddings e JOIN photos ph ON ph.id = e.photo_id JOIN people p ON p.id = ph.person_id ORDER BY p.name, ph.id")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(PhotoRow {
                    name: r.get(0)?,
                    path: r.get(1)?,
                    sha256: r.get(2)?,
                    embedding: from_blob(&r.get::<_, Vec<u8>>(3)?),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }

    fn check(&self) -> Result<CheckReport> {
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
        let model = self
            .meta("model")?
            .and_then(|s| serde_json::from_str::<ModelId>(&s).ok());
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
                let mut problems = embedding_problems(model.as_ref(), &name, &sha, dim);
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

    fn backup(&self, dest: &Path) -> Result<()> {
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
}
