//! The operations `dthk` knows, each described once: command name, the `datahike.api` name,
//! category, one-line doc, argument arities, an example and the implementation. Help text,
//! argument validation and dispatch are all derived from [`OPS`], as Datahike derives its CLI
//! from `datahike.api.specification`.

use crate::input::Arg;
use datahike::{Config, Db, Detail, Edn, Error, IndexOrder, QueryInput, Result, TxReport};

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
            Arg::Text { .. } => return self == Param::Path,
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
            Param::Components | Param::QueryInputs => true,
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

/// The implementation of a command, called with arguments that fit one of its arities.
pub type Run = fn(&[Arg]) -> Result<Edn>;

/// One operation.
pub struct Op {
    /// The command, e.g. `database-exists`.
    pub name: &'static str,
    /// The `datahike.api` function, e.g. `database-exists?`.
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
    /// The implementation; `None` for operations that a later version brings.
    pub run: Option<Run>,
}

impl Op {
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

use Param::*;

/// Every operation of Datahike's `dthk`, implemented or coming.
pub static OPS: &[Op] = &[
    Op {
        name: "database-exists",
        api: "database-exists?",
        category: Category::Database,
        doc: "Checks if a database exists via configuration map.",
        arities: &[&[], &[Config]],
        example: "dthk database-exists edn:config.edn",
        stdin_arg: None,
        file_arg: None,
        run: Some(database_exists),
    },
    Op {
        name: "create-database",
        api: "create-database",
        category: Category::Database,
        doc: "Creates a database via configuration map.",
        arities: &[&[], &[Config]],
        example: "dthk create-database edn:config.edn",
        stdin_arg: None,
        file_arg: None,
        run: Some(create_database),
    },
    Op {
        name: "delete-database",
        api: "delete-database",
        category: Category::Database,
        doc: "Deletes a database given via configuration map.",
        arities: &[&[], &[Config]],
        example: "dthk delete-database edn:config.edn",
        stdin_arg: None,
        file_arg: None,
        run: Some(delete_database),
    },
    Op {
        name: "transact",
        api: "transact",
        category: Category::Transaction,
        doc: "Applies transaction to the database and updates connection. Blocks until committed.",
        arities: &[&[Conn, TxData]],
        example: "dthk transact conn:config.edn '[{:name \"Alice\" :age 20}]'",
        stdin_arg: Some(1),
        file_arg: Some(1),
        run: Some(transact),
    },
    Op {
        name: "load-entities",
        api: "load-entities",
        category: Category::Transaction,
        doc: "Load entities directly (bulk load).",
        arities: &[&[Conn, Entities]],
        example: "dthk load-entities conn:config.edn edn:datoms.edn",
        stdin_arg: Some(1),
        file_arg: None,
        run: Some(load_entities),
    },
    Op {
        name: "with",
        api: "with",
        category: Category::Transaction,
        doc: "Applies transaction to immutable db value. Returns transaction report.",
        arities: &[&[Db, TxData], &[Db, TxVector, TxMeta]],
        example: "dthk with db:config.edn '[[:db/add -1 :name \"Ivan\"]]'",
        stdin_arg: None,
        file_arg: None,
        run: Some(with),
    },
    Op {
        name: "query",
        api: "q",
        category: Category::Query,
        doc: "Executes a datalog query. The inputs after the query are matched to :in in order: db:FILE for a database value, edn:FILE or json:FILE for data, any other argument read as EDN (quote strings: '\"Alice\"').",
        arities: &[&[Query, QueryInputs]],
        example: "dthk query '[:find ?n . :in $ ?a :where [?e :age ?a] [?e :name ?n]]' db:config.edn 20",
        stdin_arg: None,
        file_arg: None,
        run: Some(query),
    },
    Op {
        name: "query-stats",
        api: "query-stats",
        category: Category::Query,
        doc: "Executes a datalog query and returns {:ret result :query q :stats [...]}: each clause in the order the planner ran it, with the index it read, rows in and out, time in ms and nested clauses. Inputs as for query.",
        arities: &[&[Query, QueryInputs]],
        example: "dthk query-stats '[:find ?n :where [?e :name ?n] [?e :age 20]]' db:config.edn",
        stdin_arg: None,
        file_arg: None,
        run: Some(query_stats),
    },
    Op {
        name: "explain",
        api: "explain",
        category: Category::Query,
        doc: "Runs a datalog query and prints the plan it ran with: each clause in evaluation order, the index and strategy of each pattern, rows in and out, time. Inputs as for query.",
        arities: &[&[Query, QueryInputs]],
        example: "dthk explain '[:find ?n :where [?e :name ?n] [?e :age 20]]' db:config.edn",
        stdin_arg: None,
        file_arg: None,
        run: Some(explain),
    },
    Op {
        name: "pull",
        api: "pull",
        category: Category::Query,
        doc: "Fetches data using recursive declarative pull pattern.",
        arities: &[&[Db, Pattern, EntityId], &[Db, PullArgs]],
        example: "dthk pull db:config.edn '[:db/id :name {:friend [:name]}]' 1",
        stdin_arg: None,
        file_arg: None,
        run: Some(pull),
    },
    Op {
        name: "pull-many",
        api: "pull-many",
        category: Category::Query,
        doc: "Same as pull, but accepts sequence of ids and returns sequence of maps.",
        arities: &[&[Db, Pattern, EntityIds]],
        example: "dthk pull-many db:config.edn '[:name]' '[1 2]'",
        stdin_arg: None,
        file_arg: None,
        run: Some(pull_many),
    },
    Op {
        name: "entity",
        api: "entity",
        category: Category::Query,
        doc: "Retrieves an entity by its id. Prints it touched: a map of :db/id and every attribute (nil when an ident or lookup ref names nothing).",
        arities: &[&[Db, EntityId]],
        example: "dthk entity db:config.edn 1",
        stdin_arg: None,
        file_arg: None,
        run: Some(entity),
    },
    Op {
        name: "datoms",
        api: "datoms",
        category: Category::Query,
        doc: "Index lookup. Returns sequence of datoms matching index components.",
        arities: &[&[Db, IndexArgs], &[Db, Index, Components]],
        example: "dthk datoms db:config.edn '{:index :eavt :components [1]}'",
        stdin_arg: None,
        file_arg: None,
        run: Some(datoms),
    },
    Op {
        name: "seek-datoms",
        api: "seek-datoms",
        category: Category::Query,
        doc: "Like datoms, but returns datoms starting from specified components through end of index.",
        arities: &[&[Db, IndexArgs], &[Db, Index, Components]],
        example: "dthk seek-datoms db:config.edn '{:index :aevt :components [:name]}'",
        stdin_arg: None,
        file_arg: None,
        run: Some(seek_datoms),
    },
    Op {
        name: "rseek-datoms",
        api: "rseek-datoms",
        category: Category::Query,
        doc: "Like seek-datoms, but iterates backwards: datoms <= the given components, descending to the beginning of the index.",
        arities: &[&[Db, IndexArgs], &[Db, Index, Components]],
        example: "dthk rseek-datoms db:config.edn '{:index :aevt :components [:name]}'",
        stdin_arg: None,
        file_arg: None,
        run: Some(rseek_datoms),
    },
    Op {
        name: "index-range",
        api: "index-range",
        category: Category::Query,
        doc: "Returns part of :avet index between start and end values.",
        arities: &[&[Db, RangeArgs]],
        example: "dthk index-range db:config.edn '{:attrid :age :start 10 :end 30}'",
        stdin_arg: None,
        file_arg: None,
        run: Some(index_range),
    },
    coming("valid-at", "valid-at", Category::Query, "Filters a database to the facts valid at a point of valid time."),
    coming("valid-between", "valid-between", Category::Query, "Filters a database to the facts whose valid time overlaps a window."),
    coming("valid-during", "valid-during", Category::Query, "Filters a database to the facts whose valid time lies inside a window."),
    coming("valid-all", "valid-all", Category::Query, "Strips valid-time markers so the full valid-time history is visible."),
    Op {
        name: "schema",
        api: "schema",
        category: Category::Schema,
        doc: "Returns current schema definition.",
        arities: &[&[Db]],
        example: "dthk schema db:config.edn",
        stdin_arg: None,
        file_arg: None,
        run: Some(schema),
    },
    Op {
        name: "reverse-schema",
        api: "reverse-schema",
        category: Category::Schema,
        doc: "Returns reverse schema definition (attribute property to idents).",
        arities: &[&[Db]],
        example: "dthk reverse-schema db:config.edn",
        stdin_arg: None,
        file_arg: None,
        run: Some(reverse_schema),
    },
    Op {
        name: "branches",
        api: "branches",
        category: Category::Versioning,
        doc: "List all known branch names.",
        arities: &[&[Conn]],
        example: "dthk branches conn:config.edn",
        stdin_arg: None,
        file_arg: None,
        run: Some(branches),
    },
    Op {
        name: "branch",
        api: "branch!",
        category: Category::Versioning,
        doc: "Create a new branch from an existing branch or commit; copies nothing.",
        arities: &[&[Conn, BranchOrCommit, Branch]],
        example: "dthk branch conn:config.edn :db :staging",
        stdin_arg: None,
        file_arg: None,
        run: Some(branch),
    },
    Op {
        name: "delete-branch",
        api: "delete-branch!",
        category: Category::Versioning,
        doc: "Remove a branch; its data stays until gc-storage finds nothing else reaching it.",
        arities: &[&[Conn, Branch]],
        example: "dthk delete-branch conn:config.edn :staging",
        stdin_arg: None,
        file_arg: None,
        run: Some(delete_branch),
    },
    Op {
        name: "force-branch",
        api: "force-branch!",
        category: Category::Versioning,
        doc: "Force a branch to point to the provided db value, as a new commit with the given parents.",
        arities: &[&[Db, Branch, Parents]],
        example: "dthk force-branch db:config.edn :staging '#{:db}'",
        stdin_arg: None,
        file_arg: None,
        run: Some(force_branch),
    },
    Op {
        name: "merge-db",
        api: "merge-db",
        category: Category::Versioning,
        doc: "Create a merge commit combining the current branch with parent branches/commits, transacting the given (merged) data.",
        arities: &[&[Conn, Parents, TxVector], &[Conn, Parents, TxVector, TxMeta]],
        example: "dthk merge-db conn:config.edn '#{:staging}' '[{:name \"Sam\"}]'",
        stdin_arg: None,
        file_arg: None,
        run: Some(merge_db),
    },
    Op {
        name: "commit-id",
        api: "commit-id",
        category: Category::Versioning,
        doc: "Retrieve the commit-id for this database value.",
        arities: &[&[Db]],
        example: "dthk commit-id db:config.edn",
        stdin_arg: None,
        file_arg: None,
        run: Some(commit_id),
    },
    Op {
        name: "parent-commit-ids",
        api: "parent-commit-ids",
        category: Category::Versioning,
        doc: "Retrieve parent commit ids from this database value.",
        arities: &[&[Db]],
        example: "dthk parent-commit-ids db:config.edn",
        stdin_arg: None,
        file_arg: None,
        run: Some(parent_commit_ids),
    },
    Op {
        name: "commit-as-db",
        api: "commit-as-db",
        category: Category::Versioning,
        doc: "Load the database at a specific commit; nil if there is no such commit.",
        arities: &[&[Conn, CommitId], &[Db, CommitId]],
        example: "dthk commit-as-db conn:config.edn '#uuid \"00000000-0000-0000-0000-000000000000\"'",
        stdin_arg: None,
        file_arg: None,
        run: Some(commit_as_db),
    },
    Op {
        name: "branch-as-db",
        api: "branch-as-db",
        category: Category::Versioning,
        doc: "Load the database at a branch head; nil if there is no such branch.",
        arities: &[&[Conn, Branch], &[Db, Branch]],
        example: "dthk branch-as-db conn:config.edn :staging",
        stdin_arg: None,
        file_arg: None,
        run: Some(branch_as_db),
    },
    Op {
        name: "metrics",
        api: "metrics",
        category: Category::Diagnostics,
        doc: "Returns database metrics (datom counts, index sizes, etc).",
        arities: &[&[Db]],
        example: "dthk metrics db:config.edn",
        stdin_arg: None,
        file_arg: None,
        run: Some(metrics),
    },
    Op {
        name: "gc-storage",
        api: "gc-storage",
        category: Category::Maintenance,
        doc: "Invokes garbage collection on connection's store: deletes what no branch and no commit after remove-before (default: every commit) reaches; prints the deleted keys.",
        arities: &[&[Conn], &[Conn, Instant]],
        example: "dthk gc-storage conn:config.edn '#inst \"2026-01-01\"'",
        stdin_arg: None,
        file_arg: None,
        run: Some(gc_storage),
    },
    Op {
        name: "export",
        api: "datahike.migrate/export-db",
        category: Category::Migration,
        doc: "Writes the database with its history and transaction times as a dump directory in Datahike's format (CBOR chunks datoms-NNNNNN.cbor.gz with a SHA-256 each, manifest.edn written last). Options: {:history? bool :compression :gzip|:none :chunk-size n}.",
        arities: &[&[Db, Path], &[Db, Path, Options]],
        example: "dthk export db:config.edn /backups/mydb",
        stdin_arg: None,
        file_arg: None,
        run: Some(export),
    },
    Op {
        name: "import",
        api: "datahike.migrate/import-db",
        category: Category::Migration,
        doc: "Loads a dump (written by export or by Datahike, or a legacy single-file CBOR dump) into an empty database, keeping entity and transaction ids, instants and metadata. Every chunk is verified first; {:merge? true} adds the dump to a database that has transactions, with fresh ids.",
        arities: &[&[Conn, Path], &[Conn, Path, Options]],
        example: "dthk import conn:config.edn /backups/mydb",
        stdin_arg: None,
        file_arg: None,
        run: Some(import),
    },
];

/// An operation that a later version implements.
const fn coming(name: &'static str, api: &'static str, category: Category, doc: &'static str) -> Op {
    Op { name, api, category, doc, arities: &[], example: "", stdin_arg: None, file_arg: None, run: None }
}

/// The operation of a command name.
pub fn find(name: &str) -> Option<&'static Op> {
    OPS.iter().find(|op| op.name == name)
}

