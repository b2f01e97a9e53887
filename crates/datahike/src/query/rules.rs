//! Rules, evaluated bottom-up and semi-naively, restricted to what the caller asks for.
//!
//! Each distinct call shape — rule name plus which arguments are bound (the adornment) — has a
//! table of *demands* (bound argument values asked for) and *answers* (full argument tuples).
//! A call from a query registers its demands and runs the fixpoint: every iteration evaluates
//! each rule branch for the new demands with all answers, and for the old demands once per
//! rule call in the body with that call reading only the answers new in the last iteration
//! (calls before it read the older answers, calls after it all answers). Calls inside a body
//! add demands to the callee's table, so only the part of a recursive relation reachable from
//! the bound arguments is computed (the effect of magic sets). A branch whose rule calls sit
//! inside `or`/`not` is evaluated naively (all demands, all answers) each iteration.

use super::deadline;
use super::exec::{const_value, eval_where, Engine};
use super::parser::{Clause, Rule, Term, Var};
use super::rel::{hash_values, Groups, Rel, RowSet};
use super::QueryError;
use crate::edn::{Edn, Symbol};
use crate::error::{Detail, Error, Result};
use crate::value::Value;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Which answers a rule call reads in the current evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallMode {
    /// Answers known before the last iteration.
    Old,
    /// Answers added in the last iteration.
    Delta,
    /// Every answer.
    Full,
}

struct Table {
    name: Symbol,
    /// Bit i set: argument i is bound.
    adornment: u64,
    demands: Vec<Vec<Value>>,
    demand_set: HashSet<Vec<Value>>,
    answers: Vec<Vec<Value>>,
    answer_set: HashSet<Vec<Value>>,
    /// The memory budget charged for the demands and answers.
    charge: deadline::Charge,
    /// Demands and answers at the start of the previous and the current iteration.
    demands_old: usize,
    demands_cur: usize,
    answers_old: usize,
    answers_cur: usize,
    source: Option<Symbol>,
}

/// The tables of one fixpoint computation.
#[derive(Default)]
pub(crate) struct FixState {
    tables: Vec<Table>,
    index: HashMap<(Symbol, u64), usize>,
    /// Mode of each top-level rule call (by clause address) in the body being evaluated.
    modes: HashMap<usize, CallMode>,
}

fn qerr(e: QueryError) -> Error {
    Error::Query(e)
}

/// A head variable of rule `rule` that its body does not bind.
fn unbound_head(message: String, rule: Symbol, v: Symbol) -> Error {
    qerr(QueryError::Binding(Detail::new(message).with("rule", Edn::Symbol(rule)).vars([Edn::Symbol(v)])))
}

