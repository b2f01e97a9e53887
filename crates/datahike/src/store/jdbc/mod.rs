//! The `:jdbc` backend: a store is one SQL table `(k TEXT PRIMARY KEY, v BYTEA/BLOB)` in
//! PostgreSQL (cargo feature `postgres`) or SQLite (feature `sqlite`), chosen by `:dbtype`, with
//! Datahike's (next.jdbc's) config keys:
//!
//! ```text
//! {:backend :jdbc :dbtype "postgresql" :host "db" :port 5432 :dbname "app" :user "u" :password "..." :table "datahike"}
//! {:backend :jdbc :jdbcUrl "jdbc:postgresql://db:5432/app?user=u&password=..."}
//! {:backend :jdbc :dbtype "sqlite" :dbname "/var/lib/app/db.sqlite"}
//! ```
//!
//! One store is one table (`:table`, default `datahike`), so several databases share one SQL
//! database through different tables. Only what the driver is compiled in for is accepted;
//! the other `:dbtype` is an error naming the cargo feature.

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use super::backend::{optional_string_key, redact, Backend, OpenMode};
use super::{Store, StoreError, StoreResult};
use crate::edn::Edn;
use std::sync::{Arc, Mutex, PoisonError};

/// The table of a store when `:table` is not given.
pub const DEFAULT_TABLE: &str = "datahike";

/// The `:jdbc` backend, registered under `jdbc`.
pub struct Jdbc;

/// The SQL database a `:jdbc` config names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DbType {
    Postgres,
    Sqlite,
}

impl Backend for Jdbc {
    fn open(&self, config: &Edn, mode: OpenMode) -> StoreResult<Option<Arc<dyn Store>>> {
        match dbtype(config)? {
            #[cfg(feature = "postgres")]
            DbType::Postgres => postgres::open(config, mode),
            #[cfg(feature = "sqlite")]
            DbType::Sqlite => sqlite::open(config, mode),
            #[allow(unreachable_patterns)]
            other => Err(not_compiled(other, mode)),
        }
    }

    fn identity(&self, config: &Edn) -> String {
        let identity = match dbtype(config) {
            #[cfg(feature = "postgres")]
            Ok(DbType::Postgres) => postgres::identity(config),
            #[cfg(feature = "sqlite")]
            Ok(DbType::Sqlite) => sqlite::identity(config),
            _ => None,
        };
        // A config that does not parse opens nothing; its redacted text keeps it apart.
        identity.unwrap_or_else(|| redact(config).to_string())
    }
}

fn not_compiled(dbtype: DbType, _mode: OpenMode) -> StoreError {
    let (name, feature) = match dbtype {
        DbType::Postgres => ("postgresql", "postgres"),
        DbType::Sqlite => ("sqlite", "sqlite"),
    };
    StoreError::Invalid(format!(
        ":store :dbtype {name:?} needs the cargo feature {feature} (or jdbc) of datahike, which this build lacks"
    ))
}

