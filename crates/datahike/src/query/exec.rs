//! The executor: evaluates `:where` clauses over relations. Clauses are ordered greedily at run
//! time: filters (predicates, `not`) as soon as their variables are bound, function bindings
//! next, then the generator (pattern, `or`, rule call) with the smallest estimated result,
//! which prefers clauses joined to bound variables over cross products. A data pattern joins
//! either by one index lookup per row (few rows, a selective prefix) or by one range scan
//! hashed against the relation.

use super::builtins::{self, Arg, FnError, Func};
use super::custom::{self, QueryFn};
use super::deadline;
use super::parser::{Binding, Clause, Rule, Term, Var};
use super::plan::{choose_index, count_attr, count_prefix};
use super::rel::{self, Groups, Rel, RowSet};
use super::rules::{self, FixState};
use super::stats::Recorder;
use super::QueryError;
use crate::attr_refs::{self, Idents};
use crate::datom::IndexOrder;
use crate::datom::{Datom, DatomKey};
use crate::db::Db;
use crate::edn::{Edn, Keyword, Symbol};
use crate::error::{Detail, Error, Result};
use crate::schema::Schema;
use crate::value::Value;
use rustc_hash::FxHashMap as HashMap;
use rustc_hash::FxHasher;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

/// A data source: a database, or a plain collection of tuples.
pub(crate) enum Source {
    Db(Db),
    Coll(Vec<Vec<Value>>),
}

/// What a query sees: its sources, rules, and functions bound in `:in`.
pub(crate) struct Ctx {
    pub sources: HashMap<Symbol, Source>,
    pub rules: HashMap<Symbol, Vec<Rule>>,
    pub fns: HashMap<Symbol, QueryFn>,
}

impl Ctx {
    pub fn source(&self, name: Symbol) -> Result<&Source> {
        self.sources.get(&name).ok_or_else(|| {
            let mut known: Vec<Symbol> = self.sources.keys().copied().collect();
            known.sort();
            let detail = Detail::new(format!("There is no source {name} (bind it in :in)"))
                .with("source", Edn::Symbol(name))
                .choices(known.into_iter().map(Edn::Symbol));
            QueryError::Binding(detail).into()
        })
    }
}

/// Evaluation state: the context plus, while rules are being solved, their tables.
pub(crate) struct Engine<'c> {
    pub ctx: &'c Ctx,
    pub fix: Option<FixState>,
    /// Per pattern (by address): (datoms matching its constants, datoms of its attribute).
    counts: HashMap<usize, (u64, u64)>,
    /// Per-clause statistics, when the caller asked for them (`query-stats`, `explain`).
    pub stats: Option<Recorder>,
    /// Whether each rule called so far can call itself.
    pub recursive: HashMap<Symbol, bool>,
    /// Per pattern (by address) and source, without fused comparisons: datoms its constants
    /// select, as the choice between a scan and per-row lookups needs it (a rule body runs
    /// many times, possibly against several sources).
    scans: HashMap<(usize, Symbol), u64>,
}

impl<'c> Engine<'c> {
    pub fn new(ctx: &'c Ctx) -> Engine<'c> {
        Engine {
            ctx,
            fix: None,
            counts: HashMap::default(),
            stats: None,
            recursive: HashMap::default(),
            scans: HashMap::default(),
        }
    }
}

fn qerr(e: QueryError) -> Error {
    Error::Query(e)
}

/// Evaluates `clauses` joined with `rel`; `src` is the default source.
pub(crate) fn eval_where(eng: &mut Engine, clauses: &[Clause], rel: Rel, src: Symbol) -> Result<Rel> {
    eval_clauses(eng, clauses.iter().collect(), rel, src, None)
}

/// What the caller needs of the last clause, when it is a data pattern: the distinct rows
/// over `vars`, at most `n` of them (a `:limit` without ordering, a scalar find), made into
/// `sink` as the scan goes; the scan stops once it has `n`. Unless `keep_rows`, the rows
/// themselves are not kept: the relation comes back empty and `sink` holds the projection,
/// so a join whose find variables are few never holds the join.
pub(crate) struct RowGoal {
    pub vars: Vec<Var>,
    pub n: usize,
    pub keep_rows: bool,
    pub sink: std::cell::RefCell<Option<RowSet>>,
}

/// Evaluates the clauses `pending` joined with `rel`; `src` is the default source.
pub(crate) fn eval_clauses(
    eng: &mut Engine,
    mut pending: Vec<&Clause>,
    mut rel: Rel,
    src: Symbol,
    goal: Option<&RowGoal>,
) -> Result<Rel> {
    // The bound variables as a set, kept up to date clause by clause (not rebuilt per pick:
    // with n clauses on one variable the relation grows n columns wide).
    let mut bound: BoundVars = rel.vars.iter().copied().collect();
    let mut queue: Option<PatternQueue> = None;
    while !pending.is_empty() {
        if rel.n_rows == 0 {
            // Nothing can match any more; keep the columns the caller may project on.
            let mut vars = BTreeSet::new();
            for c in &pending {
                if !matches!(c, Clause::Not { .. }) {
                    c.vars(&mut vars);
                }
            }
            for v in vars {
                if !rel.has(v) {
                    rel.vars.push(v);
                }
            }
            return Ok(rel);
        }
        deadline::check()?;
        if queue.is_none() && pending.len() >= PatternQueue::MIN_CLAUSES {
            queue = Some(PatternQueue::new(eng, &pending, &bound)?);
        }
        let idx = pick(eng, &pending, &rel, &bound, queue.as_ref())?;
        let clause = pending.remove(idx);
        if let Some(queue) = queue.as_mut() {
            queue.remove(clause);
        }
        let range = fuse_range(eng, clause, &mut pending, &rel, src);
        let goal = if pending.is_empty() { goal } else { None };
        if eng.stats.is_none() {
            rel = apply(eng, clause, rel, src, range.as_ref(), goal)?;
            let new = sync_bound(&mut bound, clause, &rel);
            if let Some(queue) = queue.as_mut() {
                queue.bind(eng, &new, &bound)?;
            }
            continue;
        }
        let rows_in = rel.n_rows;
        let started = Instant::now();
        if let Some(stats) = eng.stats.as_mut() {
            stats.enter();
        }
        rel = apply(eng, clause, rel, src, range.as_ref(), goal)?;
        let new = sync_bound(&mut bound, clause, &rel);
        if let Some(queue) = queue.as_mut() {
            queue.bind(eng, &new, &bound)?;
        }
        if let Some(stats) = eng.stats.as_mut() {
            stats.leave(clause, rows_in, rel.n_rows, started.elapsed());
        }
    }
    Ok(rel)
}

type BoundVars = rustc_hash::FxHashSet<Var>;

/// Brings `bound` up to the variables of `rel` after `clause` ran, and returns the new ones.
/// Patterns, functions, predicates and `not` keep the columns they were given and append
/// their new ones; the other clauses may reorder them.
fn sync_bound(bound: &mut BoundVars, clause: &Clause, rel: &Rel) -> Vec<Var> {
    let mut new = Vec::new();
    if matches!(clause, Clause::Pattern { .. } | Clause::Fn { .. } | Clause::Pred { .. } | Clause::Not { .. }) {
        let mut i = rel.vars.len();
        while bound.len() < rel.vars.len() && i > 0 {
            i -= 1;
            if bound.insert(rel.vars[i]) {
                new.push(rel.vars[i]);
            }
        }
        if bound.len() == rel.vars.len() {
            return new;
        }
    }
    new = rel.vars.iter().copied().filter(|v| !bound.contains(v)).collect();
    *bound = rel.vars.iter().copied().collect();
    new
}

/// The pending data patterns ordered by their estimate factor (`estimate_pattern`), then by
/// their place in the query (clauses are pending in address order, so the address is the
/// place), so that the cheapest is found without estimating every pattern at every step. A
/// pattern's factor is computed again only when one of its variables becomes bound: a query
/// of n patterns plans in O(n log n), not O(n²) estimates.
struct PatternQueue<'q> {
    /// Per pending pattern (by address): the clause and its factor.
    factor: HashMap<usize, (&'q Clause, f64)>,
    order: BTreeSet<(Factor, usize)>,
    /// The pending patterns that mention each variable.
    by_var: HashMap<Var, Vec<usize>>,
    n_patterns: usize,
}

/// An estimate factor, ordered totally (they are never NaN).
#[derive(Clone, Copy)]
struct Factor(f64);
impl PartialEq for Factor {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Factor {}
impl PartialOrd for Factor {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Factor {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn addr(c: &Clause) -> usize {
    c as *const Clause as usize
}

impl<'q> PatternQueue<'q> {
    /// Below this many clauses, estimating every pattern at each step costs less than the
    /// queue.
    const MIN_CLAUSES: usize = 32;

