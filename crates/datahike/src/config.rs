//! Datahike's EDN configuration map, with Datahike's defaults, e.g.
//! `{:store {:backend :file :path "/var/lib/db"} :keep-history? true}`.

use crate::edn::{read_str, Edn, Keyword};
use crate::error::{Error, Result};
use crate::index::{CacheLimit, IndexKind};
use crate::store::{backend, FileStore, MemoryStore, OpenMode, Store, StoreError, StoreResult};
use std::path::PathBuf;
use std::sync::Arc;

/// Where the database lives.
#[derive(Clone, PartialEq)]
pub enum StoreConfig {
    /// `{:backend :memory :id "name"}`: in this process only, addressable by id.
    Memory {
        /// The store identity.
        id: String,
    },
    /// `{:backend :file :path "/dir"}`: a directory of immutable files.
    File {
        /// The directory.
        path: PathBuf,
    },
    /// Any other `:backend`, opened by the [`Backend`](crate::store::Backend) registered
    /// under its name (`:lmdb`, `:jdbc`, `:redis`, `:s3`, ... or a user's own).
    Backend {
        /// The backend keyword's text, e.g. `"lmdb"`.
        name: String,
        /// The whole `:store` map, as given.
        config: Edn,
    },
    /// A store value handed over by the program ([`Config::with_store`]).
    Value(StoreValue),
}

/// A [`Store`] handed to [`Config::with_store`]: configs holding the same value name the same
/// store.
#[derive(Clone)]
pub struct StoreValue(pub Arc<dyn Store>);

// A store keeps its own state consistent across a panic (its contract makes every write whole
// or absent), so a config holding one may cross `catch_unwind` as any other config does.
impl std::panic::UnwindSafe for StoreValue {}
impl std::panic::RefUnwindSafe for StoreValue {}

impl PartialEq for StoreValue {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl StoreValue {
    /// The identity of the value within this process.
    pub fn identity(&self) -> String {
        format!("{:p}", Arc::as_ptr(&self.0).cast::<u8>())
    }
}

impl std::fmt::Debug for StoreConfig {
    /// The config map, with secrets replaced (see [`backend::redact`]).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_edn())
    }
}

impl StoreConfig {
    /// The config map of the store, with secrets (passwords, secret keys, tokens) replaced by
    /// `"***"`: what `create-database` prints back and what errors show.
    pub fn to_edn(&self) -> Edn {
        match self {
            StoreConfig::Memory { id } => {
                Edn::Map(vec![(Edn::kw("backend"), Edn::kw("memory")), (Edn::kw("id"), Edn::str(id))])
            }
            StoreConfig::File { path } => Edn::Map(vec![
                (Edn::kw("backend"), Edn::kw("file")),
                (Edn::kw("path"), Edn::str(&path.to_string_lossy())),
            ]),
            StoreConfig::Backend { config, .. } => backend::redact(config),
            StoreConfig::Value(value) => Edn::Map(vec![
                (Edn::kw("backend"), Edn::kw("datahike/store-value")),
                (Edn::kw("id"), Edn::str(&value.identity())),
            ]),
        }
    }

    /// Parses a `:store` map (`{:backend :file :path "/x"}`, `{:backend :memory :id "a"}`, or
    /// any registered backend's map).
    pub fn from_edn(store: &Edn) -> Result<StoreConfig> {
        parse_store(store)
    }

    /// A text that is equal for two configs exactly when they name the same store, without
    /// secrets: the connection registry keys connections by it.
    pub fn identity(&self) -> String {
        match self {
            StoreConfig::Memory { id } => format!("memory:{id}"),
            StoreConfig::File { path } => {
                let p = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
                format!("file:{}", p.display())
            }
            StoreConfig::Backend { name, config: store } => {
                let identity = backend::lookup(name).map(|b| b.identity(store)).unwrap_or_default();
                format!("{name}:{identity}")
            }
            StoreConfig::Value(value) => format!("value:{}", value.identity()),
        }
    }