/// Evaluates a rule call clause joined with `rel`.
pub(crate) fn call(eng: &mut Engine, clause: &Clause, rel: Rel, src: Symbol) -> Result<Rel> {
    let Clause::RuleCall { source, name, args, form } = clause else {
        return Err(qerr(QueryError::Internal("rules::call on a non-rule clause".into())));
    };
    let source = if source.as_str() == "$" { src } else { *source };
    let rules = eng
        .ctx
        .rules
        .get(name)
        .ok_or_else(|| qerr(QueryError::Syntax(super::unknown_rule(*name, form, eng.ctx.rules.keys()))))?;
    let arity = rules[0].head.len();
    let rule_detail = |message: String| Detail::new(message).form(form.clone()).with("rule", Edn::Symbol(*name));
    if args.len() != arity {
        let message = format!("Rule {name} takes {arity} arguments, {} given in {form}", args.len());
        return Err(qerr(QueryError::Syntax(rule_detail(message).expected(Edn::Int(arity as i64)))));
    }
    if arity > 64 {
        return Err(qerr(QueryError::Unsupported(rule_detail(format!("Rule {name} has more than 64 arguments")))));
    }
    // Argument sources: a column of rel, a constant, or free.
    let mut adornment = 0u64;
    let mut bound_src: Vec<Result<usize, Value>> = Vec::new();
    for (i, t) in args.iter().enumerate() {
        match t {
            Term::Var(v) if rel.has(*v) => {
                adornment |= 1 << i;
                bound_src.push(Ok(rel.col(*v).unwrap_or(0)));
            }
            Term::Const(c) => {
                adornment |= 1 << i;
                bound_src.push(Err(const_value(c).ok_or_else(|| {
                    let message = format!("{c} is not supported as a rule argument in {form}");
                    qerr(QueryError::Unsupported(rule_detail(message).value(c.clone())))
                })?));
            }
            _ => {}
        }
    }
    let required = rules[0].required;
    if (0..required).any(|i| adornment & (1 << i) == 0) {
        let message =
            format!("Insufficient bindings: the first {required} arguments of rule {name} must be bound in {form}");
        let unbound = args.iter().take(required).filter_map(|t| match t {
            Term::Var(v) if !rel.has(*v) => Some(Edn::Symbol(*v)),
            _ => None,
        });
        return Err(qerr(QueryError::Binding(rule_detail(message).vars(unbound))));
    }
    let top = eng.fix.is_none();
    if top {
        if !is_recursive(eng, *name) {
            if let Some(out) = inline(eng, rules, args, adornment, &bound_src, &rel, source)? {
                return Ok(out);
            }
        }
        if let Some(out) = right_linear(eng, *name, adornment, &bound_src, &rel, args, source)? {
            return Ok(out);
        }
        eng.fix = Some(FixState::default());
    }
    let mode = {
        let fix = eng.fix.as_mut().expect("fix state exists");
        let t = table_for(fix, *name, adornment, source);
        let table = &mut fix.tables[t];
        for row in rel.rows() {
            let demand: Vec<Value> = demand_of(bound_src.as_slice(), row).collect();
            if !table.demand_set.contains(&demand) {
                table.charge.add(deadline::Charge::row_bytes(demand.len()))?;
                table.demand_set.insert(demand.clone());
                table.demands.push(demand);
            }
        }
        fix.modes.get(&(clause as *const Clause as usize)).copied().unwrap_or(CallMode::Full)
    };
    if top {
        let result = fixpoint(eng);
        if let Err(e) = result {
            eng.fix = None;
            return Err(e);
        }
    }
    let fix = eng.fix.as_ref().expect("fix state exists");
    let t = fix.index[&(*name, adornment)];
    let table = &fix.tables[t];
    let answers = match mode {
        CallMode::Old => &table.answers[..table.answers_old],
        CallMode::Delta => &table.answers[table.answers_old..table.answers_cur],
        CallMode::Full => &table.answers[..],
    };
    let out = join_answers(&rel, args, answers.iter().map(Vec::as_slice))?;
    if top {
        eng.fix = None;
    }
    Ok(out)
}

/// Whether rule `name` can call itself, through any chain of calls (cached per query).
fn is_recursive(eng: &mut Engine, name: Symbol) -> bool {
    if let Some(r) = eng.recursive.get(&name) {
        return *r;
    }
    fn calls(clauses: &[Clause], out: &mut Vec<Symbol>) {
        for c in clauses {
            match c {
                Clause::RuleCall { name, .. } => out.push(*name),
                Clause::Not { clauses, .. } => calls(clauses, out),
                Clause::Or { branches, .. } => branches.iter().for_each(|b| calls(b, out)),
                _ => {}
            }
        }
    }
    let mut stack = vec![name];
    let mut seen: HashSet<Symbol> = HashSet::default();
    let mut recursive = false;
    'walk: while let Some(n) = stack.pop() {
        for rule in eng.ctx.rules.get(&n).into_iter().flatten() {
            let mut callees = Vec::new();
            calls(&rule.body, &mut callees);
            for callee in callees {
                if callee == name {
                    recursive = true;
                    break 'walk;
                }
                if seen.insert(callee) {
                    stack.push(callee);
                }
            }
        }
    }
    eng.recursive.insert(name, recursive);
    recursive
}

/// Evaluates a call of a non-recursive rule as the union of its branches, each evaluated
/// like an `or-join` branch with the call's bound arguments as input: no tables, no fixpoint.
/// `None` when a branch repeats a head variable at a bound position (then the general path
/// handles it).
fn inline(
    eng: &mut Engine,
    rules: &[Rule],
    args: &[Term],
    adornment: u64,
    bound_src: &[Result<usize, Value>],
    rel: &Rel,
    source: Symbol,
) -> Result<Option<Rel>> {
    let positions: Vec<usize> = (0..args.len()).filter(|i| adornment & (1 << i) != 0).collect();
    if !inlinable(rules, &positions) {
        return Ok(None);
    }
    // The distinct bound argument values.
    let mut demand_set = RowSet::with_capacity(bound_src.len(), rel.n_rows.min(1024))?;
    for row in rel.rows() {
        demand_set.insert(demand_of(bound_src, row))?;
    }
    let answers = inline_answers(eng, rules, &positions, demand_set, source)?;
    Ok(Some(join_answers(rel, args, (0..answers.len()).map(|i| answers.row(i)))?))
}

