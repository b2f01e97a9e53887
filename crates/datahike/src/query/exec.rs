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
use super::rel::Rel;
use super::rules::{self, FixState};
use super::QueryError;
use crate::datom::{Datom, DatomKey};
use crate::db::Db;
use crate::edn::{Edn, Keyword, Symbol};
use crate::error::{Error, Result};
use crate::value::Value;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::BTreeSet;

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
        self.sources
            .get(&name)
            .ok_or_else(|| QueryError::Binding(format!("There is no source {name} (bind it in :in)")).into())
    }
}

/// Evaluation state: the context plus, while rules are being solved, their tables.
pub(crate) struct Engine<'c> {
    pub ctx: &'c Ctx,
    pub fix: Option<FixState>,
    /// Per pattern (by address): (datoms matching its constants, datoms of its attribute).
    counts: HashMap<usize, (u64, u64)>,
}

impl<'c> Engine<'c> {
    pub fn new(ctx: &'c Ctx) -> Engine<'c> {
        Engine { ctx, fix: None, counts: HashMap::default() }
    }
}

fn qerr(e: QueryError) -> Error {
    Error::Query(e)
}

/// Evaluates `clauses` joined with `rel`; `src` is the default source.
pub(crate) fn eval_where(eng: &mut Engine, clauses: &[Clause], mut rel: Rel, src: Symbol) -> Result<Rel> {
    let mut pending: Vec<&Clause> = clauses.iter().collect();
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
        let idx = pick(eng, &pending, &rel)?;
        let clause = pending.remove(idx);
        rel = apply(eng, clause, rel, src)?;
    }
    Ok(rel)
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

fn not_join_vars(c: &Clause, rel: &Rel, later: &BTreeSet<Var>) -> Option<Vec<Var>> {
    let Clause::Not { join, clauses, .. } = c else { return None };
    match join {
        Some(vars) => vars.iter().all(|v| rel.has(*v)).then(|| vars.clone()),
        None => {
            let mut vars = BTreeSet::new();
            clauses.iter().for_each(|c| c.vars(&mut vars));
            let ready = vars.iter().filter(|v| later.contains(v)).all(|v| rel.has(*v));
            let join: Vec<Var> = vars.into_iter().filter(|v| rel.has(*v)).collect();
            (ready && !join.is_empty()).then_some(join)
        }
    }
}

fn pick(eng: &mut Engine, pending: &[&Clause], rel: &Rel) -> Result<usize> {
    let later_of = |skip: usize| {
        let mut later = BTreeSet::new();
        for (j, c) in pending.iter().enumerate() {
            if j != skip {
                positive_vars(c, &mut later);
            }
        }
        later
    };
    for (i, c) in pending.iter().enumerate() {
        match c {
            Clause::Pred { args, .. } if term_vars(args).all(|v| rel.has(v)) => return Ok(i),
            Clause::Not { .. } if not_join_vars(c, rel, &later_of(i)).is_some() => return Ok(i),
            _ => {}
        }
    }
    for (i, c) in pending.iter().enumerate() {
        if let Clause::Fn { args, .. } = c {
            if term_vars(args).all(|v| rel.has(v)) {
                return Ok(i);
            }
        }
    }
    let mut best: Option<(f64, usize)> = None;
    for (i, c) in pending.iter().enumerate() {
        let cost = match c {
            Clause::Pattern { source, terms } => estimate_pattern(eng, c, *source, terms, rel)?,
            Clause::Or { join, branches, .. } => {
                if let Some((req, _)) = join {
                    if !req.iter().all(|v| rel.has(*v)) {
                        continue;
                    }
                }
                let mut vars = BTreeSet::new();
                match join {
                    Some((req, opt)) => vars.extend(req.iter().chain(opt).copied()),
                    None => branches.iter().flatten().for_each(|c| c.vars(&mut vars)),
                }
                let later = later_of(i);
                if vars.iter().filter(|v| later.contains(v)).all(|v| rel.has(*v)) {
                    rel.n_rows as f64
                } else {
                    1e15
                }
            }
            Clause::RuleCall { name, args, .. } => {
                if let Some(rule) = eng.ctx.rules.get(name).and_then(|r| r.first()) {
                    let required_bound = args.iter().take(rule.required).all(|t| match t {
                        Term::Var(v) => rel.has(*v),
                        Term::Const(_) => true,
                        _ => false,
                    });
                    if !required_bound {
                        continue;
                    }
                }
                let any_bound = args.iter().any(|t| match t {
                    Term::Var(v) => rel.has(*v),
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
    let unbound: Vec<String> = vars.iter().filter(|v| !rel.has(**v)).map(|v| v.to_string()).collect();
    QueryError::Binding(format!("Insufficient bindings: none of #{{{}}} is bound in {c}", unbound.join(" ")))
}

fn apply(eng: &mut Engine, clause: &Clause, rel: Rel, src: Symbol) -> Result<Rel> {
    match clause {
        Clause::Pattern { source, terms } => {
            let source = if source.as_str() == "$" { src } else { *source };
            match eng.ctx.source(source)? {
                Source::Db(db) => pattern_db(db, rel, terms),
                Source::Coll(tuples) => pattern_coll(tuples, rel, terms, clause),
            }
        }
        Clause::Pred { func, args, form } => apply_pred(eng, rel, *func, args, form, src),
        Clause::Fn { func, args, binding, form } => apply_fn(eng, rel, *func, args, binding, form, src),
        Clause::Not { source, clauses, .. } => {
            let src = if source.as_str() == "$" { src } else { *source };
            let join = not_join_vars(clause, &rel, &BTreeSet::new()).ok_or_else(|| qerr(insufficient(clause, &rel)))?;
            let input = rel.project_distinct(&join);
            let res = eval_where(eng, clauses, input, src)?;
            let cols: Vec<usize> = join.iter().map(|v| res.col(*v).unwrap_or(0)).collect();
            let drop: HashSet<Vec<Value>> = res.rows().map(|r| cols.iter().map(|c| r[*c].clone()).collect()).collect();
            let rel_cols: Vec<usize> = join.iter().map(|v| rel.col(*v).unwrap_or(0)).collect();
            let mut out = Rel::empty(rel.vars.clone());
            let mut key = Vec::new();
            for row in rel.rows() {
                key.clear();
                key.extend(rel_cols.iter().map(|c| row[*c].clone()));
                if !drop.contains(&key) {
                    out.push_row(row);
                }
            }
            Ok(out)
        }
        Clause::Or { source, join, branches, form } => {
            let src = if source.as_str() == "$" { src } else { *source };
            let vars: Vec<Var> = match join {
                Some((req, opt)) => req.iter().chain(opt).copied().collect(),
                None => {
                    let mut vs = BTreeSet::new();
                    branches[0].iter().for_each(|c| c.vars(&mut vs));
                    vs.into_iter().collect()
                }
            };
            let bound: Vec<Var> = vars.iter().copied().filter(|v| rel.has(*v)).collect();
            let input = rel.project_distinct(&bound);
            let mut union = Rel::empty(vars.clone());
            for branch in branches {
                let res = eval_where(eng, branch, input.clone(), src)?;
                let mut cols = Vec::new();
                for v in &vars {
                    cols.push(res.col(*v).ok_or_else(|| {
                        qerr(QueryError::Binding(format!(
                            "Insufficient bindings: {v} is not bound by every branch of {form}"
                        )))
                    })?);
                }
                for row in res.rows() {
                    union.data.extend(cols.iter().map(|c| row[*c].clone()));
                    union.n_rows += 1;
                }
            }
            Ok(rel.join(union.distinct()))
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
                    qerr(QueryError::Binding(format!("Insufficient bindings: {v} is not bound in {form}")))
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
                    qerr(QueryError::Unsupported(format!("{c} is not supported as a function argument in {form}")))
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
        return Err(qerr(QueryError::Binding(format!(
            "{func} is not bound to a function in :in (pass QueryInput::Function), in {form}"
        ))));
    }
    match custom::function(func) {
        Some(f) => Ok(Func::User(func, f)),
        None => Err(qerr(QueryError::Syntax(format!("Unknown function '{func} in {form}")))),
    }
}

/// The query error of a failed call in clause `form`.
fn call_error(e: FnError, form: &Edn) -> Error {
    match e {
        FnError::Type(m) | FnError::Other(m) => qerr(QueryError::Eval(format!("{m} in {form}"))),
        FnError::Fail(e) => e,
    }
}

fn apply_pred(eng: &mut Engine, rel: Rel, func: Symbol, args: &[Term], form: &Edn, _src: Symbol) -> Result<Rel> {
    let f = resolve_fn(eng.ctx, func, form)?;
    let forms = f.wants_forms();
    let (cols, consts) = prepare_args(&rel, args, form, forms)?;
    let mut out = Rel::empty(rel.vars.clone());
    let mut argv = Vec::with_capacity(args.len());
    for row in rel.rows() {
        // A call may be slow (a Rust function, a nested query): the clock is read per call.
        deadline::check()?;
        eval_args(eng.ctx, args, &cols, row, &consts, forms, &mut argv)?;
        match f.call(&argv) {
            Ok(v) => {
                if builtins::truthy(&v) {
                    out.push_row(row);
                }
            }
            Err(FnError::Type(_)) => {}
            Err(e) => return Err(call_error(e, form)),
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
        Binding::Coll(b) => {
            let Value::Tuple(xs) = v else {
                if matches!(v, Value::Nil) {
                    return Ok(());
                }
                return Err(format!("Cannot bind value {} to collection", v.to_edn()));
            };
            for x in xs.iter() {
                bind_value(b, x.clone(), out)?;
            }
        }
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
        let Some(v) = produce(i)? else { continue };
        parts.clear();
        bind_value(binding, v, &mut parts).map_err(|m| qerr(QueryError::Eval(format!("{m} in {form}"))))?;
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
            out.data.extend_from_slice(row);
            out.data.extend(slots.iter().zip(p).filter(|(s, _)| matches!(s, Slot::New)).map(|(_, x)| x.clone()));
            out.n_rows += 1;
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
            f.call(&argv).map(Some).map_err(|e| call_error(e, form))
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

trait Components {
    fn comp(&self, pos: usize) -> Value;
}
impl Components for Datom {
    fn comp(&self, pos: usize) -> Value {
        match pos {
            0 => Value::Long(self.e),
            1 => Value::Keyword(self.a),
            2 => self.v.clone(),
            3 => Value::Long(self.tx()),
            _ => Value::Boolean(self.added()),
        }
    }
}
impl Components for Vec<Value> {
    fn comp(&self, pos: usize) -> Value {
        self.get(pos).cloned().unwrap_or(Value::Nil)
    }
}

struct PatternPlan {
    slots: Vec<Slot>,
    consts: Vec<Option<Value>>,
    out_vars: Vec<Var>,
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
    fn matches<T: Components>(&self, d: &T, row: Option<&[Value]>) -> bool {
        for (pos, s) in self.slots.iter().enumerate() {
            let ok = match s {
                Slot::Const => self.consts[pos].as_ref().is_some_and(|c| *c == d.comp(pos)),
                Slot::Same(p) => d.comp(*p) == d.comp(pos),
                Slot::Bound(c) => row.is_none_or(|r| r[*c] == d.comp(pos)),
                _ => true,
            };
            if !ok {
                return false;
            }
        }
        true
    }

    fn emit<T: Components>(&self, d: &T, row: &[Value], out: &mut Rel) {
        out.data.extend_from_slice(row);
        for (pos, s) in self.slots.iter().enumerate() {
            if let Slot::Free = s {
                out.data.push(d.comp(pos));
            }
        }
        out.n_rows += 1;
    }

    fn bound(&self) -> Vec<(usize, usize)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(p, s)| if let Slot::Bound(c) = s { Some((p, *c)) } else { None })
            .collect()
    }

    /// Joins `items` (each checked against the constants) with `rel` through a hash table on
    /// the bound positions; a product when nothing is bound.
    fn hash_join<T: Components>(
        &self,
        rel: &Rel,
        items: impl Iterator<Item = Result<T>>,
        norm: impl Fn(usize, &Value) -> Option<Value>,
    ) -> Result<Rel> {
        let mut out = Rel::empty(self.out_vars.clone());
        let bound = self.bound();
        if bound.is_empty() {
            let mut found = Vec::new();
            for d in items {
                let d = d?;
                deadline::tick()?;
                if self.matches(&d, None) {
                    found.push(d);
                }
            }
            for row in rel.rows() {
                for d in &found {
                    deadline::tick()?;
                    self.emit(d, row, &mut out);
                }
            }
            return Ok(out);
        }
        let key_of_row = |row: &[Value]| -> Option<Value> {
            if bound.len() == 1 {
                norm(bound[0].0, &row[bound[0].1])
            } else {
                Some(Value::Tuple(bound.iter().map(|(p, c)| norm(*p, &row[*c])).collect::<Option<Vec<_>>>()?.into()))
            }
        };
        let mut table: HashMap<Value, Vec<u32>> = HashMap::default();
        for (i, row) in rel.rows().enumerate() {
            if let Some(k) = key_of_row(row) {
                table.entry(k).or_default().push(i as u32);
            }
        }
        for d in items {
            let d = d?;
            deadline::tick()?;
            if !self.matches(&d, None) {
                continue;
            }
            let key = if bound.len() == 1 {
                d.comp(bound[0].0)
            } else {
                Value::Tuple(bound.iter().map(|(p, _)| d.comp(*p)).collect::<Vec<_>>().into())
            };
            if let Some(rows) = table.get(&key) {
                for &i in rows {
                    deadline::tick()?;
                    self.emit(&d, rel.row(i as usize), &mut out);
                }
            }
        }
        Ok(out)
    }
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

fn norm_attr(db: &Db, v: &Value) -> Option<Value> {
    match v {
        Value::Keyword(_) => Some(v.clone()),
        Value::Long(e) => db.schema().eid_ident(*e).map(Value::Keyword),
        _ => None,
    }
}

/// Constants of a pattern against a database; `None` when a constant names nothing, so the
/// pattern matches nothing.
fn db_consts(db: &Db, terms: &[Term]) -> Result<Option<Vec<Option<Value>>>> {
    let mut consts = vec![None; terms.len()];
    let attr = match terms.get(1) {
        Some(Term::Const(Edn::Keyword(k))) => Some(*k),
        Some(Term::Const(Edn::Int(e))) => match db.schema().eid_ident(*e) {
            Some(k) => Some(k),
            None => return Ok(None),
        },
        Some(Term::Const(other)) => {
            return Err(qerr(QueryError::Syntax(format!("Attribute {other} in a pattern should be a keyword"))));
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

fn prefix_len(k: &DatomKey) -> usize {
    k.e.is_some() as usize + k.a.is_some() as usize + k.v.is_some() as usize + k.tx.is_some() as usize
}

fn pattern_db(db: &Db, rel: Rel, terms: &[Term]) -> Result<Rel> {
    let (slots, out_vars) = plan_slots(&rel, terms);
    let Some(consts) = db_consts(db, terms)? else {
        return Ok(Rel::empty(out_vars));
    };
    let plan = PatternPlan { slots, consts, out_vars };
    let key = key_of(&plan.consts);
    let (order, prefix) = choose_index(db.schema(), &key);
    let bound = plan.bound();
    let norm = |pos: usize, v: &Value| match pos {
        0 => norm_eid(db, v),
        1 => norm_attr(db, v),
        _ => Some(v.clone()),
    };
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
        let (_, probe_prefix) = choose_index(db.schema(), &probe_key);
        if prefix_len(&probe_prefix) > prefix_len(&prefix) {
            let scan = db.index(order).count_range(&prefix, &prefix)?;
            if (rel.n_rows as u64).saturating_mul(16) < scan {
                return lookup_join(db, &plan, &rel, &key, &bound, norm);
            }
        }
    }
    let items = db.index(order).range(&prefix, &prefix).map(|r| r.map_err(Error::from));
    plan.hash_join(&rel, items, norm)
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
                1 => k.a = v.as_keyword(),
                2 => k.v = Some(v),
                3 => k.tx = v.as_long(),
                _ => {}
            }
        }
        let (order, prefix) = choose_index(db.schema(), &k);
        for d in db.index(order).range(&prefix, &prefix) {
            let d = d?;
            deadline::tick()?;
            if plan.matches(&d, None) && matches_key(&d, &k) {
                plan.emit(&d, row, &mut out);
            }
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
                qerr(QueryError::Unsupported(format!("{c} is not supported as a constant in {clause}")))
            })?),
            _ => None,
        });
    }
    let plan = PatternPlan { slots, consts, out_vars };
    let items = tuples.iter().filter(|t| t.len() >= terms.len()).map(|t| Ok(t.clone()));
    plan.hash_join(&rel, items, |_, v| Some(v.clone()))
}

/// Estimated rows after joining pattern `c` to `rel`.
fn estimate_pattern(eng: &mut Engine, c: &Clause, source: Symbol, terms: &[Term], rel: &Rel) -> Result<f64> {
    let rows = rel.n_rows as f64;
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
    let bound = |pos: usize| matches!(terms.get(pos), Some(Term::Var(v)) if rel.has(*v));
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