    fn new(eng: &mut Engine, pending: &[&'q Clause], bound: &BoundVars) -> Result<PatternQueue<'q>> {
        let mut q = PatternQueue {
            factor: HashMap::default(),
            order: BTreeSet::new(),
            by_var: HashMap::default(),
            n_patterns: 0,
        };
        let mut vars = BTreeSet::new();
        for c in pending {
            if let Clause::Pattern { source, terms } = c {
                let f = estimate_pattern(eng, c, *source, terms, |v| bound.contains(&v))?;
                q.factor.insert(addr(c), (c, f));
                q.order.insert((Factor(f), addr(c)));
                vars.clear();
                c.vars(&mut vars);
                for v in &vars {
                    q.by_var.entry(*v).or_default().push(addr(c));
                }
                q.n_patterns += 1;
            }
        }
        Ok(q)
    }

    fn factor(&self, c: &Clause) -> f64 {
        self.factor.get(&addr(c)).map_or(1.0, |(_, f)| *f)
    }

    /// The place in `pending` of the cheapest pattern.
    fn cheapest(&self, pending: &[&Clause]) -> Option<usize> {
        let (_, a) = self.order.first()?;
        match pending.binary_search_by_key(a, |c| addr(c)) {
            Ok(i) => Some(i),
            // Not in address order (never, for clauses of one slice): look for it.
            Err(_) => pending.iter().position(|c| addr(c) == *a),
        }
    }

    fn remove(&mut self, c: &Clause) {
        if let Some((_, f)) = self.factor.remove(&addr(c)) {
            self.order.remove(&(Factor(f), addr(c)));
            self.n_patterns -= 1;
        }
    }

    /// Estimates again the patterns that mention the newly bound variables `new`.
    fn bind(&mut self, eng: &mut Engine, new: &[Var], bound: &BoundVars) -> Result<()> {
        for v in new {
            let Some(addrs) = self.by_var.remove(v) else { continue };
            for a in addrs {
                let Some((c, old)) = self.factor.get(&a).copied() else { continue };
                let Clause::Pattern { source, terms } = c else { continue };
                let f = estimate_pattern(eng, c, *source, terms, |v| bound.contains(&v))?;
                self.order.remove(&(Factor(old), a));
                self.order.insert((Factor(f), a));
                self.factor.insert(a, (c, f));
            }
        }
        Ok(())
    }
}

fn term_vars(args: &[Term]) -> impl Iterator<Item = Var> + '_ {
    args.iter().filter_map(|t| if let Term::Var(v) = t { Some(*v) } else { None })
}

/// Variables that `c` binds when it runs (not for filters).
fn positive_vars(c: &Clause, out: &mut BTreeSet<Var>) {
    if !matches!(c, Clause::Pred { .. } | Clause::Not { .. }) {
        c.vars(out);
    }
}

fn not_join_vars(c: &Clause, has: impl Fn(Var) -> bool, later: impl Fn(Var) -> bool) -> Option<Vec<Var>> {
    let Clause::Not { join, clauses, .. } = c else { return None };
    match join {
        Some(vars) => vars.iter().all(|v| has(*v)).then(|| vars.clone()),
        None => {
            let mut vars = BTreeSet::new();
            clauses.iter().for_each(|c| c.vars(&mut vars));
            let ready = vars.iter().filter(|v| later(**v)).all(|v| has(*v));
            let join: Vec<Var> = vars.into_iter().filter(|v| has(*v)).collect();
            (ready && !join.is_empty()).then_some(join)
        }
    }
}

/// How many pending clauses bind each variable (`positive_vars`), so that "does a clause other
/// than this one bind `v`" costs a lookup, not a pass over the pending clauses: a pick stays
/// linear in their number, and a query of n clauses plans in O(n²) lookups, not O(n³).
struct Later {
    counts: HashMap<Var, u32>,
}

impl Later {
    fn new(pending: &[&Clause]) -> Later {
        let mut counts: HashMap<Var, u32> = HashMap::default();
        let mut vars = BTreeSet::new();
        for c in pending {
            vars.clear();
            positive_vars(c, &mut vars);
            for v in &vars {
                *counts.entry(*v).or_default() += 1;
            }
        }
        Later { counts }
    }

    /// Whether a pending clause other than `c` binds `v`.
    fn other_than(&self, c: &Clause, v: Var) -> bool {
        let n = self.counts.get(&v).copied().unwrap_or(0);
        let own = {
            let mut vars = BTreeSet::new();
            positive_vars(c, &mut vars);
            u32::from(vars.contains(&v))
        };
        n > own
    }
}

/// The next clause to run; `bound` holds the variables of `rel`, so that a clause's check
/// costs its own size, not the relation's width.
fn pick(
    eng: &mut Engine,
    pending: &[&Clause],
    rel: &Rel,
    bound: &BoundVars,
    queue: Option<&PatternQueue>,
) -> Result<usize> {
    let has = |v: Var| bound.contains(&v);
    let mut later: Option<Later> = None;
    // Only patterns pending: the cheapest comes from the queue, without a pass over them.
    if let Some(queue) = queue.filter(|q| q.n_patterns == pending.len()) {
        return queue.cheapest(pending).ok_or_else(|| qerr(insufficient(pending[0], rel)));
    }
    for (i, c) in pending.iter().enumerate() {
        match c {
            Clause::Pred { args, .. } if term_vars(args).all(has) => return Ok(i),
            Clause::Not { .. } => {
                let later = later.get_or_insert_with(|| Later::new(pending));
                if not_join_vars(c, has, |v| later.other_than(c, v)).is_some() {
                    return Ok(i);
                }
            }
            _ => {}
        }
    }
    for (i, c) in pending.iter().enumerate() {
        if let Clause::Fn { args, .. } = c {
            if term_vars(args).all(has) {
                return Ok(i);
            }
        }
    }
    let mut best: Option<(f64, usize)> = None;
    for (i, c) in pending.iter().enumerate() {
        let cost = match c {
            Clause::Pattern { source, terms } => {
                let factor = match queue {
                    Some(queue) => queue.factor(c),
                    None => estimate_pattern(eng, c, *source, terms, has)?,
                };
                rel.n_rows as f64 * factor
            }
            Clause::Or { join, branches, .. } => {
                if let Some((req, _)) = join {
                    if !req.iter().all(|v| has(*v)) {
                        continue;
                    }
                }
                let mut vars = BTreeSet::new();
                match join {
                    Some((req, opt)) => vars.extend(req.iter().chain(opt).copied()),
                    None => branches.iter().flatten().for_each(|c| c.vars(&mut vars)),
                }
                // Wait for a later clause to bind the or's variables, unless every branch binds
                // them itself and the clause that would bind them shares nothing with what is
                // bound already (waiting for it would first build a cross product with it).
                let unbound: Vec<Var> = vars.iter().filter(|v| !has(**v)).copied().collect();
                let self_binding = vars.iter().any(|v| has(*v))
                    && branches.iter().all(|branch| {
                        let mut bound = BTreeSet::new();
                        branch.iter().for_each(|c| positive_vars(c, &mut bound));
                        unbound.iter().all(|v| bound.contains(v))
                    });
                let mut later = BTreeSet::new();
                for (j, other) in pending.iter().enumerate() {
                    let mut other_vars = BTreeSet::new();
                    positive_vars(other, &mut other_vars);
                    if j != i && (!self_binding || other_vars.iter().any(|v| has(*v))) {
                        later.extend(other_vars);
                    }
                }
                if vars.iter().filter(|v| later.contains(v)).all(|v| has(*v)) {
                    rel.n_rows as f64
                } else {
                    1e15
                }
            }
            Clause::RuleCall { name, args, .. } => {
                if let Some(rule) = eng.ctx.rules.get(name).and_then(|r| r.first()) {
                    let required_bound = args.iter().take(rule.required).all(|t| match t {
                        Term::Var(v) => has(*v),
                        Term::Const(_) => true,
                        _ => false,
                    });
                    if !required_bound {
                        continue;
                    }
                }
                // Wait for a later clause to bind an argument the rule's body needs bound.
                let later = later.get_or_insert_with(|| Later::new(pending));
                let branches = eng.ctx.rules.get(name).map_or(&[][..], Vec::as_slice);
                if args.iter().enumerate().any(|(k, t)| {
                    matches!(t, Term::Var(v) if !has(*v) && later.other_than(c, *v)) && rules::needs_bound(branches, k)
                }) {
                    continue;
                }
                let any_bound = args.iter().any(|t| match t {
                    Term::Var(v) => has(*v),
                    Term::Const(_) => true,
                    _ => false,
                });
                if any_bound {
                    rel.n_rows as f64 * 4.0
                } else {
                    1e14
                }
            }
            _ => continue,
        };
        if best.is_none_or(|(b, _)| cost < b) {
            best = Some((cost, i));
        }
    }
    if let Some((_, i)) = best {
        return Ok(i);
    }
    Err(qerr(insufficient(pending[0], rel)))
}

fn insufficient(c: &Clause, rel: &Rel) -> QueryError {
    let mut vars = BTreeSet::new();
    match c {
        Clause::Not { join: Some(vs), .. } => vars.extend(vs.iter().copied()),
        Clause::Or { join: Some((req, _)), .. } => vars.extend(req.iter().copied()),
        _ => c.vars(&mut vars),
    }
    let unbound: Vec<Symbol> = vars.iter().copied().filter(|v| !rel.has(*v)).collect();
    let shown: Vec<String> = unbound.iter().map(Symbol::to_string).collect();
    let message = format!("Insufficient bindings: none of #{{{}}} is bound in {c}", shown.join(" "));
    QueryError::Binding(Detail::new(message).form(c.form()).vars(unbound.into_iter().map(Edn::Symbol)))
}

/// Comparisons of a pattern's value with constants that its scan can apply itself: a range
/// of the AVET index when the attribute is indexed, a check on each datom otherwise. Only for
/// attributes whose declared type makes every stored value of the constant's kind (schema on
/// write), where the predicate's comparison and the index order agree. The fused predicates
/// leave `pending`.
fn fuse_range(eng: &Engine, clause: &Clause, pending: &mut Vec<&Clause>, rel: &Rel, src: Symbol) -> Option<VRange> {
    let Clause::Pattern { source, terms } = clause else { return None };
    let (Some(Term::Const(Edn::Keyword(a))), Some(Term::Var(v))) = (terms.get(1), terms.get(2)) else { return None };
    if rel.has(*v) {
        return None;
    }
    let source = if source.as_str() == "$" { src } else { *source };
    let Ok(Source::Db(db)) = eng.ctx.source(source) else { return None };
    if db.config().schema_flexibility != crate::config::SchemaFlexibility::Write {
        return None;
    }
    let value_type = db.schema().attr(*a)?.value_type?;
    let same_kind = |c: &Value| {
        use crate::schema::ValueType as T;
        matches!(
            (value_type, c),
            (T::Long | T::Ref, Value::Long(_))
                | (T::String, Value::String(_))
                | (T::Double, Value::Double(_))
                | (T::Instant, Value::Instant(_))
                | (T::Keyword, Value::Keyword(_))
        )
    };
    let mut range = VRange::default();
    pending.retain(|c| {
        let Clause::Pred { func, args, form } = c else { return true };
        let [x, y] = args.as_slice() else { return true };
        let (op, c) = match (x, y) {
            (Term::Var(x), Term::Const(c)) if x == v => (func.as_str(), c),
            (Term::Const(c), Term::Var(y)) if y == v => match func.as_str() {
                // `(< c ?v)` is `(> ?v c)`.
                "<" => (">", c),
                ">" => ("<", c),
                "<=" => (">=", c),
                ">=" => ("<=", c),
                _ => return true,
            },
            _ => return true,
        };
        let Some(c) = const_value(c).filter(same_kind) else { return true };
        match op {
            ">" => range.raise(c, false),
            ">=" => range.raise(c, true),
            "<" => range.lower(c, false),
            "<=" => range.lower(c, true),
            _ => return true,
        }
        range.fused.push(form.to_string());
        false
    });
    (!range.fused.is_empty()).then_some(range)
}

/// Bounds on a pattern's value (each with whether it is inclusive) and the predicates they
/// came from.
#[derive(Clone, Debug, Default)]
struct VRange {
    lo: Option<(Value, bool)>,
    hi: Option<(Value, bool)>,
    fused: Vec<String>,
}

impl VRange {
    fn raise(&mut self, v: Value, inclusive: bool) {
        let tighter = match &self.lo {
            None => true,
            Some((lo, inc)) => v > *lo || (v == *lo && !inclusive && *inc),
        };
        if tighter {
            self.lo = Some((v, inclusive));
        }
    }

