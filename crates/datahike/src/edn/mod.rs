//! EDN: the data notation of Datahike's API. A complete reader (with line:column errors) and a
//! printer that prints as Clojure's `pr-str` does. This module knows nothing of datoms.

pub(crate) mod kw;
mod printer;
mod reader;
#[cfg(test)]
mod tests;
pub(crate) mod value;

pub use kw::{Keyword, Symbol};
pub use printer::{pr_str, write_edn};
pub use reader::{read_all, read_str, EdnError};
pub use value::Edn;
