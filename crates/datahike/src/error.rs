//! The umbrella [`Error`], every layer's error type, and errors as data.
//!
//! An error has three faces:
//! - a stable Datahike code (`:transact/unique`...) from [`Error::code`];
//! - a message, its `Display`, a sentence naming the offending input;
//! - data, from [`Error::data`]: the map Datahike puts in `ex-data`, such as
//!   `{:error :transact/unique :attribute :email :value "a@b.c" :entity-id 5 ...}`, so that a
//!   server can answer with a Datahike-shaped body, `dthk` can print it in any format and a
//!   binding can raise a typed exception. [`Error::to_edn`] adds the `:message`.
//!
//! [`Error::is_client_error`] tells bad input (syntax, schema, constraints, arguments: a 4xx
//! status) from faults of the store, the indices or this library (a 5xx status).
//!
//! Transaction and query errors (and [`Error::Argument`]) carry a [`Detail`]: the message and
//! the data entries. The keys, Datahike's where it has one:
//!
//! | key | value | in |
//! |-----|-------|----|
//! | `:attribute` | the attribute keyword at fault | tx, pull, datoms |
//! | `:value` | the value at fault, as written | tx, query inputs, datoms |
//! | `:entity-id` | the entity: id, tempid, ident or lookup ref, as written or resolved | tx, pull |
//! | `:entity` | the entity map at fault | tx |
//! | `:datom` | `[e a v tx added]` | `:transact/unique`, `:transact/schema` |
//! | `:conflict` | `[e a v]` already holding a unique value, or another upsert's resolution | `:transact/unique`, `:transact/upsert` |
//! | `:context` | the operation or map in which the attribute or value appeared | tx |
//! | `:tx-data` | the operation at fault | tx |
//! | `:operation` | its keyword (`:db/cas`, `:db/purge`...) | tx |
//! | `:expected` | what was expected: a value type, a `:db/cas` old value, an arity | tx, query |
//! | `:old`, `:new` | a `:db/cas`'s current and new value | `:transact/cas` |
//! | `:invalid-updates` | schema properties that cannot change, `{prop [old new]}` | `:transact/schema` |
//! | `:new-attribute` | the new ident of an attribute that cannot be renamed | `:transact/schema` |
//! | `:last` | the last transaction's instant, later than the one given | `:transact/syntax` |
//! | `:choices` | the valid alternatives: operations, attributes, value types, directions | tx, query |
//! | `:form` | the query clause or element at fault | query |
//! | `:vars` | the variables at fault (unbound, unknown) | query |
//! | `:function` | a function, predicate or aggregate name | query |
//! | `:rule` | a rule name | query |
//! | `:binding` | the `:in` binding an input does not fit | query |
//! | `:source` | a source (`$x`) no input binds | `:query/binding` |
//! | `:line`, `:column` | where a query or rules string stops being EDN | `:query/syntax` |
//! | `:timeout` | the query's `:timeout` in milliseconds | `:query/timeout` |
//! | `:limit` | the query's memory budget in bytes | `:query/memory-limit` |
//! | `:bytes` | an allocation the system refused, in bytes | `:query/memory-limit` |
//!
//! The other errors have fixed fields, also in their data: `:line`, `:column`, `:offset`
//! (EDN); `:path`, `:key`, `:store`, `:backend`, `:reason` (store); `:address`, `:index`
//! (index); `:expected`, `:offset`, `:found` (codec).
//!
//! Every layer's error type lives here, near the bottom of the module graph: of the crate
//! this module imports only the value type [`Edn`] and [`Keyword`] (`edn/value.rs` and
//! `edn/kw.rs`, which import nothing else of the crate), and each layer re-exports its own
//! (`store::StoreError`, `index::IndexError`, `index::codec::CodecError`, `edn::EdnError`,
//! `query::QueryError`).

use crate::edn::kw::Keyword;
use crate::edn::value::Edn;
use std::fmt;
use std::path::PathBuf;