/// Whether no branch repeats a head variable at a bound position.
fn inlinable(rules: &[Rule], positions: &[usize]) -> bool {
    rules.iter().all(|rule| {
        let vars: Vec<Var> = positions.iter().map(|i| rule.head[*i]).collect();
        !vars.iter().enumerate().any(|(j, v)| vars[..j].contains(v))
    })
}

/// A branch whose last clause calls another non-recursive rule, evaluated up to that call.
struct Deferred<'r> {
    rule: &'r Rule,
    call: &'r Clause,
    /// The called rule and the call's arguments.
    name: Symbol,
    args: &'r [Term],
    /// Which arguments are bound over `pre`.
    adornment: u64,
    /// The branch's rows before the call.
    pre: Rel,
    /// Per bound argument of the call: a column of `pre` or a constant.
    bound_src: Vec<Result<usize, Value>>,
}

/// The answers (full argument tuples) of non-recursive rule `rules` for the distinct bound
/// argument values `demands` (columns: the bound `positions`, in order).
///
/// Branches that end in a call of the same rule with the same arguments bound share one
/// evaluation of that rule over the union of their demands: `(hop3 ?x ?y)` and
/// `[?x :follows ?t] (hop3 ?t ?y)` in two branches of `hop4` ask `hop3` once for `x` and the
/// `t`s together, so a chain of such rules walks its graph level by level instead of once
/// per path.
fn inline_answers(
    eng: &mut Engine,
    rules: &[Rule],
    positions: &[usize],
    demands: RowSet,
    source: Symbol,
) -> Result<RowSet> {
    let arity = rules[0].head.len();
    // The columns are named per branch below; any names give the rows their width.
    let demands = demands.into_rel(positions.iter().map(|i| rules[0].head[*i]).collect());
    let mut answers = RowSet::with_capacity(arity, 16)?;
    let mut deferred: Vec<Deferred> = Vec::new();
    let collect = |answers: &mut RowSet, rule: &Rule, res: &Rel| -> Result<()> {
        let mut cols = Vec::with_capacity(rule.head.len());
        for v in &rule.head {
            cols.push(res.col(*v).ok_or_else(|| {
                let message =
                    format!("Insufficient bindings: {v} of the head of rule {} is not bound by its body", rule.name);
                unbound_head(message, rule.name, *v)
            })?);
        }
        for row in res.rows() {
            answers.insert(cols.iter().map(|c| row[*c].clone()))?;
        }
        Ok(())
    };
    for rule in rules {
        let mut input = demands.clone();
        input.vars = positions.iter().map(|i| rule.head[*i]).collect();
        if let Some((last, before)) = rule.body.split_last() {
            if let Some((name, args)) = shareable_call(eng, last) {
                let pre = eval_where(eng, before, input, source)?;
                if let Some((adornment, bound_src)) = call_bindings(eng, name, args, &pre) {
                    deferred.push(Deferred { rule, call: last, name, args, adornment, pre, bound_src });
                    continue;
                }
                let res = eval_where(eng, std::slice::from_ref(last), pre, source)?;
                collect(&mut answers, rule, &res)?;
                continue;
            }
        }
        let res = eval_where(eng, &rule.body, input, source)?;
        collect(&mut answers, rule, &res)?;
    }
    // Calls of one rule with the same arguments bound, evaluated together.
    while let Some(first) = deferred.first() {
        let (name, adornment, call) = (first.name, first.adornment, first.call);
        let (group, rest): (Vec<Deferred>, Vec<Deferred>) =
            deferred.into_iter().partition(|d| d.name == name && d.adornment == adornment);
        deferred = rest;
        let ctx = eng.ctx;
        let callee = &ctx.rules[&name];
        let callee_positions: Vec<usize> = (0..callee[0].head.len()).filter(|i| adornment & (1 << i) != 0).collect();
        let started = std::time::Instant::now();
        if let Some(stats) = eng.stats.as_mut() {
            stats.enter();
        }
        let mut union = RowSet::with_capacity(callee_positions.len(), 16)?;
        let mut rows_in = 0;
        for d in &group {
            rows_in += d.pre.n_rows;
            for row in d.pre.rows() {
                union.insert(demand_of(&d.bound_src, row))?;
            }
        }
        // Shared calls read the caller's source (`shareable_call`).
        let callee_answers = inline_answers(eng, callee, &callee_positions, union, source)?;
        let mut rows_out = 0;
        for d in &group {
            let args = d.args;
            // Each head variable from the branch's rows or from the callee's answer.
            let mut head: Vec<Result<usize, usize>> = Vec::with_capacity(d.rule.head.len());
            for v in &d.rule.head {
                let from_arg = || args.iter().position(|t| matches!(t, Term::Var(x) if x == v));
                head.push(match (d.pre.col(*v), from_arg()) {
                    (Some(c), _) => Ok(c),
                    (None, Some(i)) => Err(i),
                    (None, None) => {
                        let message = format!(
                            "Insufficient bindings: {v} of the head of rule {} is not bound by its body",
                            d.rule.name
                        );
                        return Err(unbound_head(message, d.rule.name, *v));
                    }
                });
            }
            let all = (0..callee_answers.len()).map(|i| callee_answers.row(i));
            join_each(&d.pre, args, all, |row, ans| {
                rows_out += 1;
                answers
                    .insert(head.iter().map(|h| match h {
                        Ok(c) => row[*c].clone(),
                        Err(i) => ans[*i].clone(),
                    }))
                    .map(|_| ())
            })?;
        }
        if let Some(stats) = eng.stats.as_mut() {
            stats.leave(call, rows_in, rows_out, started.elapsed());
        }
    }
    Ok(answers)
}

