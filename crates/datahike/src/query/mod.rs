//! Datalog queries with Datahike's dialect and result shapes.
//!
//! The pipeline: EDN -> AST ([`parser`]) -> execution over relations (`exec`, with index and
//! join choices from `plan` and rules solved in `rules`) -> aggregation and the result shape
//! of `:find`, returned as [`Edn`] that prints as Clojure prints it.
//!
//! ```
//! use datahike::query::{q, QueryInput};
//! use datahike::{edn::read_str, Config};
//! let config = Config::parse("{:store {:backend :memory :id \"query-doc\"} :schema-flexibility :read}").unwrap();
//! datahike::create_database(&config).unwrap();
//! let conn = datahike::connect(&config).unwrap();
//! conn.transact(&read_str(r#"[{:name "Ivan" :age 30} {:name "Petr" :age 15}]"#).unwrap()).unwrap();
//! let query = read_str("[:find ?n . :in $ ?min :where [?e :name ?n] [?e :age ?a] [(> ?a ?min)]]").unwrap();
//! let result = q(&query, &[QueryInput::Db(conn.db()), QueryInput::Edn(read_str("18").unwrap())]).unwrap();
//! assert_eq!(result.to_string(), "\"Ivan\"");
//! # conn.release().unwrap();
//! ```
//!
//! ## Functions and aggregates from Rust
//!
//! Besides the built-ins (Datahike's, `clojure.string/...` and common `clojure.core`
//! functions), a query calls functions and aggregates written in Rust, in the two ways Datahike
//! resolves them: a namespace-qualified symbol registered once per process with
//! [`register_function`] / [`register_aggregate`], or a closure passed as an input for a
//! scalar `:in` variable ([`QueryInput::function`], [`QueryInput::aggregate`]) and called as
//! `[(?f ?x) ?y]` or aggregated as `(aggregate ?agg ?x)`. An error a closure returns fails the
//! query with a `query/eval` error naming it.
//!
//! ```
//! use datahike::query::{q, register_aggregate, register_function, QueryInput};
//! use datahike::{edn::read_str, Config, Edn, Value};
//! let config = Config::parse("{:store {:backend :memory :id \"custom-doc\"} :schema-flexibility :read}").unwrap();
//! datahike::create_database(&config).unwrap();
//! let conn = datahike::connect(&config).unwrap();
//! conn.transact(&read_str("[{:name \"Ivan\" :age 30} {:name \"Petr\" :age 15}]").unwrap()).unwrap();
//!
//! register_function("my.ns/double", |args: &[Value]| match args {
//!     [Value::Long(x)] => Ok(Value::Long(x * 2)),
//!     _ => Err(format!("my.ns/double takes one long, got {args:?}").into()),
//! })
//! .unwrap();
//! register_aggregate("my.ns/spread", |_args: &[Value], vals: &[Value]| {
//!     let longs: Vec<i64> = vals.iter().filter_map(Value::as_long).collect();
//!     Ok(Edn::Int(longs.iter().max().unwrap_or(&0) - longs.iter().min().unwrap_or(&0)))
//! })
//! .unwrap();
//! let query = read_str("[:find ?d . :where [?e :name \"Ivan\"] [?e :age ?a] [(my.ns/double ?a) ?d]]").unwrap();
//! assert_eq!(q(&query, &[conn.db().into()]).unwrap(), Edn::Int(60));
//! let query = read_str("[:find (my.ns/spread ?a) . :where [_ :age ?a]]").unwrap();
//! assert_eq!(q(&query, &[conn.db().into()]).unwrap(), Edn::Int(15));
//!
//! // The same as inputs, without registering names.
//! let query = read_str(
//!     "[:find ?n (aggregate ?sum ?a) :in $ ?adult? ?sum :where [?e :name ?n] [?e :age ?a] [(?adult? ?a)]]",
//! )
//! .unwrap();
//! let adult = QueryInput::function(|args: &[Value]| Ok(Value::Boolean(matches!(args, [Value::Long(a)] if *a >= 18))));
//! let sum = QueryInput::aggregate(|_args: &[Value], vals: &[Value]| Ok(Edn::Int(vals.iter().filter_map(Value::as_long).sum())));
//! let result = q(&query, &[conn.db().into(), adult, sum]).unwrap();
//! assert_eq!(result.to_string(), "[[\"Ivan\" 30]]");
//! # conn.release().unwrap();
//! ```
//!
//! [`query_stats`] and [`explain`] run a query and report the plan it ran with.
//!
//! Every source may be a view (`Db::history`, `as_of`, `since`, `filter`): the engine reads it
//! as any database, through its indices.

mod aggregates;
mod builtins;
mod custom;
mod deadline;
mod exec;
pub mod parser;
mod plan;
mod product;
mod rel;
mod rules;
mod stats;
mod strings;

pub use stats::ClauseStat;

use crate::db::Db;
use crate::edn::{Edn, Keyword, Symbol};
pub use crate::error::QueryError;
use crate::error::{Detail, Error, Result};
use crate::value::Value;
use exec::{const_value, Ctx, Engine, Source};
use parser::{Binding, FindElem, FindSpec, InBinding, Query, ReturnMaps};
use rel::{Rel, RowSet, Tracked};
use rustc_hash::FxHashMap as HashMap;

pub use custom::{register_aggregate, register_function, AggregateFn, FnResult, QueryFn};