// Implementations. They run only on arguments that fit an arity, so a mismatch below is a bug
// in the table, reported as an internal error rather than a panic.

fn bug(what: &str) -> Error {
    Error::Internal(format!("dthk dispatched an argument that is not {what}"))
}

fn data(args: &[Arg], i: usize) -> Result<&Edn> {
    match args.get(i) {
        Some(Arg::Data(d)) => Ok(d),
        _ => Err(bug("data")),
    }
}

fn conn(args: &[Arg]) -> Result<&datahike::Conn> {
    match args.first() {
        Some(Arg::Conn(c)) => Ok(c),
        _ => Err(bug("a connection")),
    }
}

fn db(args: &[Arg]) -> Result<&datahike::Db> {
    match args.first() {
        Some(Arg::Db(d)) => Ok(d),
        _ => Err(bug("a database")),
    }
}

fn config(args: &[Arg]) -> Result<Config> {
    match args.first() {
        None => Ok(Config::default()),
        Some(_) => Config::from_edn(data(args, 0)?),
    }
}

fn database_exists(args: &[Arg]) -> Result<Edn> {
    Ok(Edn::Bool(datahike::database_exists(&config(args)?)?))
}

fn create_database(args: &[Arg]) -> Result<Edn> {
    Ok(datahike::create_database(&config(args)?)?.to_edn())
}