    /// Opens the store, or `None` when `mode` does not create it and it does not exist. This
    /// is the one dispatch of every `:store` map: memory and file here, every other backend
    /// through the registry. A [`OpenMode::ReadOnly`] handle is returned as the backend opens
    /// it; the database wraps it in a [`backend::ReadOnlyStore`].
    pub fn open(&self, mode: OpenMode) -> StoreResult<Option<Arc<dyn Store>>> {
        let create = mode == OpenMode::Create;
        Ok(Some(match self {
            StoreConfig::Memory { id } => {
                if !create && !MemoryStore::exists(id) {
                    return Ok(None);
                }
                Arc::new(MemoryStore::open(id))
            }
            StoreConfig::File { path } => {
                let store = if FileStore::exists(path) {
                    FileStore::open(path)?
                } else if create {
                    FileStore::create(path)?
                } else {
                    return Ok(None);
                };
                // Tests shrink log segments to exercise rotation and discarding.
                match std::env::var("DATAHIKE_LOG_SEGMENT_BYTES").ok().and_then(|s| s.parse().ok()) {
                    Some(bytes) => Arc::new(store.with_segment_bytes_max(bytes)),
                    None => Arc::new(store),
                }
            }
            StoreConfig::Backend { name, config } => {
                let backend = backend::lookup(name).ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "no backend is registered under :{name} (see datahike::store::register_backend)"
                    ))
                })?;
                match backend.open(config, mode)? {
                    Some(store) => store,
                    None => return Ok(None),
                }
            }
            StoreConfig::Value(value) => value.0.clone(),
        }))
    }

    /// The backend's name, e.g. `"file"`.
    pub fn backend_name(&self) -> &str {
        match self {
            StoreConfig::Memory { .. } => "memory",
            StoreConfig::File { .. } => "file",
            StoreConfig::Backend { name, .. } => name,
            StoreConfig::Value(_) => "datahike/store-value",
        }
    }
}

/// `:schema-flexibility`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaFlexibility {
    /// `:write` (default): attributes must be declared and values must match their type.
    Write,
    /// `:read`: anything is accepted.
    Read,
}

/// A database configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `:store`
    pub store: StoreConfig,
    /// `:keep-history?` (default true)
    pub keep_history: bool,
    /// `:schema-flexibility` (default `:write`)
    pub schema_flexibility: SchemaFlexibility,
    /// `:attribute-refs?` (default false)
    pub attribute_refs: bool,
    /// `:index` (default `:datahike.index/persistent-set`)
    pub index: IndexKind,
    /// `:index-config {:branching-factor n}`, fixed when the database is created. Default 128
    /// (Datahike uses 512): smaller nodes make path copies of small transactions cheaper.
    pub branching_factor: usize,
    /// `:store-cache-size`: index nodes kept decoded in memory. When it is not given, the
    /// cache is bounded by bytes instead ([`Config::store_cache_bytes`]).
    pub store_cache_size: Option<usize>,
    /// `:store-cache-bytes` (our extension): about how many bytes of decoded index nodes the
    /// cache keeps when `:store-cache-size` is not given (default 256 MiB).
    pub store_cache_bytes: u64,
    /// `:search-cache-size` (default 0, off).
    pub search_cache_size: usize,
    /// `:query-memory-limit` (our extension): about how many bytes a query may hold in its
    /// intermediate relations, result tuples and aggregate groups before it fails with a
    /// `query/memory-limit` error (default [`Config::DEFAULT_QUERY_MEMORY_LIMIT`], 1 GiB). A
    /// query's own `:memory-limit` may only lower it.
    pub query_memory_limit: u64,
    /// `:initial-tx`: transacted when the database is created.
    pub initial_tx: Option<Edn>,
    /// `:name`
    pub name: Option<String>,
    /// `:branch` (default `:db`)
    pub branch: Keyword,
    /// `:read-only? true`: a reader on shared storage. It never writes the store (no log,
    /// no flush, no lock), and [`crate::Conn::db`] returns the latest committed value, read
    /// from the store when it has changed. Transactions fail.
    pub read_only: bool,
    /// `:writer {:backend :datahike-server :url .. :token ..}`: a remote writer. Reads stay
    /// local on the shared store (the connection reads it as a reader does);
    /// `create-database`, `delete-database` and `transact` are sent to the server.
    pub writer: Option<RemoteSpec>,
    /// `:remote-peer {:backend :datahike-server :url .. :token ..}`: every call goes to the
    /// server ([`crate::api::call`] forwards it; this process opens no store).
    pub remote_peer: Option<RemoteSpec>,
}

/// A Datahike server to send calls to (`:writer` or `:remote-peer`).
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteSpec {
    /// The server's base URL, e.g. `http://127.0.0.1:4444`.
    pub url: String,
    /// The token sent as `Authorization: token ...`.
    pub token: Option<String>,
}