/// One input of a query, matched positionally to `:in`: a database, an EDN value (a scalar, a
/// collection, a relation, rules for `%`, or a collection of tuples used as a source), or a
/// function or aggregate for a scalar variable (`[(?f ?x) ?y]`, `(aggregate ?agg ?x)`).
#[derive(Clone)]
pub enum QueryInput {
    /// A database value.
    Db(Db),
    /// Any EDN value.
    Edn(Edn),
    /// A function, called as `[(?f args...)]` or `[(?f args...) binding]`.
    Function(QueryFn),
    /// An aggregate, used in `:find` as `(aggregate ?agg ?x)`.
    Aggregate(AggregateFn),
}

impl QueryInput {
    /// A function input from a closure.
    pub fn function(f: impl Fn(&[Value]) -> FnResult<Value> + Send + Sync + 'static) -> QueryInput {
        QueryInput::Function(std::sync::Arc::new(f))
    }

    /// An aggregate input from a closure of the constant arguments and the group's values.
    pub fn aggregate(f: impl Fn(&[Value], &[Value]) -> FnResult<Edn> + Send + Sync + 'static) -> QueryInput {
        QueryInput::Aggregate(std::sync::Arc::new(f))
    }
}

impl std::fmt::Debug for QueryInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryInput::Db(db) => f.debug_tuple("Db").field(db).finish(),
            QueryInput::Edn(x) => f.debug_tuple("Edn").field(x).finish(),
            QueryInput::Function(_) => f.write_str("Function(..)"),
            QueryInput::Aggregate(_) => f.write_str("Aggregate(..)"),
        }
    }
}

impl From<Db> for QueryInput {
    fn from(db: Db) -> Self {
        QueryInput::Db(db)
    }
}
impl From<&Db> for QueryInput {
    fn from(db: &Db) -> Self {
        QueryInput::Db(db.clone())
    }
}
impl From<Edn> for QueryInput {
    fn from(x: Edn) -> Self {
        QueryInput::Edn(x)
    }
}

fn qerr(e: QueryError) -> Error {
    Error::Query(e)
}

/// Runs a query (vector form, map form, a string of either, or an arg map
/// `{:query q :args [..] :offset n :limit m :timeout ms :memory-limit bytes}`) against
/// `inputs`, returning Datahike's result shape. The `:args` of an arg map are the inputs;
/// giving inputs as well is an error. A query that runs longer than its `:timeout`
/// (milliseconds, in the map form or the arg map; Datomic's option, which Datahike lacks)
/// stops with a `query/timeout` error. A query whose intermediate results (relations, result
/// tuples, aggregate groups) would take more bytes than its budget stops with a
/// `query/memory-limit` error: the budget is the smallest `:query-memory-limit` of its
/// databases (1 GiB by default), lowered by the query's own `:memory-limit`.
pub fn q(query: &Edn, inputs: &[QueryInput]) -> Result<Edn> {
    let started = std::time::Instant::now();
    let parsed = parse_arg(query)?;
    let args = arg_inputs(query, inputs)?;
    let result = run(&parsed, args.as_deref().unwrap_or(inputs));
    let elapsed = started.elapsed();
    if elapsed >= slow_query() {
        tracing::info!(target: "datahike::query", ms = elapsed.as_millis() as u64, query = %query, "slow query");
    }
    result
}