/// `:dbtype`, or the scheme of `:jdbcUrl`/`:jdbc-url`.
fn dbtype(config: &Edn) -> StoreResult<DbType> {
    let named = optional_string_key(config, "jdbc", "dbtype")?;
    let from_url = jdbc_url(config)?.map(|url| {
        let url = url.strip_prefix("jdbc:").unwrap_or(&url).to_ascii_lowercase();
        if url.starts_with("postgresql:") || url.starts_with("postgres:") {
            Ok(DbType::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(DbType::Sqlite)
        } else {
            Err(StoreError::Invalid(format!(
                ":store :jdbcUrl {:?} is neither jdbc:postgresql://... nor jdbc:sqlite:...",
                redact(&Edn::str(&url)).to_string()
            )))
        }
    });
    match (named.as_deref().map(str::to_ascii_lowercase).as_deref(), from_url) {
        (Some("postgresql" | "postgres" | "pgsql"), _) => Ok(DbType::Postgres),
        (Some("sqlite" | "sqlite3"), _) => Ok(DbType::Sqlite),
        (Some(other), _) => Err(StoreError::Invalid(format!(
            ":store :dbtype {other:?} is not supported by the :jdbc backend; use \"postgresql\" or \"sqlite\""
        ))),
        (None, Some(from_url)) => from_url,
        (None, None) => Err(StoreError::Invalid(
            "the :jdbc backend needs :dbtype (\"postgresql\" or \"sqlite\") or :jdbcUrl in :store".into(),
        )),
    }
}

/// `:jdbcUrl` (next.jdbc's spelling), `:jdbc-url` or `:connection-uri`.
fn jdbc_url(config: &Edn) -> StoreResult<Option<String>> {
    for key in ["jdbcUrl", "jdbc-url", "connection-uri"] {
        if let Some(url) = optional_string_key(config, "jdbc", key)? {
            return Ok(Some(url));
        }
    }
    Ok(None)
}

/// A store config key that may be a string or an integer (`:port 5432` or `:port "5432"`).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn string_or_int_key(config: &Edn, key: &str) -> StoreResult<Option<String>> {
    match config.get_kw(key) {
        Some(Edn::Int(n)) => Ok(Some(n.to_string())),
        _ => optional_string_key(config, "jdbc", key),
    }
}

/// The table of the store: `:table`, else [`DEFAULT_TABLE`]. A name of letters, digits, `_`
/// and `-` (not starting with a digit), optionally schema-qualified (`app.datahike`); it is
/// put into SQL quoted, so nothing else is allowed.
fn table_name(config: &Edn) -> StoreResult<String> {
    let table = optional_string_key(config, "jdbc", "table")?.unwrap_or_else(|| DEFAULT_TABLE.to_string());
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && !p.as_bytes()[0].is_ascii_digit()
    };
    let parts: Vec<&str> = table.split('.').collect();
    if parts.len() > 2 || !parts.iter().all(|p| part_ok(p)) {
        return Err(StoreError::Invalid(format!(
            ":store :table {table:?} must be a table name of letters, digits, _ and - (optionally schema.table)"
        )));
    }
    Ok(table)
}

/// `name` (checked by [`table_name`]) as a quoted SQL identifier, each part quoted.
fn quote_table(name: &str) -> String {
    name.split('.').map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(".")
}

/// The least string greater than every string that starts with `prefix`, in code point order
/// (which is UTF-8 byte order, the order of PostgreSQL's `"C"` collation and SQLite's
/// `BINARY`): `prefix` with its last incrementable character incremented. `None` when no
/// string is greater (an empty prefix): the scan then has no upper bound. A range scan
/// `k >= prefix AND k < end` is exact for any prefix, wildcards (`%`, `_`, `\`) included.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) + 1 {
            0xD800 => 0xE000, // skip the surrogates, which are no characters
            n => n,
        };
        if let Some(next) = char::from_u32(next) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A few connections of one store handle, reused: an operation takes one (or opens a new
/// one when all are busy) and gives it back when done, unless it broke. Handles of other
/// threads thus never wait for each other in the process; the database orders them.
struct Pool<C> {
    idle: Mutex<Vec<C>>,
    connect: Box<dyn Fn() -> StoreResult<C> + Send + Sync>,
}

/// How many idle connections a pool keeps; more may be open while busy.
const POOL_IDLE_MAX: usize = 4;

impl<C: Send + 'static> Pool<C> {
    fn new(connect: impl Fn() -> StoreResult<C> + Send + Sync + 'static) -> Arc<Pool<C>> {
        Arc::new(Pool { idle: Mutex::new(Vec::new()), connect: Box::new(connect) })
    }

    /// An idle connection, or a new one.
    fn take(self: &Arc<Self>) -> StoreResult<Pooled<C>> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => (self.connect)()?,
        };
        Ok(Pooled { pool: Arc::clone(self), conn: Some(conn) })
    }

    /// Keeps `conn` for the next operation.
    fn give_back(&self, conn: C) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < POOL_IDLE_MAX {
            idle.push(conn);
        }
    }

    /// Closes every idle connection.
    fn clear(&self) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// A connection taken from a [`Pool`]; back into it on drop unless [`Pooled::discard`]ed.
