//! Query text (EDN) to the query AST. Every error names the offending clause or element, as
//! Datahike's parser does; nothing here panics on user input.

use super::QueryError;
use crate::edn::{Edn, Symbol};
use crate::error::Detail;
use std::collections::BTreeSet;
use std::fmt;

/// A query variable such as `?e`.
pub type Var = Symbol;

/// A parsed query: the AST stage of the pipeline.
#[derive(Clone, Debug)]
pub struct Query {
    /// `:find`.
    pub find: FindSpec,
    /// `:keys`, `:strs` or `:syms`.
    pub return_maps: Option<ReturnMaps>,
    /// `:with` variables.
    pub with: Vec<Var>,
    /// `:in` bindings (`[$]` when absent).
    pub inputs: Vec<InBinding>,
    /// Whether `:in` was absent (so `inputs` is the default `[$]`): such a query may also run
    /// with no inputs at all, when its clauses need no database (`ground`, function calls).
    pub implicit_in: bool,
    /// `:where` clauses.
    pub clauses: Vec<Clause>,
    /// `:offset`.
    pub offset: Option<usize>,
    /// `:limit`.
    pub limit: Option<usize>,
    /// `:timeout` in milliseconds.
    pub timeout: Option<u64>,
    /// `:memory-limit` in bytes: lowers the database's `:query-memory-limit` for this query.
    pub memory_limit: Option<u64>,
    /// `:order-by` of a relation find: `(column, descending)` pairs, most significant first.
    pub order_by: Option<Vec<(usize, bool)>>,
}

/// The shape of the result.
#[derive(Clone, Debug)]
pub enum FindSpec {
    /// `?a ?b` — a set of tuples.
    Rel(Vec<FindElem>),
    /// `[?a ...]` — a vector of values.
    Coll(FindElem),
    /// `?a .` — one value or nil.
    Scalar(FindElem),
    /// `[?a ?b]` — one tuple or nil.
    Tuple(Vec<FindElem>),
}

impl FindSpec {
    /// The elements, in order.
    pub fn elements(&self) -> &[FindElem] {
        match self {
            FindSpec::Rel(xs) | FindSpec::Tuple(xs) => xs,
            FindSpec::Coll(x) | FindSpec::Scalar(x) => std::slice::from_ref(x),
        }
    }
}

/// One element of `:find`.
#[derive(Clone, Debug)]
pub enum FindElem {
    /// A variable.
    Var(Var),
    /// `(agg const... ?x)`, or `(aggregate ?f const... ?x)` with `?f` from `:in`.
    Aggregate {
        /// The aggregate's name, e.g. `count`.
        name: Symbol,
        /// Arguments before the variable, e.g. `3` in `(max 3 ?x)`: constants, or variables
        /// bound by `:in`.
        args: Vec<Edn>,
        /// The aggregated variable.
        var: Var,
    },
    /// `(pull ?e pattern)` or `(pull $src ?e pattern)`; the pattern is kept as EDN (or an
    /// `:in` variable naming one) for the pull engine.
    Pull {
        /// The source (`$` by default).
        source: Symbol,
        /// The entity variable.
        var: Var,
        /// The pull pattern, or a variable bound to one.
        pattern: Edn,
    },
}

impl FindElem {
    /// The variable this element reads.
    pub fn var(&self) -> Var {
        match self {
            FindElem::Var(v) | FindElem::Aggregate { var: v, .. } | FindElem::Pull { var: v, .. } => *v,
        }
    }

    /// The element as written.
    pub fn form(&self) -> Edn {
        match self {
            FindElem::Var(v) => Edn::Symbol(*v),
            FindElem::Aggregate { name, args, var } => {
                let mut items = vec![Edn::Symbol(*name)];
                items.extend(args.iter().cloned());
                items.push(Edn::Symbol(*var));
                Edn::List(items)
            }
            FindElem::Pull { source, var, pattern } => {
                let mut items = vec![Edn::Symbol(Symbol::new("pull"))];
                if source.as_str() != "$" {
                    items.push(Edn::Symbol(*source));
                }
                items.push(Edn::Symbol(*var));
                items.push(pattern.clone());
                Edn::List(items)
            }
        }
    }
}

/// `:keys`, `:strs` or `:syms` with their names.
#[derive(Clone, Debug)]
pub enum ReturnMaps {
    /// Keyword keys.
    Keys(Vec<Symbol>),
    /// String keys.
    Strs(Vec<Symbol>),
    /// Symbol keys.
    Syms(Vec<Symbol>),
}

/// One `:in` element.
#[derive(Clone, Debug)]
pub enum InBinding {
    /// `$` or `$name`.
    Source(Symbol),
    /// `%`.
    Rules,
    /// A variable binding form.
    Bind(Binding),
}

