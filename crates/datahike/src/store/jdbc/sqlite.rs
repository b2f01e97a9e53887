//! The SQLite flavour of the `:jdbc` backend: one table of an SQLite file, in WAL mode with
//! `synchronous=FULL`, so that a write returns only once its commit is on disk. Writers of
//! all processes are ordered by SQLite's own write lock (`BEGIN IMMEDIATE`, waiting up to
//! [`BUSY_TIMEOUT`]); the database's writer lock is an exclusive `flock` on `<dbname>.lock`.
//!
//! Every operation is local, so there are no round trips to save: a batch is one
//! transaction running one cached prepared statement per entry, which is SQLite's fastest
//! way to write many rows.

use super::{prefix_end, quote_table, table_name, Pool, Pooled};
use crate::edn::Edn;
use crate::store::backend::{optional_string_key, OpenMode};
use crate::store::{Store, StoreError, StoreResult, WriterGuard};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a statement waits for another connection's write to finish before it fails with
/// "database is locked". A 100 MiB write takes well under a second; a minute leaves room
/// for a slow disk.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The file and table a config names.
struct Target {
    path: PathBuf,
    table: String,
}

fn target(config: &Edn) -> StoreResult<Target> {
    let from_url = super::jdbc_url(config)?.and_then(|url| {
        let rest = url.strip_prefix("jdbc:").unwrap_or(&url);
        let rest = rest.strip_prefix("sqlite:").or_else(|| rest.strip_prefix("SQLITE:"))?;
        Some(rest.split('?').next().unwrap_or_default().to_string())
    });
    let path = match optional_string_key(config, "jdbc", "dbname")? {
        Some(path) => path,
        None => from_url.ok_or_else(|| {
            StoreError::Invalid(
                ":store :dbname (the path of the SQLite file) is missing for :dbtype \"sqlite\"".to_string(),
            )
        })?,
    };
    let path = path.strip_prefix("file:").unwrap_or(&path).to_string();
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::Invalid(format!(
            ":store :dbname {path:?} is no file; an SQLite store needs a file path (for a database in memory use \
             {{:backend :memory}})"
        )));
    }
    Ok(Target { path: PathBuf::from(path), table: table_name(config)?.to_ascii_lowercase() })
}

/// `sqlite:<absolute path>#<table>`: the path made absolute and resolved through links as
/// far as it exists.
pub(super) fn identity(config: &Edn) -> Option<String> {
    let target = target(config).ok()?;
    Some(format!("sqlite:{}#{}", resolved(&target.path).display(), target.table))
}

fn resolved(path: &Path) -> PathBuf {
    if let Ok(path) = std::fs::canonicalize(path) {
        return path;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir).map_or(absolute.clone(), |dir| dir.join(name)),
        _ => absolute,
    }
}

/// Opens the store of `config`: creates the file and the table in [`OpenMode::Create`];
/// otherwise `None` when either is missing.
pub(super) fn open(config: &Edn, mode: OpenMode) -> StoreResult<Option<Arc<dyn Store>>> {
    let Target { path, table } = target(config)?;
    let create = mode == OpenMode::Create;
    let existed = path.exists();
    if !existed && !create {
        return Ok(None);
    }
    if !existed {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
        }
    }
    let first = connect(&path, create)?;
    if !existed {
        // The new file's directory entry is durable before anything is acknowledged in it.
        sync_dir(&path)?;
    }
    let sql = Sql::new(&table);
    let exists = first
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            [&table],
            |_| Ok(()),
        )
        .optional()
        .map_err(|e| sqlite_error(&path.display().to_string(), &e))?
        .is_some();
    if !exists {
        if !create {
            return Ok(None);
        }
        first.execute_batch(&sql.create).map_err(|e| sqlite_error(&format!("create table {table}"), &e))?;
    }
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let pool = {
        let path = path.clone();
        Pool::new(move || connect(&path, false))
    };
    pool.give_back(first);
    Ok(Some(Arc::new(SqliteStore { path, sql, pool, lock_path })))
}