    fn lower(&mut self, v: Value, inclusive: bool) {
        let tighter = match &self.hi {
            None => true,
            Some((hi, inc)) => v < *hi || (v == *hi && !inclusive && *inc),
        };
        if tighter {
            self.hi = Some((v, inclusive));
        }
    }

    fn admits(&self, v: &Value) -> bool {
        self.lo.as_ref().is_none_or(|(lo, inc)| if *inc { v >= lo } else { v > lo })
            && self.hi.as_ref().is_none_or(|(hi, inc)| if *inc { v <= hi } else { v < hi })
    }
}

fn apply(
    eng: &mut Engine,
    clause: &Clause,
    rel: Rel,
    src: Symbol,
    range: Option<&VRange>,
    goal: Option<&RowGoal>,
) -> Result<Rel> {
    match clause {
        Clause::Pattern { source, terms } => {
            let source = if source.as_str() == "$" { src } else { *source };
            match eng.ctx.source(source)? {
                Source::Db(db) => {
                    let key = (clause as *const Clause as usize, source);
                    let (rel, access) = pattern_db(db, rel, terms, range, key, &mut eng.scans, goal)?;
                    if let Some(stats) = eng.stats.as_mut() {
                        stats.access(access.describe());
                    }
                    Ok(rel)
                }
                Source::Coll(tuples) => {
                    if let Some(stats) = eng.stats.as_mut() {
                        stats.access(format!("SCAN collection {source} ({} tuples)", tuples.len()));
                    }
                    pattern_coll(tuples, rel, terms, clause)
                }
            }
        }
        Clause::Pred { func, args, form } => apply_pred(eng, rel, *func, args, form, src),
        Clause::Fn { func, args, binding, form } => apply_fn(eng, rel, *func, args, binding, form, src),
        Clause::Not { source, clauses, .. } => {
            let src = if source.as_str() == "$" { src } else { *source };
            let join =
                not_join_vars(clause, |v| rel.has(v), |_| false).ok_or_else(|| qerr(insufficient(clause, &rel)))?;
            let input = rel.project_distinct(&join)?;
            let res = eval_where(eng, clauses, input, src)?;
            let cols: Vec<usize> = join.iter().map(|v| res.col(*v).unwrap_or(0)).collect();
            let drop = rel::RowSet::with_capacity(cols.len(), res.n_rows)?;
            let mut drop = drop;
            for r in res.rows() {
                deadline::tick()?;
                drop.insert(cols.iter().map(|c| r[*c].clone()))?;
            }
            let rel_cols: Vec<usize> = join.iter().map(|v| rel.col(*v).unwrap_or(0)).collect();
            let mut out = Rel::empty(rel.vars.clone());
            // Some of the rows, in their order.
            out.distinct = rel.distinct;
            let mut key = Vec::new();
            for row in rel.rows() {
                deadline::tick()?;
                key.clear();
                key.extend(rel_cols.iter().map(|c| row[*c].clone()));
                if drop.find(rel::hash_values(&key), |k| k == key.as_slice()).is_none() {
                    out.push_row(row)?;
                }
            }
            Ok(out)
        }
        Clause::Or { source, join, branches, form } => {
            let src = if source.as_str() == "$" { src } else { *source };
            let vars: Vec<Var> = match join {
                Some((req, opt)) => req.iter().chain(opt).copied().collect(),
                None => {
                    // Every branch must use the same free variables, those bound already aside
                    // (DataScript's and Datahike's rule): `(or [?e :age ?a] [?e :name "Oleg"])`
                    // is valid when `?a` comes from `:in`.
                    let sets: Vec<BTreeSet<Var>> = branches
                        .iter()
                        .map(|b| {
                            let mut vs = BTreeSet::new();
                            b.iter().for_each(|c| c.vars(&mut vs));
                            vs
                        })
                        .collect();
                    let free: Vec<BTreeSet<Var>> =
                        sets.iter().map(|vs| vs.iter().copied().filter(|v| !rel.has(*v)).collect()).collect();
                    if free.iter().any(|f| *f != free[0]) {
                        let shown: Vec<String> = free
                            .iter()
                            .map(|f| format!("#{{{}}}", f.iter().map(Var::to_string).collect::<Vec<_>>().join(" ")))
                            .collect();
                        let message = format!(
                            "All clauses in 'or' must use same set of free vars, had [{}] in {form}",
                            shown.join(" ")
                        );
                        let differing: BTreeSet<Var> =
                            free.iter().flatten().copied().filter(|v| !free.iter().all(|f| f.contains(v))).collect();
                        let detail =
                            Detail::new(message).form(form.clone()).vars(differing.into_iter().map(Edn::Symbol));
                        return Err(qerr(QueryError::Binding(detail)));
                    }
                    sets.into_iter().flatten().collect::<BTreeSet<Var>>().into_iter().collect()
                }
            };
            let bound: Vec<Var> = vars.iter().copied().filter(|v| rel.has(*v)).collect();
            let input = rel.project_distinct(&bound)?;
            let mut union = Rel::empty(vars.clone());
            for branch in branches {
                let res = eval_where(eng, branch, input.clone(), src)?;
                let mut cols = Vec::new();
                for v in &vars {
                    cols.push(res.col(*v).ok_or_else(|| {
                        let message = format!("Insufficient bindings: {v} is not bound by every branch of {form}");
                        qerr(QueryError::Binding(Detail::new(message).form(form.clone()).vars([Edn::Symbol(*v)])))
                    })?);
                }
                for row in res.rows() {
                    deadline::tick()?;
                    union.push_joined(&[], cols.iter().map(|c| row[*c].clone()))?;
                }
            }
            rel.join(union.distinct()?)
        }
        Clause::RuleCall { .. } => rules::call(eng, clause, rel, src),
    }
}

// ------------------------------------------------------------------ functions and predicates

/// The arguments of a call for one row; constants as written when `forms`.
fn eval_args<'a>(
    ctx: &'a Ctx,
    args: &'a [Term],
    cols: &[Option<usize>],
    row: &[Value],
    consts: &[Option<Value>],
    forms: bool,
    out: &mut Vec<Arg<'a>>,
) -> Result<()> {
    out.clear();
    for (i, t) in args.iter().enumerate() {
        out.push(match t {
            Term::Var(_) => Arg::Val(row[cols[i].unwrap_or(0)].clone()),
            Term::Src(s) => Arg::Src(ctx.source(*s)?),
            Term::Const(c) if forms => Arg::Form(c),
            Term::Const(_) | Term::Blank => Arg::Val(consts[i].clone().unwrap_or(Value::Nil)),
        });
    }
    Ok(())
}

/// Per argument: its column in the relation, or its constant value.
type PreparedArgs = (Vec<Option<usize>>, Vec<Option<Value>>);

fn prepare_args(rel: &Rel, args: &[Term], form: &Edn, forms: bool) -> Result<PreparedArgs> {
    let mut cols = Vec::new();
    let mut consts = Vec::new();
    for t in args {
        match t {
            Term::Var(v) => {
                cols.push(Some(rel.col(*v).ok_or_else(|| {
                    let message = format!("Insufficient bindings: {v} is not bound in {form}");
                    qerr(QueryError::Binding(Detail::new(message).form(form.clone()).vars([Edn::Symbol(*v)])))
                })?));
                consts.push(None);
            }
            Term::Const(_) if forms => {
                cols.push(None);
                consts.push(None);
            }
            Term::Const(c) => {
                cols.push(None);
                consts.push(Some(const_value(c).ok_or_else(|| {
                    let message = format!("{c} is not supported as a function argument in {form}");
                    qerr(QueryError::Unsupported(Detail::new(message).form(form.clone()).value(c.clone())))
                })?));
            }
            _ => {
                cols.push(None);
                consts.push(None);
            }
        }
    }
    Ok((cols, consts))
}

/// A constant of a query as a value: vectors and lists become tuples.
pub(crate) fn const_value(c: &Edn) -> Option<Value> {
    match c {
        Edn::List(xs) | Edn::Vector(xs) => {
            Some(Value::Tuple(xs.iter().map(const_value).collect::<Option<Vec<_>>>()?.into()))
        }
        Edn::Set(xs) => Some(Value::set(xs.iter().map(const_value).collect::<Option<Vec<_>>>()?)),
        Edn::Map(kvs) => Some(Value::map(
            kvs.iter().map(|(k, v)| Some((const_value(k)?, const_value(v)?))).collect::<Option<Vec<_>>>()?,
        )),
        other => Value::from_edn(other),
    }
}

/// The function a clause calls, looked up as Datahike does: built-ins, then an `:in`
/// variable, then a namespace-qualified name registered from Rust.
fn resolve_fn(ctx: &Ctx, func: Symbol, form: &Edn) -> Result<Func> {
    if let Some(f) = builtins::lookup(func) {
        return Ok(f);
    }
    if let Some(f) = ctx.fns.get(&func) {
        return Ok(Func::User(func, f.clone()));
    }
    if super::parser::is_var(func) {
        let message = format!("{func} is not bound to a function in :in (pass QueryInput::Function), in {form}");
        return Err(qerr(QueryError::Binding(
            Detail::new(message).form(form.clone()).with("function", Edn::Symbol(func)).vars([Edn::Symbol(func)]),
        )));
    }
    match custom::function(func) {
        Some(f) => Ok(Func::User(func, f)),
        None => {
            let message = format!("Unknown function '{func} in {form}");
            Err(qerr(QueryError::Syntax(Detail::new(message).form(form.clone()).with("function", Edn::Symbol(func)))))
        }
    }
}

/// The query error of a failed call of `func` in clause `form`.
fn call_error(e: FnError, func: Symbol, form: &Edn) -> Error {
    match e {
        FnError::Type(m) | FnError::Other(m) => qerr(QueryError::Eval(
            Detail::new(format!("{m} in {form}")).form(form.clone()).with("function", Edn::Symbol(func)),
        )),
        FnError::Fail(e) => e,
    }
}

fn apply_pred(eng: &mut Engine, rel: Rel, func: Symbol, args: &[Term], form: &Edn, _src: Symbol) -> Result<Rel> {
    let f = resolve_fn(eng.ctx, func, form)?;
    let forms = f.wants_forms();
    let (cols, consts) = prepare_args(&rel, args, form, forms)?;
    let mut out = Rel::empty(rel.vars.clone());
    // A filter keeps the order of the rows, and their distinctness.
    out.sorted_by = rel.sorted_by;
    out.distinct = rel.distinct;
    let mut argv = Vec::with_capacity(args.len());
    for row in rel.rows() {
        // A call may be slow (a Rust function, a nested query): the clock is read per call.
        deadline::check()?;
        eval_args(eng.ctx, args, &cols, row, &consts, forms, &mut argv)?;
        match f.call(&argv) {
            Ok(v) => {
                if builtins::truthy(&v) {
                    out.push_row(row)?;
                }
            }
            Err(FnError::Type(_)) => {}
            Err(e) => return Err(call_error(e, func, form)),
        }
    }
    Ok(out)
}

/// Values a binding form takes from one function result: a list of rows over `binding.vars()`.
fn bind_value(binding: &Binding, v: Value, out: &mut Vec<Vec<Value>>) -> std::result::Result<(), String> {
    match binding {
        Binding::Ignore => out.push(Vec::new()),
        Binding::Scalar(_) => {
            if !matches!(v, Value::Nil) {
                out.push(vec![v]);
            }
        }
        Binding::Tuple(bs) => {
            let Value::Tuple(xs) = v else { return Err(format!("Cannot bind value {} to tuple", v.to_edn())) };
            if xs.len() < bs.len() {
                return Err(format!("Not enough elements in {} for tuple binding", Value::Tuple(xs).to_edn()));
            }
            let mut rows = vec![Vec::new()];
            for (b, x) in bs.iter().zip(xs.iter()) {
                let mut part = Vec::new();
                bind_value(b, x.clone(), &mut part)?;
                let mut next = Vec::new();
                for r in &rows {
                    for p in &part {
                        let mut r = r.clone();
                        r.extend(p.iter().cloned());
                        next.push(r);
                    }
                }
                rows = next;
            }
            out.extend(rows);
        }
        Binding::Coll(b) => match v {
            Value::Nil => {}
            Value::Tuple(xs) | Value::Set(xs) => {
                for x in xs.iter() {
                    bind_value(b, x.clone(), out)?;
                }
            }
            // A map is a collection of [key value] entries.
            Value::Map(xs) => {
                for (k, x) in xs.iter() {
                    bind_value(b, Value::Tuple(vec![k.clone(), x.clone()].into()), out)?;
                }
            }
            other => return Err(format!("Cannot bind value {} to collection", other.to_edn())),
        },
    }
    Ok(())
}

/// Extends `rel` with rows bound by `binding` (a var already bound must be equal).
pub(crate) fn extend_with_binding(
    rel: &Rel,
    binding: &Binding,
    mut produce: impl FnMut(usize) -> Result<Option<Value>>,
    form: &Edn,
) -> Result<Rel> {
    let mut bvars = Vec::new();
    binding.vars(&mut bvars);
    // For each binding position: existing column to compare with, or new column index.
    enum Slot {
        Check(usize),
        New,
        Dup(usize),
    }
    let mut vars = rel.vars.clone();
    let mut slots = Vec::new();
    for (i, v) in bvars.iter().enumerate() {
        if let Some(c) = rel.col(*v) {
            slots.push(Slot::Check(c));
        } else if let Some(j) = bvars[..i].iter().position(|x| x == v) {
            slots.push(Slot::Dup(j));
        } else {
            vars.push(*v);
            slots.push(Slot::New);
        }
    }
    let mut out = Rel::empty(vars);
    let mut parts = Vec::new();
    for i in 0..rel.n_rows {
        deadline::tick()?;
        // A function that returns nil binds nothing, whatever the binding form (Datahike's
        // bind-by-fn skips a nil result).
        let Some(v) = produce(i)?.filter(|v| !matches!(v, Value::Nil)) else { continue };
        parts.clear();
        bind_value(binding, v, &mut parts)
            .map_err(|m| qerr(QueryError::Eval(Detail::new(format!("{m} in {form}")).form(form.clone()))))?;
        let row = rel.row(i);
        'part: for p in &parts {
            for (k, s) in slots.iter().enumerate() {
                let ok = match s {
                    Slot::Check(c) => row[*c] == p[k],
                    Slot::Dup(j) => p[*j] == p[k],
                    Slot::New => true,
                };
                if !ok {
                    continue 'part;
                }
            }
            out.push_joined(row, slots.iter().zip(p).filter(|(s, _)| matches!(s, Slot::New)).map(|(_, x)| x.clone()))?;
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn apply_fn(
    eng: &mut Engine,
    rel: Rel,
    func: Symbol,
    args: &[Term],
    binding: &Binding,
    form: &Edn,
    _src: Symbol,
) -> Result<Rel> {
    let f = resolve_fn(eng.ctx, func, form)?;
    let forms = f.wants_forms();
    let (cols, consts) = prepare_args(&rel, args, form, forms)?;
    let ctx = eng.ctx;
    let mut argv = Vec::with_capacity(args.len());
    extend_with_binding(
        &rel,
        binding,
        |i| {
            deadline::check()?;
            eval_args(ctx, args, &cols, rel.row(i), &consts, forms, &mut argv)?;
            f.call(&argv).map(Some).map_err(|e| call_error(e, func, form))
        },
        form,
    )
}

// ------------------------------------------------------------------ data patterns

#[derive(Clone, Copy, Debug)]
enum Slot {
    Blank,
    /// Equal to this constant (index into `consts`).
    Const,
    /// Equal to the relation's column.
    Bound(usize),
    /// A new column.
    Free,
    /// Equal to the component at this earlier position.
    Same(usize),
}

/// The components of a datom or a tuple by position (`e a v tx added`).
trait Components {
    /// The component as an owned value, for output.
    fn comp(&self, pos: usize) -> Value;
    /// The component, borrowed where it is stored as a `Value`.
    fn comp_cow(&self, pos: usize) -> Cow<'_, Value>;
    /// Whether the component equals `v`, without building a value.
    fn comp_eq(&self, pos: usize, v: &Value) -> bool;
    /// Under `:attribute-refs? true`: the component as a user sees it, when that differs from
    /// the stored one (an attribute as its id, a schema enum value as its id).
    fn presented(&self, _pos: usize, _ids: &Schema) -> Option<Value> {
        None
    }
}
impl Components for Datom {
    fn comp(&self, pos: usize) -> Value {
        self.comp_cow(pos).into_owned()
    }
    fn comp_cow(&self, pos: usize) -> Cow<'_, Value> {
        match pos {
            0 => Cow::Owned(Value::Long(self.e)),
            1 => Cow::Owned(Value::Keyword(self.a)),
            2 => Cow::Borrowed(&self.v),
            3 => Cow::Owned(Value::Long(self.tx())),
            _ => Cow::Owned(Value::Boolean(self.added())),
        }
    }
    fn presented(&self, pos: usize, ids: &Schema) -> Option<Value> {
        match pos {
            1 => Some(ids.present_attr(self.a)),
            2 if attr_refs::is_enum_attr(self.a) => Some(ids.present_value(self.a, &self.v)),
            _ => None,
        }
    }
    fn comp_eq(&self, pos: usize, v: &Value) -> bool {
        match pos {
            0 => matches!(v, Value::Long(e) if *e == self.e),
            1 => matches!(v, Value::Keyword(a) if *a == self.a),
            2 => self.v == *v,
            3 => matches!(v, Value::Long(tx) if *tx == self.tx()),
            _ => matches!(v, Value::Boolean(added) if *added == self.added()),
        }
    }
}
impl Components for Vec<Value> {
    fn comp(&self, pos: usize) -> Value {
        self.get(pos).cloned().unwrap_or(Value::Nil)
    }
    fn comp_cow(&self, pos: usize) -> Cow<'_, Value> {
        self.get(pos).map_or(Cow::Owned(Value::Nil), Cow::Borrowed)
    }
    fn comp_eq(&self, pos: usize, v: &Value) -> bool {
        self.get(pos).unwrap_or(&Value::Nil) == v
    }
}

struct PatternPlan {
    slots: Vec<Slot>,
    consts: Vec<Option<Value>>,
    out_vars: Vec<Var>,
    /// Bounds on the value from fused comparisons.
    range: Option<VRange>,
    /// Under `:attribute-refs? true`, the database's idents: the pattern binds attributes (and
    /// schema enum values) as ids.
    ids: Option<Arc<Schema>>,
    /// The distinct rows wanted, when this is the query's last clause (`RowGoal`).
    goal: Option<std::rc::Rc<std::cell::RefCell<Goal>>>,
    /// The positions [`PatternPlan::matches`] compares: constants the scan's bounds do not
    /// fix (see [`fixed_by_bounds`]), and repeated variables.
    checks: Vec<usize>,
    /// The positions of the new columns, in order.
    free: Vec<usize>,
}

/// The progress towards a [`RowGoal`]: the distinct projections of the rows made so far.
struct Goal {
    cols: Vec<usize>,
    /// Whether the rows the pattern makes are distinct and `cols` keeps all their columns:
    /// then their projections are distinct too, and `seen` needs no hash table.
    unique: bool,
    seen: RowSet,
    n: usize,
    keep_rows: bool,
    done: bool,
}

fn plan_slots(rel: &Rel, terms: &[Term]) -> (Vec<Slot>, Vec<Var>) {
    let mut slots = Vec::new();
    let mut vars = rel.vars.clone();
    let mut first_pos: Vec<(Var, usize)> = Vec::new();
    for (pos, t) in terms.iter().enumerate() {
        slots.push(match t {
            Term::Blank | Term::Src(_) => Slot::Blank,
            Term::Const(_) => Slot::Const,
            Term::Var(v) => {
                if let Some(c) = rel.col(*v) {
                    Slot::Bound(c)
                } else if let Some((_, p)) = first_pos.iter().find(|(x, _)| x == v) {
                    Slot::Same(*p)
                } else {
                    first_pos.push((*v, pos));
                    vars.push(*v);
                    Slot::Free
                }
            }
        });
    }
    (slots, vars)
}

impl PatternPlan {
    fn new(
        slots: Vec<Slot>,
        consts: Vec<Option<Value>>,
        out_vars: Vec<Var>,
        range: Option<VRange>,
        ids: Option<Arc<Schema>>,
        goal: Option<std::rc::Rc<std::cell::RefCell<Goal>>>,
    ) -> PatternPlan {
        let free = slots.iter().enumerate().filter(|(_, s)| matches!(s, Slot::Free)).map(|(p, _)| p).collect();
        let mut plan = PatternPlan { slots, consts, out_vars, range, ids, goal, checks: Vec::new(), free };
        plan.set_fixed_by_scan(0);
        plan
    }