/// A query that takes at least this long is logged (`tracing`, target `datahike::query`, at
/// info level): one second, or `DATAHIKE_SLOW_QUERY_MS` milliseconds.
fn slow_query() -> std::time::Duration {
    static SLOW: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();
    *SLOW.get_or_init(|| {
        let ms = std::env::var("DATAHIKE_SLOW_QUERY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
        std::time::Duration::from_millis(ms)
    })
}

/// Runs a query as [`q`] does and reports how it ran (Datahike's `query-stats`):
/// `{:ret <result> :query <query> :stats [{:clause .. :type .. :access .. :rows-in .. :rows-out
/// .. :t <ms> :branches [..]} ..]}`, one entry per clause in the order the planner chose.
pub fn query_stats(query: &Edn, inputs: &[QueryInput]) -> Result<Edn> {
    let parsed = parse_arg(query)?;
    let args = arg_inputs(query, inputs)?;
    let (ret, stats) = execute(&parsed, args.as_deref().unwrap_or(inputs), true)?;
    let kw = |k: &str| Edn::Keyword(Keyword::new(k));
    Ok(Edn::Map(vec![
        (kw("ret"), ret),
        (kw("query"), query.clone()),
        (kw("stats"), Edn::Vector(stats.iter().map(ClauseStat::to_edn).collect())),
    ]))
}

/// Runs a query and describes the plan it ran with, as text: each clause in evaluation order
/// with the index and strategy of each data pattern, rows in and out, and time.
pub fn explain(query: &Edn, inputs: &[QueryInput]) -> Result<String> {
    let parsed = parse_arg(query)?;
    let args = arg_inputs(query, inputs)?;
    let started = std::time::Instant::now();
    let (_, stats) = execute(&parsed, args.as_deref().unwrap_or(inputs), true)?;
    let find = Edn::Vector(parsed.find.elements().iter().map(FindElem::form).collect());
    Ok(stats::explain_text(&find, &stats, started.elapsed()))
}

/// The `:args` of an arg map, as the inputs (an error when inputs are given as well).
fn arg_inputs(query: &Edn, inputs: &[QueryInput]) -> Result<Option<Vec<QueryInput>>> {
    let Some(args) = query.get_kw("args").filter(|_| query.get_kw("query").is_some()) else { return Ok(None) };
    let Some(args) = args.as_seq() else {
        let message = format!(":args of a query arg map should be a vector, got {args}");
        return Err(qerr(QueryError::Inputs(Detail::new(message).value(args.clone()))));
    };
    if !inputs.is_empty() {
        return Err(qerr(QueryError::Inputs(
            format!("The query arg map has :args and {} more inputs were given; pass the inputs one way", inputs.len())
                .into(),
        )));
    }
    Ok(Some(args.iter().cloned().map(QueryInput::Edn).collect()))
}

/// The query of an arg map `{:query q :offset n :limit m :timeout ms :memory-limit bytes}`, or
/// the query itself, parsed.
fn parse_arg(query: &Edn) -> Result<Query> {
    let (query_form, offset, limit, timeout) = match query {
        Edn::Map(_) if query.get_kw("query").is_some() => {
            let n = |k: &str| match query.get_kw(k) {
                Some(Edn::Int(n)) if *n >= 0 => Ok(Some(*n as usize)),
                None | Some(Edn::Nil) => Ok(None),
                Some(other) => {
                    let message = format!(":{k} should be a non-negative integer, got {other}");
                    Err(qerr(QueryError::Syntax(Detail::new(message).form(Edn::kw(k)).value(other.clone()))))
                }
            };
            let timeout = parser::parse_timeout(query.get_kw("timeout").unwrap_or(&Edn::Nil)).map_err(qerr)?;
            let memory = parser::parse_memory_limit(query.get_kw("memory-limit").unwrap_or(Edn::NIL)).map_err(qerr)?;
            (query.get_kw("query").unwrap_or(Edn::NIL), n("offset")?, n("limit")?, (timeout, memory))
        }
        _ => (query, None, None, (None, None)),
    };
    let (timeout, memory_limit) = timeout;
    let mut parsed = parser::parse_query(query_form).map_err(qerr)?;
    if offset.is_some() {
        parsed.offset = offset;
    }
    if limit.is_some() {
        parsed.limit = limit;
    }
    if timeout.is_some() {
        parsed.timeout = timeout;
    }
    if let Some(m) = memory_limit {
        parsed.memory_limit = Some(parsed.memory_limit.map_or(m, |own| own.min(m)));
    }
    if let Some(spec) = query.get_kw("order-by").filter(|_| query.get_kw("query").is_some()) {
        if let Some(order) = parser::parse_order_by(spec, &parsed.find).map_err(qerr)? {
            parsed.order_by = Some(order);
        }
    }
    Ok(parsed)
}

/// Runs a parsed query.
pub fn run(query: &Query, inputs: &[QueryInput]) -> Result<Edn> {
    execute(query, inputs, false).map(|(ret, _)| ret)
}

/// Runs a parsed query, with per-clause statistics when `record`.
fn execute(query: &Query, inputs: &[QueryInput], record: bool) -> Result<(Edn, Vec<ClauseStat>)> {
    // The budget: the smallest of the databases' limits, lowered by the query's own.
    let memory_limit = inputs
        .iter()
        .filter_map(|i| if let QueryInput::Db(db) = i { Some(db.config().query_memory_limit) } else { None })
        .min()
        .unwrap_or(crate::Config::DEFAULT_QUERY_MEMORY_LIMIT);
    let memory_limit = query.memory_limit.map_or(memory_limit, |own| own.min(memory_limit));
    let _deadline = deadline::start(query.timeout, memory_limit);
    // Without `:in`, a query whose clauses need no database runs with no inputs at all.
    let in_bindings: &[InBinding] = if inputs.is_empty() && query.implicit_in { &[] } else { &query.inputs };
    if inputs.len() != in_bindings.len() {
        let bindings: Vec<Edn> = query.inputs.iter().map(in_form).collect();
        let message = format!(
            "Wrong number of inputs: :in has {} bindings ({}), {} given",
            query.inputs.len(),
            bindings.iter().map(Edn::to_string).collect::<Vec<_>>().join(" "),
            inputs.len()
        );
        let detail = Detail::new(message)
            .binding(Edn::Vector(bindings))
            .expected(Edn::Int(query.inputs.len() as i64))
            .value(Edn::Int(inputs.len() as i64));
        return Err(qerr(QueryError::Inputs(detail)));
    }
    let mut ctx = Ctx { sources: HashMap::default(), rules: HashMap::default(), fns: HashMap::default() };
    let mut rel = Rel::unit();
    // What scalar `:in` variables hold, for aggregate arguments.
    let mut scalars: HashMap<Symbol, &QueryInput> = HashMap::default();
    // An input that only gives a pull pattern stays out of the relation: a pattern such as
    // `[* {:friend [:name]}]` is no value a clause could use.
    let mut clause_vars = std::collections::BTreeSet::new();
    query.clauses.iter().for_each(|c| c.vars(&mut clause_vars));
    let only_pattern = |b: &InBinding| match b {
        InBinding::Bind(Binding::Scalar(v)) => {
            !clause_vars.contains(v)
                && query
                    .find
                    .elements()
                    .iter()
                    .any(|e| matches!(e, FindElem::Pull { pattern: Edn::Symbol(p), .. } if p == v))
        }
        _ => false,
    };
    for (binding, input) in in_bindings.iter().zip(inputs) {
        if let InBinding::Bind(Binding::Scalar(v)) = binding {
            scalars.insert(*v, input);
        }
        match (binding, input) {
            (InBinding::Bind(Binding::Scalar(v)), QueryInput::Function(f)) => {
                ctx.fns.insert(*v, f.clone());
            }
            (InBinding::Bind(Binding::Scalar(_)), QueryInput::Aggregate(_)) => {}
            (b, QueryInput::Function(_) | QueryInput::Aggregate(_)) => {
                let message = format!(
                    "A function or aggregate can only be passed for a scalar :in variable such as ?f, not for {}",
                    in_form(b)
                );
                return Err(qerr(QueryError::Inputs(Detail::new(message).binding(in_form(b)))));
            }
            (b, QueryInput::Edn(_)) if only_pattern(b) => {}
            (InBinding::Source(name), QueryInput::Db(db)) => {
                ctx.sources.insert(*name, Source::Db(db.clone()));
            }
            (InBinding::Source(name), QueryInput::Edn(coll)) => {
                ctx.sources.insert(*name, Source::Coll(coll_source(*name, coll)?));
            }
            (InBinding::Rules, QueryInput::Edn(rules)) => {
                for rule in parser::parse_rules(rules).map_err(qerr)? {
                    ctx.rules.entry(rule.name).or_default().push(rule);
                }
            }
            (InBinding::Bind(b), QueryInput::Edn(x)) => rel = rel.join(bind_input(b, x)?)?,
            (b, QueryInput::Db(_)) => {
                let message = format!("A database was passed for :in binding {}", in_form(b));
                return Err(qerr(QueryError::Inputs(Detail::new(message).binding(in_form(b)))));
            }
        }
    }
    check_rule_calls(query, &ctx)?;
    // Pull expressions are compiled once per query, against their source database.
    let mut pulls: Vec<Option<(Db, crate::pull::PullPattern)>> = Vec::new();
    for e in query.find.elements() {
        match e {
            FindElem::Pull { source, pattern, .. } => {
                let db = match ctx.sources.get(source) {
                    Some(Source::Db(db)) => db.clone(),
                    _ => {
                        let message = format!("pull in :find needs a database as source {source}");
                        return Err(qerr(QueryError::Inputs(Detail::new(message).form(e.form()))));
                    }
                };
                // A pattern may be given as an :in variable.
                let pattern = match pattern {
                    Edn::Symbol(p) => query
                        .inputs
                        .iter()
                        .zip(inputs)
                        .find_map(|(b, input)| match (b, input) {
                            (InBinding::Bind(Binding::Scalar(v)), QueryInput::Edn(x)) if v == p => Some(x.clone()),
                            _ => None,
                        })
                        .ok_or_else(|| {
                            let message = format!("pull pattern variable {p} is not bound by :in");
                            let detail = Detail::new(message).form(e.form()).vars([Edn::Symbol(*p)]);
                            qerr(QueryError::Binding(detail))
                        })?,
                    other => other.clone(),
                };
                pulls.push(Some((db.clone(), crate::pull::PullPattern::parse(&pattern, &db)?)));
            }
            _ => pulls.push(None),
        }
    }
    let aggs = query.find.elements().iter().map(|e| resolve_aggregate(e, &scalars)).collect::<Result<Vec<_>>>()?;
    let default_src = Symbol::new("$");
    let mut eng = Engine::new(&ctx);
    if record {
        eng.stats = Some(stats::Recorder::new());
    }
    let tuples = find_tuples(&mut eng, query, rel, default_src)?;
    deadline::check()?;
    let stats = eng.stats.take().map(stats::Recorder::finish).unwrap_or_default();
    Ok((shape(query, &tuples, &pulls, &aggs)?, stats))
}

/// An aggregate of `:find` with its function and arguments resolved.
enum Agg {
    /// A built-in aggregate with constant arguments.
    Builtin(Symbol, Vec<Edn>),
    /// A custom aggregate: its name (or `:in` variable), the function and its arguments.
    Custom(Symbol, AggregateFn, Vec<Value>),
}

/// Resolves an aggregate element as Datahike does: `(aggregate ?f ...)` with `?f` from `:in`,
/// a built-in aggregate, or a namespace-qualified name registered from Rust. Variables among
/// the arguments take their `:in` values.
fn resolve_aggregate(elem: &FindElem, scalars: &HashMap<Symbol, &QueryInput>) -> Result<Option<Agg>> {
    let FindElem::Aggregate { name, args, .. } = elem else { return Ok(None) };
    let form = || {
        let mut xs = vec![Edn::Symbol(*name)];
        xs.extend(args.iter().cloned());
        xs.push(Edn::Symbol(elem.var()));
        Edn::List(xs)
    };
    let arg = |x: &Edn| -> Result<Edn> {
        match x {
            Edn::Symbol(v) if parser::is_var(*v) => match scalars.get(v) {
                Some(QueryInput::Edn(x)) => Ok(x.clone()),
                _ => {
                    let message = format!("Aggregate argument {v} of {} is not bound to a value in :in", form());
                    Err(qerr(QueryError::Binding(Detail::new(message).form(form()).vars([Edn::Symbol(*v)]))))
                }
            },
            other => Ok(other.clone()),
        }
    };
    let values = |xs: &[Edn]| -> Result<Vec<Value>> { xs.iter().map(|x| input_value(&arg(x)?)).collect() };
    if name.as_str() == "aggregate" {
        let f = match args.first() {
            Some(Edn::Symbol(v)) if parser::is_var(*v) => match scalars.get(v) {
                Some(QueryInput::Aggregate(f)) => f.clone(),
                _ => {
                    let message =
                        format!("{v} in {} is not bound to an aggregate in :in (pass QueryInput::Aggregate)", form());
                    return Err(qerr(QueryError::Binding(Detail::new(message).form(form()).vars([Edn::Symbol(*v)]))));
                }
            },
            _ => {
                let message = format!("Cannot parse {}: expected (aggregate ?f args... ?x) with ?f from :in", form());
                return Err(qerr(QueryError::Syntax(Detail::new(message).form(form()))));
            }
        };
        let Some(Edn::Symbol(v)) = args.first() else { return Err(qerr(QueryError::Internal("aggregate".into()))) };
        return Ok(Some(Agg::Custom(*v, f, values(&args[1..])?)));
    }
    if aggregates::is_aggregate(*name) {
        return Ok(Some(Agg::Builtin(*name, args.iter().map(arg).collect::<Result<_>>()?)));
    }
    match custom::aggregate(*name) {
        Some(f) => Ok(Some(Agg::Custom(*name, f, values(args)?))),
        None => {
            let detail = Detail::new(format!("Unknown aggregate function {name} in :find"))
                .form(form())
                .with("function", Edn::Symbol(*name))
                .choices(aggregates::BUILTIN.iter().map(|a| Edn::Symbol(Symbol::new(a))));
            Err(qerr(QueryError::Syntax(detail)))
        }
    }
}

/// An `:in` binding as written.
fn in_form(b: &InBinding) -> Edn {
    match b {
        InBinding::Source(s) => Edn::Symbol(*s),
        InBinding::Rules => Edn::Symbol(Symbol::new("%")),
        InBinding::Bind(b) => binding_form(b),
    }
}

fn binding_form(b: &Binding) -> Edn {
    match b {
        Binding::Ignore => Edn::Symbol(Symbol::new("_")),
        Binding::Scalar(v) => Edn::Symbol(*v),
        Binding::Tuple(xs) => Edn::Vector(xs.iter().map(binding_form).collect()),
        Binding::Coll(x) => Edn::Vector(vec![binding_form(x), Edn::Symbol(Symbol::new("..."))]),
    }
}

fn check_rule_calls(query: &Query, ctx: &Ctx) -> Result<()> {
    fn walk(c: &parser::Clause, ctx: &Ctx) -> Result<()> {
        match c {
            parser::Clause::RuleCall { name, form, .. } if !ctx.rules.contains_key(name) => {
                Err(qerr(QueryError::Syntax(unknown_rule(*name, form, ctx.rules.keys()))))
            }
            parser::Clause::Not { clauses, .. } => clauses.iter().try_for_each(|c| walk(c, ctx)),
            parser::Clause::Or { branches, .. } => branches.iter().flatten().try_for_each(|c| walk(c, ctx)),
            _ => Ok(()),
        }
    }
    query.clauses.iter().try_for_each(|c| walk(c, ctx))?;
    for rules in ctx.rules.values() {
        for r in rules {
            r.body.iter().try_for_each(|c| walk(c, ctx))?;
        }
    }
    Ok(())
}

/// A call of a rule that no rule set defines; `known` are the rules that are.
pub(crate) fn unknown_rule<'a>(name: Symbol, form: &Edn, known: impl Iterator<Item = &'a Symbol>) -> Detail {
    let mut known: Vec<Symbol> = known.copied().collect();
    known.sort();
    Detail::new(format!("Unknown rule '{name} in {form}"))
        .form(form.clone())
        .with("rule", Edn::Symbol(name))
        .choices(known.into_iter().map(Edn::Symbol))
}

