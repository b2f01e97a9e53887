//! The umbrella [`Error`] and the errors of the transaction and configuration layers. Each
//! error has a stable Datahike code (`:transact/unique`...) from [`Error::code`].

use crate::edn::EdnError;
use crate::index::codec::CodecError;
use crate::index::IndexError;
use crate::query::QueryError;
use crate::store::StoreError;

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
