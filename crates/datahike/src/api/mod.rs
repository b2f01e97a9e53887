//! The API, described once. Each [`Op`] names an operation (its `dthk` command, its
//! `datahike.api` name and its HTTP route), documents it, lists its typed parameters per
//! arity and its return shape, says whether it is pure (a GET route) and whether it is
//! supported remotely, gives an example, and carries the implementation. `dthk`'s help,
//! argument validation and dispatch, the HTTP server's routes, its OpenAPI document and the
//! remote client are all derived from [`OPS`], as Datahike derives its CLI, routes and
//! bindings from `datahike.api.specification`: adding an operation means adding it here.
//!
//! Arguments are [`Arg`]s: connections and database values already opened, or data. The
//! front ends make them: `dthk` from its prefixes (`conn:FILE`, `db:FILE`...), the server
//! from the request body (config maps and database handles, see [`handles`]).

mod handles;
pub mod json_tx;
mod ops;
mod run;

pub use handles::{call, call_local, Connections};
pub use ops::{find, find_route, OPS};

use crate::edn::{pr_str, EdnError};
use crate::store::backend::redact;
use crate::{Conn, Db, Edn, IndexOrder, Result};

/// An argument of an operation.
#[derive(Clone)]
pub enum Arg {
    /// A connection.
    Conn(Conn),
    /// A database value (possibly a history, as-of or since view).
    Db(Db),
    /// Data: a config map, transaction data, a query, a pattern...
    Data(Edn),
    /// Text that is not EDN. Datahike's `dthk` passes such text on as a string; the reader's
    /// error explains why the argument does not fit where EDN was expected.
    Text {
        /// The argument.
        text: String,
        /// Why it is not EDN.
        error: EdnError,
    },
}

impl Arg {
    /// The argument as error messages and logs show it: secrets (a config's password, a
    /// URL's credentials) replaced by `"***"`.
    pub fn describe(&self) -> String {
        match self {
            Arg::Conn(c) => format!("{c:?}"),
            Arg::Db(db) => pr_str(&db.to_edn_summary()),
            Arg::Data(d) => pr_str(&redact(d)),
            Arg::Text { text, .. } => format!("{:?}", redacted_text(text)),
        }
    }
}

/// Text as logs show it: read as EDN and redacted, or, when it is no EDN, with the
/// credentials of any URL in it replaced.
pub fn redacted_text(text: &str) -> String {
    match crate::edn::read_str(text) {
        Ok(edn) => pr_str(&redact(&edn)),
        Err(_) => match &redact(&Edn::Str(text.into())) {
            Edn::Str(s) => s.to_string(),
            _ => text.to_string(),
        },
    }
}

/// What an implementation may report to its caller while it runs.
#[derive(Default, Clone, Copy)]
pub struct Context<'a> {
    /// Progress of long operations (export, import), e.g. for a progress bar.
    pub progress: Option<&'a dyn Fn(&crate::migrate::Progress)>,
}

/// The shape of an operation's result, for documentation and the OpenAPI document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returns {
    /// `true` or `false`.
    Boolean,
    /// `nil`.
    Nil,
    /// The normalised config map.
    Config,
    /// A transaction report `{:db-before :db-after :tx-data :tempids :tx-meta}`.
    TxReport,
    /// A query result: a set or vector of tuples, a collection, a scalar or maps (`:keys`).
    QueryResult,
    /// A map.
    Map,
    /// A map, or `nil` when nothing is found.
    MapOrNil,
    /// A vector of maps (or `nil`s).
    Maps,
    /// A vector of datoms `#datahike/Datom [e a v tx added]`.
    Datoms,
    /// A set of keywords or strings.
    Set,
    /// A uuid, or `nil`.
    Uuid,
    /// A set of uuids, or `nil`.
    Uuids,
    /// A database handle `#datahike/DB {...}` (or a history, as-of or since handle), or `nil`.
    DbHandle,
    /// A connection handle `#datahike/Connection {...}`.
    ConnHandle,
    /// Text (a query plan).
    Text,
}