fn input_value(x: &Edn) -> Result<Value> {
    const_value(x).ok_or_else(|| {
        let message = format!("{x} is not supported as a query input value yet");
        qerr(QueryError::Unsupported(Detail::new(message).value(x.clone())))
    })
}

fn coll_source(name: Symbol, coll: &Edn) -> Result<Vec<Vec<Value>>> {
    let items = coll.as_seq().ok_or_else(|| {
        let message = format!("Source {name} should be a database or a collection of tuples, got {coll}");
        qerr(QueryError::Inputs(Detail::new(message).binding(Edn::Symbol(name)).value(coll.clone())))
    })?;
    items
        .iter()
        .map(|t| match t.as_seq() {
            Some(xs) => xs.iter().map(input_value).collect(),
            None => {
                let message = format!("Source {name} should hold tuples, got {t}");
                Err(qerr(QueryError::Inputs(Detail::new(message).binding(Edn::Symbol(name)).value(t.clone()))))
            }
        })
        .collect()
}

fn bind_input(b: &Binding, x: &Edn) -> Result<Rel> {
    let mut vars = Vec::new();
    b.vars(&mut vars);
    let mut rows = Vec::new();
    bind_edn(b, x, &mut rows)?;
    // A variable repeated in one binding must take equal values.
    let mut out = Rel::empty(Vec::new());
    let mut keep = Vec::new();
    for (i, v) in vars.iter().enumerate() {
        if !vars[..i].contains(v) {
            out.vars.push(*v);
            keep.push(i);
        }
    }
    'row: for row in rows {
        for (i, v) in vars.iter().enumerate() {
            let first = vars.iter().position(|x| x == v).unwrap_or(i);
            if row[first] != row[i] {
                continue 'row;
            }
        }
        out.push_joined(&[], keep.iter().map(|i| row[*i].clone()))?;
    }
    Ok(out)
}