/// A connection in WAL mode with `synchronous=FULL`.
fn connect(path: &Path, create: bool) -> StoreResult<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let what = path.display().to_string();
    let conn = Connection::open_with_flags(path, flags).map_err(|e| sqlite_error(&what, &e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| sqlite_error(&what, &e))?;
    let journal: String =
        conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(|e| sqlite_error(&what, &e))?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend {
            backend: "sqlite",
            key: what,
            reason: format!("cannot switch the file to WAL mode (it stays in {journal} mode)"),
        });
    }
    conn.execute_batch("PRAGMA synchronous = FULL").map_err(|e| sqlite_error(&what, &e))?;
    Ok(conn)
}

fn sync_dir(path: &Path) -> StoreResult<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })
}

fn sqlite_error(key: &str, e: &rusqlite::Error) -> StoreError {
    StoreError::Backend { backend: "sqlite", key: key.to_string(), reason: e.to_string() }
}

/// The statements of one table.
struct Sql {
    create: String,
    drop: String,
    get: String,
    size: String,
    upsert: String,
    delete: String,
    list: String,
    list_all: String,
    insert_if_absent: String,
    swap: String,
}

impl Sql {
    fn new(table: &str) -> Sql {
        let t = quote_table(table);
        Sql {
            // A rowid table, not WITHOUT ROWID: values are kilobytes to megabytes.
            create: format!("CREATE TABLE IF NOT EXISTS {t} (k TEXT NOT NULL PRIMARY KEY, v BLOB NOT NULL)"),
            drop: format!("DROP TABLE IF EXISTS {t}"),
            get: format!("SELECT v FROM {t} WHERE k = ?1"),
            // The bytes of the value, without reading them (SQLite answers octet_length from
            // the record header).
            size: format!("SELECT octet_length(v) FROM {t} WHERE k = ?1"),
            upsert: format!("INSERT INTO {t} (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v"),
            delete: format!("DELETE FROM {t} WHERE k = ?1"),
            list: format!("SELECT k FROM {t} WHERE k >= ?1 AND k < ?2"),
            list_all: format!("SELECT k FROM {t} WHERE k >= ?1"),
            insert_if_absent: format!("INSERT INTO {t} (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO NOTHING"),
            swap: format!("UPDATE {t} SET v = ?3 WHERE k = ?1 AND v = ?2"),
        }
    }
}

/// A store in one table of an SQLite file.
struct SqliteStore {
    path: PathBuf,
    sql: Sql,
    pool: Arc<Pool<Connection>>,
    lock_path: PathBuf,
}

impl SqliteStore {
    fn conn(&self) -> StoreResult<Pooled<Connection>> {
        self.pool.take()
    }

    fn get_on(&self, conn: &Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
        conn.prepare_cached(&self.sql.get)?.query_row([key], |row| row.get(0)).optional()
    }

    fn insert_if_absent(&self, key: &str, bytes: &[u8]) -> StoreResult<bool> {
        let conn = self.conn()?;
        let written = conn
            .prepare_cached(&self.sql.insert_if_absent)
            .and_then(|mut stmt| stmt.execute(params![key, bytes]))
            .map_err(|e| sqlite_error(key, &e))?;
        Ok(written == 1)
    }
}

