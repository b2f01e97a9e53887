//! Backends by name: `{:store {:backend :lmdb ...}}` dispatches to the [`Backend`] registered
//! under `lmdb`. The built-in backends of this build register themselves; a user registers
//! their own with [`register_backend`] before the first config names it, without editing
//! this crate:
//!
//! ```
//! use datahike::store::{register_backend, Backend, MemoryStore, OpenMode, Store, StoreResult};
//! use datahike::Edn;
//! use std::sync::Arc;
//!
//! /// A backend that keeps each store in a memory store named by `:name`.
//! struct Scratch;
//!
//! impl Backend for Scratch {
//!     fn open(&self, config: &Edn, mode: OpenMode) -> StoreResult<Option<Arc<dyn Store>>> {
//!         let name = datahike::store::backend::string_key(config, "scratch", "name")?;
//!         let id = format!("scratch:{name}");
//!         if mode != OpenMode::Create && !MemoryStore::exists(&id) {
//!             return Ok(None);
//!         }
//!         Ok(Some(Arc::new(MemoryStore::open(&id))))
//!     }
//!     fn identity(&self, config: &Edn) -> String {
//!         format!("{}", config.get_kw("name").cloned().unwrap_or(Edn::Nil))
//!     }
//! }
//!
//! register_backend("scratch", Arc::new(Scratch));
//! let config = datahike::Config::parse(r#"{:store {:backend :scratch :name "a"} :schema-flexibility :read}"#).unwrap();
//! datahike::create_database(&config).unwrap();
//! let conn = datahike::connect(&config).unwrap();
//! conn.transact(&datahike::edn::read_str(r#"[{:x 1}]"#).unwrap()).unwrap();
//! conn.release().unwrap();
//! ```

use super::{Store, StoreError, StoreResult};
use crate::edn::Edn;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// How [`Backend::open`] opens a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Opens the store, creating what it needs when it is missing (a directory, an SQL
    /// table, a bucket, a DynamoDB table), where the credentials allow it.
    Create,
    /// Opens an existing store for reading and writing; `None` when there is none.
    Open,
    /// Opens an existing store that this handle never writes; `None` when there is none.
    /// The database wraps the store so that a write fails ([`StoreError::ReadOnly`]); a
    /// backend may also open with read-only access (a read-only file, read-only credentials).
    ReadOnly,
}

/// A storage backend: makes [`Store`] handles from `:store` config maps.
pub trait Backend: Send + Sync + 'static {
    /// Opens the store that `config` (the whole `:store` map) names, or `None` when `mode`
    /// is not [`OpenMode::Create`] and there is no such store. Errors name the config keys
    /// at fault but never a secret (password, secret key, token).
    fn open(&self, config: &Edn, mode: OpenMode) -> StoreResult<Option<Arc<dyn Store>>>;

    /// A text that is equal for two configs exactly when they name the same store (the
    /// connection registry keys connections by it). It must not contain secrets.
    fn identity(&self, config: &Edn) -> String;
}