/// What an error is about: its message and its data entries (keys in the module doc).
/// `Display` is the message. Built at the site of the error:
/// `Detail::new(msg).attribute(a).value(v)`; `From<String>` for sites without data.
#[derive(Clone, Debug, PartialEq)]
pub struct Detail {
    message: String,
    data: Vec<(Keyword, Edn)>,
}

impl Detail {
    /// A detail with this message and no data yet.
    pub fn new(message: impl Into<String>) -> Detail {
        Detail { message: message.into(), data: Vec::new() }
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The data entries in the order they were added.
    pub fn data(&self) -> &[(Keyword, Edn)] {
        &self.data
    }
    /// The value under `key` (without colon, e.g. `"attribute"`).
    pub fn get(&self, key: &str) -> Option<&Edn> {
        self.data.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
    }
    /// Adds `key` (without colon), replacing an earlier value under it.
    #[must_use]
    pub fn with(mut self, key: &str, value: Edn) -> Detail {
        let key = Keyword::new(key);
        match self.data.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.data.push((key, value)),
        }
        self
    }
    /// `:attribute`, the attribute at fault.
    #[must_use]
    pub fn attribute(self, a: Keyword) -> Detail {
        self.with("attribute", Edn::Keyword(a))
    }
    /// `:value`, the value at fault.
    #[must_use]
    pub fn value(self, v: Edn) -> Detail {
        self.with("value", v)
    }
    /// `:entity-id`: an entity id, tempid, ident or lookup ref.
    #[must_use]
    pub fn entity_id(self, e: Edn) -> Detail {
        self.with("entity-id", e)
    }
    /// `:entity`, an entity map.
    #[must_use]
    pub fn entity(self, m: Edn) -> Detail {
        self.with("entity", m)
    }
    /// `:datom`, `[e a v tx added]`.
    #[must_use]
    pub fn datom(self, d: Edn) -> Detail {
        self.with("datom", d)
    }
    /// `:context`, the operation or map in which the attribute or value appeared.
    #[must_use]
    pub fn context(self, c: Edn) -> Detail {
        self.with("context", c)
    }
    /// `:tx-data`, the operation at fault.
    #[must_use]
    pub fn tx_data(self, op: Edn) -> Detail {
        self.with("tx-data", op)
    }
    /// `:expected`, what was expected instead.
    #[must_use]
    pub fn expected(self, x: Edn) -> Detail {
        self.with("expected", x)
    }
    /// `:choices`, the valid alternatives.
    #[must_use]
    pub fn choices(self, xs: impl IntoIterator<Item = Edn>) -> Detail {
        self.with("choices", Edn::Vector(xs.into_iter().collect()))
    }
    /// `:form`, the query clause or element at fault.
    #[must_use]
    pub fn form(self, f: Edn) -> Detail {
        self.with("form", f)
    }
    /// `:vars`, the query variables at fault.
    #[must_use]
    pub fn vars(self, vs: impl IntoIterator<Item = Edn>) -> Detail {
        self.with("vars", Edn::Vector(vs.into_iter().collect()))
    }
    /// `:binding`, the `:in` binding an input does not fit.
    #[must_use]
    pub fn binding(self, b: Edn) -> Detail {
        self.with("binding", b)
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for Detail {
    fn from(message: String) -> Detail {
        Detail::new(message)
    }
}

impl From<&str> for Detail {
    fn from(message: &str) -> Detail {
        Detail::new(message)
    }
}

/// A transaction that cannot be applied. Nothing of it was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// Malformed transaction data (`:transact/syntax`).
    #[error("{0}")]
    Syntax(Detail),
    /// An attribute or value that the schema does not allow (`:transact/schema`).
    #[error("{0}")]
    Schema(Detail),
    /// A `:db/unique` constraint violation (`:transact/unique`).
    #[error("{0}")]
    Unique(Detail),
    /// Conflicting upserts (`:transact/upsert`).
    #[error("{0}")]
    Upsert(Detail),
    /// A failed `:db/cas` (`:transact/cas`).
    #[error("{0}")]
    Cas(Detail),
    /// An entity id that cannot be resolved (`:entity-id/missing`).
    #[error("{0}")]
    EntityIdMissing(Detail),
    /// An entity id of the wrong shape (`:entity-id/syntax`).
    #[error("{0}")]
    EntityIdSyntax(Detail),
    /// A malformed lookup ref (`:lookup-ref/syntax`).
    #[error("{0}")]
    LookupRefSyntax(Detail),
    /// A lookup ref on a non-unique attribute (`:lookup-ref/unique`).
    #[error("{0}")]
    LookupRefUnique(Detail),
    /// A purge that cannot be done: no history kept, an entity that names nothing, or a
    /// schema datom (`:transact/purge`).
    #[error("{0}")]
    Purge(Detail),
}

impl TxError {
    /// Datahike's error keyword for this error.
    pub fn code(&self) -> &'static str {
        match self {
            TxError::Syntax(_) => "transact/syntax",
            TxError::Schema(_) => "transact/schema",
            TxError::Unique(_) => "transact/unique",
            TxError::Upsert(_) => "transact/upsert",
            TxError::Cas(_) => "transact/cas",
            TxError::EntityIdMissing(_) => "entity-id/missing",
            TxError::EntityIdSyntax(_) => "entity-id/syntax",
            TxError::LookupRefSyntax(_) => "lookup-ref/syntax",
            TxError::LookupRefUnique(_) => "lookup-ref/unique",
            TxError::Purge(_) => "transact/purge",
        }
    }