/// The rule and arguments of `c` when it calls, on the caller's source, a non-recursive rule
/// that [`inline_answers`] can evaluate from the caller's branch (right arity; required
/// arguments are checked by [`call_bindings`]).
fn shareable_call<'c>(eng: &mut Engine, c: &'c Clause) -> Option<(Symbol, &'c [Term])> {
    let Clause::RuleCall { name, args, source: call_src, .. } = c else { return None };
    let ctx = eng.ctx;
    let callee = ctx.rules.get(name)?;
    let ok =
        call_src.as_str() == "$" && callee[0].head.len() == args.len() && args.len() <= 64 && !is_recursive(eng, *name);
    ok.then_some((*name, args.as_slice()))
}

/// Which arguments of call `c` are bound over `pre` (a column or a constant).
fn adornment_of(args: &[Term], pre: &Rel) -> u64 {
    args.iter().enumerate().fold(0, |acc, (i, t)| match t {
        Term::Var(v) if pre.has(*v) => acc | (1 << i),
        Term::Const(_) => acc | (1 << i),
        _ => acc,
    })
}

/// Which arguments of a call of `name` are bound over `pre`, and where each comes from (a
/// column of `pre` or a constant); `None` when the call cannot share an evaluation (its
/// required arguments are not bound, a constant is not a value, or the callee repeats a head
/// variable at a bound position): it is then evaluated on its own.
fn call_bindings(eng: &Engine, name: Symbol, args: &[Term], pre: &Rel) -> Option<(u64, Vec<Result<usize, Value>>)> {
    let callee = eng.ctx.rules.get(&name)?;
    let adornment = adornment_of(args, pre);
    let positions: Vec<usize> = (0..args.len()).filter(|i| adornment & (1 << i) != 0).collect();
    if (0..callee[0].required).any(|i| adornment & (1 << i) == 0) || !inlinable(callee, &positions) {
        return None;
    }
    let mut out = Vec::new();
    for t in args {
        match t {
            Term::Var(v) if pre.has(*v) => out.push(Ok(pre.col(*v)?)),
            Term::Const(c) => out.push(Err(const_value(c)?)),
            _ => {}
        }
    }
    Some((adornment, out))
}