impl Returns {
    /// One phrase for help and the OpenAPI document.
    pub fn describe(self) -> &'static str {
        match self {
            Returns::Boolean => "a boolean",
            Returns::Nil => "nil",
            Returns::Config => "the config map as stored",
            Returns::TxReport => "a transaction report {:db-before :db-after :tx-data :tempids :tx-meta}",
            Returns::QueryResult => {
                "the query result: a set or vector of tuples, a collection, a scalar, or maps with :keys"
            }
            Returns::Map => "a map",
            Returns::MapOrNil => "a map, or nil when nothing is found",
            Returns::Maps => "a vector of maps",
            Returns::Datoms => "a vector of datoms [e a v tx added]",
            Returns::Set => "a set",
            Returns::Uuid => "a uuid, or nil",
            Returns::Uuids => "a set of uuids, or nil",
            Returns::DbHandle => {
                "a database handle #datahike/DB {:store-id .. :commit-id .. :max-tx .. :max-eid ..}, or nil"
            }
            Returns::ConnHandle => "a connection handle #datahike/Connection {:store-id ..}",
            Returns::Text => "text",
        }
    }
}

/// How help groups the commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// Creating, checking and deleting databases.
    Database,
    /// Writing.
    Transaction,
    /// Reading: queries, pull, index access.
    Query,
    /// Schema access.
    Schema,
    /// Branches and commits.
    Versioning,
    /// Metrics.
    Diagnostics,
    /// Garbage collection.
    Maintenance,
    /// Export and import of whole databases.
    Migration,
}

impl Category {
    /// Help's order of categories.
    pub const ORDER: [Category; 8] = [
        Category::Database,
        Category::Transaction,
        Category::Query,
        Category::Schema,
        Category::Versioning,
        Category::Diagnostics,
        Category::Maintenance,
        Category::Migration,
    ];

    /// The heading help shows.
    pub fn title(self) -> &'static str {
        match self {
            Category::Database => "Database Operations",
            Category::Transaction => "Transaction Operations",
            Category::Query => "Query Operations",
            Category::Schema => "Schema Operations",
            Category::Versioning => "Versioning Operations",
            Category::Diagnostics => "Diagnostics",
            Category::Maintenance => "Maintenance",
            Category::Migration => "Export and Import",
        }
    }
}

/// One parameter of an arity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// A config map: `edn:cfg.edn` or inline EDN.
    Config,
    /// A connection: `conn:cfg.edn`.
    Conn,
    /// A database value: `db:cfg.edn`.
    Db,
    /// Transaction data: a vector, or `{:tx-data [...] :tx-meta {...}}`.
    TxData,
    /// Transaction data as a plain vector.
    TxVector,
    /// Transaction metadata, a map.
    TxMeta,
    /// Datoms `[e a v tx added]` to bulk load.
    Entities,
    /// An index keyword, `:eavt`, `:aevt` or `:avet`.
    Index,
    /// An index keyword or `{:index :eavt :components [...]}`.
    IndexArgs,
    /// One or more index components; only last in an arity.
    Components,
    /// `{:attrid :age :start 10 :end 30}`.
    RangeArgs,
    /// A pull pattern, e.g. `[:db/id :name {:friend [:name]}]`.
    Pattern,
    /// An entity id: a number, an ident keyword or a lookup ref `[:email "a@b.c"]`.
    EntityId,
    /// A vector of entity ids.
    EntityIds,
    /// What `entity` takes: any value; one that is no entity id names no entity (nil), as in
    /// Datahike.
    AnyEntityId,
    /// `{:selector [...] :eid 1}`.
    PullArgs,
    /// A query: vector or map form, a string of either, or an arg map `{:query .. :offset ..}`.
    Query,
    /// Zero or more query inputs matched to `:in`: `db:FILE`, data from a file or EDN; only
    /// last in an arity.
    QueryInputs,
    /// A branch keyword, e.g. `:staging`.
    Branch,
    /// A branch keyword or a commit id `#uuid "..."`.
    BranchOrCommit,
    /// A set or vector of branch keywords and commit ids.
    Parents,
    /// A commit id `#uuid "..."`.
    CommitId,
    /// A point in time: `#inst "..."` or epoch milliseconds.
    Instant,
    /// A file system path (a dump directory or file).
    Path,
    /// An options map of export or import.
    Options,
}