    /// The message and data.
    pub fn detail(&self) -> &Detail {
        match self {
            TxError::Syntax(d)
            | TxError::Schema(d)
            | TxError::Unique(d)
            | TxError::Upsert(d)
            | TxError::Cas(d)
            | TxError::EntityIdMissing(d)
            | TxError::EntityIdSyntax(d)
            | TxError::LookupRefSyntax(d)
            | TxError::LookupRefUnique(d)
            | TxError::Purge(d) => d,
        }
    }
}

/// Every error of the library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Malformed EDN text.
    #[error(transparent)]
    Edn(#[from] EdnError),
    /// A bad configuration map.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A rejected transaction.
    #[error(transparent)]
    Tx(#[from] TxError),
    /// A bad argument to a read API (`datoms`, `index-range`...).
    #[error("{0}")]
    Argument(Detail),
    /// A database that already exists (create) or does not exist (connect).
    #[error("{0}")]
    Database(String),
    /// The index layer failed (corrupt or missing node).
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored bytes that do not decode.
    #[error("corrupt stored data: {0}")]
    Codec(#[from] CodecError),
    /// A query that cannot be run.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A history, as-of or since view of a database kept without history
    /// (`:keep-history? false`), or a bad time point.
    #[error("{0}")]
    Temporal(String),
    /// A write to a view (history, as-of, since, filter); views are read-only.
    #[error("{0}")]
    ReadOnlyView(String),
    /// An export or import of a dump failed.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// A call sent to a Datahike server (`:writer`, `:remote-peer`) failed there or on
    /// the way. [`Error::data`] is the server's error data (`{:error :transact/unique ...}`),
    /// or `{:error :remote/unreachable}` when no answer came.
    #[error("{message}")]
    Remote {
        /// The HTTP status (0 when no answer came).
        status: u16,
        /// The server's message.
        message: String,
        /// The server's error data, a map with `:error`.
        data: Edn,
    },
    /// A bug: an invariant of this library does not hold.
    #[error("internal error (a bug in datahike-rs): {0}")]
    Internal(String),
}

impl Error {
    /// A stable code in Datahike's style, e.g. `transact/unique`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Edn(_) => "edn/syntax",
            Error::Config(_) => "config/invalid",
            Error::Tx(e) => e.code(),
            Error::Argument(_) => "argument/invalid",
            Error::Database(_) => "database/state",
            Error::Index(_) => "index/io",
            Error::Store(_) => "store/io",
            Error::Codec(_) => "store/corrupt",
            Error::Query(e) => e.code(),
            Error::Temporal(_) => "db/temporal",
            Error::ReadOnlyView(_) => "transaction/filtered",
            Error::Migrate(e) => e.code(),
            Error::Remote { .. } => "remote/error",
            Error::Internal(_) => "internal",
        }
    }

    /// Whether the caller is at fault (malformed or invalid input, a constraint, a missing
    /// database: a 4xx status) rather than the store, the indices or this library (a 5xx
    /// status). Query timeouts and failed exports are not the caller's fault.
    pub fn is_client_error(&self) -> bool {
        match self {
            Error::Edn(_)
            | Error::Config(_)
            | Error::Tx(_)
            | Error::Argument(_)
            | Error::Database(_)
            | Error::Temporal(_)
            | Error::ReadOnlyView(_) => true,
            Error::Query(e) => !matches!(e, QueryError::Timeout(_) | QueryError::Internal(_)),
            Error::Migrate(e) => !matches!(e, MigrateError::Target(_)),
            Error::Index(_) | Error::Store(_) | Error::Codec(_) | Error::Internal(_) => false,
            Error::Remote { status, .. } => (400..500).contains(status),
        }
    }

    /// The message and data of a transaction, query or argument error.
    pub fn detail(&self) -> Option<&Detail> {
        match self {
            Error::Tx(e) => Some(e.detail()),
            Error::Query(e) => Some(e.detail()),
            Error::Argument(d) => Some(d),
            _ => None,
        }
    }

    /// Datahike's `ex-data` of this error: a map with `:error` (the [`code`](Error::code))
    /// and the keys of the module doc, e.g.
    /// `{:error :transact/unique :attribute :email :value "a@b.c" :entity-id 5 ...}`.
    pub fn data(&self) -> Edn {
        Edn::Map(self.data_entries())
    }

    /// The error as one map: `{:message "..." :error :code ...}`, the [`data`](Error::data)
    /// with the message first.
    pub fn to_edn(&self) -> Edn {
        let mut map = vec![(Edn::kw("message"), Edn::Str(self.to_string().into()))];
        map.extend(self.data_entries());
        Edn::Map(map)
    }

    fn data_entries(&self) -> Vec<(Edn, Edn)> {
        if let Error::Remote { data: Edn::Map(entries), .. } = self {
            if entries.iter().any(|(k, _)| *k == Edn::kw("error")) {
                return entries.clone();
            }
        }
        let mut data = vec![(Edn::kw("error"), Edn::kw(self.code()))];
        let mut put = |key: &str, value: Edn| data.push((Edn::kw(key), value));
        match self {
            Error::Edn(e) => {
                put("line", int(e.line));
                put("column", int(e.column));
                put("offset", int(e.offset));
            }
            Error::Index(e) => index_data(e, &mut put),
            Error::Store(e) => store_data(e, &mut put),
            Error::Codec(e) => codec_data(e, &mut put),
            Error::Config(_)
            | Error::Database(_)
            | Error::Temporal(_)
            | Error::ReadOnlyView(_)
            | Error::Migrate(_)
            | Error::Remote { .. }
            | Error::Internal(_) => {}
            Error::Tx(_) | Error::Query(_) | Error::Argument(_) => {
                for (k, v) in self.detail().map_or(&[][..], Detail::data) {
                    put(k.as_str(), v.clone());
                }
            }
        }
        data
    }
}