impl std::fmt::Debug for RemoteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSpec")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl RemoteSpec {
    /// Reads `{:backend :datahike-server :url "http://..." :token "..."}`; `key` names the
    /// config key in errors.
    pub fn from_edn(key: &str, edn: &Edn) -> Result<RemoteSpec> {
        if !matches!(edn, Edn::Map(_)) {
            return Err(bad(key, edn, "a map {:backend :datahike-server :url \"http://...\" :token \"...\"}"));
        }
        match edn.get_kw("backend").and_then(Edn::as_keyword) {
            Some(b) if b.as_str() == "datahike-server" => {}
            _ => {
                return Err(Error::Config(format!(
                    "{key} :backend must be :datahike-server (the only remote writer this build knows), got {}",
                    edn.get_kw("backend").map_or_else(|| "nothing".to_string(), |b| b.to_string())
                )))
            }
        }
        let url = match edn.get_kw("url") {
            Some(Edn::Str(u)) if u.starts_with("http://") || u.starts_with("https://") => {
                u.trim_end_matches('/').to_string()
            }
            other => {
                return Err(Error::Config(format!(
                    "{key} :url must be an http:// or https:// URL string, got {}",
                    other.map_or_else(|| "nothing".to_string(), |u| u.to_string())
                )))
            }
        };
        let token = match edn.get_kw("token") {
            None | Some(Edn::Nil) => None,
            Some(Edn::Str(t)) => Some(t.to_string()),
            Some(_) => return Err(Error::Config(format!("{key} :token must be a string"))),
        };
        Ok(RemoteSpec { url, token })
    }

    /// The map it was read from (the token included: it is sent, never printed).
    pub fn to_edn(&self) -> Edn {
        let mut m = vec![(Edn::kw("backend"), Edn::kw("datahike-server")), (Edn::kw("url"), Edn::str(&self.url))];
        if let Some(token) = &self.token {
            m.push((Edn::kw("token"), Edn::str(token)));
        }
        Edn::Map(m)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store: StoreConfig::Memory { id: uuid::Uuid::new_v4().to_string() },
            keep_history: true,
            schema_flexibility: SchemaFlexibility::Write,
            attribute_refs: false,
            index: IndexKind::PersistentSet,
            branching_factor: 128,
            store_cache_size: None,
            store_cache_bytes: crate::index::NodeCache::DEFAULT_BYTES,
            search_cache_size: 0,
            query_memory_limit: Config::DEFAULT_QUERY_MEMORY_LIMIT,
            initial_tx: None,
            name: None,
            branch: Keyword::new("db"),
            read_only: false,
            writer: None,
            remote_peer: None,
        }
    }
}

fn bad(key: &str, value: &Edn, expected: &str) -> Error {
    Error::Config(format!("{key} must be {expected}, got {value}"))
}

fn bool_of(key: &str, v: &Edn) -> Result<bool> {
    match v {
        Edn::Bool(b) => Ok(*b),
        _ => Err(bad(key, v, "true or false")),
    }
}

fn count_of(key: &str, v: &Edn, min: i64) -> Result<usize> {
    match v {
        Edn::Int(i) if *i >= min => usize::try_from(*i).map_err(|_| bad(key, v, "a count")),
        _ => Err(bad(key, v, &format!("an integer >= {min}"))),
    }
}

impl Config {
    /// The default `:query-memory-limit`: 1 GiB.
    pub const DEFAULT_QUERY_MEMORY_LIMIT: u64 = 1 << 30;

    /// How the node cache is bounded: by `:store-cache-size` nodes when given, else by
    /// `:store-cache-bytes`.
    pub fn cache_limit(&self) -> CacheLimit {
        match self.store_cache_size {
            Some(n) => CacheLimit::Nodes(n),
            None => CacheLimit::Bytes(self.store_cache_bytes),
        }
    }

    /// A file-backed config at `path` with the other keys at their defaults.
    pub fn file(path: impl Into<PathBuf>) -> Config {
        Config { store: StoreConfig::File { path: path.into() }, ..Config::default() }
    }

    /// A config of the other keys' defaults over `store`, a store value of the program's own
    /// (a [`Store`] implementation that needs no registered backend). Configs made from one
    /// value share connections, as configs naming one directory do.
    pub fn with_store(store: Arc<dyn Store>) -> Config {
        Config { store: StoreConfig::Value(StoreValue(store)), ..Config::default() }
    }