impl Param {
    /// How help names the parameter.
    pub fn help(self) -> &'static str {
        match self {
            Param::Config => "CONFIG",
            Param::Conn => "conn:CONFIG",
            Param::Db => "db:CONFIG",
            Param::TxData => "TX-DATA",
            Param::TxVector => "TX-DATA",
            Param::TxMeta => "TX-META",
            Param::Entities => "DATOMS",
            Param::Index => "INDEX",
            Param::IndexArgs => "{:index :components}",
            Param::Components => "COMPONENT...",
            Param::RangeArgs => "{:attrid :start :end}",
            Param::Pattern => "PATTERN",
            Param::EntityId => "EID",
            Param::EntityIds => "[EID...]",
            Param::AnyEntityId => "EID",
            Param::PullArgs => "{:selector :eid}",
            Param::Query => "QUERY",
            Param::QueryInputs => "[INPUT...]",
            Param::Branch => "BRANCH",
            Param::BranchOrCommit => "BRANCH|COMMIT-ID",
            Param::Parents => "#{BRANCH|COMMIT-ID...}",
            Param::CommitId => "COMMIT-ID",
            Param::Instant => "INSTANT",
            Param::Path => "PATH",
            Param::Options => "{OPTIONS}",
        }
    }

    /// What the parameter must be, for error messages.
    pub fn expected(self) -> &'static str {
        match self {
            Param::Config => "a config map (edn:FILE or an EDN map)",
            Param::Conn => "a connection (conn:FILE)",
            Param::Db => "a database value (db:FILE)",
            Param::TxData => "transaction data (a vector, or a map with :tx-data)",
            Param::TxVector => "transaction data (a vector)",
            Param::TxMeta => "transaction metadata (a map)",
            Param::Entities => "a vector of datoms [e a v tx added]",
            Param::Index => "an index, one of :eavt :aevt :avet",
            Param::IndexArgs => "an index (:eavt :aevt :avet) or a map {:index .. :components [..]}",
            Param::Components => "index components",
            Param::RangeArgs => "a map {:attrid keyword :start value :end value}",
            Param::Pattern => "a pull pattern (a vector such as [:db/id :name])",
            Param::EntityId => "an entity id (a number, an ident keyword or a lookup ref [attr value])",
            Param::EntityIds => "a vector of entity ids",
            Param::AnyEntityId => "an entity id (a number, an ident keyword or a lookup ref [attr value])",
            Param::PullArgs => "a map {:selector pattern :eid entity-id}",
            Param::Query => "a query (a vector, a map, a string of either, or {:query .. :offset .. :limit ..})",
            Param::QueryInputs => "a query input (db:FILE, edn:FILE, json:FILE or an EDN value)",
            Param::Branch => "a branch keyword such as :staging",
            Param::BranchOrCommit => "a branch keyword or a commit id #uuid \"...\"",
            Param::Parents => "a set of branch keywords and commit ids, e.g. #{:staging}",
            Param::CommitId => "a commit id #uuid \"...\"",
            Param::Instant => "an instant #inst \"...\" or epoch milliseconds",
            Param::Path => "a path (a dump directory, or a legacy dump file)",
            Param::Options => "an options map, e.g. {:history? true}",
        }
    }

    /// Whether `self` takes the rest of the arguments.
    pub fn is_rest(self) -> bool {
        matches!(self, Param::Components | Param::QueryInputs)
    }

    /// Whether `arg` fits the parameter.
    pub fn accepts(self, arg: &Arg) -> bool {
        let data = match arg {
            Arg::Conn(_) => return self == Param::Conn,
            Arg::Db(_) => return matches!(self, Param::Db | Param::QueryInputs),
            Arg::Text { .. } => return matches!(self, Param::Path | Param::AnyEntityId),
            Arg::Data(data) => data,
        };
        let is_seq = matches!(data, Edn::Vector(_) | Edn::List(_));
        match self {
            Param::Conn | Param::Db => false,
            Param::Config | Param::TxMeta => matches!(data, Edn::Map(_)),
            Param::TxData => is_seq || data.get_kw("tx-data").is_some(),
            Param::TxVector | Param::Entities => is_seq,
            Param::Index => index_of(data).is_some(),
            Param::IndexArgs => {
                index_of(data).is_some()
                    || (data.get_kw("index").and_then(index_of).is_some()
                        && data
                            .get_kw("components")
                            .is_none_or(|c| matches!(c, Edn::Nil | Edn::Vector(_) | Edn::List(_))))
            }
            Param::Components | Param::QueryInputs | Param::AnyEntityId => true,
            Param::RangeArgs => data.get_kw("attrid").and_then(Edn::as_keyword).is_some(),
            Param::Pattern | Param::EntityIds => is_seq,
            Param::EntityId => is_entity_id(data),
            Param::PullArgs => {
                data.get_kw("selector").is_some_and(|p| matches!(p, Edn::Vector(_) | Edn::List(_)))
                    && data.get_kw("eid").is_some_and(is_entity_id)
            }
            Param::Query => is_seq || matches!(data, Edn::Map(_) | Edn::Str(_)),
            Param::Branch => matches!(data, Edn::Keyword(_)),
            Param::BranchOrCommit => matches!(data, Edn::Keyword(_) | Edn::Uuid(_)),
            Param::Parents => match data {
                Edn::Set(xs) | Edn::Vector(xs) | Edn::List(xs) => {
                    !xs.is_empty() && xs.iter().all(|x| matches!(x, Edn::Keyword(_) | Edn::Uuid(_)))
                }
                _ => false,
            },
            Param::CommitId => matches!(data, Edn::Uuid(_)),
            Param::Instant => matches!(data, Edn::Inst(_) | Edn::Int(_)),
            Param::Path => matches!(data, Edn::Str(_) | Edn::Symbol(_) | Edn::Keyword(_) | Edn::Int(_)),
            Param::Options => matches!(data, Edn::Map(_)),
        }
    }
}

