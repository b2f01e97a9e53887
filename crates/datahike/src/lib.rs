//! A durable, immutable Datalog database compatible with Datahike.
//!
//! Every transaction yields a new immutable [`Db`] value that shares structure with the one
//! before: persistent B+-tree indices (EAVT, AEVT, AVET) whose nodes are immutable and stored
//! in a pluggable key-value [`store::Store`]. Holding an old `Db` costs nothing; reading never
//! locks.

pub mod datom;
pub mod edn;
pub mod index;
pub mod store;
pub mod value;

pub use datom::{Datom, DatomKey, IndexOrder};
pub use edn::{Edn, Keyword, Symbol};
pub use value::{Eid, Value};
