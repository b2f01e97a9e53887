//! The umbrella [`Error`] and the errors of the transaction and configuration layers. Each
//! error has a stable Datahike code (`:transact/unique`...) from [`Error::code`].
//!
//! Every layer's error type lives here, at the bottom of the module graph: this module
//! imports nothing of the crate, and each layer re-exports its own (`store::StoreError`,
//! `index::IndexError`, `index::codec::CodecError`, `edn::EdnError`, `query::QueryError`).

use std::path::PathBuf;

/// A transaction that cannot be applied. Nothing of it was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// Malformed transaction data (`:transact/syntax`).
    #[error("{0}")]
    Syntax(String),
    /// An attribute or value that the schema does not allow (`:transact/schema`).
    #[error("{0}")]
    Schema(String),
    /// A `:db/unique` constraint violation (`:transact/unique`).
    #[error("{0}")]
    Unique(String),
    /// Conflicting upserts (`:transact/upsert`).
    #[error("{0}")]
    Upsert(String),
    /// A failed `:db/cas` (`:transact/cas`).
    #[error("{0}")]
    Cas(String),
    /// An entity id that cannot be resolved (`:entity-id/missing`).
    #[error("{0}")]
    EntityIdMissing(String),
    /// An entity id of the wrong shape (`:entity-id/syntax`).
    #[error("{0}")]
    EntityIdSyntax(String),
    /// A malformed lookup ref (`:lookup-ref/syntax`).
    #[error("{0}")]
    LookupRefSyntax(String),
    /// A lookup ref on a non-unique attribute (`:lookup-ref/unique`).
    #[error("{0}")]
    LookupRefUnique(String),
    /// A purge that cannot be done: no history kept, an entity that names nothing, or a
    /// schema datom (`:transact/purge`).
    #[error("{0}")]
    Purge(String),
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
    Argument(String),
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
    /// the way; `code` is the server's error code (`transact/unique`...) or
    /// `remote/unreachable` when no answer came.
    #[error("{message}")]
    Remote {
        /// The HTTP status (0 when no answer came).
        status: u16,
        /// The server's error code.
        code: String,
        /// The server's message.
        message: String,
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
    Syntax(String),
    /// A clause whose variables cannot be bound (`query/binding`).
    #[error("{0}")]
    Binding(String),
    /// Inputs that do not match `:in` (`query/inputs`).
    #[error("{0}")]
    Inputs(String),
    /// A function failed while the query ran (`query/eval`).
    #[error("{0}")]
    Eval(String),
    /// A valid form this implementation does not support yet (`query/unsupported`).
    #[error("{0}")]
    Unsupported(String),
    /// The query ran longer than its `:timeout` (`query/timeout`).
    #[error("{0}")]
    Timeout(String),
    /// A bug.
    #[error("internal query error (a bug in datahike-rs): {0}")]
    Internal(String),
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
            QueryError::Internal(_) => "internal",
        }
    }
}
