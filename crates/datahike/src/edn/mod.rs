//! EDN: the data notation of Datahike's API. A complete reader (with line:column errors) and a
//! printer that prints as Clojure's `pr-str` does. This module knows nothing of datoms.
//!
//! The other notations Datahike's clients speak are here too, as functions over [`Edn`]:
//! [`json`] (plain JSON and Datahike's tagged JSON) and [`transit`] (transit+json); CBOR is
//! [`crate::cbor`].

pub mod json;
pub(crate) mod kw;
mod printer;
pub(crate) mod reader;
#[cfg(test)]
mod tests;
pub mod transit;
pub(crate) mod value;
pub(crate) mod wire;

pub use kw::{Keyword, Symbol};
pub use printer::{pr_str, pr_str_short, write_edn};
pub use reader::{read_all, read_str, EdnError, MAX_DEPTH};
pub use value::Edn;