    /// An in-memory config with the given id and the other keys at their defaults.
    pub fn memory(id: &str) -> Config {
        Config { store: StoreConfig::Memory { id: id.to_string() }, ..Config::default() }
    }

    /// Parses EDN text of a config map.
    pub fn parse(text: &str) -> Result<Config> {
        Config::from_edn(&read_str(text)?)
    }

    /// Reads a config map. Unknown keys are ignored (Datahike passes them on to plugins), but
    /// a known key with a bad value, or an unknown backend, is an error naming both.
    pub fn from_edn(edn: &Edn) -> Result<Config> {
        let Edn::Map(entries) = edn else {
            return Err(Error::Config(format!("a config must be a map, got {edn}")));
        };
        let mut config = Config::default();
        let mut store_given = false;
        for (key, value) in entries {
            let Some(key) = key.as_keyword() else { continue };
            match key.as_str() {
                "store" => {
                    config.store = parse_store(value)?;
                    store_given = true;
                }
                "keep-history?" => config.keep_history = bool_of(":keep-history?", value)?,
                "schema-flexibility" => {
                    config.schema_flexibility = match value.as_keyword().map(Keyword::as_str) {
                        Some("write") => SchemaFlexibility::Write,
                        Some("read") => SchemaFlexibility::Read,
                        _ => return Err(bad(":schema-flexibility", value, "one of :read, :write")),
                    }
                }
                "attribute-refs?" => config.attribute_refs = bool_of(":attribute-refs?", value)?,
                "index" => {
                    config.index = value
                        .as_keyword()
                        .and_then(|k| IndexKind::parse(k.as_str()))
                        .ok_or_else(|| {
                            bad(":index", value, ":datahike.index/persistent-set or an index registered with datahike::index::register_index")
                        })?;
                }
                "index-config" => {
                    if let Some(b) = value.get_kw("branching-factor") {
                        config.branching_factor = count_of(":index-config :branching-factor", b, 4)?;
                    }
                }
                "store-cache-size" => config.store_cache_size = Some(count_of(":store-cache-size", value, 1)?),
                "store-cache-bytes" => {
                    config.store_cache_bytes = count_of(":store-cache-bytes", value, 1)?.try_into().unwrap_or(u64::MAX)
                }
                "search-cache-size" => config.search_cache_size = count_of(":search-cache-size", value, 0)?,
                "query-memory-limit" => {
                    config.query_memory_limit =
                        count_of(":query-memory-limit", value, 1)?.try_into().unwrap_or(u64::MAX)
                }
                "initial-tx" => {
                    config.initial_tx = match value {
                        Edn::Nil => None,
                        Edn::Vector(_) | Edn::List(_) => Some(value.clone()),
                        Edn::Str(path) => Some(read_str(&read_initial_tx_file(path)?)?),
                        _ => return Err(bad(":initial-tx", value, "a vector of transaction data or a file path")),
                    }
                }
                "name" => {
                    config.name = match value {
                        Edn::Str(s) => Some(s.to_string()),
                        Edn::Nil => None,
                        _ => return Err(bad(":name", value, "a string")),
                    }
                }
                "read-only?" => config.read_only = bool_of(":read-only?", value)?,
                "writer" if !matches!(value, Edn::Nil) => config.writer = Some(RemoteSpec::from_edn(":writer", value)?),
                "remote-peer" if !matches!(value, Edn::Nil) => {
                    config.remote_peer = Some(RemoteSpec::from_edn(":remote-peer", value)?)
                }
                "branch" => {
                    config.branch = value.as_keyword().ok_or_else(|| bad(":branch", value, "a keyword"))?;
                }
                _ => {}
            }
        }
        if !store_given {
            config.store = StoreConfig::Memory { id: uuid::Uuid::new_v4().to_string() };
        }
        if config.attribute_refs && config.schema_flexibility == SchemaFlexibility::Read {
            return Err(Error::Config(
                ":attribute-refs? true cannot be combined with :schema-flexibility :read".into(),
            ));
        }
        Ok(config)
    }

    /// The id of the database as Datahike's handles carry it: `[[backend "identity"] branch]`,
    /// e.g. `[[:file "/var/lib/db"] :db]`; equal for two configs exactly when they name the
    /// same store and branch. No secrets.
    pub fn store_id(&self) -> Edn {
        let identity = self.store.identity();
        let (backend, rest) = identity.split_once(':').unwrap_or((identity.as_str(), ""));
        Edn::Vector(vec![Edn::Vector(vec![Edn::kw(backend), Edn::Str(rest.into())]), Edn::Keyword(self.branch)])
    }