impl Store for SqliteStore {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let conn = self.conn()?;
        self.get_on(&conn, key).map_err(|e| sqlite_error(key, &e))
    }

    /// One read transaction, so that the values are of one moment.
    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let Some(first) = keys.first() else { return Ok(Vec::new()) };
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(|e| sqlite_error(first, &e))?;
        let values = keys
            .iter()
            .map(|key| self.get_on(&tx, key).map_err(|e| sqlite_error(key, &e)))
            .collect::<StoreResult<Vec<_>>>()?;
        tx.commit().map_err(|e| sqlite_error(first, &e))?;
        Ok(values)
    }

    /// `octet_length(v)` of each key, in one read transaction (local, so one statement per
    /// key, as `get_many` reads). Deleting a row puts its pages on the file's free list for
    /// reuse; the file shrinks only by `VACUUM`.
    fn stored_sizes(&self, keys: &[String]) -> StoreResult<Vec<Option<u64>>> {
        let Some(first) = keys.first() else { return Ok(Vec::new()) };
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(|e| sqlite_error(first, &e))?;
        let sizes = {
            let mut stmt = tx.prepare_cached(&self.sql.size).map_err(|e| sqlite_error(first, &e))?;
            keys.iter()
                .map(|key| {
                    let size: Option<i64> =
                        stmt.query_row([key], |row| row.get(0)).optional().map_err(|e| sqlite_error(key, &e))?;
                    Ok(size.and_then(|n| u64::try_from(n).ok()))
                })
                .collect::<StoreResult<Vec<_>>>()?
        };
        tx.commit().map_err(|e| sqlite_error(first, &e))?;
        Ok(sizes)
    }

    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        let Some((first, _)) = entries.first() else { return Ok(()) };
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| sqlite_error(first, &e))?;
        {
            let mut stmt = tx.prepare_cached(&self.sql.upsert).map_err(|e| sqlite_error(first, &e))?;
            for (key, value) in entries {
                stmt.execute(params![key, value]).map_err(|e| sqlite_error(key, &e))?;
            }
        }
        tx.commit().map_err(|e| sqlite_error(first, &e))
    }

    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        let Some(first) = keys.first() else { return Ok(()) };
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| sqlite_error(first, &e))?;
        {
            let mut stmt = tx.prepare_cached(&self.sql.delete).map_err(|e| sqlite_error(first, &e))?;
            for key in keys {
                stmt.execute([key]).map_err(|e| sqlite_error(key, &e))?;
            }
        }
        tx.commit().map_err(|e| sqlite_error(first, &e))
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let conn = self.conn()?;
        let keys = match prefix_end(prefix) {
            Some(end) => conn
                .prepare_cached(&self.sql.list)
                .and_then(|mut stmt| stmt.query_map(params![prefix, end], |row| row.get(0))?.collect()),
            None => conn
                .prepare_cached(&self.sql.list_all)
                .and_then(|mut stmt| stmt.query_map([prefix], |row| row.get(0))?.collect()),
        };
        let keys: Vec<String> = keys.map_err(|e| sqlite_error(prefix, &e))?;
        Ok(keys.into_iter().filter(|k| k.starts_with(prefix)).collect())
    }

    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        let Some(expected) = expected else { return self.insert_if_absent(key, new) };
        let conn = self.conn()?;
        let swapped = conn
            .prepare_cached(&self.sql.swap)
            .and_then(|mut stmt| stmt.execute(params![key, expected, new]))
            .map_err(|e| sqlite_error(key, &e))?;
        Ok(swapped == 1)
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> StoreResult<bool> {
        self.insert_if_absent(key, bytes)
    }

    /// An exclusive `flock` on `<dbname>.lock`, taken on a file description of its own, so it
    /// excludes other handles of this process as well as other processes. The kernel drops
    /// it when the holder exits.
    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        let io = |source| StoreError::Io { path: self.lock_path.clone(), source };
        let file =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&self.lock_path).map_err(io)?;
        file.lock().map_err(io)?;
        Ok(WriterGuard::new(Box::new(file)))
    }

    /// Drops the table. The file stays: other stores may live in it.
    fn destroy(&self) -> StoreResult<()> {
        let conn = self.conn()?;
        conn.execute_batch(&self.sql.drop).map_err(|e| sqlite_error(&self.path.display().to_string(), &e))?;
        drop(conn);
        self.pool.clear();
        Ok(())
    }
}