    /// Records the positions (bit `pos`) whose constant every scanned datom already has,
    /// so that [`PatternPlan::matches`] does not compare them again.
    fn set_fixed_by_scan(&mut self, fixed: u8) {
        self.checks = (self.slots.iter().enumerate())
            .filter(|(pos, s)| match s {
                Slot::Const => fixed & (1 << pos) == 0,
                Slot::Same(_) => true,
                _ => false,
            })
            .map(|(pos, _)| pos)
            .collect();
    }

    /// Component `pos` of `d` as the query sees it.
    fn comp<T: Components>(&self, d: &T, pos: usize) -> Value {
        match self.ids.as_deref().and_then(|ids| d.presented(pos, ids)) {
            Some(v) => v,
            None => d.comp(pos),
        }
    }

    fn comp_cow<'d, T: Components>(&self, d: &'d T, pos: usize) -> Cow<'d, Value> {
        match self.ids.as_deref().and_then(|ids| d.presented(pos, ids)) {
            Some(v) => Cow::Owned(v),
            None => d.comp_cow(pos),
        }
    }

    /// Whether component `pos` of `d` equals `v`, as stored or as the query sees it.
    fn comp_eq<T: Components>(&self, d: &T, pos: usize, v: &Value) -> bool {
        d.comp_eq(pos, v) || self.ids.as_deref().and_then(|ids| d.presented(pos, ids)).is_some_and(|p| p == *v)
    }