fn delete_database(args: &[Arg]) -> Result<Edn> {
    datahike::delete_database(&config(args)?)?;
    Ok(Edn::Nil)
}

fn transact(args: &[Arg]) -> Result<Edn> {
    Ok(conn(args)?.transact_arg(data(args, 1)?)?.to_edn())
}

fn load_entities(args: &[Arg]) -> Result<Edn> {
    let reports = conn(args)?.load_entities(data(args, 1)?)?;
    Ok(combine(&reports).map_or(Edn::Nil, |r| r.to_edn()))
}

/// One report for a bulk load that ran as several transactions, as Datahike's one: the first
/// db-before, the last db-after, every datom and tempid, the last metadata.
fn combine(reports: &[TxReport]) -> Option<TxReport> {
    let (first, last) = (reports.first()?, reports.last()?);
    Some(TxReport {
        db_before: first.db_before.clone(),
        db_after: last.db_after.clone(),
        tx_data: reports.iter().flat_map(|r| r.tx_data.iter().cloned()).collect(),
        tempids: reports
            .iter()
            .flat_map(|r| r.tempids.iter().cloned())
            .filter(|(k, _)| *k != Edn::kw("db/current-tx"))
            .chain(last.tempids.iter().filter(|(k, _)| *k == Edn::kw("db/current-tx")).cloned())
            .collect(),
        tx_meta: last.tx_meta.clone(),
    })
}