fn int(n: usize) -> Edn {
    Edn::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn index_data(e: &IndexError, put: &mut dyn FnMut(&str, Edn)) {
    match e {
        IndexError::Store(e) => store_data(e, put),
        IndexError::CorruptNode { address, reason } => {
            put("address", Edn::str(address));
            put("reason", Edn::str(reason));
        }
        IndexError::MissingNode(address) => put("address", Edn::str(address)),
        IndexError::Unregistered(index) => put("index", Edn::kw(index)),
        IndexError::ReadOnlyView => {}
    }
}

fn store_data(e: &StoreError, put: &mut dyn FnMut(&str, Edn)) {
    match e {
        StoreError::Io { path, source } => {
            put("path", Edn::str(&path.display().to_string()));
            put("reason", Edn::str(&source.to_string()));
        }
        StoreError::Corrupt { key, reason } | StoreError::Conflict { key, reason } => {
            put("key", Edn::str(key));
            put("reason", Edn::str(reason));
        }
        StoreError::ReadOnly { store, key } => {
            put("store", Edn::str(store));
            put("key", Edn::str(key));
        }
        StoreError::Backend { backend, key, reason } => {
            put("backend", Edn::kw(backend));
            put("key", Edn::str(key));
            put("reason", Edn::str(reason));
        }
        StoreError::Poisoned(reason) => put("reason", Edn::str(reason)),
        StoreError::Invalid(_) => {}
    }
}

fn codec_data(e: &CodecError, put: &mut dyn FnMut(&str, Edn)) {
    put("expected", Edn::str(e.expected));
    put("offset", int(e.offset));
    put("found", Edn::str(&e.found));
}

/// An export or import of a dump that failed; each message names the dump, file, chunk or
/// record at fault. Codes follow Datahike's `datahike.migrate` (`import/checksum-failed`...).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// A source that is not a dump: no manifest, a manifest of another shape, not CBOR
    /// (`:import/not-a-dump`).
    #[error("{0}")]
    NotADump(String),
    /// A dump whose bytes do not match its manifest: a missing or truncated chunk, a digest or
    /// a count that differs, a chunk that does not decompress or decode (`:import/corrupt-chunk`).
    #[error("{0}")]
    Corrupt(String),
    /// A record that is not `[e a v t added]` with values this database can hold
    /// (`:import/malformed-record`).
    #[error("{0}")]
    MalformedRecord(String),
    /// A dump of a newer format version, or one that requires capabilities this build lacks
    /// (`:import/unsupported`).
    #[error("{0}")]
    Unsupported(String),
    /// An import into a database that already holds transactions, without `merge`
    /// (`:import/non-empty-target`).
    #[error("{0}")]
    NonEmptyTarget(String),
    /// A dump whose source config differs from the target's in a key that changes what the
    /// datoms mean (`:import/config-mismatch`).
    #[error("{0}")]
    ConfigMismatch(String),
    /// A database holding an import that did not complete (`:import/interrupted`).
    #[error("{0}")]
    Interrupted(String),
    /// An export target that cannot be written: not empty, or a file system error
    /// (`:export/target`).
    #[error("{0}")]
    Target(String),
}