struct Pooled<C: Send + 'static> {
    pool: Arc<Pool<C>>,
    conn: Option<C>,
}

impl<C: Send + 'static> Pooled<C> {
    /// Closes the connection instead of giving it back (it broke, or holds state).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    fn discard(mut self) {
        self.conn = None;
    }
}

impl<C: Send + 'static> std::ops::Deref for Pooled<C> {
    type Target = C;
    fn deref(&self) -> &C {
        self.conn.as_ref().expect("a pooled connection is present until dropped")
    }
}

impl<C: Send + 'static> std::ops::DerefMut for Pooled<C> {
    fn deref_mut(&mut self) -> &mut C {
        self.conn.as_mut().expect("a pooled connection is present until dropped")
    }
}

impl<C: Send + 'static> Drop for Pooled<C> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::read_str;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("log/a/").as_deref(), Some("log/a0"));
        assert_eq!(prefix_end("a%").as_deref(), Some("a&"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        assert_eq!(prefix_end("x\u{D7FF}").as_deref(), Some("x\u{E000}"));
        for (prefix, key) in [("a%", "a%b"), ("a_", "a_"), ("a\\", "a\\\\"), ("ü", "üß"), ("a", "a\u{10FFFF}")] {
            let end = prefix_end(prefix).unwrap();
            assert!(key >= prefix && key < end.as_str(), "{key:?} in [{prefix:?}, {end:?})");
        }
        for (prefix, key) in [("a%", "a&"), ("a_", "a`"), ("ab", "ac"), ("a", "b")] {
            let end = prefix_end(prefix).unwrap();
            assert!(key >= end.as_str(), "{key:?} not in [{prefix:?}, {end:?})");
        }
    }

    #[test]
    fn dbtypes_and_tables() {
        let dbtype_of = |text: &str| dbtype(&read_str(text).unwrap());
        assert_eq!(dbtype_of(r#"{:dbtype "postgresql"}"#).unwrap(), DbType::Postgres);
        assert_eq!(dbtype_of(r#"{:dbtype "postgres"}"#).unwrap(), DbType::Postgres);
        assert_eq!(dbtype_of(r#"{:dbtype "sqlite"}"#).unwrap(), DbType::Sqlite);
        assert_eq!(dbtype_of(r#"{:jdbcUrl "jdbc:postgresql://h/db"}"#).unwrap(), DbType::Postgres);
        assert_eq!(dbtype_of(r#"{:jdbc-url "jdbc:sqlite:/tmp/x.db"}"#).unwrap(), DbType::Sqlite);
        let e = dbtype_of(r#"{:dbtype "mysql"}"#).unwrap_err().to_string();
        assert!(e.contains("mysql") && e.contains("postgresql"), "{e}");
        let e = dbtype_of(r#"{:jdbcUrl "jdbc:mysql://u:secret@h/db"}"#).unwrap_err().to_string();
        assert!(e.contains("jdbcUrl") && !e.contains("secret"), "{e}");
        assert!(dbtype_of("{}").unwrap_err().to_string().contains(":dbtype"));

        let table_of = |text: &str| table_name(&read_str(text).unwrap());
        assert_eq!(table_of("{}").unwrap(), "datahike");
        assert_eq!(table_of(r#"{:table "app.kv_1"}"#).unwrap(), "app.kv_1");
        assert_eq!(quote_table("app.kv_1"), "\"app\".\"kv_1\"");
        assert_eq!(table_of(r#"{:table "bench-12-3"}"#).unwrap(), "bench-12-3");
        for bad in ["\"x; drop table y\"", "\"1abc\"", "\"a.b.c\"", "\"\"", "\"a\\\"b\""] {
            assert!(table_of(&format!("{{:table {bad}}}")).is_err(), "{bad}");
        }
    }
}