fn with(args: &[Arg]) -> Result<Edn> {
    let db = db(args)?;
    let tx = data(args, 1)?;
    let report = match (args.get(2), tx) {
        (Some(_), _) => db.with_meta(tx, Some(data(args, 2)?))?,
        (None, Edn::Map(_)) => {
            let tx_data = tx.get_kw("tx-data").ok_or_else(|| bug("a map with :tx-data"))?;
            db.with_meta(tx_data, tx.get_kw("tx-meta"))?
        }
        (None, _) => db.with(tx)?,
    };
    Ok(report.to_edn())
}

/// The index and components of `(datoms db :eavt c...)` or `(datoms db {:index .. :components [..]})`.
fn index_args(args: &[Arg]) -> Result<(IndexOrder, Vec<Edn>)> {
    let first = data(args, 1)?;
    if let Some(order) = index_of(first) {
        let components = (2..args.len()).map(|i| data(args, i).cloned()).collect::<Result<_>>()?;
        return Ok((order, components));
    }
    let order = first.get_kw("index").and_then(index_of).ok_or_else(|| bug("an index map"))?;
    let components = first.get_kw("components").and_then(Edn::as_seq).map(<[Edn]>::to_vec).unwrap_or_default();
    Ok((order, components))
}

fn datoms_edn(db: &Db, datoms: Vec<datahike::Datom>) -> Edn {
    Edn::Vector(datoms.iter().map(|d| db.datom_tagged_edn(d)).collect())
}