fn bind_edn(b: &Binding, x: &Edn, out: &mut Vec<Vec<Value>>) -> Result<()> {
    match b {
        Binding::Ignore => out.push(Vec::new()),
        Binding::Scalar(_) => out.push(vec![input_value(x)?]),
        Binding::Tuple(bs) => {
            let xs = x.as_seq().filter(|xs| xs.len() >= bs.len()).ok_or_else(|| {
                let message = format!("Cannot bind value {x} to tuple {}", binding_form(b));
                qerr(QueryError::Inputs(Detail::new(message).binding(binding_form(b)).value(x.clone())))
            })?;
            let mut rows = vec![Vec::new()];
            for (b, x) in bs.iter().zip(xs) {
                let mut part = Vec::new();
                bind_edn(b, x, &mut part)?;
                let mut next = Vec::new();
                for r in &rows {
                    for p in &part {
                        let mut r: Vec<Value> = r.clone();
                        r.extend(p.iter().cloned());
                        next.push(r);
                    }
                }
                rows = next;
            }
            out.extend(rows);
        }
        // A map is the sequence of its entries, `[k v]` each, as Clojure sequences it.
        Binding::Coll(inner) if matches!(x, Edn::Map(_)) => {
            let Edn::Map(entries) = x else { return Ok(()) };
            for (k, v) in entries {
                bind_edn(inner, &Edn::Vector(vec![k.clone(), v.clone()]), out)?;
            }
        }
        Binding::Coll(inner) => {
            let xs = x.as_seq().ok_or_else(|| {
                let message = format!("Cannot bind value {x} to collection {}", binding_form(b));
                qerr(QueryError::Inputs(Detail::new(message).binding(binding_form(b)).value(x.clone())))
            })?;
            for x in xs {
                bind_edn(inner, x, out)?;
            }
        }
    }
    Ok(())
}