    /// The config as Datahike prints it back from `create-database`.
    pub fn to_edn(&self) -> Edn {
        let mut m = vec![
            (Edn::kw("keep-history?"), Edn::Bool(self.keep_history)),
            (Edn::kw("search-cache-size"), Edn::Int(self.search_cache_size as i64)),
            (Edn::kw("index"), Edn::kw(self.index.name())),
            (Edn::kw("store"), self.store.to_edn()),
            match self.store_cache_size {
                Some(n) => (Edn::kw("store-cache-size"), Edn::Int(n as i64)),
                None => {
                    (Edn::kw("store-cache-bytes"), Edn::Int(i64::try_from(self.store_cache_bytes).unwrap_or(i64::MAX)))
                }
            },
            (Edn::kw("attribute-refs?"), Edn::Bool(self.attribute_refs)),
            (
                Edn::kw("schema-flexibility"),
                Edn::kw(match self.schema_flexibility {
                    SchemaFlexibility::Write => "write",
                    SchemaFlexibility::Read => "read",
                }),
            ),
            (Edn::kw("branch"), Edn::Keyword(self.branch)),
            (
                Edn::kw("index-config"),
                Edn::Map(vec![(Edn::kw("branching-factor"), Edn::Int(self.branching_factor as i64))]),
            ),
        ];
        if let Some(name) = &self.name {
            m.push((Edn::kw("name"), Edn::str(name)));
        }
        if self.read_only {
            m.push((Edn::kw("read-only?"), Edn::Bool(true)));
        }
        if self.query_memory_limit != Config::DEFAULT_QUERY_MEMORY_LIMIT {
            let limit = i64::try_from(self.query_memory_limit).unwrap_or(i64::MAX);
            m.push((Edn::kw("query-memory-limit"), Edn::Int(limit)));
        }
        // The tokens are sent only as headers, never printed.
        let shown = |spec: &RemoteSpec| crate::store::backend::redact(&spec.to_edn());
        if let Some(writer) = &self.writer {
            m.push((Edn::kw("writer"), shown(writer)));
        }
        if let Some(peer) = &self.remote_peer {
            m.push((Edn::kw("remote-peer"), shown(peer)));
        }
        Edn::Map(m)
    }

    /// The part of the config fixed at creation, stored in the head and compared on connect.
    pub(crate) fn fixed_edn(&self) -> Edn {
        Edn::Map(vec![
            (Edn::kw("keep-history?"), Edn::Bool(self.keep_history)),
            (
                Edn::kw("schema-flexibility"),
                Edn::kw(match self.schema_flexibility {
                    SchemaFlexibility::Write => "write",
                    SchemaFlexibility::Read => "read",
                }),
            ),
            (Edn::kw("attribute-refs?"), Edn::Bool(self.attribute_refs)),
            (Edn::kw("index"), Edn::kw(self.index.name())),
            (
                Edn::kw("index-config"),
                Edn::Map(vec![(Edn::kw("branching-factor"), Edn::Int(self.branching_factor as i64))]),
            ),
        ])
    }
}

fn parse_store(value: &Edn) -> Result<StoreConfig> {
    let backend = value
        .get_kw("backend")
        .ok_or_else(|| Error::Config(format!(":store must be a map with :backend, got {value}")))?;
    match backend.as_keyword().map(Keyword::as_str) {
        Some("memory" | "mem") => {
            let id = match value.get_kw("id") {
                None | Some(Edn::Nil) => uuid::Uuid::new_v4().to_string(),
                Some(Edn::Str(s)) => s.to_string(),
                Some(Edn::Uuid(u)) => u.to_string(),
                Some(Edn::Keyword(k)) => k.to_string(),
                Some(other) => return Err(bad(":store :id", other, "a string or uuid")),
            };
            Ok(StoreConfig::Memory { id })
        }
        Some("file") => match value.get_kw("path") {
            Some(Edn::Str(p)) if !p.is_empty() => Ok(StoreConfig::File { path: PathBuf::from(p.as_ref()) }),
            other => Err(Error::Config(format!(
                ":store :path must be a non-empty string for the :file backend, got {}",
                other.map_or("nothing".to_string(), Edn::to_edn_string)
            ))),
        },
        Some(name) if backend::lookup(name).is_some() => {
            Ok(StoreConfig::Backend { name: name.to_string(), config: value.clone() })
        }
        name => {
            let known = backend::names().join(" :");
            Err(Error::Config(match name.and_then(backend::feature_of) {
                Some(feature) => format!(
                    "this build has no :store :backend {backend}: build with the cargo feature `{feature}` \
                     (or --all-features); it knows :{known}"
                ),
                None => format!(
                    "unknown :store :backend {backend}; this build knows :{known} (a backend of your own \
                     is registered with datahike::store::register_backend)"
                ),
            }))
        }
    }
}