fn datoms(args: &[Arg]) -> Result<Edn> {
    let (order, components) = index_args(args)?;
    let db = db(args)?;
    Ok(datoms_edn(db, db.datoms(order, &components)?))
}

fn seek_datoms(args: &[Arg]) -> Result<Edn> {
    let (order, components) = index_args(args)?;
    let db = db(args)?;
    Ok(datoms_edn(db, db.seek_datoms(order, &components)?))
}

fn rseek_datoms(args: &[Arg]) -> Result<Edn> {
    let (order, components) = index_args(args)?;
    let db = db(args)?;
    Ok(datoms_edn(db, db.rseek_datoms(order, &components)?))
}

fn index_range(args: &[Arg]) -> Result<Edn> {
    let range = data(args, 1)?;
    let start = range.get_kw("start").unwrap_or(&Edn::Nil);
    let end = range.get_kw("end").unwrap_or(&Edn::Nil);
    let db = db(args)?;
    let attr = range.get_kw("attrid").and_then(|a| db.attr_of(a)).ok_or_else(|| bug("a range map"))?;
    Ok(datoms_edn(db, db.index_range(attr, start, end)?))
}

/// The inputs after a query: databases and data.
fn query_inputs(args: &[Arg]) -> Result<Vec<QueryInput>> {
    args.iter()
        .skip(1)
        .map(|arg| match arg {
            Arg::Db(db) => Ok(QueryInput::Db(db.clone())),
            Arg::Data(data) => Ok(QueryInput::Edn(data.clone())),
            _ => Err(bug("a query input")),
        })
        .collect()
}

fn query(args: &[Arg]) -> Result<Edn> {
    datahike::q(data(args, 0)?, &query_inputs(args)?)
}

fn query_stats(args: &[Arg]) -> Result<Edn> {
    datahike::query::query_stats(data(args, 0)?, &query_inputs(args)?)
}

/// The plan as a string; printed as plain text in the EDN formats.
fn explain(args: &[Arg]) -> Result<Edn> {
    Ok(Edn::Str(datahike::query::explain(data(args, 0)?, &query_inputs(args)?)?.into()))
}

fn pull(args: &[Arg]) -> Result<Edn> {
    let db = db(args)?;
    if args.len() == 2 {
        let options = data(args, 1)?;
        let selector = options.get_kw("selector").ok_or_else(|| bug("a map with :selector"))?;
        let eid = options.get_kw("eid").ok_or_else(|| bug("a map with :eid"))?;
        return datahike::pull(db, selector, eid);
    }
    datahike::pull(db, data(args, 1)?, data(args, 2)?)
}