    fn matches<T: Components>(&self, d: &T, row: Option<&[Value]>) -> bool {
        if let Some(range) = &self.range {
            if !range.admits(&d.comp_cow(2)) {
                return false;
            }
        }
        for &pos in &self.checks {
            let ok = match self.slots[pos] {
                Slot::Const => self.consts[pos].as_ref().is_some_and(|c| self.comp_eq(d, pos, c)),
                Slot::Same(p) => self.comp_eq(d, pos, &self.comp_cow(d, p)),
                _ => true,
            };
            if !ok {
                return false;
            }
        }
        if let Some(row) = row {
            for (pos, s) in self.slots.iter().enumerate() {
                if let Slot::Bound(c) = s {
                    if !self.comp_eq(d, pos, &row[*c]) {
                        return false;
                    }
                }
            }
        }
        true
    }

    fn emit<T: Components>(&self, d: &T, row: &[Value], out: &mut Rel) -> Result<()> {
        if let Some(goal) = &self.goal {
            let mut goal = goal.borrow_mut();
            if !goal.keep_rows {
                // Straight into the find tuples: the row itself is never made.
                let Goal { cols, seen, n, done, unique, .. } = &mut *goal;
                let values = cols.iter().map(|c| match row.get(*c) {
                    Some(v) => v.clone(),
                    None => self.comp(d, self.free_position(c - row.len())),
                });
                if *unique {
                    seen.push_distinct(values)?;
                } else {
                    seen.insert(values)?;
                }
                *done = seen.len() >= *n;
                return Ok(());
            }
        }
        out.push_joined(row, self.free.iter().map(|&pos| self.comp(d, pos)))?;
        self.count_goal(out)
    }

    /// The datom position of the `k`-th new column.
    fn free_position(&self, k: usize) -> usize {
        self.free.get(k).copied().unwrap_or(0)
    }