/// A binding form of `:in` or of a function result.
#[derive(Clone, Debug, PartialEq)]
pub enum Binding {
    /// `_`
    Ignore,
    /// `?x`
    Scalar(Var),
    /// `[?a ?b]`
    Tuple(Vec<Binding>),
    /// `[?x ...]`, and `[[?a ?b]]` as a collection of tuples.
    Coll(Box<Binding>),
}

impl Binding {
    /// Variables bound by this form.
    pub fn vars(&self, out: &mut Vec<Var>) {
        match self {
            Binding::Ignore => {}
            Binding::Scalar(v) => out.push(*v),
            Binding::Tuple(xs) => xs.iter().for_each(|x| x.vars(out)),
            Binding::Coll(x) => x.vars(out),
        }
    }
}

/// A term of a pattern, a predicate or a rule call.
#[derive(Clone, Debug, PartialEq)]
pub enum Term {
    /// `?x`
    Var(Var),
    /// `_`
    Blank,
    /// A source variable `$` / `$name` (only as a function argument).
    Src(Symbol),
    /// A constant.
    Const(Edn),
}

/// A `:where` clause.
#[derive(Clone, Debug)]
pub enum Clause {
    /// `[$src e a v tx added]`
    Pattern {
        /// The source (`$` by default).
        source: Symbol,
        /// Up to five terms.
        terms: Vec<Term>,
    },
    /// `[(f args...)]`
    Pred {
        /// The function's name.
        func: Symbol,
        /// The arguments.
        args: Vec<Term>,
        /// The clause as written, for errors.
        form: Edn,
    },
    /// `[(f args...) binding]`
    Fn {
        /// The function's name.
        func: Symbol,
        /// The arguments.
        args: Vec<Term>,
        /// What the result binds.
        binding: Binding,
        /// The clause as written, for errors.
        form: Edn,
    },
    /// `(not ...)` / `(not-join [vars] ...)`
    Not {
        /// The default source inside.
        source: Symbol,
        /// `Some` for `not-join`.
        join: Option<Vec<Var>>,
        /// The negated clauses.
        clauses: Vec<Clause>,
        /// The clause as written, for errors.
        form: Edn,
    },
    /// `(or ...)` / `(or-join [vars] ...)`; each branch is a conjunction (`and`).
    Or {
        /// The default source inside.
        source: Symbol,
        /// `Some((required, optional))` for `or-join`.
        join: Option<(Vec<Var>, Vec<Var>)>,
        /// The alternatives.
        branches: Vec<Vec<Clause>>,
        /// The clause as written, for errors.
        form: Edn,
    },
    /// `(rule args...)` / `($src rule args...)`
    RuleCall {
        /// The default source for the rule body.
        source: Symbol,
        /// The rule's name.
        name: Symbol,
        /// The arguments.
        args: Vec<Term>,
        /// The clause as written, for errors.
        form: Edn,
    },
}

impl Clause {
    /// Every variable mentioned (free variables of `not`/`or` included).
    pub fn vars(&self, out: &mut BTreeSet<Var>) {
        let terms = |ts: &[Term], out: &mut BTreeSet<Var>| {
            for t in ts {
                if let Term::Var(v) = t {
                    out.insert(*v);
                }
            }
        };
        match self {
            Clause::Pattern { terms: ts, .. } => terms(ts, out),
            Clause::Pred { args, .. } => terms(args, out),
            Clause::Fn { args, binding, .. } => {
                terms(args, out);
                let mut vs = Vec::new();
                binding.vars(&mut vs);
                out.extend(vs);
            }
            Clause::RuleCall { args, .. } => terms(args, out),
            Clause::Not { join: Some(vars), .. } => out.extend(vars.iter().copied()),
            Clause::Not { clauses, .. } => clauses.iter().for_each(|c| c.vars(out)),
            Clause::Or { join: Some((req, opt)), .. } => {
                out.extend(req.iter().copied());
                out.extend(opt.iter().copied());
            }
            Clause::Or { branches, .. } => branches.iter().flatten().for_each(|c| c.vars(out)),
        }
    }

    /// The clause as EDN, for error messages and `explain`.
    pub fn form(&self) -> Edn {
        match self {
            Clause::Pattern { source, terms } => {
                let mut xs = Vec::new();
                if source.as_str() != "$" {
                    xs.push(Edn::Symbol(*source));
                }
                xs.extend(terms.iter().map(term_form));
                Edn::Vector(xs)
            }
            Clause::Pred { form, .. }
            | Clause::Fn { form, .. }
            | Clause::Not { form, .. }
            | Clause::Or { form, .. }
            | Clause::RuleCall { form, .. } => form.clone(),
        }
    }
}