/// Evaluates `:where` over the `:in` relation `rel` and returns the distinct tuples over the
/// find and `:with` variables. Clauses that share no variable are evaluated apart, and the
/// tuples are their product, enumerated when shaped (`product`).
fn find_tuples(eng: &mut Engine, query: &Query, rel: Rel, src: Symbol) -> Result<product::Tuples> {
    let mut vars: Vec<Symbol> = query.find.elements().iter().map(FindElem::var).collect();
    vars.extend(query.with.iter().copied());
    let width = vars.len();
    // How many distinct tuples the result shows at most, when fewer than all (`shape`).
    let has_aggs = query.find.elements().iter().any(|e| matches!(e, FindElem::Aggregate { .. }));
    let ordered = query.order_by.is_some() && matches!(query.find, FindSpec::Rel(_));
    let wanted = match (&query.find, query.limit.filter(|n| *n > 0)) {
        _ if has_aggs || ordered => None,
        (FindSpec::Scalar(_) | FindSpec::Tuple(_), _) => Some(1),
        (_, Some(n)) => Some(query.offset.unwrap_or(0).saturating_add(n)),
        _ => None,
    };
    let parts = product::parts(&query.clauses, &rel.vars);
    let rels: Vec<Rel> = if parts.len() <= 1 || rel.n_rows == 0 {
        // The last pattern makes the tuples straight away; the rows stay for `explain` only.
        let goal = exec::RowGoal {
            vars: vars.clone(),
            n: wanted.unwrap_or(usize::MAX),
            keep_rows: eng.stats.is_some(),
            sink: std::cell::RefCell::new(None),
        };
        let r = exec::eval_clauses(eng, query.clauses.iter().collect(), rel, src, Some(&goal))?;
        if let Some(set) = goal.sink.into_inner() {
            return Ok(product::Tuples { parts: vec![(set, (0..width).collect())], width });
        }
        vec![r]
    } else {
        let mut rels = Vec::with_capacity(parts.len());
        let mut input = Some(rel);
        let mut empty = false;
        for part in parts {
            let start = if part.has_input { input.take().unwrap_or_else(Rel::unit) } else { Rel::unit() };
            if empty {
                // The product is empty already: only the part's variables matter (as for the
                // clauses left when a relation runs empty).
                let mut vs = std::collections::BTreeSet::new();
                part.clauses.iter().filter(|c| !matches!(c, parser::Clause::Not { .. })).for_each(|c| c.vars(&mut vs));
                let mut r = Rel::empty(start.vars.clone());
                r.vars.extend(vs.into_iter().filter(|v| !start.vars.contains(v)));
                rels.push(r);
                continue;
            }
            // Each part's first `wanted` distinct projections hold the product's first `wanted`
            // tuples; a part that binds no find variable needs one row.
            let goal = wanted.map(|n| {
                let mut part_vars = std::collections::BTreeSet::new();
                part.clauses.iter().for_each(|c| c.vars(&mut part_vars));
                part_vars.extend(start.vars.iter().copied());
                let vars: Vec<Symbol> = vars.iter().copied().filter(|v| part_vars.contains(v)).collect();
                let n = if vars.is_empty() { 1 } else { n };
                exec::RowGoal { vars, n, keep_rows: true, sink: std::cell::RefCell::new(None) }
            });
            let r = exec::eval_clauses(eng, part.clauses, start, src, goal.as_ref())?;
            empty = r.n_rows == 0;
            rels.push(r);
        }
        if let Some(r) = input {
            rels.push(r);
        }
        rels
    };
    let mut found = vec![false; width];
    let mut tuple_parts = Vec::new();
    let empty = rels.iter().any(|r| r.n_rows == 0);
    for r in &rels {
        let positions: Vec<usize> = (0..width).filter(|p| !found[*p] && r.has(vars[*p])).collect();
        positions.iter().for_each(|p| found[*p] = true);
        if positions.is_empty() && rels.len() > 1 {
            // A part that binds no find variable: one empty row when it has rows.
            let mut set = RowSet::with_capacity(0, 1)?;
            if r.n_rows > 0 {
                set.insert([])?;
            }
            tuple_parts.push((set, positions));
            continue;
        }
        let cols: Vec<usize> = positions.iter().filter_map(|p| r.col(vars[*p])).collect();
        let mut set = RowSet::with_capacity(cols.len(), if empty { 0 } else { r.n_rows })?;
        if !empty {
            for row in r.rows() {
                deadline::tick()?;
                set.insert(cols.iter().map(|c| row[*c].clone()))?;
            }
        }
        tuple_parts.push((set, positions));
    }
    if let Some(p) = found.iter().position(|f| !f) {
        let v = vars[p];
        let message = format!("Insufficient bindings: {v} of :find is not bound by :where");
        return Err(qerr(QueryError::Binding(Detail::new(message).vars([Edn::Symbol(v)]))));
    }
    Ok(product::Tuples { parts: tuple_parts, width })
}