    /// Counts the last row of `out` towards the goal (and drops it, unless the goal keeps
    /// rows).
    fn count_goal(&self, out: &mut Rel) -> Result<()> {
        if let Some(goal) = &self.goal {
            let mut goal = goal.borrow_mut();
            let Goal { cols, seen, n, done, keep_rows, unique } = &mut *goal;
            let last = out.row(out.n_rows - 1);
            let values = cols.iter().map(|c| last[*c].clone());
            if *unique {
                seen.push_distinct(values)?;
            } else {
                seen.insert(values)?;
            }
            *done = seen.len() >= *n;
            if !*keep_rows {
                out.data.truncate(out.data.len() - out.width());
                out.n_rows -= 1;
            }
        }
        Ok(())
    }

    /// Whether the goal is met: the scan can stop.
    fn done(&self) -> bool {
        self.goal.as_ref().is_some_and(|g| g.borrow().done)
    }

    /// Emits a row and says whether to go on: not after an error (kept in `stop`) or once the
    /// goal is met.
    fn emit_or_stop<T: Components>(&self, d: &T, row: &[Value], out: &mut Rel, stop: &mut Option<Error>) -> bool {
        match self.emit(d, row, out) {
            Ok(()) => !self.done(),
            Err(e) => {
                *stop = Some(e);
                false
            }
        }
    }

    fn bound(&self) -> Vec<(usize, usize)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(p, s)| if let Slot::Bound(c) = s { Some((p, *c)) } else { None })
            .collect()
    }

    /// Joins the items `scan` visits (each checked against the constants) with `rel` through
    /// a hash table on the bound positions; a product when nothing is bound.
    fn hash_join<T: Components>(
        &self,
        rel: &Rel,
        scan: impl FnOnce(&mut dyn FnMut(&T) -> bool) -> Result<()>,
        norm: impl Fn(usize, &Value) -> Option<Value>,
    ) -> Result<Rel> {
        let mut out = Rel::empty(self.out_vars.clone());
        let bound = self.bound();
        if bound.is_empty() {
            let mut stop = None;
            if rel.n_rows == 1 {
                let row = rel.row(0);
                let scanned = scan(&mut |d| {
                    if self.matches(d, None) && !self.emit_or_stop(d, row, &mut out, &mut stop) {
                        return false;
                    }
                    keep_going(&mut stop)
                });
                finish_scan(scanned, stop)?;
                return Ok(out);
            }
            // A product: the scan's matches once, then each row with each of them.
            let mut found: rel::Tracked<Value> = rel::Tracked::new();
            let mut n_found: u64 = 0;
            let free: Vec<usize> =
                self.slots.iter().enumerate().filter(|(_, s)| matches!(s, Slot::Free)).map(|(p, _)| p).collect();
            let scanned = scan(&mut |d| {
                if self.matches(d, None) {
                    n_found += 1;
                    if let Err(e) = found.extend(free.iter().map(|p| self.comp(d, *p))) {
                        stop = Some(e);
                        return false;
                    }
                }
                keep_going(&mut stop)
            });
            finish_scan(scanned, stop)?;
            if free.is_empty() {
                // No new column: the pattern only says whether anything matches, and a row
                // once is as good as once per match (every result is a set).
                if n_found > 0 {
                    for row in rel.rows() {
                        deadline::tick()?;
                        out.push_row(row)?;
                        self.count_goal(&mut out)?;
                        if self.done() {
                            break;
                        }
                    }
                }
                return Ok(out);
            }
            for row in rel.rows() {
                for f in found.chunks(free.len()) {
                    deadline::tick()?;
                    out.push_joined(row, f.iter().cloned())?;
                    self.count_goal(&mut out)?;
                    if self.done() {
                        return Ok(out);
                    }
                }
            }
            return Ok(out);
        }
        let mut groups = Groups::new(bound.len(), rel.n_rows)?;
        let mut key: Vec<Value> = Vec::with_capacity(bound.len());
        let mut filed = 0;
        'rows: for row in rel.rows() {
            deadline::tick()?;
            key.clear();
            for (p, c) in &bound {
                match norm(*p, &row[*c]) {
                    Some(v) => key.push(v),
                    None => continue 'rows,
                }
            }
            // Rows that name nothing are skipped; the rest are numbered densely.
            groups.add(key.drain(..), filed)?;
            filed += 1;
        }
        let mut row_of: Vec<u32> = Vec::new();
        if filed != rel.n_rows {
            row_of = rel
                .rows()
                .enumerate()
                .filter(|(_, row)| bound.iter().all(|(p, c)| norm(*p, &row[*c]).is_some()))
                .map(|(i, _)| i as u32)
                .collect();
        }
        let mut stop = None;
        let scanned = scan(&mut |d| {
            if !keep_going(&mut stop) {
                return false;
            }
            if !self.matches(d, None) {
                return true;
            }
            let mut h = FxHasher::default();
            for (p, _) in &bound {
                self.comp_cow(d, *p).hash(&mut h);
            }
            let found =
                groups.keys.find(h.finish(), |key| bound.iter().zip(key).all(|((p, _), v)| self.comp_eq(d, *p, v)));
            if let Some(k) = found {
                for i in groups.rows_of(k) {
                    let i = if row_of.is_empty() { i } else { row_of[i] as usize };
                    if !self.emit_or_stop(d, rel.row(i), &mut out, &mut stop) {
                        return false;
                    }
                    if !keep_going(&mut stop) {
                        return false;
                    }
                }
            }
            true
        });
        finish_scan(scanned, stop)?;
        Ok(out)
    }
}

/// Counts one unit of scan work against the query's deadline; on a timeout keeps the error in
/// `stop` and says to stop the scan.
fn keep_going(stop: &mut Option<Error>) -> bool {
    match deadline::tick() {
        Ok(()) => true,
        Err(e) => {
            *stop = Some(e);
            false
        }
    }
}

/// The scan's outcome, or the timeout that stopped it.
fn finish_scan(scanned: Result<()>, stop: Option<Error>) -> Result<()> {
    scanned?;
    stop.map_or(Ok(()), Err)
}

/// Resolves an entity reference held in a relation (an id, an ident or a lookup ref).
fn norm_eid(db: &Db, v: &Value) -> Option<Value> {
    match v {
        Value::Long(_) => Some(v.clone()),
        Value::Keyword(k) => db.schema().ident_eid(*k).map(Value::Long),
        Value::Tuple(xs) if xs.len() == 2 => {
            db.entid(&Edn::Vector(xs.iter().map(Value::to_edn).collect())).ok().flatten().map(Value::Long)
        }
        _ => None,
    }
}

/// [`norm_eid`], except that a two-element tuple (a lookup ref) that names no entity, or is
/// no valid lookup ref, is an error naming it ("Nothing found for ..."), as in Datahike.
fn strict_lookup(db: &Db, v: &Value) -> Result<Option<Value>> {
    let Value::Tuple(xs) = v else { return Ok(norm_eid(db, v)) };
    if xs.len() != 2 {
        return Ok(None);
    }
    let lookup = Edn::Vector(xs.iter().map(Value::to_edn).collect());
    match db.entid(&lookup)? {
        Some(e) => Ok(Some(Value::Long(e))),
        None => {
            let message = format!("Nothing found for entity id {lookup}");
            Err(Error::Argument(Detail::new(message).entity_id(lookup)))
        }
    }
}

/// An attribute held in a relation, in the form the pattern's scan produces: its ident, or
/// under `:attribute-refs? true` its id.
fn norm_attr(db: &Db, v: &Value) -> Option<Value> {
    let a = match v {
        Value::Keyword(k) => *k,
        Value::Long(e) => db.schema().eid_ident(*e)?,
        _ => return None,
    };
    Some(if db.attr_refs() { db.schema().present_attr(a) } else { Value::Keyword(a) })
}

/// Constants of a pattern against a database; `None` when a constant names nothing, so the
/// pattern matches nothing.
fn db_consts(db: &Db, terms: &[Term]) -> Result<Option<Vec<Option<Value>>>> {
    let mut consts = vec![None; terms.len()];
    let attr = match terms.get(1) {
        Some(Term::Const(Edn::Keyword(k))) => {
            if db.attr_refs() && db.schema().attr(*k).is_none() && db.schema().ident_eid(*k).is_none() {
                // Under `:attribute-refs? true` an attribute is an entity: one that does not
                // exist matches nothing, and Datahike warns about it.
                tracing::warn!(target: "datahike::query", attribute = %k, "attribute not found: {k} is no attribute of the database; the pattern matches nothing");
            }
            Some(*k)
        }
        Some(Term::Const(Edn::Int(e))) => match db.schema().eid_ident(*e) {
            Some(k) => Some(k),
            None => return Ok(None),
        },
        Some(Term::Const(other)) => {
            let message = format!("Attribute {other} in a pattern should be a keyword");
            return Err(qerr(QueryError::Syntax(Detail::new(message).with("attribute", other.clone()))));
        }
        _ => None,
    };
    for (pos, t) in terms.iter().enumerate() {
        let Term::Const(c) = t else { continue };
        let v = match pos {
            0 | 3 => match db.entid(c) {
                Ok(Some(e)) => Value::Long(e),
                Ok(None) => return Ok(None),
                Err(e) => return Err(e),
            },
            1 => Value::Keyword(attr.unwrap_or_else(|| Keyword::new("db/id"))),
            2 => match attr {
                Some(a) => match db.value_for(a, c) {
                    Ok(v) => v,
                    Err(_) => return Ok(None),
                },
                None => match const_value(c) {
                    Some(v) => v,
                    None => return Ok(None),
                },
            },
            _ => match c {
                Edn::Bool(b) => Value::Boolean(*b),
                _ => return Ok(None),
            },
        };
        consts[pos] = Some(v);
    }
    Ok(Some(consts))
}

