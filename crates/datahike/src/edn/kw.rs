//! Interned keywords and symbols: `Copy` handles compared by pointer for equality and by
//! (namespace, name) for order, as Clojure orders them.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, OnceLock};

/// The interned text of a keyword or symbol. Lives for the rest of the process: the set of
/// distinct keywords a program sees is small (attribute names, enum values), as in Clojure.
#[derive(Debug)]
pub struct Interned {
    /// The full text without the leading colon, e.g. `db.type/string` or `name`.
    full: Box<str>,
    /// Byte offset of the `/` that separates namespace and name, if any.
    slash: Option<usize>,
}

impl Interned {
    fn namespace(&self) -> Option<&str> {
        self.slash.map(|i| &self.full[..i])
    }
    fn name(&self) -> &str {
        match self.slash {
            Some(i) => &self.full[i + 1..],
            None => &self.full,
        }
    }
}

fn split(full: &str) -> Option<usize> {
    // `/` alone is a symbol name; otherwise the first `/` separates ns and name.
    if full == "/" {
        return None;
    }
    full.find('/').filter(|&i| i > 0 && i + 1 < full.len())
}

fn intern(table: &'static OnceLock<Mutex<HashSet<&'static Interned>>>, text: &str) -> &'static Interned {
    let set = table.get_or_init(|| Mutex::new(HashSet::new()));
    let mut set = set.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(found) = set.get(text) {
        return found;
    }
    let leaked: &'static Interned = Box::leak(Box::new(Interned { full: text.into(), slash: split(text) }));
    set.insert(leaked);
    leaked
}

impl std::borrow::Borrow<str> for &'static Interned {
    fn borrow(&self) -> &str {
        &self.full
    }
}
impl PartialEq for Interned {
    fn eq(&self, other: &Self) -> bool {
        self.full == other.full
    }
}
impl Eq for Interned {}
impl Hash for Interned {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.full.hash(state);
    }
}

fn compare(a: &Interned, b: &Interned) -> Ordering {
    // Clojure: a symbol without namespace sorts before one with; then namespace, then name.
    match (a.namespace(), b.namespace()) {
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (x, y) => x.cmp(&y).then_with(|| a.name().cmp(b.name())),
    }
}

macro_rules! interned_type {
    ($name:ident, $table:ident, $prefix:expr, $doc:expr) => {
        static $table: OnceLock<Mutex<HashSet<&'static Interned>>> = OnceLock::new();

        #[doc = $doc]
        #[derive(Clone, Copy)]
        pub struct $name(&'static Interned);

        impl $name {
            /// Interns `text` (without any leading `:`), e.g. `"db/ident"`.
            pub fn new(text: &str) -> Self {
                Self(intern(&$table, text))
            }
            /// Builds from an optional namespace and a name.
            pub fn from_parts(namespace: Option<&str>, name: &str) -> Self {
                match namespace {
                    Some(ns) => Self::new(&format!("{ns}/{name}")),
                    None => Self::new(name),
                }
            }
            /// The full text without prefix: `ns/name` or `name`.
            pub fn as_str(self) -> &'static str {
                &self.0.full
            }
            /// The namespace part, if any.
            pub fn namespace(self) -> Option<&'static str> {
                self.0.namespace()
            }
            /// The name part.
            pub fn name(self) -> &'static str {
                self.0.name()
            }
        }
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                std::ptr::eq(self.0, other.0)
            }
        }
        impl Eq for $name {}
        impl Hash for $name {
            fn hash<H: Hasher>(&self, state: &mut H) {
                std::ptr::hash(self.0, state);
            }
        }
        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for $name {
            fn cmp(&self, other: &Self) -> Ordering {
                if std::ptr::eq(self.0, other.0) {
                    Ordering::Equal
                } else {
                    compare(self.0, other.0)
                }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0.full)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

interned_type!(Keyword, KEYWORDS, ":", "An interned EDN keyword such as `:db/ident`.");
interned_type!(Symbol, SYMBOLS, "", "An interned EDN symbol such as `?e` or `clojure.core/+`.");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_gives_pointer_equality_and_clojure_order() {
        assert_eq!(Keyword::new("db/ident"), Keyword::new("db/ident"));
        assert_ne!(Keyword::new("db/ident"), Keyword::new("db/id"));
        assert_eq!(Keyword::new("db/ident").namespace(), Some("db"));
        assert_eq!(Keyword::new("db/ident").name(), "ident");
        assert!(Keyword::new("zzz") < Keyword::new("a/b"));
        assert!(Keyword::new("a/b") < Keyword::new("a/c"));
        assert!(Keyword::new("a.b/a") > Keyword::new("a/z"));
        assert_eq!(Symbol::new("/").name(), "/");
        assert_eq!(Keyword::new("name").to_string(), ":name");
    }
}