/// Whether argument `pos` of a rule must come bound from the caller: in some branch its head
/// variable reaches a predicate or a function's arguments and no pattern, function, rule call
/// or `or` of the branch binds it (as `?lo` in `[(band ?e ?lo) [?e :age ?a] [(<= ?lo ?a)]]`).
pub(crate) fn needs_bound(branches: &[Rule], pos: usize) -> bool {
    branches.iter().any(|rule| {
        let Some(head_var) = rule.head.get(pos) else { return false };
        let (mut used, mut bound) = (HashSet::default(), std::collections::BTreeSet::new());
        for c in &rule.body {
            match c {
                Clause::Pred { args, .. } => used.extend(args.iter().filter_map(term_var)),
                Clause::Fn { args, binding, .. } => {
                    used.extend(args.iter().filter_map(term_var));
                    let mut vs = Vec::new();
                    binding.vars(&mut vs);
                    bound.extend(vs);
                }
                Clause::Not { .. } => {}
                other => other.vars(&mut bound),
            }
        }
        used.contains(head_var) && !bound.contains(head_var)
    })
}

fn term_var(t: &Term) -> Option<Var> {
    if let Term::Var(v) = t {
        Some(*v)
    } else {
        None
    }
}

/// The bound argument values of a call for one row: columns of the row or constants.
fn demand_of<'a>(bound_src: &'a [Result<usize, Value>], row: &'a [Value]) -> impl Iterator<Item = Value> + 'a {
    bound_src.iter().map(move |s| match s {
        Ok(c) => row[*c].clone(),
        Err(v) => v.clone(),
    })
}

fn table_for(fix: &mut FixState, name: Symbol, adornment: u64, source: Symbol) -> usize {
    if let Some(t) = fix.index.get(&(name, adornment)) {
        return *t;
    }
    fix.tables.push(Table {
        name,
        adornment,
        demands: Vec::new(),
        demand_set: HashSet::default(),
        answers: Vec::new(),
        answer_set: HashSet::default(),
        charge: deadline::Charge::default(),
        demands_old: 0,
        demands_cur: 0,
        answers_old: 0,
        answers_cur: 0,
        source: Some(source),
    });
    fix.index.insert((name, adornment), fix.tables.len() - 1);
    fix.tables.len() - 1
}

/// Joins `rel` with answer tuples of a call whose arguments are `args`.
fn join_answers<'a>(rel: &Rel, args: &[Term], answers: impl IntoIterator<Item = &'a [Value]>) -> Result<Rel> {
    let mut vars = rel.vars.clone();
    let mut new_args: Vec<usize> = Vec::new();
    for (i, t) in args.iter().enumerate() {
        if let Term::Var(v) = t {
            if !rel.has(*v) && !vars.contains(v) {
                vars.push(*v);
                new_args.push(i);
            }
        }
    }
    let mut out = Rel::empty(vars);
    join_each(rel, args, answers, |row, ans| out.push_joined(row, new_args.iter().map(|i| ans[*i].clone())))?;
    Ok(out)
}

/// Calls `f` with each row of `rel` and each answer tuple (of a call whose arguments are
/// `args`) that agree: on the arguments bound to columns of `rel`, on constants, and on
/// repeated new variables.
fn join_each<'a>(
    rel: &Rel,
    args: &[Term],
    answers: impl IntoIterator<Item = &'a [Value]>,
    mut f: impl FnMut(&[Value], &[Value]) -> Result<()>,
) -> Result<()> {
    // Per argument: check against a column or a constant, bind a new var, repeat an earlier
    // new var, or ignore.
    enum A {
        Col(usize),
        Const(Value),
        New,
        Same(usize),
        Ignore,
    }
    let mut spec = Vec::new();
    let mut first: Vec<(Var, usize)> = Vec::new();
    for (i, t) in args.iter().enumerate() {
        spec.push(match t {
            Term::Var(v) if rel.has(*v) => A::Col(rel.col(*v).unwrap_or(0)),
            Term::Var(v) => match first.iter().find(|(x, _)| x == v) {
                Some((_, j)) => A::Same(*j),
                None => {
                    first.push((*v, i));
                    A::New
                }
            },
            Term::Const(c) => A::Const(const_value(c).unwrap_or(Value::Nil)),
            _ => A::Ignore,
        });
    }
    let key_cols: Vec<(usize, usize)> =
        spec.iter().enumerate().filter_map(|(i, a)| if let A::Col(c) = a { Some((i, *c)) } else { None }).collect();
    let mut groups = Groups::new(key_cols.len(), rel.n_rows)?;
    for (i, row) in rel.rows().enumerate() {
        groups.add(key_cols.iter().map(|(_, c)| row[*c].clone()), i)?;
    }
    'ans: for ans in answers {
        for (i, a) in spec.iter().enumerate() {
            let ok = match a {
                A::Const(v) => ans[i] == *v,
                A::Same(j) => ans[i] == ans[*j],
                A::Col(_) | A::New | A::Ignore => true,
            };
            if !ok {
                continue 'ans;
            }
        }
        let hash = hash_values(key_cols.iter().map(|(i, _)| &ans[*i]));
        let found = groups.keys.find(hash, |key| key_cols.iter().zip(key).all(|((i, _), v)| ans[*i] == *v));
        if let Some(k) = found {
            for r in groups.rows_of(k) {
                deadline::tick()?;
                f(rel.row(r), ans)?;
            }
        }
    }
    Ok(())
}