/// Charges the rows of a result: bytes of the values and the row vectors.
fn charge_rows(charge: &mut deadline::Charge, n_rows: usize, n_values: usize) -> Result<()> {
    let row = n_values * std::mem::size_of::<Edn>() + std::mem::size_of::<Vec<Edn>>();
    charge.add(n_rows.saturating_mul(row))
}

/// Projection, aggregation and the result shape of `:find`.
fn shape(
    query: &Query,
    tuples: &product::Tuples,
    pulls: &[Option<(Db, crate::pull::PullPattern)>],
    aggs: &[Option<Agg>],
) -> Result<Edn> {
    let elems = query.find.elements();
    let n_find = elems.len();
    let has_aggs = elems.iter().any(|e| matches!(e, FindElem::Aggregate { .. }));
    let with = !query.with.is_empty();
    let ordered = query.order_by.is_some() && matches!(query.find, FindSpec::Rel(_));
    let limit = query.limit.filter(|n| *n > 0);
    // Without aggregates or ordering, only the tuples the result shows are shaped.
    let needed = match (&query.find, limit) {
        _ if has_aggs || ordered => usize::MAX,
        (FindSpec::Scalar(_) | FindSpec::Tuple(_), _) => 1,
        (_, Some(n)) => query.offset.unwrap_or(0).saturating_add(n),
        _ => usize::MAX,
    };
    let mut row_bytes = deadline::Charge::default();
    let rows: Vec<Vec<Edn>> = if has_aggs {
        aggregate(elems, aggs, pulls, tuples, &mut row_bytes)?
    } else {
        // The rows are counted before any is built: a result too large fails at once.
        let n_rows = tuples.len().min(needed);
        charge_rows(&mut row_bytes, n_rows, n_find)?;
        let mut rows = Vec::new();
        rows.try_reserve_exact(n_rows)
            .map_err(|_| deadline::allocation_failed(n_rows.saturating_mul(std::mem::size_of::<Vec<Edn>>())))?;
        tuples.for_each(|tuple| {
            if rows.len() >= needed {
                return Ok(std::ops::ControlFlow::Break(()));
            }
            let mut row = Vec::with_capacity(n_find);
            for (i, v) in tuple.iter().take(n_find).enumerate() {
                row.push(present(pulls, i, v)?);
            }
            rows.push(row);
            Ok(std::ops::ControlFlow::Continue(()))
        })?;
        rows
    };
    if let (Some(order), FindSpec::Rel(_)) = (&query.order_by, &query.find) {
        // Datahike sorts the rows, then pages them, and returns a vector.
        let mut rows = rows;
        rows.sort_by(|a, b| {
            order
                .iter()
                .map(|(col, desc)| {
                    let c = edn_compare(&a[*col], &b[*col]);
                    if *desc {
                        c.reverse()
                    } else {
                        c
                    }
                })
                .find(|c| c.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let rows =
            rows.into_iter().skip(query.offset.unwrap_or(0)).take(query.limit.filter(|n| *n > 0).unwrap_or(usize::MAX));
        return Ok(Edn::Vector(match &query.return_maps {
            Some(rm) => rows.map(|r| return_map(rm, r)).collect(),
            None => rows.map(Edn::Vector).collect(),
        }));
    }
    let as_vector = has_aggs || with;
    let result = match &query.find {
        FindSpec::Rel(_) => match &query.return_maps {
            Some(rm) => Edn::Vector(rows.into_iter().map(|r| return_map(rm, r)).collect()),
            None if as_vector => Edn::Vector(rows.into_iter().map(Edn::Vector).collect()),
            None => Edn::Set(rows.into_iter().map(Edn::Vector).collect()),
        },
        FindSpec::Coll(_) => Edn::Vector(rows.into_iter().filter_map(|r| r.into_iter().next()).collect()),
        FindSpec::Scalar(_) => rows.into_iter().next().and_then(|r| r.into_iter().next()).unwrap_or(Edn::Nil),
        FindSpec::Tuple(_) => match rows.into_iter().next() {
            None => Edn::Nil,
            Some(r) => match &query.return_maps {
                Some(rm) => return_map(rm, r),
                None => Edn::Vector(r),
            },
        },
    };
    if query.offset.is_none() && limit.is_none() {
        return Ok(result);
    }
    // Datahike pages the unordered result and returns a set.
    let mut result = result;
    let items = match &mut result {
        Edn::Set(xs) | Edn::Vector(xs) => std::mem::take(xs),
        _ => return Ok(result),
    };
    let items = items.into_iter().skip(query.offset.unwrap_or(0)).take(limit.unwrap_or(usize::MAX));
    let mut out: Vec<Edn> = Vec::new();
    for x in items {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    Ok(Edn::Set(out))
}

/// The value of find element `i` in a result row: the entity pulled for a pull element.
fn present(pulls: &[Option<(Db, crate::pull::PullPattern)>], i: usize, v: &Value) -> Result<Edn> {
    Ok(match (pulls.get(i).and_then(Option::as_ref), v) {
        (Some((db, pattern)), Value::Long(e)) => crate::pull::pull_eid(db, pattern, *e)?,
        // A lookup ref or an ident (from :in, say) names its entity, as Datahike's pull resolves
        // its ids with `entid-strict`.
        (Some((db, pattern)), other) => {
            crate::pull::pull_eid(db, pattern, crate::pull::resolve_eid(db, &other.to_edn())?)?
        }
        _ => v.to_edn(),
    })
}

/// Clojure's `compare` on result values: numbers by value across types, then values of one
/// kind by their order; values of different kinds by kind (Clojure would throw there).
fn edn_compare(a: &Edn, b: &Edn) -> std::cmp::Ordering {
    match (const_value(a), const_value(b)) {
        (Some(x), Some(y)) => builtins::compare(&x, &y).unwrap_or_else(|_| x.cmp(&y)),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

fn return_map(rm: &ReturnMaps, row: Vec<Edn>) -> Edn {
    let key = |s: &Symbol| match rm {
        ReturnMaps::Keys(_) => Edn::Keyword(Keyword::new(s.as_str())),
        ReturnMaps::Strs(_) => Edn::Str(s.as_str().into()),
        ReturnMaps::Syms(_) => Edn::Symbol(*s),
    };
    let names = match rm {
        ReturnMaps::Keys(x) | ReturnMaps::Strs(x) | ReturnMaps::Syms(x) => x,
    };
    Edn::Map(names.iter().map(key).zip(row).collect())
}

/// The state of one find element in one group: its value (a grouping element), a fold, or the
/// values collected for an aggregate that needs them all.
enum AggState {
    Value(Value),
    Fold(product::Fold),
    Values(Tracked<Value>),
}

fn aggregate(
    elems: &[FindElem],
    aggs: &[Option<Agg>],
    pulls: &[Option<(Db, crate::pull::PullPattern)>],
    tuples: &product::Tuples,
    row_bytes: &mut deadline::Charge,
) -> Result<Vec<Vec<Edn>>> {
    let group_cols: Vec<usize> =
        (0..elems.len()).filter(|i| !matches!(elems[*i], FindElem::Aggregate { .. })).collect();
    // The groups in the order they are first found, each with its state per element; the
    // values of each group in the order of its tuples.
    let mut keys = RowSet::with_capacity(group_cols.len(), 16)?;
    let mut states: Vec<Vec<AggState>> = Vec::new();
    let fail = |i: usize, name: Symbol, e: QueryError| {
        // The aggregate names what failed; the element names where.
        let at = |d: Detail| d.form(elems[i].form()).with("function", Edn::Symbol(name));
        qerr(match e {
            QueryError::Eval(d) => QueryError::Eval(at(d)),
            QueryError::Syntax(d) => QueryError::Syntax(at(d)),
            other => other,
        })
    };
    tuples.for_each(|tuple| {
        let (k, added) = keys.insert(group_cols.iter().map(|c| tuple[*c].clone()))?;
        if added {
            charge_rows(row_bytes, 1, elems.len())?;
            let mut state = Vec::with_capacity(elems.len());
            for (i, v) in tuple.iter().take(elems.len()).enumerate() {
                state.push(match aggs.get(i).and_then(Option::as_ref) {
                    Some(Agg::Builtin(name, args)) => match product::Fold::of(*name, args) {
                        Some(fold) => AggState::Fold(fold),
                        None => AggState::Values(Tracked::new()),
                    },
                    Some(Agg::Custom(..)) => AggState::Values(Tracked::new()),
                    None => AggState::Value(v.clone()),
                });
            }
            states.push(state);
        }
        for (i, state) in states[k].iter_mut().enumerate() {
            match state {
                AggState::Value(_) => {}
                AggState::Fold(fold) => {
                    let Some(Agg::Builtin(name, _)) = aggs.get(i).and_then(Option::as_ref) else { continue };
                    fold.add(&tuple[i]).map_err(|e| fail(i, *name, e))?;
                }
                AggState::Values(vals) => vals.push(tuple[i].clone())?,
            }
        }
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    if keys.len() == 0 && group_cols.is_empty() {
        // Datahike returns no rows for an aggregate over nothing.
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(states.len());
    for state in states {
        let mut row = Vec::with_capacity(elems.len());
        for (i, (elem, state)) in elems.iter().zip(state).enumerate() {
            row.push(match (aggs.get(i).and_then(Option::as_ref), state) {
                // A grouping element; a pull element groups by its entity (as Datahike does).
                (_, AggState::Value(v)) => present(pulls, i, &v)?,
                (Some(Agg::Builtin(name, _)), AggState::Fold(fold)) => fold.finish().map_err(|e| fail(i, *name, e))?,
                (Some(Agg::Builtin(name, args)), AggState::Values(vals)) => {
                    aggregates::aggregate(*name, args, vals.to_vec()).map_err(|e| fail(i, *name, e))?
                }
                (Some(Agg::Custom(name, f, args)), AggState::Values(vals)) => f(args, &vals).map_err(|e| {
                    let message = format!("Aggregate {name} failed: {e} (aggregating {})", elem.var());
                    let detail = Detail::new(message).form(elem.form()).with("function", Edn::Symbol(*name));
                    qerr(QueryError::Eval(detail))
                })?,
                _ => return Err(qerr(QueryError::Internal("aggregate state of the wrong kind".into()))),
            });
        }
        out.push(row);
    }
    Ok(out)
}