impl MigrateError {
    /// A stable code in Datahike's style.
    pub fn code(&self) -> &'static str {
        match self {
            MigrateError::NotADump(_) => "import/not-a-dump",
            MigrateError::Corrupt(_) => "import/corrupt-chunk",
            MigrateError::MalformedRecord(_) => "import/malformed-record",
            MigrateError::Unsupported(_) => "import/unsupported",
            MigrateError::NonEmptyTarget(_) => "import/non-empty-target",
            MigrateError::ConfigMismatch(_) => "import/config-mismatch",
            MigrateError::Interrupted(_) => "import/interrupted",
            MigrateError::Target(_) => "export/target",
        }
    }
}

/// Result with the umbrella error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the storage layer. Messages name the key or path involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An operating-system I/O error on `path`.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes that cannot be what they claim to be (torn, truncated, flipped).
    #[error("corrupt data under {key}: {reason}")]
    Corrupt {
        /// The key or file of the bad bytes.
        key: String,
        /// What is wrong with them.
        reason: String,
    },
    /// A conditional write lost: another writer wrote `key` first (a log record with the
    /// same sequence number, a head that moved). Nothing of the losing write is in effect.
    #[error("conflicting write to {key}: {reason}")]
    Conflict {
        /// The key written by both.
        key: String,
        /// What happened.
        reason: String,
    },
    /// A write through a handle opened read-only.
    #[error("the store {store} was opened read-only; refusing to write {key}")]
    ReadOnly {
        /// The store, as its config names it (no secrets).
        store: String,
        /// The key of the refused write.
        key: String,
    },
    /// A remote backend (database server, object store, ...) failed or refused a request.
    #[error("{backend} error on {key}: {reason}")]
    Backend {
        /// The backend, e.g. `postgresql`, `s3`.
        backend: &'static str,
        /// The key or object involved (or the operation when there is none).
        key: String,
        /// The backend's message.
        reason: String,
    },
    /// An earlier durable write failed; the store refuses writes until it is reopened,
    /// because the state of the failed write on the medium is unknown.
    #[error("store refuses writes after an earlier failed write; reopen it: {0}")]
    Poisoned(String),
    /// A store-level precondition does not hold (e.g. the directory is not a database).
    #[error("{0}")]
    Invalid(String),
}