fn key_of(consts: &[Option<Value>]) -> DatomKey {
    let long = |i: usize| consts.get(i).and_then(|c| c.as_ref()).and_then(Value::as_long);
    DatomKey {
        e: long(0),
        a: consts.get(1).and_then(|c| c.as_ref()).and_then(Value::as_keyword),
        v: consts.get(2).and_then(|c| c.clone()),
        tx: long(3),
    }
}

/// The positions (bit `pos`) that every datom between `lo` and `hi` in `order` holds equal to
/// the constant of that position: the leading components in which the bounds agree.
fn fixed_by_bounds(order: IndexOrder, lo: &DatomKey, hi: &DatomKey, consts: &[Option<Value>]) -> u8 {
    let leading: [usize; 4] = match order {
        IndexOrder::Eavt => [0, 1, 2, 3],
        IndexOrder::Aevt => [1, 0, 2, 3],
        IndexOrder::Avet => [1, 2, 0, 3],
    };
    let component = |k: &DatomKey, pos: usize| match pos {
        0 => k.e.map(Value::Long),
        1 => k.a.map(Value::Keyword),
        2 => k.v.clone(),
        _ => k.tx.map(Value::Long),
    };
    let mut fixed = 0u8;
    for pos in leading {
        let (l, h) = (component(lo, pos), component(hi, pos));
        match (l, h) {
            (Some(l), Some(h)) if l == h => {
                if consts.get(pos).and_then(Option::as_ref) == Some(&l) {
                    fixed |= 1 << pos;
                }
            }
            _ => break,
        }
    }
    fixed
}

fn prefix_len(k: &DatomKey) -> usize {
    k.e.is_some() as usize + k.a.is_some() as usize + k.v.is_some() as usize + k.tx.is_some() as usize
}

/// How a data pattern read its database.
struct Access {
    strategy: &'static str,
    order: IndexOrder,
    prefix: DatomKey,
    /// Comparisons fused into the scan.
    filter: Vec<String>,
}

impl Access {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(e) = self.prefix.e {
            parts.push(e.to_string());
        }
        if let Some(a) = self.prefix.a {
            parts.push(a.to_string());
        }
        if let Some(v) = &self.prefix.v {
            parts.push(v.to_edn().to_string());
        }
        if let Some(tx) = self.prefix.tx {
            parts.push(tx.to_string());
        }
        let order = format!("{:?}", self.order).to_lowercase();
        let mut text = format!("{} :{order} [{}]", self.strategy, parts.join(" "));
        for f in &self.filter {
            text.push_str(" + ");
            text.push_str(f);
        }
        text
    }
}

fn pattern_db(
    db: &Db,
    rel: Rel,
    terms: &[Term],
    range: Option<&VRange>,
    scan_key: (usize, Symbol),
    scans: &mut HashMap<(usize, Symbol), u64>,
    goal: Option<&RowGoal>,
) -> Result<(Rel, Access)> {
    let progress = match goal {
        Some(g) => {
            let (_, out_vars) = plan_slots(&rel, terms);
            let cols: Option<Vec<usize>> = g.vars.iter().map(|v| out_vars.iter().position(|x| x == v)).collect();
            match cols {
                Some(cols) => {
                    let unique =
                        rel.distinct && identifies_datoms(db, terms) && (0..out_vars.len()).all(|c| cols.contains(&c));
                    let seen = if unique {
                        let mut seen = RowSet::unindexed(cols.len());
                        if rel.n_rows > 1 {
                            // A join makes about one row per row it joins (more or fewer).
                            seen.reserve_rows(rel.n_rows.min(g.n))?;
                        }
                        seen
                    } else {
                        RowSet::with_capacity(cols.len(), g.n.min(1024))?
                    };
                    Some(std::rc::Rc::new(std::cell::RefCell::new(Goal {
                        unique,
                        seen,
                        cols,
                        n: g.n,
                        keep_rows: g.keep_rows,
                        done: false,
                    })))
                }
                None => None,
            }
        }
        None => None,
    };
    let out = pattern_db_with(db, rel, terms, range, scan_key, scans, progress.clone())?;
    if let (Some(g), Some(progress)) = (goal, progress) {
        if let Ok(progress) = std::rc::Rc::try_unwrap(progress) {
            *g.sink.borrow_mut() = Some(progress.into_inner().seen);
        }
    }
    Ok(out)
}

/// Whether a pattern's matches in `db` are distinct datoms told apart by the pattern's own
/// terms: entity, attribute and value are each a variable or a constant (no blank), and `db`
/// holds each (e, a, v) once. Joined with distinct rows, it then makes distinct rows.
fn identifies_datoms(db: &Db, terms: &[Term]) -> bool {
    db.eav_unique() && terms.len() >= 3 && terms[..3].iter().all(|t| matches!(t, Term::Var(_) | Term::Const(_)))
}

fn pattern_db_with(
    db: &Db,
    rel: Rel,
    terms: &[Term],
    range: Option<&VRange>,
    scan_key: (usize, Symbol),
    scans: &mut HashMap<(usize, Symbol), u64>,
    goal: Option<std::rc::Rc<std::cell::RefCell<Goal>>>,
) -> Result<(Rel, Access)> {
    let (slots, out_vars) = plan_slots(&rel, terms);
    let Some(consts) = db_consts(db, terms)? else {
        let access = Access {
            strategy: "NONE (a constant names nothing)",
            order: IndexOrder::Eavt,
            prefix: DatomKey::default(),
            filter: Vec::new(),
        };
        return Ok((Rel::empty(out_vars), access));
    };
    let ids = db.attr_refs().then(|| db.0.schema.clone());
    // Distinct rows joined with distinct datoms make distinct rows.
    let distinct = rel.distinct && identifies_datoms(db, terms);
    let mut plan = PatternPlan::new(slots, consts, out_vars, range.cloned(), ids, goal);
    let filter = range.map(|r| r.fused.clone()).unwrap_or_default();
    let key = key_of(&plan.consts);
    let (mut order, prefix) = choose_index(db.schema(), &key);
    let bound = plan.bound();
    let e_col = match bound.as_slice() {
        [(0, c)] => Some(*c),
        _ => None,
    };
    // The scan's bounds: the prefix, or a range of AVET values for fused comparisons (unless
    // the entity is bound: then the entity-ordered AEVT scan can merge with the rows).
    let (mut lo, mut hi) = (prefix.clone(), prefix.clone());
    if let (Some(range), Some(a), None, None, None) = (range, key.a, key.e, &key.v, e_col) {
        if db.schema().is_indexed(a) {
            order = IndexOrder::Avet;
            lo = DatomKey { a: Some(a), v: range.lo.as_ref().map(|(v, _)| v.clone()), ..Default::default() };
            hi = DatomKey { a: Some(a), v: range.hi.as_ref().map(|(v, _)| v.clone()), ..Default::default() };
        }
    }
    // The value of a ref attribute may also come as an ident or a lookup ref (from :in, say).
    let ref_attr = key.a.and_then(|a| db.schema().attr(a)).is_some_and(|a| a.is_ref());
    // A lookup ref that names no entity (or is no lookup ref) is an error, as in Datahike:
    // the first one is kept and returned once the join is done.
    let lookup_failure: std::cell::RefCell<Option<Error>> = std::cell::RefCell::new(None);
    let strict_eid = |v: &Value| match strict_lookup(db, v) {
        Ok(found) => found,
        Err(e) => {
            lookup_failure.borrow_mut().get_or_insert(e);
            None
        }
    };
    let norm = |pos: usize, v: &Value| match pos {
        0 => strict_eid(v),
        1 => norm_attr(db, v),
        2 if ref_attr => strict_eid(v),
        _ => Some(v.clone()),
    };
    // Whether the scan yields datoms in ascending entity order.
    let by_entity = key.e.is_none()
        && match order {
            IndexOrder::Eavt => true,
            IndexOrder::Aevt => key.a.is_some(),
            IndexOrder::Avet => key.v.is_some() && lo.v == hi.v,
        };
    // A merge join needs the rows' entities as ids (not lookup refs or idents).
    let mergeable = by_entity
        && e_col.is_some_and(|c| rel.sorted_by == Some(c) || rel.rows().all(|r| matches!(r[c], Value::Long(_))));
    if !bound.is_empty() {
        // Would a per-row lookup use a longer index prefix than the constants alone?
        let mut probe_key = key.clone();
        for (pos, _) in &bound {
            match pos {
                0 => probe_key.e = Some(0),
                1 => probe_key.a = Some(Keyword::new("db/ident")),
                2 => probe_key.v = Some(Value::Nil),
                3 => probe_key.tx = Some(0),
                _ => {}
            }
        }
        let (probe_order, probe_prefix) = choose_index(db.schema(), &probe_key);
        if prefix_len(&probe_prefix) > prefix_len(&prefix) {
            let scan = match (range, scans.get(&scan_key)) {
                (None, Some(n)) => *n,
                _ => {
                    let n = db.index(order).count_range(&lo, &hi)?;
                    if range.is_none() {
                        scans.insert(scan_key, n);
                    }
                    n
                }
            };
            // A lookup descends the tree: worth it for few rows, fewer still against a merge
            // (measured: one lookup costs about as much as scanning 50 to 100 datoms).
            let per_lookup = if mergeable { 64 } else { 16 };
            if (rel.n_rows as u64).saturating_mul(per_lookup) < scan {
                let access = Access { strategy: "LOOKUP per row", order: probe_order, prefix: key.clone(), filter };
                let mut out = lookup_join(db, &plan, &rel, &key, &bound, norm)?;
                out.distinct = distinct;
                if let Some(e) = lookup_failure.borrow_mut().take() {
                    return Err(e);
                }
                return Ok((out, access));
            }
        }
    }
    // Every datom of the scan between `lo` and `hi` has their common leading components.
    plan.set_fixed_by_scan(fixed_by_bounds(order, &lo, &hi, &plan.consts));
    let index = db.index(order);
    if let (true, Some(c)) = (mergeable, e_col) {
        let strategy = if rel.sorted_by == Some(c) { "SCAN + MERGE-JOIN" } else { "SORT + SCAN + MERGE-JOIN" };
        let rel = if rel.sorted_by == Some(c) { rel } else { rel.sorted_by_long(c)? };
        let mut out = merge_join(&plan, &rel, index.as_ref(), &lo, &hi)?;
        out.distinct = distinct;
        return Ok((out, Access { strategy, order, prefix: lo, filter }));
    }
    let strategy = if bound.is_empty() { "SCAN" } else { "SCAN + HASH-JOIN" };
    let scan = |f: &mut dyn FnMut(&Datom) -> bool| index.visit(&lo, &hi, f).map_err(Error::from);
    let mut out = plan.hash_join(&rel, scan, norm)?;
    out.distinct = distinct;
    if let Some(e) = lookup_failure.borrow_mut().take() {
        return Err(e);
    }
    if by_entity {
        // Rows come out in scan order: by the new entity column, or by the bound one.
        out.sorted_by = match (bound.as_slice(), plan.slots.first()) {
            ([], Some(Slot::Free)) if rel.n_rows == 1 => Some(rel.width()),
            // Sorted by the bound column only if it holds entity ids alone: a lookup ref or
            // an ident bound there (from :in) sorts nowhere a merge join could follow.
            ([(0, c)], _) if out.rows().all(|row| matches!(row[*c], Value::Long(_))) => Some(*c),
            _ => None,
        };
    }
    Ok((out, Access { strategy, order, prefix: if order == IndexOrder::Avet { lo } else { prefix }, filter }))
}