impl fmt::Display for Clause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.form())
    }
}

fn term_form(t: &Term) -> Edn {
    match t {
        Term::Var(v) | Term::Src(v) => Edn::Symbol(*v),
        Term::Blank => Edn::Symbol(Symbol::new("_")),
        Term::Const(c) => c.clone(),
    }
}

/// A rule branch: `[(name ?a [?req]) clauses...]`.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The rule's name.
    pub name: Symbol,
    /// Head variables in order.
    pub head: Vec<Var>,
    /// How many leading head variables are required to be bound (`[(r [?a] ?b) ...]`).
    pub required: usize,
    /// The body.
    pub body: Vec<Clause>,
}

type PResult<T> = Result<T, QueryError>;

/// A syntax error about `form`, the element of the query or rules at fault.
fn err<T>(message: String, form: &Edn) -> PResult<T> {
    Err(syntax(message, form))
}

fn syntax(message: String, form: &Edn) -> QueryError {
    QueryError::Syntax(Detail::new(message).form(form.clone()))
}

/// A query or rules string that is not EDN: where the reader stopped.
fn unreadable(what: &str, e: &crate::edn::EdnError) -> QueryError {
    let detail = Detail::new(format!("Cannot read {what} string: {e}"))
        .with("line", Edn::Int(i64::try_from(e.line()).unwrap_or(i64::MAX)))
        .with("column", Edn::Int(i64::try_from(e.column()).unwrap_or(i64::MAX)));
    QueryError::Syntax(detail)
}

fn var_list(vars: impl IntoIterator<Item = Var>) -> impl Iterator<Item = Edn> {
    vars.into_iter().map(Edn::Symbol)
}

/// `?x`
pub fn is_var(s: Symbol) -> bool {
    s.as_str().starts_with('?') && s.namespace().is_none()
}
/// `$`, `$name`
pub fn is_src(s: Symbol) -> bool {
    s.as_str().starts_with('$') && s.namespace().is_none()
}
fn is_sym(e: &Edn, text: &str) -> bool {
    matches!(e, Edn::Symbol(s) if s.as_str() == text)
}

/// The sections of a query, in the order error messages list them.
const SECTIONS: [&str; 12] =
    ["find", "keys", "strs", "syms", "with", "in", "where", "offset", "limit", "timeout", "memory-limit", "order-by"];

