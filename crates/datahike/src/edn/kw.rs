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
    /// The first bytes of the order key (see [`order_prefix`]): two texts whose prefixes
    /// differ compare as their prefixes do.
    prefix: u64,
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
    let slash = split(text);
    let prefix = order_prefix(text, slash);
    let leaked: &'static Interned = Box::leak(Box::new(Interned { full: text.into(), slash, prefix }));
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

/// An order-preserving prefix of the sort key (has a namespace, namespace or else name),
/// packed big-endian: one byte for the namespace flag, then up to seven bytes of text padded
/// with zeros. Padding with the smallest byte keeps the order of the full keys: when two
/// prefixes differ, the keys differ the same way; when they are equal, compare the keys.
fn order_prefix(full: &str, slash: Option<usize>) -> u64 {
    let (flag, text) = match slash {
        Some(i) => (1u8, &full[..i]),
        None => (0u8, full),
    };
    let mut bytes = [0u8; 8];
    bytes[0] = flag;
    for (b, t) in bytes[1..].iter_mut().zip(text.bytes()) {
        *b = t;
    }
    u64::from_be_bytes(bytes)
}

fn compare(a: &Interned, b: &Interned) -> Ordering {
    if a.prefix != b.prefix {
        return a.prefix.cmp(&b.prefix);
    }
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

    #[test]
    fn prefix_order_agrees_with_the_full_order() {
        // Texts around the eight-byte prefix: short, long, shared prefixes, zero bytes,
        // non-ASCII, with and without namespace.
        let texts = [
            "a",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefg/a",
            "abcdefgh/a",
            "abcdefg/b",
            "a/b",
            "a/bb",
            "ab/a",
            "a\u{0}/x",
            "a\u{0}",
            "z",
            "é",
            "é/a",
            "e/é",
            "name",
            "last-name",
            "db/ident",
            "db/id",
            "db.type/string",
            "db.type/long",
            "follows",
            "salary",
            "sex",
            "age",
            "email",
            "aaaaaaaz",
            "aaaaaaaa",
        ];
        let reference = |x: &str, y: &str| {
            let parts = |t: &str| match split(t) {
                Some(i) => (1, t[..i].to_string(), t[i + 1..].to_string()),
                None => (0, String::new(), t.to_string()),
            };
            let ((fx, nx, mx), (fy, ny, my)) = (parts(x), parts(y));
            fx.cmp(&fy).then_with(|| nx.cmp(&ny)).then_with(|| mx.cmp(&my))
        };
        for x in texts {
            for y in texts {
                assert_eq!(Keyword::new(x).cmp(&Keyword::new(y)), reference(x, y), "{x:?} vs {y:?}");
            }
        }
    }
}