fn registry() -> &'static RwLock<BTreeMap<String, Arc<dyn Backend>>> {
    static BACKENDS: OnceLock<RwLock<BTreeMap<String, Arc<dyn Backend>>>> = OnceLock::new();
    BACKENDS.get_or_init(|| RwLock::new(builtin().into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

/// The backends this build was compiled with, besides `:memory` and `:file` (which the
/// database handles itself).
fn builtin() -> Vec<(&'static str, Arc<dyn Backend>)> {
    vec![
        // PostgreSQL and SQLite, chosen by `:dbtype`; either feature registers the backend.
        #[cfg(any(feature = "postgres", feature = "sqlite"))]
        ("jdbc", Arc::new(super::jdbc::Jdbc) as Arc<dyn Backend>),
        #[cfg(feature = "lmdb")]
        ("lmdb", Arc::new(super::lmdb::LmdbBackend) as Arc<dyn Backend>),
        #[cfg(feature = "redis")]
        ("redis", Arc::new(super::redis::RedisBackend) as Arc<dyn Backend>),
        #[cfg(feature = "s3")]
        ("s3", Arc::new(super::object::S3Backend) as Arc<dyn Backend>),
        #[cfg(feature = "gcs")]
        ("gcs", Arc::new(super::object::GcsBackend) as Arc<dyn Backend>),
        // A cache store in front of a durable one, both opened from their own :store maps.
        ("tiered", Arc::new(super::tiered::TieredBackend) as Arc<dyn Backend>),
        #[cfg(feature = "dynamodb")]
        ("dynamodb", Arc::new(super::dynamodb::DynamoBackend) as Arc<dyn Backend>),
    ]
}

/// The cargo feature that builds the built-in backend `name` in, for the backends that are
/// optional (so that a config naming one this build lacks says what to build).
pub fn feature_of(name: &str) -> Option<&'static str> {
    match name {
        "jdbc" => Some("jdbc"), // or `postgres` or `sqlite` alone
        "lmdb" => Some("lmdb"),
        "redis" => Some("redis"),
        "s3" => Some("s3"),
        "gcs" => Some("gcs"),
        "dynamodb" => Some("dynamodb"),
        _ => None,
    }
}

/// Registers `backend` under `name` (the keyword without its colon, e.g. `"my-store"`), so
/// that `{:store {:backend :my-store ...}}` opens stores through it. Registering a name again
/// replaces the backend (the built-in ones too).
pub fn register_backend(name: &str, backend: Arc<dyn Backend>) {
    registry().write().unwrap_or_else(PoisonError::into_inner).insert(name.to_string(), backend);
}

/// The backend registered under `name`.
pub fn lookup(name: &str) -> Option<Arc<dyn Backend>> {
    registry().read().unwrap_or_else(PoisonError::into_inner).get(name).cloned()
}

/// Every registered backend name, sorted, with `memory` and `file`.
pub fn names() -> Vec<String> {
    let mut names = vec!["memory".to_string(), "file".to_string()];
    names.extend(registry().read().unwrap_or_else(PoisonError::into_inner).keys().cloned());
    names
}

/// Opens the store that a `:store` map names, through the same dispatch as a database's
/// `:store` (memory and file, then every registered backend): `None` when `mode` is not
/// [`OpenMode::Create`] and there is no such store. For backends made of other stores, such
/// as `:tiered`.
pub fn open_store(config: &Edn, mode: OpenMode) -> StoreResult<Option<Arc<dyn Store>>> {
    let parsed = crate::config::StoreConfig::from_edn(config).map_err(|e| StoreError::Invalid(e.to_string()))?;
    parsed.open(mode)
}

/// The identity (see [`Backend::identity`]) of the store that a `:store` map names, or of the
/// map itself, redacted, when it does not parse.
pub fn store_identity(config: &Edn) -> String {
    crate::config::StoreConfig::from_edn(config).map_or_else(|_| redact(config).to_string(), |c| c.identity())
}

/// Config keys whose values are secrets: never printed, logged, or put in an error.
const SECRET_WORDS: [&str; 6] = ["password", "secret", "token", "credential", "private-key", "service-account"];

/// Whether the config key `name` holds a secret.
pub fn is_secret_key(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// `config` with every secret value (see [`is_secret_key`], at any depth, and `password=`
/// inside URL strings) replaced by `"***"`: what `create-database` prints back and errors
/// show.
pub fn redact(config: &Edn) -> Edn {
    match config {
        Edn::Map(entries) => Edn::Map(
            entries
                .iter()
                .map(|(k, v)| {
                    let secret = k.as_keyword().is_some_and(|kw| is_secret_key(kw.name()))
                        || matches!(k, Edn::Str(s) if is_secret_key(s));
                    (k.clone(), if secret && !matches!(v, Edn::Nil) { Edn::str("***") } else { redact(v) })
                })
                .collect(),
        ),
        Edn::Vector(items) => Edn::Vector(items.iter().map(redact).collect()),
        Edn::Str(s) => Edn::str(&redact_url(s)),
        other => other.clone(),
    }
}

/// A URL with the password of its user info and any `password=` parameter replaced.
fn redact_url(text: &str) -> String {
    let mut out = text.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..].find(['/', '?', '#']).map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    let lower = out.to_ascii_lowercase();
    if let Some(at) = lower.find("password=") {
        let start = at + "password=".len();
        let end = out[start..].find(['&', ';', ' ']).map_or(out.len(), |i| start + i);
        out.replace_range(start..end, "***");
    }
    out
}

/// The string under `key` of a `:store` map, or an error naming the backend and the key.
pub fn string_key(config: &Edn, backend: &str, key: &str) -> StoreResult<String> {
    match config.get_kw(key) {
        Some(Edn::Str(s)) if !s.is_empty() => Ok(s.to_string()),
        Some(Edn::Keyword(k)) => Ok(k.to_string()),
        other => Err(StoreError::Invalid(format!(
            ":store :{key} must be a non-empty string for the :{backend} backend, got {}",
            other.map_or("nothing".to_string(), |v| redact(v).to_string())
        ))),
    }
}

/// The string under `key` of a `:store` map, if given (an error when it is not a string).
pub fn optional_string_key(config: &Edn, backend: &str, key: &str) -> StoreResult<Option<String>> {
    match config.get_kw(key) {
        None | Some(Edn::Nil) => Ok(None),
        Some(_) => string_key(config, backend, key).map(Some),
    }
}

/// A store whose writes all fail with [`StoreError::ReadOnly`]: what a reader connected with
/// `:read-only? true` holds, so that nothing it does can change the store.
pub struct ReadOnlyStore {
    inner: Arc<dyn Store>,
    name: String,
}

impl ReadOnlyStore {
    /// Wraps `inner`; `name` names the store in errors.
    pub fn new(inner: Arc<dyn Store>, name: String) -> ReadOnlyStore {
        ReadOnlyStore { inner, name }
    }

    fn refuse<T>(&self, key: &str) -> StoreResult<T> {
        Err(StoreError::ReadOnly { store: self.name.clone(), key: key.to_string() })
    }
}

impl Store for ReadOnlyStore {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        self.inner.get_many(keys)
    }
    fn stored_sizes(&self, keys: &[String]) -> StoreResult<Vec<Option<u64>>> {
        self.inner.stored_sizes(keys)
    }
    fn prefers_batched_reads(&self) -> bool {
        self.inner.prefers_batched_reads()
    }
    fn get_range(&self, key: &str, range: super::ByteRange) -> StoreResult<Option<Vec<u8>>> {
        self.inner.get_range(key, range)
    }
    fn get_ranges(&self, reads: &[(String, super::ByteRange)]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        self.inner.get_ranges(reads)
    }
    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        match entries.first() {
            Some((key, _)) => self.refuse(key),
            None => Ok(()),
        }
    }
    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        match keys.first() {
            Some(key) => self.refuse(key),
            None => Ok(()),
        }
    }
    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        self.inner.list(prefix)
    }
    fn compare_and_set(&self, key: &str, _expected: Option<&[u8]>, _new: &[u8]) -> StoreResult<bool> {
        self.refuse(key)
    }
    fn put_if_absent(&self, key: &str, _bytes: &[u8]) -> StoreResult<bool> {
        self.refuse(key)
    }
    fn log_append(&self, log: &str, seq: u64, _record: &[u8]) -> StoreResult<()> {
        self.refuse(&super::log_key(log, seq))
    }
    fn log_read(&self, log: &str, after: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        self.inner.log_read(log, after)
    }
    fn log_discard(&self, log: &str, _through: u64) -> StoreResult<()> {
        self.refuse(&format!("log/{log}"))
    }
    fn log_discard_all(&self, log: &str, _through: u64) -> StoreResult<()> {
        self.refuse(&format!("log/{log}"))
    }
    fn log_delete(&self, log: &str) -> StoreResult<()> {
        self.refuse(&format!("log/{log}"))
    }
    fn sweep_temporaries(&self) -> StoreResult<Vec<String>> {
        self.refuse("temporaries")
    }
    fn lock_writer(&self) -> StoreResult<super::WriterGuard> {
        self.refuse("the writer lock")
    }
    fn destroy(&self) -> StoreResult<()> {
        self.refuse("the whole store")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::read_str;

    #[test]
    fn a_missing_backend_is_named_with_what_builds_it() {
        let error = |name: &str| {
            crate::Config::parse(&format!("{{:store {{:backend :{name} :path \"/nonexistent\"}}}}"))
                .expect_err("a backend this build lacks is refused when the config is read")
                .to_string()
        };
        let unknown = error("no-such-store");
        assert!(unknown.contains(":no-such-store") && unknown.contains("register_backend"), "{unknown}");
        for name in ["jdbc", "lmdb", "redis", "s3", "gcs", "dynamodb"] {
            let feature = feature_of(name).expect("an optional built-in backend");
            if lookup(name).is_none() {
                let message = error(name);
                assert!(message.contains(&format!("cargo feature `{feature}`")), "{message}");
            }
        }
        assert_eq!(feature_of("tiered"), None, "tiered is always built");
    }

    #[test]
    fn a_read_only_store_tells_the_sizes_of_the_store_it_wraps() {
        let inner = Arc::new(crate::store::MemoryStore::new());
        inner.put_batch(&[("values/a".to_string(), vec![1; 10])]).unwrap();
        let store = ReadOnlyStore::new(inner, "memory".into());
        let keys = ["values/a".to_string(), "values/b".to_string()];
        assert_eq!(store.stored_sizes(&keys).unwrap(), vec![Some(10), None]);
    }

    #[test]
    fn secrets_are_redacted() {
        let config = read_str(
            r#"{:backend :jdbc :user "u" :password "hunter2" :nested {:secret-access-key "k" :access-key-id "id"}
                :jdbc-url "jdbc:postgresql://u:pw@host:5432/db?password=pw2&ssl=true" :token nil}"#,
        )
        .unwrap();
        let printed = redact(&config).to_string();
        for secret in ["hunter2", "\"k\"", "pw@", "pw2"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("\"u\"") && printed.contains("\"id\"") && printed.contains("ssl=true"), "{printed}");
        assert!(printed.contains(":token nil"), "{printed}");
    }
}