fn has_nested_call(c: &Clause) -> bool {
    match c {
        Clause::Not { clauses, .. } => {
            clauses.iter().any(|c| matches!(c, Clause::RuleCall { .. }) || has_nested_call(c))
        }
        Clause::Or { branches, .. } => {
            branches.iter().flatten().any(|c| matches!(c, Clause::RuleCall { .. }) || has_nested_call(c))
        }
        _ => false,
    }
}

fn fixpoint(eng: &mut Engine) -> Result<()> {
    let ctx = eng.ctx;
    loop {
        deadline::check()?;
        {
            let fix = eng.fix.as_mut().expect("fix state exists");
            for t in &mut fix.tables {
                t.demands_old = t.demands_cur;
                t.demands_cur = t.demands.len();
                t.answers_old = t.answers_cur;
                t.answers_cur = t.answers.len();
            }
        }
        let n_tables = eng.fix.as_ref().map_or(0, |f| f.tables.len());
        for ti in 0..n_tables {
            let (name, adornment, d_old, d_cur, source) = {
                let t = &eng.fix.as_ref().expect("fix state exists").tables[ti];
                (t.name, t.adornment, t.demands_old, t.demands_cur, t.source.unwrap_or(Symbol::new("$")))
            };
            let Some(branches) = ctx.rules.get(&name) else { continue };
            for rule in branches {
                let calls: Vec<&Clause> = rule.body.iter().filter(|c| matches!(c, Clause::RuleCall { .. })).collect();
                let nested = rule.body.iter().any(has_nested_call);
                if nested {
                    set_modes(eng, &calls, None);
                    eval_branch(eng, ti, rule, adornment, 0, d_cur, source)?;
                    continue;
                }
                if d_cur > d_old {
                    set_modes(eng, &calls, None);
                    eval_branch(eng, ti, rule, adornment, d_old, d_cur, source)?;
                }
                if d_old > 0 {
                    for j in 0..calls.len() {
                        set_modes(eng, &calls, Some(j));
                        eval_branch(eng, ti, rule, adornment, 0, d_old, source)?;
                    }
                }
            }
        }
        let fix = eng.fix.as_mut().expect("fix state exists");
        fix.modes.clear();
        let changed = fix.tables.len() > n_tables
            || fix.tables.iter().any(|t| t.demands.len() > t.demands_cur || t.answers.len() > t.answers_cur);
        if !changed {
            return Ok(());
        }
    }
}

fn set_modes(eng: &mut Engine, calls: &[&Clause], delta: Option<usize>) {
    let fix = eng.fix.as_mut().expect("fix state exists");
    for (i, c) in calls.iter().enumerate() {
        let mode = match delta {
            None => CallMode::Full,
            Some(j) if i < j => CallMode::Old,
            Some(j) if i == j => CallMode::Delta,
            Some(_) => CallMode::Full,
        };
        fix.modes.insert(*c as *const Clause as usize, mode);
    }
}