/// Parses a query in vector form, map form or as a string of either.
pub fn parse_query(q: &Edn) -> PResult<Query> {
    let q = match q {
        Edn::Str(text) => &crate::edn::read_str(text).map_err(|e| unreadable("query", &e))?,
        other => other,
    };
    // The parser recurses over nested clauses; a query built in code may nest deeper than
    // any text the reader accepts, and is refused rather than overflowing the stack.
    let depth = crate::value::edn_depth(q);
    if depth > crate::edn::MAX_DEPTH {
        let message = format!(
            "The query nests {depth} levels deep, more than the {} the EDN reader allows",
            crate::edn::MAX_DEPTH
        );
        return Err(QueryError::Syntax(Detail::new(message).with("depth", Edn::Int(depth as i64))));
    }
    let sections: Vec<(String, Vec<Edn>)> = match q {
        Edn::Vector(xs) | Edn::List(xs) => {
            let mut out: Vec<(String, Vec<Edn>)> = Vec::new();
            for x in xs {
                match x {
                    Edn::Keyword(k) => out.push((k.as_str().to_string(), Vec::new())),
                    other => match out.last_mut() {
                        Some((_, items)) => items.push(other.clone()),
                        None => {
                            return err(format!("Query should start with a keyword such as :find, got {other}"), other)
                        }
                    },
                }
            }
            out
        }
        Edn::Map(entries) => {
            let mut out = Vec::new();
            for (k, v) in entries {
                let Edn::Keyword(k) = k else {
                    return err(format!("Query map keys should be keywords, got {k}"), k);
                };
                let items = match (k.as_str(), v) {
                    ("offset" | "limit" | "timeout" | "memory-limit" | "order-by", v) => vec![v.clone()],
                    (_, Edn::Vector(xs) | Edn::List(xs)) => xs.clone(),
                    (name, other) => {
                        return err(format!("Query section :{name} should be a vector, got {other}"), other)
                    }
                };
                out.push((k.as_str().to_string(), items));
            }
            out
        }
        other => return err(format!("Query should be a vector or a map, got {other}"), other),
    };
    let mut find = None;
    let mut return_maps = None;
    let mut with = Vec::new();
    let mut inputs = None;
    let mut clauses = None;
    let mut offset = None;
    let mut limit = None;
    let mut timeout = None;
    let mut memory_limit = None;
    let mut order_by = None;
    for (key, items) in &sections {
        match key.as_str() {
            "find" => find = Some(parse_find(items)?),
            "keys" | "strs" | "syms" => {
                let names = items
                    .iter()
                    .map(|x| match x {
                        Edn::Symbol(s) => Ok(*s),
                        Edn::Keyword(k) => Ok(Symbol::new(k.as_str())),
                        Edn::Str(s) => Ok(Symbol::new(s)),
                        other => err(format!("Bad :{key} element {other}"), other),
                    })
                    .collect::<PResult<Vec<_>>>()?;
                return_maps = Some(match key.as_str() {
                    "keys" => ReturnMaps::Keys(names),
                    "strs" => ReturnMaps::Strs(names),
                    _ => ReturnMaps::Syms(names),
                });
            }
            "with" => {
                for x in items {
                    match x {
                        Edn::Symbol(s) if is_var(*s) => with.push(*s),
                        other => {
                            return err(format!("Cannot parse :with clause, expected variables, got {other}"), other)
                        }
                    }
                }
            }
            "in" => inputs = Some(items.iter().map(parse_in).collect::<PResult<Vec<_>>>()?),
            "where" => clauses = Some(items.iter().map(parse_clause).collect::<PResult<Vec<_>>>()?),
            "offset" | "limit" => {
                let n = match items.as_slice() {
                    [Edn::Int(n)] if *n >= 0 => Some(*n as usize),
                    [Edn::Nil] => None,
                    _ => {
                        return err(
                            format!("Query :{key} should be a non-negative integer"),
                            &Edn::Vector(items.clone()),
                        )
                    }
                };
                if key == "offset" {
                    offset = n;
                } else {
                    limit = n;
                }
            }
            "timeout" => {
                timeout = match items.as_slice() {
                    [x] => parse_timeout(x)?,
                    _ => {
                        return err(
                            "Query :timeout should be a positive number of milliseconds".into(),
                            &Edn::Vector(items.clone()),
                        )
                    }
                }
            }
            "memory-limit" => {
                memory_limit = match items.as_slice() {
                    [x] => parse_memory_limit(x)?,
                    _ => {
                        return err(
                            "Query :memory-limit should be a positive number of bytes".into(),
                            &Edn::Vector(items.clone()),
                        )
                    }
                }
            }
            "order-by" => {
                order_by = match items.as_slice() {
                    [x] => Some(x.clone()),
                    _ => {
                        return err(
                            "Query :order-by should be a variable, a column index or a vector of them".into(),
                            &Edn::Vector(items.clone()),
                        )
                    }
                }
            }
            other => {
                let sections = SECTIONS.iter().map(|s| format!(":{s}")).collect::<Vec<_>>().join(" ");
                let message = format!("Unknown query section :{other}; expected {sections}");
                let detail = Detail::new(message).form(Edn::kw(other)).choices(SECTIONS.iter().map(|s| Edn::kw(s)));
                return Err(QueryError::Syntax(detail));
            }
        }
    }
    let find = find.ok_or_else(|| QueryError::Syntax("Query should have a :find section".into()))?;
    let clauses = clauses.unwrap_or_default();
    let implicit_in = inputs.is_none();
    let inputs = inputs.unwrap_or_else(|| vec![InBinding::Source(Symbol::new("$"))]);
    let order_by = match order_by {
        Some(spec) => parse_order_by(&spec, &find)?,
        None => None,
    };
    let query =
        Query { find, return_maps, with, inputs, implicit_in, clauses, offset, limit, timeout, memory_limit, order_by };
    validate(&query)?;
    Ok(query)
}