fn pull_many(args: &[Arg]) -> Result<Edn> {
    datahike::pull_many(db(args)?, data(args, 1)?, data(args, 2)?)
}

fn entity(args: &[Arg]) -> Result<Edn> {
    match datahike::entity(db(args)?, data(args, 1)?)? {
        Some(entity) => entity.touch(),
        None => Ok(Edn::Nil),
    }
}

fn schema(args: &[Arg]) -> Result<Edn> {
    Ok(db(args)?.schema_edn())
}

fn reverse_schema(args: &[Arg]) -> Result<Edn> {
    Ok(db(args)?.reverse_schema_edn())
}

fn metrics(args: &[Arg]) -> Result<Edn> {
    db(args)?.metrics()
}

/// The connection of a `conn:` argument, or a writing connection to the database of a `db:`
/// argument (which `db:` opened read-only).
fn conn_of(args: &[Arg]) -> Result<datahike::Conn> {
    match args.first() {
        Some(Arg::Conn(c)) => Ok(c.clone()),
        Some(Arg::Db(d)) => datahike::connect(&Config { read_only: false, ..d.config().clone() }),
        _ => Err(bug("a connection or a database")),
    }
}

fn keyword(args: &[Arg], i: usize) -> Result<datahike::Keyword> {
    data(args, i)?.as_keyword().ok_or_else(|| bug("a keyword"))
}

fn parents(args: &[Arg], i: usize) -> Result<Vec<BranchOrCommitArg>> {
    let items = match data(args, i)? {
        Edn::Set(xs) | Edn::Vector(xs) | Edn::List(xs) => xs,
        _ => return Err(bug("a set of parents")),
    };
    items.iter().map(BranchOrCommitArg::from_edn).collect()
}

use datahike::BranchOrCommit as BranchOrCommitArg;

fn branches(args: &[Arg]) -> Result<Edn> {
    Ok(Edn::Set(conn(args)?.branches()?.into_iter().map(Edn::Keyword).collect()))
}

fn branch(args: &[Arg]) -> Result<Edn> {
    let from = BranchOrCommitArg::from_edn(data(args, 1)?)?;
    conn(args)?.branch(&from, keyword(args, 2)?)?;
    Ok(Edn::Nil)
}

fn delete_branch(args: &[Arg]) -> Result<Edn> {
    conn(args)?.delete_branch(keyword(args, 1)?)?;
    Ok(Edn::Nil)
}

fn force_branch(args: &[Arg]) -> Result<Edn> {
    let conn = conn_of(args)?;
    let result = conn.force_branch(db(args)?, keyword(args, 1)?, &parents(args, 2)?);
    conn.release()?;
    result?;
    Ok(Edn::Nil)
}

fn merge_db(args: &[Arg]) -> Result<Edn> {
    let meta = if args.len() > 3 { Some(data(args, 3)?) } else { None };
    Ok(conn(args)?.merge_db(&parents(args, 1)?, data(args, 2)?, meta)?.to_edn())
}

fn commit_id(args: &[Arg]) -> Result<Edn> {
    Ok(db(args)?.commit_id().map_or(Edn::Nil, Edn::Uuid))
}

fn parent_commit_ids(args: &[Arg]) -> Result<Edn> {
    Ok(db(args)?.parent_commit_ids().map_or(Edn::Nil, |ps| Edn::Set(ps.into_iter().map(Edn::Uuid).collect())))
}

fn with_conn_of(args: &[Arg], f: impl FnOnce(&datahike::Conn) -> Result<Option<datahike::Db>>) -> Result<Edn> {
    let conn = conn_of(args)?;
    let result = f(&conn);
    if matches!(args.first(), Some(Arg::Db(_))) {
        conn.release()?;
    }
    Ok(result?.map_or(Edn::Nil, |db| db.to_edn_summary()))
}

fn commit_as_db(args: &[Arg]) -> Result<Edn> {
    let Edn::Uuid(id) = data(args, 1)? else { return Err(bug("a commit id")) };
    let id = *id;
    with_conn_of(args, |c| c.commit_as_db(id))
}