/// Errors of the index layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The store failed underneath.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A node's bytes do not decode or do not match their address.
    #[error("corrupt index node {address}: {reason}")]
    CorruptNode {
        /// The node's address (hex).
        address: String,
        /// What is wrong.
        reason: String,
    },
    /// A node named by a root or branch is not in the store.
    #[error("index node {0} is missing from the store")]
    MissingNode(String),
    /// `:index` names an implementation that is not registered in this process.
    #[error("no index implementation is registered under :{0} (see datahike::index::register_index)")]
    Unregistered(String),
    /// A write to the index of a view (history, as-of, since, filter), which is read-only.
    #[error("the index of a history, as-of, since or filter view is read-only")]
    ReadOnlyView,
}

/// Bytes that do not decode: says what was expected, at which byte offset, and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} at byte offset {offset}, {found}")]
pub struct CodecError {
    /// What the decoder was reading, e.g. "a varint".
    pub expected: &'static str,
    /// Byte offset from the start of the input.
    pub offset: usize,
    /// What was there instead, as a phrase ("but the input ends").
    pub found: String,
}

/// A malformed EDN text: where the reader stopped and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("EDN error at {line}:{column}: {message}")]
#[non_exhaustive]
pub struct EdnError {
    /// 1-based line of the problem.
    pub line: usize,
    /// 1-based column (in characters) of the problem.
    pub column: usize,
    /// Byte offset of the problem in the input.
    pub offset: usize,
    /// What is wrong, as a sentence fragment such as `unmatched ]`.
    pub message: String,
}

impl EdnError {
    /// 1-based line of the problem.
    pub fn line(&self) -> usize {
        self.line
    }
    /// 1-based column (in characters) of the problem.
    pub fn column(&self) -> usize {
        self.column
    }
    /// What is wrong, without the position.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A query that cannot be run. Each message names the clause or element at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The query (or rules) does not parse: unknown clause, bad find spec, unknown function
    /// (`query/syntax`).
    #[error("{0}")]
    Syntax(Detail),
    /// A clause whose variables cannot be bound (`query/binding`).
    #[error("{0}")]
    Binding(Detail),
    /// Inputs that do not match `:in` (`query/inputs`).
    #[error("{0}")]
    Inputs(Detail),
    /// A function failed while the query ran (`query/eval`).
    #[error("{0}")]
    Eval(Detail),
    /// A valid form this implementation does not support yet (`query/unsupported`).
    #[error("{0}")]
    Unsupported(Detail),
    /// The query ran longer than its `:timeout` (`query/timeout`).
    #[error("{0}")]
    Timeout(Detail),
    /// The query needed more memory than its budget (`query/memory-limit`): the database's
    /// `:query-memory-limit`, or a query's own lower `:memory-limit`.
    #[error("{0}")]
    MemoryLimit(Detail),
    /// A bug.
    #[error("internal query error (a bug in datahike-rs): {0}")]
    Internal(Detail),
}