/// Whether `edn` has the shape of an entity id: a number, a keyword or a pair.
fn is_entity_id(edn: &Edn) -> bool {
    match edn {
        Edn::Int(_) | Edn::Keyword(_) => true,
        Edn::Vector(xs) | Edn::List(xs) => xs.len() == 2,
        _ => false,
    }
}

/// The index named by a keyword.
fn index_of(edn: &Edn) -> Option<IndexOrder> {
    edn.as_keyword().and_then(|k| IndexOrder::parse(k.as_str()))
}

/// The implementation of an operation, called with arguments that fit one of its arities.
pub type Run = fn(&[Arg], &Context) -> Result<Edn>;

/// One operation.
pub struct Op {
    /// The command, e.g. `database-exists`.
    pub name: &'static str,
    /// The `datahike.api` function, e.g. `database-exists?`; the HTTP route is this name
    /// without a trailing `?` or `!` ([`Op::route`]).
    pub api: &'static str,
    /// Help's group.
    pub category: Category,
    /// One sentence.
    pub doc: &'static str,
    /// The accepted argument lists.
    pub arities: &'static [&'static [Param]],
    /// A command line that works.
    pub example: &'static str,
    /// Which argument may come from standard input (`-` or absent).
    pub stdin_arg: Option<usize>,
    /// Which argument `--tx-file` supplies.
    pub file_arg: Option<usize>,
    /// Whether the operation only reads (a GET route; its result depends only on its
    /// arguments' values).
    pub pure: bool,
    /// Whether the HTTP server serves it and a `:remote-peer` config sends it there.
    pub remote: bool,
    /// Whether `dthk` offers it as a command (handles such as `connect` and `history` are
    /// prefixes there: `conn:`, `history:`).
    pub cli: bool,
    /// The shape of the result.
    pub returns: Returns,
    /// The implementation; `None` for operations that a later version brings.
    pub run: Option<Run>,
}

impl Op {
    /// The HTTP route, as Datahike's server names it: `/q`, `/database-exists`, `/branch`.
    pub fn route(&self) -> String {
        format!("/{}", self.api.trim_end_matches(['?', '!']))
    }

    /// The argument part of the usage line, e.g. `db:CONFIG INDEX COMPONENT...`.
    pub fn usage(&self) -> String {
        let arity = |params: &[Param]| params.iter().map(|p| p.help()).collect::<Vec<_>>().join(" ");
        match self.arities {
            [] => String::new(),
            [[], one] => format!("[{}]", arity(one)),
            [first, ..] => arity(first),
        }
    }

    /// Every arity, one usage per line.
    pub fn all_usages(&self) -> Vec<String> {
        self.arities
            .iter()
            .map(|params| {
                let args: Vec<&str> = params.iter().map(|p| p.help()).collect();
                format!("dthk {} {}", self.name, args.join(" ")).trim_end().to_string()
            })
            .collect()
    }

    /// Whether `args` fit one of the arities.
    pub fn fits(&self, args: &[Arg]) -> bool {
        self.arities.iter().any(|params| fits(params, args))
    }

