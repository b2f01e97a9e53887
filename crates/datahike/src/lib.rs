//! A durable, immutable Datalog database compatible with Datahike.
//!
//! Every transaction yields a new immutable [`Db`] value that shares structure with the one
//! before: persistent B+-tree indices (EAVT, AEVT, AVET, and history indices) whose nodes are
//! immutable and stored in a pluggable key-value [`store::Store`]. Holding an old `Db` costs
//! nothing; reading never locks.
//!
//! ```
//! use datahike::{Config, Edn, IndexOrder};
//! let dir = tempfile::tempdir().unwrap();
//! let config = Config::parse(&format!(
//!     "{{:store {{:backend :file :path {:?}}} :schema-flexibility :read}}",
//!     dir.path().join("db").display().to_string()
//! )).unwrap();
//! datahike::create_database(&config).unwrap();
//! let conn = datahike::connect(&config).unwrap();
//! let tx = datahike::edn::read_str(r#"[{:name "Alice" :age 20} [:db/add -1 :name "Bob"]]"#).unwrap();
//! let report = conn.transact(&tx).unwrap();
//! assert_eq!(report.tempid(&Edn::Int(-1)), Some(2));
//! let datoms = conn.db().datoms(IndexOrder::Eavt, &[Edn::Int(1)]).unwrap();
//! assert_eq!(datoms.len(), 2);
//! conn.release().unwrap();
//! ```
//!
//! Datalog queries run with [`q`] (see [`query`]); [`pull()`] and [`entity()`] read entities.
//! [`Db::history`], [`Db::as_of`], [`Db::since`] and [`Db::filter`] are views of a database that
//! every read accepts; [`Conn::listen`] reports each transaction.
//! Every [`Error`] has Datahike's code, a message naming the input at fault, and that input as
//! data ([`Error::data`], Datahike's `ex-data`), and says whether the caller is at fault
//! ([`Error::is_client_error`]).
//!
//! The public surface is this crate root's re-exports plus the modules a user extends or
//! reads directly: [`edn`], [`config`], [`store`] (the `Store` contract and the backends),
//! [`index`] (the `DatomIndex` contract), [`query`], [`pull`](mod@pull), [`entity`](mod@entity),
//! [`migrate`], [`cbor`], [`schema`], [`datom`], [`value`] and [`error`]. The transaction
//! engine, the views and the attribute-reference translation are internal. This crate is
//! not a server: `dthk` and the HTTP server are separate crates over this one.

pub mod api;
mod attr_refs;
pub mod cbor;
pub mod config;
mod conn;
pub mod datom;
mod db;
pub mod edn;
pub mod entity;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod index;
pub mod migrate;
pub mod pull;
pub mod query;
mod remote;
pub mod schema;
pub mod store;
mod tx;
pub mod value;
mod view;

pub use config::{Config, RemoteSpec, SchemaFlexibility, StoreConfig};
pub use conn::{
    connect, create_database, database_exists, delete_database, BranchOrCommit, Conn, ConnStats, GcReport,
    FLUSH_EVERY_BYTES, FLUSH_EVERY_TXS,
};
pub use datom::{Datom, DatomKey, IndexOrder};
pub use db::Db;
pub use edn::{Edn, Keyword, Symbol};
pub use entity::{entity, Entity, EntityValue};
pub use error::{Detail, Error, MigrateError, Result, TxError};
pub use pull::{pull, pull_many, PullPattern};
pub use query::{q, QueryError, QueryInput};
pub use tx::{Commit, TxReport};
pub use value::{Eid, Value};
pub use view::{DatomPred, TimePoint};