impl QueryError {
    /// A stable code in Datahike's style.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::Syntax(_) => "query/syntax",
            QueryError::Binding(_) => "query/binding",
            QueryError::Inputs(_) => "query/inputs",
            QueryError::Eval(_) => "query/eval",
            QueryError::Unsupported(_) => "query/unsupported",
            QueryError::Timeout(_) => "query/timeout",
            QueryError::MemoryLimit(_) => "query/memory-limit",
            QueryError::Internal(_) => "internal",
        }
    }

    /// The message and data.
    pub fn detail(&self) -> &Detail {
        match self {
            QueryError::Syntax(d)
            | QueryError::Binding(d)
            | QueryError::Inputs(d)
            | QueryError::Eval(d)
            | QueryError::Unsupported(d)
            | QueryError::Timeout(d)
            | QueryError::MemoryLimit(d)
            | QueryError::Internal(d) => d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_of(e: impl Into<Error>) -> Edn {
        e.into().data()
    }

    #[test]
    fn a_detail_keeps_one_value_per_key_in_order() {
        let d = Detail::new("m").value(Edn::Int(1)).attribute(Keyword::new("a")).value(Edn::Int(2));
        assert_eq!(d.to_string(), "m");
        assert_eq!(d.get("value"), Some(&Edn::Int(2)));
        let keys: Vec<&str> = d.data().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["value", "attribute"]);
        assert_eq!(Detail::from("m"), Detail::new(String::from("m")));
    }

    #[test]
    fn store_index_and_codec_errors_name_where() {
        let io = StoreError::Io { path: "/db/x".into(), source: std::io::Error::other("disk on fire") };
        let kv = |data: &Edn, k: &str| data.get_kw(k).cloned();
        let data = data_of(io);
        assert_eq!(kv(&data, "error"), Some(Edn::kw("store/io")));
        assert_eq!(kv(&data, "path"), Some(Edn::str("/db/x")));
        assert_eq!(kv(&data, "reason"), Some(Edn::str("disk on fire")));
        let data = data_of(StoreError::Conflict { key: "log/7".into(), reason: "taken".into() });
        assert_eq!((kv(&data, "key"), kv(&data, "reason")), (Some(Edn::str("log/7")), Some(Edn::str("taken"))));
        let data = data_of(StoreError::ReadOnly { store: "{:backend :file}".into(), key: "head".into() });
        assert_eq!(
            (kv(&data, "store"), kv(&data, "key")),
            (Some(Edn::str("{:backend :file}")), Some(Edn::str("head")))
        );
        let data = data_of(IndexError::Store(StoreError::Corrupt { key: "n/1".into(), reason: "torn".into() }));
        assert_eq!((kv(&data, "error"), kv(&data, "key")), (Some(Edn::kw("index/io")), Some(Edn::str("n/1"))));
        let data = data_of(IndexError::MissingNode("ab12".into()));
        assert_eq!(kv(&data, "address"), Some(Edn::str("ab12")));
        let data = data_of(IndexError::Unregistered("lsm".into()));
        assert_eq!(kv(&data, "index"), Some(Edn::kw("lsm")));
        let data = data_of(CodecError { expected: "a varint", offset: 9, found: "but the input ends".into() });
        assert_eq!(kv(&data, "error"), Some(Edn::kw("store/corrupt")));
        assert_eq!((kv(&data, "expected"), kv(&data, "offset")), (Some(Edn::str("a varint")), Some(Edn::Int(9))));
        let data = data_of(MigrateError::Corrupt("chunk 3".into()));
        assert_eq!(data, Edn::Map(vec![(Edn::kw("error"), Edn::kw("import/corrupt-chunk"))]));
    }

    #[test]
    fn client_errors_are_bad_input_and_faults_are_ours() {
        let client: Vec<Error> = vec![
            TxError::Unique("u".into()).into(),
            QueryError::Syntax("s".into()).into(),
            QueryError::Eval("e".into()).into(),
            Error::Argument("a".into()),
            Error::Config("c".into()),
            Error::Database("d".into()),
            MigrateError::NotADump("n".into()).into(),
        ];
        for e in &client {
            assert!(e.is_client_error(), "{} should be a client error", e.code());
        }
        let faults: Vec<Error> = vec![
            QueryError::Timeout("t".into()).into(),
            QueryError::Internal("i".into()).into(),
            StoreError::Poisoned("p".into()).into(),
            IndexError::MissingNode("m".into()).into(),
            CodecError { expected: "x", offset: 0, found: "y".into() }.into(),
            MigrateError::Target("t".into()).into(),
            Error::Internal("i".into()),
        ];
        for e in &faults {
            assert!(!e.is_client_error(), "{} should be a fault", e.code());
        }
    }
}