    /// Why `args` fit no arity: the first bad argument of the closest arity.
    pub fn mismatch(&self, args: &[Arg]) -> String {
        let same_count = self.arities.iter().find(|params| count_fits(params, args.len()));
        let Some(params) = same_count else {
            let counts: Vec<String> = self
                .arities
                .iter()
                .map(|p| match p.last() {
                    Some(last) if last.is_rest() => format!("{} or more", min_count(p)),
                    _ => p.len().to_string(),
                })
                .collect();
            return format!("expected {} arguments, got {}", counts.join(" or "), args.len());
        };
        for (i, arg) in args.iter().enumerate() {
            let param = param_at(params, i);
            if param.accepts(arg) {
                continue;
            }
            return match arg {
                Arg::Text { text, error } => {
                    format!("argument {} {text:?} is not valid EDN: {error}; expected {}", i + 1, param.expected())
                }
                other => format!("argument {} is {}, expected {}", i + 1, other.describe(), param.expected()),
            };
        }
        "the arguments fit no arity".to_string()
    }
}

/// The fewest arguments an arity takes: components are one or more, query inputs zero or more.
fn min_count(params: &[Param]) -> usize {
    match params.last() {
        Some(Param::QueryInputs) => params.len() - 1,
        _ => params.len(),
    }
}

fn count_fits(params: &[Param], n: usize) -> bool {
    match params.last() {
        Some(last) if last.is_rest() => n >= min_count(params),
        _ => n == params.len(),
    }
}

/// The parameter argument `i` fills: its own, or the trailing rest parameter.
fn param_at(params: &[Param], i: usize) -> Param {
    params.get(i).or(params.last()).copied().unwrap_or(Param::Components)
}

fn fits(params: &[Param], args: &[Arg]) -> bool {
    count_fits(params, args.len()) && args.iter().enumerate().all(|(i, arg)| param_at(params, i).accepts(arg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_implemented_ops_have_arities_and_examples() {
        for (i, op) in OPS.iter().enumerate() {
            assert!(OPS[..i].iter().all(|o| o.name != op.name), "{} twice", op.name);
            assert!(op.doc.ends_with('.'), "{}", op.name);
            if op.run.is_some() {
                assert!(!op.arities.is_empty(), "{}", op.name);
            }
            if op.run.is_some() && op.cli {
                assert!(op.example.starts_with(&format!("dthk {} ", op.name)), "{}", op.name);
            }
            // A pure operation is a GET route: it must not write.
            assert!(!(op.pure && op.returns == Returns::TxReport && op.remote), "{}", op.name);
            assert!(
                OPS[..i].iter().all(|o| !(o.remote && op.remote && o.route() == op.route())),
                "{} route twice",
                op.name
            );
            for arity in op.arities {
                let rest = arity.iter().position(|p| p.is_rest());
                assert!(rest.is_none_or(|i| i == arity.len() - 1), "{}: rest parameters must come last", op.name);
            }
        }
    }

    #[test]
    fn routes_are_datahike_names() {
        assert_eq!(find_route("/q").map(|op| op.name), Some("query"));
        assert_eq!(find_route("/database-exists").map(|op| op.api), Some("database-exists?"));
        assert_eq!(find_route("/branch").map(|op| op.api), Some("branch!"));
        assert!(find_route("/export").is_none() && find_route("/with").is_none());
        assert!(find("connect").is_none() && find_route("/connect").is_some());
    }

    #[test]
    fn usage_lines() {
        assert_eq!(find("database-exists").unwrap().usage(), "[CONFIG]");
        assert_eq!(find("transact").unwrap().usage(), "conn:CONFIG TX-DATA");
        assert_eq!(find("datoms").unwrap().all_usages()[1], "dthk datoms db:CONFIG INDEX COMPONENT...");
        assert_eq!(find("query").unwrap().usage(), "QUERY [INPUT...]");
    }

    #[test]
    fn validation_names_the_bad_argument() {
        let op = find("index-range").unwrap();
        let args = [Arg::Data(Edn::Int(1)), Arg::Data(Edn::Int(2))];
        assert!(!op.fits(&args));
        assert!(op.mismatch(&args).contains("argument 1 is 1, expected a database value"), "{}", op.mismatch(&args));
        assert!(op.mismatch(&args[..1]).contains("expected 2 arguments, got 1"));
        let query = find("query").unwrap();
        let args = [Arg::Data(Edn::Vector(Vec::new())), Arg::Data(Edn::Int(2)), Arg::Data(Edn::Int(3))];
        assert!(query.fits(&args[..1]) && query.fits(&args) && !query.fits(&args[1..]));
        assert!(query.mismatch(&args[1..]).contains("argument 1 is 2, expected a query"));
        assert!(query.mismatch(&[]).contains("expected 1 or more arguments, got 0"));
    }
}