/// Evaluates one branch of table `ti`'s rule for its demands `lo..hi`, adding new answers.
fn eval_branch(
    eng: &mut Engine,
    ti: usize,
    rule: &Rule,
    adornment: u64,
    lo: usize,
    hi: usize,
    source: Symbol,
) -> Result<()> {
    // Input: head variables at bound positions (a repeated head var must agree).
    let mut vars: Vec<Var> = Vec::new();
    let mut cols: Vec<Option<usize>> = Vec::new(); // demand index -> column, None when repeated
    let mut checks: Vec<(usize, usize)> = Vec::new();
    let mut k = 0;
    for (i, v) in rule.head.iter().enumerate() {
        if adornment & (1 << i) != 0 {
            if let Some(c) = vars.iter().position(|x| x == v) {
                checks.push((k, c));
                cols.push(None);
            } else {
                vars.push(*v);
                cols.push(Some(vars.len() - 1));
            }
            k += 1;
        }
    }
    let mut input = Rel::empty(vars.clone());
    {
        let table = &eng.fix.as_ref().expect("fix state exists").tables[ti];
        'demand: for d in &table.demands[lo..hi] {
            for (k, c) in &checks {
                let first = cols.iter().position(|x| *x == Some(*c)).unwrap_or(0);
                if d[*k] != d[first] {
                    continue 'demand;
                }
            }
            for (k, c) in cols.iter().enumerate() {
                if c.is_some() {
                    input.data.push(d[k].clone())?;
                }
            }
            input.n_rows += 1;
        }
    }
    if input.n_rows == 0 {
        return Ok(());
    }
    let res = eval_where(eng, &rule.body, input, source)?;
    let mut head_cols = Vec::new();
    for v in &rule.head {
        head_cols.push(res.col(*v).ok_or_else(|| {
            let message = format!("Insufficient bindings: {v} of rule {} is not bound by its body", rule.name);
            unbound_head(message, rule.name, *v)
        })?);
    }
    let table = &mut eng.fix.as_mut().expect("fix state exists").tables[ti];
    for row in res.rows() {
        let ans: Vec<Value> = head_cols.iter().map(|c| row[*c].clone()).collect();
        if !table.answer_set.contains(&ans) {
            table.charge.add(deadline::Charge::row_bytes(ans.len()))?;
            table.answer_set.insert(ans.clone());
            table.answers.push(ans);
        }
    }
    Ok(())
}