/// An `:order-by` spec as Datahike reads it: `?x`, a column index, or a vector of them each
/// optionally followed by `:asc` or `:desc`. Only a relation find is ordered (`None` for the
/// other find specs, as in Datahike); an unknown variable or an index past the find elements
/// is an error.
pub fn parse_order_by(spec: &Edn, find: &FindSpec) -> PResult<Option<Vec<(usize, bool)>>> {
    let FindSpec::Rel(elems) = find else { return Ok(None) };
    let column = |x: &Edn| -> PResult<usize> {
        match x {
            Edn::Int(i) if *i >= 0 => {
                let i = *i as usize;
                if i >= elems.len() {
                    return err(
                        format!(":order-by column index {i} out of bounds, :find has {} elements", elems.len()),
                        x,
                    );
                }
                Ok(i)
            }
            Edn::Symbol(v) => elems.iter().position(|e| matches!(e, FindElem::Var(x) if x == v)).ok_or_else(|| {
                let message = format!(":order-by variable {v} not found among the variables of :find");
                QueryError::Syntax(Detail::new(message).form(x.clone()).vars([Edn::Symbol(*v)]))
            }),
            other => err(format!(":order-by element must be a variable or a column index, got {other}"), other),
        }
    };
    let items: Vec<Edn> = match spec {
        Edn::Nil => return Ok(None),
        Edn::Vector(xs) | Edn::List(xs) => xs.clone(),
        other => vec![other.clone()],
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < items.len() {
        if matches!(&items[i], Edn::Keyword(_)) {
            return err(format!("Invalid :order-by {spec}: a direction must follow a variable or column index"), spec);
        }
        let col = column(&items[i])?;
        let desc = match items.get(i + 1) {
            Some(Edn::Keyword(k)) if k.as_str() == "desc" => true,
            Some(Edn::Keyword(k)) if k.as_str() == "asc" => false,
            Some(Edn::Keyword(k)) => {
                let message = format!("Invalid :order-by direction {k}; expected :asc or :desc");
                let detail = Detail::new(message).form(spec.clone()).value(Edn::Keyword(*k));
                return Err(QueryError::Syntax(detail.choices([Edn::kw("asc"), Edn::kw("desc")])));
            }
            _ => {
                out.push((col, false));
                i += 1;
                continue;
            }
        };
        out.push((col, desc));
        i += 2;
    }
    Ok(Some(out))
}

/// A `:timeout`: a positive number of milliseconds, or nil for none.
pub fn parse_timeout(x: &Edn) -> PResult<Option<u64>> {
    match x {
        Edn::Nil => Ok(None),
        Edn::Int(ms) if *ms > 0 => Ok(Some(*ms as u64)),
        other => err(format!("Query :timeout should be a positive number of milliseconds, got {other}"), other),
    }
}

/// A `:memory-limit`: a positive number of bytes, or nil for none.
pub fn parse_memory_limit(x: &Edn) -> PResult<Option<u64>> {
    match x {
        Edn::Nil => Ok(None),
        Edn::Int(n) if *n > 0 => Ok(Some(*n as u64)),
        other => err(format!("Query :memory-limit should be a positive number of bytes, got {other}"), other),
    }
}

/// Datahike's check of the join variables of a `not-join` (for a `not`, `join` is `None` and
/// they are the variables of its clauses): there are some, and each appears in the clauses.
fn check_join_vars(join: Option<&[Var]>, clauses: &[Clause], form: &Edn) -> PResult<()> {
    let mut used = BTreeSet::new();
    clauses.iter().for_each(|c| c.vars(&mut used));
    let undeclared: Vec<Var> = join.unwrap_or_default().iter().copied().filter(|v| !used.contains(v)).collect();
    if !undeclared.is_empty() {
        let shown: Vec<String> = undeclared.iter().map(Var::to_string).collect();
        let message = format!("Join variable not declared inside clauses: [{}] in {form}", shown.join(" "));
        return Err(QueryError::Syntax(Detail::new(message).form(form.clone()).vars(var_list(undeclared))));
    }
    if join.map_or(used.is_empty(), <[Var]>::is_empty) {
        return err(format!("Join variables should not be empty in {form}"), form);
    }
    Ok(())
}

fn validate(q: &Query) -> PResult<()> {
    // Each `:in` name once (sources, `%`, variables), as DataScript's parser requires.
    let mut seen = BTreeSet::new();
    for i in &q.inputs {
        let mut names = Vec::new();
        match i {
            InBinding::Source(s) => names.push(*s),
            InBinding::Rules => names.push(Symbol::new("%")),
            InBinding::Bind(b) => b.vars(&mut names),
        }
        for name in names {
            if !seen.insert(name) {
                let message =
                    format!("Duplicate :in binding {name}: each source, rule set and variable of :in is named once");
                return Err(QueryError::Syntax(Detail::new(message).binding(Edn::Symbol(name))));
            }
        }
    }
    let mut known = BTreeSet::new();
    for c in &q.clauses {
        c.vars(&mut known);
    }
    for i in &q.inputs {
        if let InBinding::Bind(b) = i {
            let mut vs = Vec::new();
            b.vars(&mut vs);
            known.extend(vs);
        }
    }
    let mut unknown = Vec::new();
    for e in q.find.elements() {
        if !known.contains(&e.var()) {
            unknown.push(e.var());
        }
        if let FindElem::Pull { pattern: Edn::Symbol(p), .. } = e {
            if is_var(*p) && !known.contains(p) {
                unknown.push(*p);
            }
        }
    }
    for v in &q.with {
        if !known.contains(v) {
            unknown.push(*v);
        }
    }
    if !unknown.is_empty() {
        let shown: Vec<String> = unknown.iter().map(Var::to_string).collect();
        let message = format!("Query for unknown vars: [{}]", shown.join(" "));
        return Err(QueryError::Syntax(Detail::new(message).vars(var_list(unknown))));
    }
    let mut found = BTreeSet::new();
    for e in q.find.elements() {
        found.insert(e.var());
        if let FindElem::Pull { pattern: Edn::Symbol(p), .. } = e {
            found.insert(*p);
        }
    }
    let shared: Vec<Var> = q.with.iter().copied().filter(|v| found.contains(v)).collect();
    if !shared.is_empty() {
        let shown: Vec<String> = shared.iter().map(Var::to_string).collect();
        let message = format!(":find and :with should not use same variables: [{}]", shown.join(" "));
        return Err(QueryError::Syntax(Detail::new(message).vars(var_list(shared))));
    }
    if let Some(rm) = &q.return_maps {
        let n = match rm {
            ReturnMaps::Keys(x) | ReturnMaps::Strs(x) | ReturnMaps::Syms(x) => x.len(),
        };
        if n != q.find.elements().len() {
            let message =
                format!("Count of :keys/:strs/:syms ({n}) must match count of :find ({})", q.find.elements().len());
            return Err(QueryError::Syntax(message.into()));
        }
        if matches!(q.find, FindSpec::Coll(_) | FindSpec::Scalar(_)) {
            return Err(QueryError::Syntax(":keys/:strs/:syms need a relation or tuple :find".into()));
        }
    }
    Ok(())
}

fn parse_find(items: &[Edn]) -> PResult<FindSpec> {
    let bad = || {
        let message = format!(
            "Cannot parse :find, expected: (find-rel | find-coll | find-tuple | find-scalar), got: [{}]",
            items.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ")
        );
        syntax(message, &Edn::Vector(items.to_vec()))
    };
    match items {
        [] => Err(bad()),
        [x, dot] if is_sym(dot, ".") => Ok(FindSpec::Scalar(parse_find_elem(x)?)),
        [Edn::Vector(xs)] => match xs.as_slice() {
            [x, dots] if is_sym(dots, "...") => Ok(FindSpec::Coll(parse_find_elem(x)?)),
            [] => Err(bad()),
            xs => Ok(FindSpec::Tuple(xs.iter().map(parse_find_elem).collect::<PResult<_>>()?)),
        },
        xs => {
            if xs.iter().any(|x| is_sym(x, ".") || is_sym(x, "...")) {
                return Err(bad());
            }
            Ok(FindSpec::Rel(xs.iter().map(parse_find_elem).collect::<PResult<_>>()?))
        }
    }
}

fn parse_find_elem(x: &Edn) -> PResult<FindElem> {
    match x {
        Edn::Symbol(s) if is_var(*s) => Ok(FindElem::Var(*s)),
        Edn::List(xs) => match xs.as_slice() {
            [Edn::Symbol(p), rest @ ..] if p.as_str() == "pull" => match rest {
                [Edn::Symbol(v), pattern] if is_var(*v) => {
                    Ok(FindElem::Pull { source: Symbol::new("$"), var: *v, pattern: pattern.clone() })
                }
                [Edn::Symbol(src), Edn::Symbol(v), pattern] if is_src(*src) && is_var(*v) => {
                    Ok(FindElem::Pull { source: *src, var: *v, pattern: pattern.clone() })
                }
                _ => err(format!("Cannot parse pull expression, expected (pull ?var pattern), got {x}"), x),
            },
            // Variables before the last one are `:in` values (`(max ?n ?x)`), or the aggregate
            // itself in `(aggregate ?f ?x)`.
            [Edn::Symbol(name), args @ .., Edn::Symbol(v)] if is_var(*v) && !is_var(*name) => {
                Ok(FindElem::Aggregate { name: *name, args: args.to_vec(), var: *v })
            }
            _ => err(format!("Cannot parse :find element, expected a variable, aggregate or pull, got {x}"), x),
        },
        other => err(format!("Cannot parse :find element, expected a variable, aggregate or pull, got {other}"), other),
    }
}

fn parse_in(x: &Edn) -> PResult<InBinding> {
    match x {
        Edn::Symbol(s) if is_src(*s) => Ok(InBinding::Source(*s)),
        Edn::Symbol(s) if s.as_str() == "%" => Ok(InBinding::Rules),
        // A plain symbol names a pull pattern passed as input: `(pull ?e pattern)`.
        Edn::Symbol(s) if !s.as_str().starts_with('?') && s.as_str() != "_" && s.namespace().is_none() => {
            Ok(InBinding::Bind(Binding::Scalar(*s)))
        }
        other => Ok(InBinding::Bind(parse_binding(other).map_err(|_| {
            syntax(format!("Cannot parse :in binding, expected ($ | % | binding), got {other}"), other)
        })?)),
    }
}

/// Parses a binding form (`?x`, `_`, `[?a ?b]`, `[?x ...]`, `[[?a ?b]]`).
pub fn parse_binding(x: &Edn) -> PResult<Binding> {
    match x {
        Edn::Symbol(s) if s.as_str() == "_" => Ok(Binding::Ignore),
        Edn::Symbol(s) if is_var(*s) => Ok(Binding::Scalar(*s)),
        Edn::Vector(xs) => match xs.as_slice() {
            [inner, dots] if is_sym(dots, "...") => Ok(Binding::Coll(Box::new(parse_binding(inner)?))),
            [inner @ Edn::Vector(_)] => Ok(Binding::Coll(Box::new(parse_binding(inner)?))),
            [] => err(format!("Cannot parse binding {x}"), x),
            xs => Ok(Binding::Tuple(xs.iter().map(parse_binding).collect::<PResult<_>>()?)),
        },
        other => err(format!("Cannot parse binding, expected a variable, _ or a vector, got {other}"), other),
    }
}

fn parse_term(x: &Edn) -> Term {
    match x {
        Edn::Symbol(s) if s.as_str() == "_" => Term::Blank,
        Edn::Symbol(s) if is_var(*s) => Term::Var(*s),
        Edn::Symbol(s) if is_src(*s) => Term::Src(*s),
        other => Term::Const(other.clone()),
    }
}

fn unknown_clause(x: &Edn) -> QueryError {
    syntax(format!(
        "Cannot parse clause, expected (data-pattern | pred-expr | fn-expr | rule-expr | not-clause | not-join-clause | or-clause | or-join-clause), got: {x}"
    ), x)
}

/// Parses one `:where` clause.
pub fn parse_clause(x: &Edn) -> PResult<Clause> {
    match x {
        Edn::Vector(xs) => match xs.as_slice() {
            [Edn::List(call), rest @ ..] => {
                let [Edn::Symbol(func), args @ ..] = call.as_slice() else {
                    return Err(unknown_clause(x));
                };
                let args: Vec<Term> = args.iter().map(parse_term).collect();
                if args.contains(&Term::Blank) {
                    return err(format!("Function arguments cannot be _ in {x}"), x);
                }
                match rest {
                    [] => Ok(Clause::Pred { func: *func, args, form: x.clone() }),
                    [binding] => Ok(Clause::Fn {
                        func: *func,
                        args,
                        binding: parse_binding(binding).map_err(|_| {
                            let message = format!("Cannot parse binding {binding} in {x}");
                            QueryError::Syntax(Detail::new(message).form(x.clone()).binding(binding.clone()))
                        })?,
                        form: x.clone(),
                    }),
                    _ => Err(unknown_clause(x)),
                }
            }
            [] => Err(unknown_clause(x)),
            xs => {
                let (source, rest) = match &xs[0] {
                    Edn::Symbol(s) if is_src(*s) => (*s, &xs[1..]),
                    _ => (Symbol::new("$"), xs),
                };
                if rest.is_empty() || rest.len() > 5 {
                    return Err(unknown_clause(x));
                }
                let terms: Vec<Term> = rest.iter().map(parse_term).collect();
                if terms.iter().any(|t| matches!(t, Term::Src(_)) || matches!(t, Term::Const(Edn::List(_)))) {
                    return Err(unknown_clause(x));
                }
                Ok(Clause::Pattern { source, terms })
            }
        },
        Edn::List(xs) => {
            let (source, rest) = match xs.first() {
                Some(Edn::Symbol(s)) if is_src(*s) => (*s, &xs[1..]),
                _ => (Symbol::new("$"), &xs[..]),
            };
            let Some(Edn::Symbol(head)) = rest.first() else {
                return Err(unknown_clause(x));
            };
            let body = &rest[1..];
            match head.as_str() {
                "not" => {
                    if body.is_empty() {
                        return err(format!("Cannot parse 'not' clause, it has no clauses: {x}"), x);
                    }
                    let clauses = body.iter().map(parse_clause).collect::<PResult<Vec<_>>>()?;
                    // Datahike's parser: the variables of a `not` are its join variables.
                    check_join_vars(None, &clauses, x)?;
                    Ok(Clause::Not { source, join: None, clauses, form: x.clone() })
                }
                "not-join" => {
                    let Some(Edn::Vector(vars)) = body.first() else {
                        return err(format!("Cannot parse 'not-join' clause, expected [vars...]: {x}"), x);
                    };
                    let vars = parse_vars(vars, x)?;
                    if body.len() < 2 {
                        return err(format!("Cannot parse 'not-join' clause, it has no clauses: {x}"), x);
                    }
                    let clauses = body[1..].iter().map(parse_clause).collect::<PResult<Vec<_>>>()?;
                    check_join_vars(Some(&vars), &clauses, x)?;
                    Ok(Clause::Not { source, join: Some(vars), clauses, form: x.clone() })
                }
                "or" | "or-join" => {
                    let (join, branches) = if head.as_str() == "or-join" {
                        let (req, opt) = match body.first() {
                            Some(Edn::Vector(vs)) => match vs.first() {
                                Some(Edn::Vector(req)) => (parse_vars(req, x)?, parse_vars(&vs[1..], x)?),
                                _ => (Vec::new(), parse_vars(vs, x)?),
                            },
                            _ => return err(format!("Cannot parse 'or-join' clause, expected [vars...]: {x}"), x),
                        };
                        (Some((req, opt)), &body[1..])
                    } else {
                        (None, body)
                    };
                    if branches.is_empty() {
                        return err(format!("Cannot parse '{head}' clause, it has no branches: {x}"), x);
                    }
                    let branches = branches.iter().map(parse_branch).collect::<PResult<Vec<_>>>()?;
                    // That every branch of a plain `or` uses the same free variables is checked
                    // when it runs: a variable bound before (by `:in`, say) is not free.
                    Ok(Clause::Or { source, join, branches, form: x.clone() })
                }
                "and" => err(format!("'and' is only allowed inside 'or': {x}"), x),
                _ => {
                    let args: Vec<Term> = body.iter().map(parse_term).collect();
                    if args.iter().any(|t| matches!(t, Term::Src(_))) {
                        return Err(unknown_clause(x));
                    }
                    Ok(Clause::RuleCall { source, name: *head, args, form: x.clone() })
                }
            }
        }
        other => Err(unknown_clause(other)),
    }
}

fn parse_branch(x: &Edn) -> PResult<Vec<Clause>> {
    match x {
        Edn::List(xs) if matches!(xs.first(), Some(Edn::Symbol(s)) if s.as_str() == "and") => {
            if xs.len() < 2 {
                return err(format!("Cannot parse 'and' clause, it has no clauses: {x}"), x);
            }
            xs[1..].iter().map(parse_clause).collect()
        }
        other => Ok(vec![parse_clause(other)?]),
    }
}

fn parse_vars(xs: &[Edn], clause: &Edn) -> PResult<Vec<Var>> {
    xs.iter()
        .map(|v| match v {
            Edn::Symbol(s) if is_var(*s) => Ok(*s),
            other => {
                let message = format!("Expected a variable, got {other} in {clause}");
                Err(QueryError::Syntax(Detail::new(message).form(clause.clone()).value(other.clone())))
            }
        })
        .collect()
}

/// Parses rules given as EDN (a vector of rule branches) or as a string of one.
pub fn parse_rules(x: &Edn) -> PResult<Vec<Rule>> {
    let x = match x {
        Edn::Str(text) => &crate::edn::read_str(text).map_err(|e| unreadable("rules", &e))?,
        other => other,
    };
    let Some(branches) = x.as_seq() else {
        return err(format!("Rules should be a vector of rules, got {x}"), x);
    };
    let mut rules = Vec::new();
    for b in branches {
        let bad = || syntax(format!("Cannot parse rule, expected [(name ?vars...) clauses...], got {b}"), b);
        let Edn::Vector(parts) = b else { return Err(bad()) };
        let Some(Edn::List(head)) = parts.first() else { return Err(bad()) };
        let [Edn::Symbol(name), vars @ ..] = head.as_slice() else { return Err(bad()) };
        let (required, vars): (Vec<Var>, Vec<Var>) = match vars.first() {
            Some(Edn::Vector(req)) => (parse_vars(req, b)?, parse_vars(&vars[1..], b)?),
            _ => (Vec::new(), parse_vars(vars, b)?),
        };
        let mut head_vars = required.clone();
        head_vars.extend(vars);
        if head_vars.is_empty() {
            return err(format!("Rule {name} has no variables: {b}"), b);
        }
        let body = parts[1..].iter().map(parse_clause).collect::<PResult<Vec<_>>>()?;
        if body.is_empty() {
            return err(format!("Rule {name} has no body: {b}"), b);
        }
        if let Some(r) = rules.iter().find(|r: &&Rule| r.name == *name) {
            if r.head.len() != head_vars.len() {
                let message = format!("Rule {name} is defined with different arities");
                return Err(QueryError::Syntax(Detail::new(message).form(b.clone()).with("rule", Edn::Symbol(*name))));
            }
        }
        rules.push(Rule { name: *name, head: head_vars, required: required.len(), body });
    }
    Ok(rules)
}