/// The longest `:initial-tx` file read.
const INITIAL_TX_FILE_BYTES_MAX: u64 = 64 << 20;

/// The text of the `:initial-tx` file at `path`: a regular file of at most
/// [`INITIAL_TX_FILE_BYTES_MAX`] bytes, so that a config naming a device (`/dev/zero`), a FIFO
/// or a huge file fails with an error instead of hanging or exhausting memory.
fn read_initial_tx_file(path: &str) -> Result<String> {
    let error = |why: String| Error::Config(format!(":initial-tx file {path} cannot be read: {why}"));
    // Checked before opening too: opening a FIFO blocks until a writer comes.
    let metadata = std::fs::metadata(path).map_err(|e| error(e.to_string()))?;
    if !metadata.is_file() {
        return Err(error("it is not a regular file".to_string()));
    }
    let file = std::fs::File::open(path).map_err(|e| error(e.to_string()))?;
    let metadata = file.metadata().map_err(|e| error(e.to_string()))?;
    if !metadata.is_file() {
        return Err(error("it is not a regular file".to_string()));
    }
    if metadata.len() > INITIAL_TX_FILE_BYTES_MAX {
        return Err(error(format!(
            "it holds {} bytes, more than the {INITIAL_TX_FILE_BYTES_MAX} an initial transaction may",
            metadata.len()
        )));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, INITIAL_TX_FILE_BYTES_MAX), &mut text)
        .map_err(|e| error(e.to_string()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found while writing the config fuzz target: `:initial-tx "/dev/zero"` read forever,
    /// growing memory without bound (and a FIFO blocked the open).
    #[test]
    fn an_initial_tx_file_must_be_a_small_regular_file() {
        let err =
            Config::parse(r#"{:store {:backend :mem :id "itx"} :initial-tx "/dev/zero"}"#).unwrap_err().to_string();
        assert!(err.contains(":initial-tx file /dev/zero") && err.contains("not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = Config::parse(&format!("{{:initial-tx {:?}}}", dir.path().display().to_string())).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let file = dir.path().join("tx.edn");
        std::fs::write(&file, "[{:db/ident :a}]").unwrap();
        let config = Config::parse(&format!("{{:initial-tx {:?}}}", file.display().to_string())).unwrap();
        assert_eq!(config.initial_tx, Some(read_str("[{:db/ident :a}]").unwrap()));
    }

    #[test]
    fn defaults_and_errors() {
        let c = Config::parse("{:store {:backend :file :path \"/tmp/x\"} :schema-flexibility :read}").unwrap();
        assert_eq!(c.store, StoreConfig::File { path: "/tmp/x".into() });
        assert!(c.keep_history);
        assert_eq!(c.schema_flexibility, SchemaFlexibility::Read);
        assert_eq!(c.cache_limit(), CacheLimit::Bytes(256 << 20));
        let c = Config::parse("{:store-cache-size 5000}").unwrap();
        assert_eq!(c.cache_limit(), CacheLimit::Nodes(5000));
        let c = Config::parse("{:store-cache-bytes 1000000}").unwrap();
        assert_eq!(c.cache_limit(), CacheLimit::Bytes(1_000_000));
        let e = Config::parse("{:store-cache-bytes 0}").unwrap_err().to_string();
        assert!(e.contains(":store-cache-bytes") && e.contains('0'), "{e}");
        let e = Config::parse("{:store {:backend :s4}}").unwrap_err().to_string();
        assert!(e.contains(":s4"), "{e}");
        let e = Config::parse("{:keep-history? 1}").unwrap_err().to_string();
        assert!(e.contains(":keep-history?") && e.contains('1'), "{e}");
        assert!(Config::parse("{:attribute-refs? true :schema-flexibility :read}").is_err());
        assert!(Config::parse("{:attribute-refs? true}").unwrap().attribute_refs);
        assert!(Config::parse("[1]").is_err());
    }
}