/// Right-linear recursion, `(r x.. y..) :- body, (r x'.. y..)`, where the free head
/// variables `y` pass unchanged to the one recursive call and appear nowhere else: the answers
/// for a demand are the base answers of every demand reachable from it through the bodies. So
/// the closure of demands is computed once (a semi-naive frontier), then the base branches run
/// once over it, instead of tabling answers per reachable demand (quadratic for reachability).
/// `None` when the rule does not have this shape.
fn right_linear(
    eng: &mut Engine,
    name: Symbol,
    adornment: u64,
    bound_src: &[Result<usize, Value>],
    rel: &Rel,
    args: &[Term],
    source: Symbol,
) -> Result<Option<Rel>> {
    let ctx = eng.ctx;
    let Some(branches) = ctx.rules.get(&name) else { return Ok(None) };
    let arity = branches[0].head.len();
    let bound_pos: Vec<usize> = (0..arity).filter(|i| adornment & (1 << i) != 0).collect();
    let free_pos: Vec<usize> = (0..arity).filter(|i| adornment & (1 << i) == 0).collect();
    if bound_pos.is_empty() || free_pos.is_empty() {
        return Ok(None);
    }
    // (body without the call, the call's args at bound positions) per recursive branch.
    let mut recursive: Vec<(Vec<Clause>, Vec<Term>, &Rule)> = Vec::new();
    let mut base: Vec<&Rule> = Vec::new();
    for rule in branches {
        let mut seen = HashSet::default();
        if !rule.head.iter().all(|v| seen.insert(*v)) || rule.body.iter().any(has_nested_call) {
            return Ok(None);
        }
        let calls: Vec<usize> =
            (0..rule.body.len()).filter(|i| matches!(rule.body[*i], Clause::RuleCall { .. })).collect();
        match calls.as_slice() {
            [] => base.push(rule),
            [i] => {
                let Clause::RuleCall { name: callee, args: call_args, source: call_src, .. } = &rule.body[*i] else {
                    return Ok(None);
                };
                if *callee != name || call_args.len() != arity || call_src.as_str() != "$" {
                    return Ok(None);
                }
                let rest: Vec<Clause> =
                    rule.body.iter().enumerate().filter(|(j, _)| j != i).map(|(_, c)| c.clone()).collect();
                let mut rest_vars = std::collections::BTreeSet::new();
                rest.iter().for_each(|c| c.vars(&mut rest_vars));
                for &p in &free_pos {
                    let y = rule.head[p];
                    if call_args[p] != Term::Var(y) || rest_vars.contains(&y) {
                        return Ok(None);
                    }
                    if bound_pos.iter().any(|b| call_args[*b] == Term::Var(y)) {
                        return Ok(None);
                    }
                }
                let bound_args: Vec<Term> = bound_pos.iter().map(|b| call_args[*b].clone()).collect();
                if bound_args.iter().any(|t| !matches!(t, Term::Var(_) | Term::Const(_))) {
                    return Ok(None);
                }
                recursive.push((rest, bound_args, rule));
            }
            _ => return Ok(None),
        }
    }
    if recursive.is_empty() || base.is_empty() {
        return Ok(None);
    }
    let mut roots: Vec<Vec<Value>> = Vec::new();
    let mut root_set: HashSet<Vec<Value>> = HashSet::default();
    for row in rel.rows() {
        let d: Vec<Value> = demand_of(bound_src, row).collect();
        if root_set.insert(d.clone()) {
            roots.push(d);
        }
    }
    if roots.len() > 64 {
        return Ok(None);
    }
    let demand_rel = |rule: &Rule, demands: &[Vec<Value>]| -> Result<Rel> {
        let vars: Vec<Var> = bound_pos.iter().map(|p| rule.head[*p]).collect();
        let mut r = Rel::empty(vars);
        for d in demands {
            r.push_row(d)?;
        }
        Ok(r)
    };
    let mut answers: Vec<Vec<Value>> = Vec::new();
    let mut charge = deadline::Charge::default();
    for root in roots {
        // What this root's walk holds, given back when the next root starts.
        let mut walk = deadline::Charge::default();
        let mut visited: HashSet<Vec<Value>> = HashSet::default();
        visited.insert(root.clone());
        let mut all = vec![root.clone()];
        let mut frontier = vec![root.clone()];
        while !frontier.is_empty() {
            deadline::check()?;
            let mut next = Vec::new();
            for (rest, bound_args, rule) in &recursive {
                let res = eval_where(eng, rest, demand_rel(rule, &frontier)?, source)?;
                let mut getters = Vec::new();
                for t in bound_args {
                    getters.push(match t {
                        Term::Var(v) => match res.col(*v) {
                            Some(c) => Ok(c),
                            None if res.n_rows == 0 => continue,
                            None => return Ok(None),
                        },
                        Term::Const(c) => Err(const_value(c).unwrap_or(Value::Nil)),
                        _ => return Ok(None),
                    });
                }
                if getters.len() != bound_args.len() {
                    continue;
                }
                for row in res.rows() {
                    let d: Vec<Value> = getters
                        .iter()
                        .map(|g| match g {
                            Ok(c) => row[*c].clone(),
                            Err(v) => v.clone(),
                        })
                        .collect();
                    if !visited.contains(&d) {
                        // Kept in `visited`, `all` and `next`.
                        walk.add(2 * deadline::Charge::row_bytes(d.len()))?;
                        visited.insert(d.clone());
                        all.push(d.clone());
                        next.push(d);
                    }
                }
            }
            frontier = next;
        }
        let mut free_seen: HashSet<Vec<Value>> = HashSet::default();
        for rule in &base {
            let res = eval_where(eng, &rule.body, demand_rel(rule, &all)?, source)?;
            let mut cols = Vec::new();
            for p in &free_pos {
                cols.push(res.col(rule.head[*p]).ok_or_else(|| {
                    let message =
                        format!("Insufficient bindings: {} of rule {name} is not bound by its body", rule.head[*p]);
                    unbound_head(message, rule.name, rule.head[*p])
                })?);
            }
            for row in res.rows() {
                let free: Vec<Value> = cols.iter().map(|c| row[*c].clone()).collect();
                if !free_seen.contains(&free) {
                    walk.add(deadline::Charge::row_bytes(free.len()))?;
                    charge.add(deadline::Charge::row_bytes(arity))?;
                    free_seen.insert(free.clone());
                    let mut ans = vec![Value::Nil; arity];
                    for (k, p) in bound_pos.iter().enumerate() {
                        ans[*p] = root[k].clone();
                    }
                    for (k, p) in free_pos.iter().enumerate() {
                        ans[*p] = free[k].clone();
                    }
                    answers.push(ans);
                }
            }
        }
    }
    Ok(Some(join_answers(rel, args, answers.iter().map(Vec::as_slice))?))
}