/// Joins `rel`, sorted by the entity column the pattern's `e` is bound to, with a scan in
/// ascending entity order, advancing through both once. The scan starts at the first entity
/// of `rel` and stops after the last; the output keeps `rel`'s order.
fn merge_join(
    plan: &PatternPlan,
    rel: &Rel,
    index: &dyn crate::index::DatomIndex,
    lo: &DatomKey,
    hi: &DatomKey,
) -> Result<Rel> {
    let mut out = Rel::empty(plan.out_vars.clone());
    out.sorted_by = rel.sorted_by;
    let Some(col) = rel.sorted_by else { return Ok(out) };
    out.data.reserve(rel.n_rows * out.vars.len())?;
    if rel.n_rows == 0 {
        return Ok(out);
    }
    // The rows' entities, in order, read once.
    let mut es: rel::Tracked<i64> = rel::Tracked::with_capacity(rel.n_rows)?;
    es.extend(rel.rows().map(|r| r[col].as_long().unwrap_or(i64::MIN)))?;
    let e_of = |i: usize| es[i];
    let (first, last) = (e_of(0), e_of(rel.n_rows - 1));
    // The entity follows the scan's bound components in each order, so it extends the start key.
    let lo = DatomKey { e: Some(first), ..lo.clone() };
    let mut i = 0;
    let mut stop = None;
    let scanned = index.visit(&lo, hi, &mut |d| {
        if d.e > last || !keep_going(&mut stop) {
            return false;
        }
        while i < rel.n_rows && e_of(i) < d.e {
            i += 1;
        }
        if i == rel.n_rows {
            return false;
        }
        if e_of(i) == d.e && plan.matches(d, None) {
            let mut j = i;
            while j < rel.n_rows && e_of(j) == d.e {
                if !plan.emit_or_stop(d, rel.row(j), &mut out, &mut stop) {
                    return false;
                }
                j += 1;
            }
        }
        true
    });
    finish_scan(scanned.map_err(Error::from), stop)?;
    Ok(out)
}

fn lookup_join(
    db: &Db,
    plan: &PatternPlan,
    rel: &Rel,
    key: &DatomKey,
    bound: &[(usize, usize)],
    norm: impl Fn(usize, &Value) -> Option<Value>,
) -> Result<Rel> {
    let mut out = Rel::empty(plan.out_vars.clone());
    'rows: for row in rel.rows() {
        let mut k = key.clone();
        for (pos, c) in bound {
            let Some(v) = norm(*pos, &row[*c]) else { continue 'rows };
            match pos {
                0 => k.e = v.as_long(),
                1 => k.a = db.schema().attr_from_value(&v),
                2 => k.v = Some(v),
                3 => k.tx = v.as_long(),
                _ => {}
            }
        }
        let (order, prefix) = choose_index(db.schema(), &k);
        let mut stop = None;
        let scanned = db.index(order).visit(&prefix, &prefix, &mut |d| {
            if plan.matches(d, None) && matches_key(d, &k) && !plan.emit_or_stop(d, row, &mut out, &mut stop) {
                return false;
            }
            keep_going(&mut stop)
        });
        finish_scan(scanned.map_err(Error::from), stop)?;
        if plan.done() {
            break;
        }
    }
    Ok(out)
}

fn matches_key(d: &Datom, k: &DatomKey) -> bool {
    k.e.is_none_or(|e| d.e == e)
        && k.a.is_none_or(|a| d.a == a)
        && k.v.as_ref().is_none_or(|v| d.v == *v)
        && k.tx.is_none_or(|t| d.tx() == t)
}

fn pattern_coll(tuples: &[Vec<Value>], rel: Rel, terms: &[Term], clause: &Clause) -> Result<Rel> {
    let (slots, out_vars) = plan_slots(&rel, terms);
    let mut consts = Vec::new();
    for t in terms {
        consts.push(match t {
            Term::Const(c) => Some(const_value(c).ok_or_else(|| {
                let message = format!("{c} is not supported as a constant in {clause}");
                qerr(QueryError::Unsupported(Detail::new(message).form(clause.form()).value(c.clone())))
            })?),
            _ => None,
        });
    }
    let plan = PatternPlan::new(slots, consts, out_vars, None, None, None);
    let scan = |f: &mut dyn FnMut(&Vec<Value>) -> bool| {
        for t in tuples.iter().filter(|t| t.len() >= terms.len()) {
            if !f(t) {
                break;
            }
        }
        Ok(())
    };
    plan.hash_join(&rel, scan, |_, v| Some(v.clone()))
}

/// Estimated rows after joining pattern `c` to a relation whose variables `has` tells, per
/// row of the relation: the cost is the relation's rows times this factor, which changes only
/// when one of the pattern's variables becomes bound.
fn estimate_pattern(
    eng: &mut Engine,
    c: &Clause,
    source: Symbol,
    terms: &[Term],
    has: impl Fn(Var) -> bool,
) -> Result<f64> {
    let rows = 1.0;
    let source = eng.ctx.source(source).or_else(|_| eng.ctx.source(Symbol::new("$")));
    let db = match source {
        Ok(Source::Db(db)) => db,
        Ok(Source::Coll(ts)) => return Ok(rows * ts.len() as f64),
        Err(_) => return Ok(rows),
    };
    let addr = c as *const Clause as usize;
    let (n_const, n_attr) = match eng.counts.get(&addr) {
        Some(x) => *x,
        None => {
            let counts = match db_consts(db, terms)? {
                None => (0, 1),
                Some(consts) => {
                    let key = key_of(&consts);
                    let n = count_prefix(db, &key);
                    // A value constant the index cannot use: assume it keeps a tenth.
                    let (_, prefix) = choose_index(db.schema(), &key);
                    let n = if key.v.is_some() && prefix.v.is_none() { n / 10 } else { n };
                    let na = key.a.map(|a| count_attr(db, a)).unwrap_or(n);
                    (n, na.max(1))
                }
            };
            eng.counts.insert(addr, counts);
            counts
        }
    };
    let bound = |pos: usize| matches!(terms.get(pos), Some(Term::Var(v)) if has(*v));
    let many = matches!(terms.get(1), Some(Term::Const(Edn::Keyword(a))) if db.schema().is_many(*a));
    let (nc, na) = (n_const as f64, n_attr as f64);
    Ok(match (bound(0), bound(2)) {
        (false, false) if !bound(1) && !bound(3) => rows * nc,
        (true, true) => rows * 0.5,
        (true, false) => rows * (nc / na) * if many { 2.5 } else { 1.0 },
        (false, true) => rows * 2.0,
        _ => rows * nc * 0.5,
    })
}