fn branch_as_db(args: &[Arg]) -> Result<Edn> {
    let branch = keyword(args, 1)?;
    with_conn_of(args, |c| c.branch_as_db(branch))
}

fn gc_storage(args: &[Arg]) -> Result<Edn> {
    let remove_before = match args.get(1) {
        None => None,
        Some(_) => match data(args, 1)? {
            Edn::Inst(ms) | Edn::Int(ms) => Some(*ms),
            _ => return Err(bug("an instant")),
        },
    };
    let report = conn(args)?.gc_storage(remove_before)?;
    Ok(Edn::Set(report.deleted.into_iter().map(|k| Edn::Str(k.into())).collect()))
}

/// The path of a `Path` argument: the text as given.
fn path(args: &[Arg], i: usize) -> Result<std::path::PathBuf> {
    Ok(std::path::PathBuf::from(match args.get(i) {
        Some(Arg::Text { text, .. }) => text.clone(),
        Some(Arg::Data(Edn::Str(s))) => s.to_string(),
        Some(Arg::Data(Edn::Symbol(s))) => s.as_str().to_string(),
        Some(Arg::Data(other)) => datahike::edn::pr_str(other),
        _ => return Err(bug("a path")),
    }))
}

/// The options map of argument `i`, if given.
fn options(args: &[Arg], i: usize) -> Result<Option<&Edn>> {
    args.get(i).map(|_| data(args, i)).transpose()
}

fn option_bool(options: Option<&Edn>, key: &str) -> Result<Option<bool>> {
    match options.and_then(|o| o.get_kw(key)) {
        None | Some(Edn::Nil) => Ok(None),
        Some(Edn::Bool(b)) => Ok(Some(*b)),
        Some(other) => {
            Err(Error::Argument(Detail::new(format!(":{key} must be true or false, got {other}")).value(other.clone())))
        }
    }
}

fn export(args: &[Arg]) -> Result<Edn> {
    use datahike::migrate::{Compression, ExportOptions};
    let db = db(args)?;
    let target = path(args, 1)?;
    let options = options(args, 2)?;
    let mut opts = ExportOptions { history: option_bool(options, "history?")?, ..ExportOptions::default() };
    match options.and_then(|o| o.get_kw("compression")) {
        None => {}
        Some(Edn::Keyword(k)) if k.as_str() == "gzip" => opts.compression = Compression::Gzip,
        Some(Edn::Keyword(k)) if k.as_str() == "none" => opts.compression = Compression::None,
        Some(other) => {
            let message = format!(":compression must be :gzip or :none, got {other}");
            return Err(Error::Argument(Detail::new(message).value(other.clone())));
        }
    }
    match options.and_then(|o| o.get_kw("chunk-size")) {
        None => {}
        Some(Edn::Int(n)) if *n > 0 => opts.chunk_size = usize::try_from(*n).unwrap_or(usize::MAX),
        Some(other) => {
            let message = format!(":chunk-size must be a positive integer, got {other}");
            return Err(Error::Argument(Detail::new(message).value(other.clone())));
        }
    }
    let bar = crate::progress::Bar::new("exporting");
    let progress = |p: &datahike::migrate::Progress| bar.update(p);
    opts.progress = Some(&progress);
    let report = datahike::migrate::export_db(db, &target, &opts);
    bar.finish();
    Ok(report?.to_edn())
}

fn import(args: &[Arg]) -> Result<Edn> {
    use datahike::migrate::ImportOptions;
    let conn = conn(args)?;
    let source = path(args, 1)?;
    let options = options(args, 2)?;
    let bar = crate::progress::Bar::new("importing");
    let progress = |p: &datahike::migrate::Progress| bar.update(p);
    let opts = ImportOptions {
        merge: option_bool(options, "merge?")?.unwrap_or(false),
        progress: Some(&progress),
        ..ImportOptions::default()
    };
    let report = datahike::migrate::import_db(conn, &source, &opts);
    bar.finish();
    Ok(report?.to_edn())
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
                assert!(!op.arities.is_empty() && op.example.starts_with(&format!("dthk {} ", op.name)), "{}", op.name);
            }
            for arity in op.arities {
                let rest = arity.iter().position(|p| p.is_rest());
                assert!(rest.is_none_or(|i| i == arity.len() - 1), "{}: rest parameters must come last", op.name);
            }
        }
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
