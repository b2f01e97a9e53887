//! Queries whose `:where` falls into parts that share no variable: each part is evaluated on
//! its own and the set of find tuples is the product of the parts' distinct projections,
//! enumerated on demand and never stored. A part that binds no find variable only says
//! whether the product is empty, so `[:find (count ?a) :where [?a :k] [?b :k]]` counts the
//! `?a`s and `:limit 10` over a product of three scans stops after ten tuples. Aggregates
//! with small state (`count`, `sum`, `avg`, `min`, `max`) fold tuple by tuple (`Fold`).

use super::aggregates;
use super::deadline;
use super::parser::{Clause, Var};
use super::rel::RowSet;
use super::QueryError;
use crate::edn::{Edn, Symbol};
use crate::error::Result;
use crate::value::Value;
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeSet;
use std::ops::ControlFlow;

/// The clauses of one part, in their order in the query, and whether the part holds the
/// variables of the `:in` relation (then it starts from that relation).
pub(crate) struct Part<'q> {
    pub clauses: Vec<&'q Clause>,
    pub has_input: bool,
}

/// Splits `clauses` into parts connected by shared variables (the `:in` relation's variables
/// `input_vars` count as one more clause). A clause without variables is a part of its own.
/// A part without a pattern, `or` or rule call (functions and predicates alone) joins the
/// first part, as it would run on the relation at hand: a function such as `rand-int` is
/// called once per row of the relation, not once. Near-linear: a union-find over clauses,
/// keyed by variable.
pub(crate) fn parts<'q>(clauses: &'q [Clause], input_vars: &[Var]) -> Vec<Part<'q>> {
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let input = clauses.len();
    let mut parent: Vec<usize> = (0..=clauses.len()).collect();
    let mut owner: HashMap<Var, usize> = HashMap::default();
    let mut link = |parent: &mut Vec<usize>, v: Var, i: usize| match owner.get(&v) {
        Some(&j) => {
            let (a, b) = (root(parent, i), root(parent, j));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
        None => {
            owner.insert(v, i);
        }
    };
    for v in input_vars {
        link(&mut parent, *v, input);
    }
    let mut vars = BTreeSet::new();
    for (i, c) in clauses.iter().enumerate() {
        vars.clear();
        c.vars(&mut vars);
        for v in &vars {
            link(&mut parent, *v, i);
        }
    }
    // Parts in the order of their first clause; the input's part first when there is one.
    let mut index_of: HashMap<usize, usize> = HashMap::default();
    let mut members: Vec<(bool, Vec<usize>)> = Vec::new();
    if !input_vars.is_empty() {
        index_of.insert(root(&mut parent, input), 0);
        members.push((true, Vec::new()));
    }
    for i in 0..clauses.len() {
        let r = root(&mut parent, i);
        let k = *index_of.entry(r).or_insert_with(|| {
            members.push((false, Vec::new()));
            members.len() - 1
        });
        members[k].1.push(i);
    }
    let generates =
        |i: &usize| matches!(clauses[*i], Clause::Pattern { .. } | Clause::Or { .. } | Clause::RuleCall { .. });
    let mut first: (bool, Vec<usize>) = (false, Vec::new());
    let mut kept: Vec<(bool, Vec<usize>)> = Vec::new();
    for (k, (has_input, m)) in members.into_iter().enumerate() {
        if k == 0 || !m.iter().any(generates) {
            first.0 |= has_input;
            first.1.extend(m);
        } else {
            kept.push((has_input, m));
        }
    }
    first.1.sort_unstable();
    std::iter::once(first)
        .chain(kept)
        .map(|(has_input, m)| Part { clauses: m.iter().map(|i| &clauses[*i]).collect(), has_input })
        .collect()
}

/// The distinct find tuples as a product of parts: each part a set of distinct rows over some
/// of the tuple's positions. One part is the plain set of tuples.
pub(crate) struct Tuples {
    /// Each part's distinct rows and, per column, its position in a tuple.
    pub parts: Vec<(RowSet, Vec<usize>)>,
    pub width: usize,
}

impl Tuples {
    /// The number of tuples (saturating).
    pub fn len(&self) -> usize {
        self.parts.iter().fold(1usize, |n, (set, _)| n.saturating_mul(set.len()))
    }

    /// Calls `f` with each tuple, in order (the last part varies fastest), until it breaks.
    pub fn for_each(&self, mut f: impl FnMut(&[Value]) -> Result<ControlFlow<()>>) -> Result<()> {
        if self.parts.iter().any(|(set, _)| set.len() == 0) {
            return Ok(());
        }
        if let [(set, positions)] = self.parts.as_slice() {
            if positions.iter().enumerate().all(|(c, p)| c == *p) && positions.len() == self.width {
                // One part that is the tuples: its rows as they are.
                for i in 0..set.len() {
                    deadline::tick()?;
                    if f(set.row(i))?.is_break() {
                        break;
                    }
                }
                return Ok(());
            }
        }
        let mut at = vec![0usize; self.parts.len()];
        let mut tuple = vec![Value::Nil; self.width];
        for (k, (set, positions)) in self.parts.iter().enumerate() {
            for (c, p) in positions.iter().enumerate() {
                tuple[*p] = set.row(at[k])[c].clone();
            }
        }
        loop {
            deadline::tick()?;
            if f(&tuple)?.is_break() {
                return Ok(());
            }
            // Advance the odometer from the last part.
            let mut k = self.parts.len();
            loop {
                if k == 0 {
                    return Ok(());
                }
                k -= 1;
                let (set, positions) = &self.parts[k];
                at[k] += 1;
                if at[k] < set.len() {
                    for (c, p) in positions.iter().enumerate() {
                        tuple[*p] = set.row(at[k])[c].clone();
                    }
                    break;
                }
                at[k] = 0;
                for (c, p) in positions.iter().enumerate() {
                    tuple[*p] = set.row(0)[c].clone();
                }
            }
        }
    }
}

/// The running state of an aggregate whose state is small, fed one value at a time; its
/// result equals [`aggregates::aggregate`] over the same values in the same order.
pub(crate) enum Fold {
    Count(i64),
    /// `sum` and `avg`: the exact long sum until a non-long value, then a double; the count.
    Sum {
        avg: bool,
        long: i64,
        double: Option<f64>,
        n: i64,
    },
    /// `min` or `max`: the best value so far.
    Extreme {
        max: bool,
        best: Option<Value>,
    },
}

impl Fold {
    /// The fold of built-in aggregate `name` with constant `args`, when its state is small.
    pub fn of(name: Symbol, args: &[Edn]) -> Option<Fold> {
        if !args.is_empty() {
            return None;
        }
        Some(match name.as_str() {
            "count" => Fold::Count(0),
            "sum" => Fold::Sum { avg: false, long: 0, double: None, n: 0 },
            "avg" => Fold::Sum { avg: true, long: 0, double: None, n: 0 },
            "min" => Fold::Extreme { max: false, best: None },
            "max" => Fold::Extreme { max: true, best: None },
            _ => return None,
        })
    }

    pub fn add(&mut self, v: &Value) -> std::result::Result<(), QueryError> {
        match self {
            Fold::Count(n) => *n += 1,
            Fold::Sum { long, double, n, .. } => {
                // `avg` sums as `sum` does, and its errors say so.
                match (v, *double) {
                    (Value::Long(x), None) => {
                        *long = long
                            .checked_add(*x)
                            .ok_or_else(|| QueryError::Eval("sum: integer overflow".to_string().into()))?;
                    }
                    (other, d) => {
                        let x = aggregates::as_f64(other, "sum")?;
                        *double = Some(d.unwrap_or(*long as f64) + x);
                    }
                }
                *n += 1;
            }
            Fold::Extreme { max, best } => {
                let want = if *max { std::cmp::Ordering::Greater } else { std::cmp::Ordering::Less };
                let keep =
                    best.as_ref().is_some_and(|b| super::builtins::compare(v, b).unwrap_or_else(|_| v.cmp(b)) != want);
                if !keep {
                    *best = Some(v.clone());
                }
            }
        }
        Ok(())
    }

    pub fn finish(self) -> std::result::Result<Edn, QueryError> {
        Ok(match self {
            Fold::Count(n) => Edn::Int(n),
            Fold::Sum { avg: false, long, double, .. } => double.map_or(Value::Long(long), Value::Double).to_edn(),
            Fold::Sum { avg: true, long, double, n } => {
                if n == 0 {
                    return Err(QueryError::Eval("avg of no values".to_string().into()));
                }
                Edn::Float(double.unwrap_or(long as f64) / n as f64)
            }
            Fold::Extreme { best, .. } => best.unwrap_or(Value::Nil).to_edn(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::read_str;
    use crate::query::parser::parse_query;

    fn part_sizes(query: &str) -> Vec<usize> {
        let q = parse_query(&read_str(query).unwrap()).unwrap();
        parts(&q.clauses, &[]).iter().map(|p| p.clauses.len()).collect()
    }

    #[test]
    fn clauses_sharing_no_variable_are_separate_parts() {
        assert_eq!(part_sizes("[:find ?a :where [?a :k] [?b :k] [?c :k]]"), vec![1, 1, 1]);
        assert_eq!(part_sizes("[:find ?a :where [?a :k ?x] [?b :k ?y] [(< ?x ?y)]]"), vec![3]);
        assert_eq!(part_sizes("[:find ?a :where [?a :k ?x] [?b :j] [?a :l ?b] [?c :k]]"), vec![3, 1]);
        assert_eq!(part_sizes("[:find ?a :where [?a :k] [1 :k 2]]"), vec![1, 1]);
        // Functions and predicates alone run with the first part.
        assert_eq!(part_sizes("[:find ?a :where [?a :k] [(rand-int 9) ?r] [(ground 1)]]"), vec![3]);
        // The :in relation's variables are a part too.
        let q = parse_query(&read_str("[:find ?r :in $ [?i ...] :where [(rand-int 9) ?r]]").unwrap()).unwrap();
        let parts = parts(&q.clauses, &[Symbol::new("?i")]);
        assert_eq!(parts.len(), 1);
        assert!(parts[0].has_input);
    }

    #[test]
    fn folds_agree_with_the_aggregates_over_all_values() {
        let values = vec![Value::Long(3), Value::Long(-7), Value::Double(2.5), Value::Long(10)];
        for name in ["count", "sum", "avg", "min", "max"] {
            let mut fold = Fold::of(Symbol::new(name), &[]).unwrap();
            for v in &values {
                fold.add(v).unwrap();
            }
            let expected = aggregates::aggregate(Symbol::new(name), &[], values.clone()).unwrap();
            assert_eq!(fold.finish().unwrap(), expected, "{name}");
        }
        assert!(Fold::of(Symbol::new("count-distinct"), &[]).is_none());
        assert!(Fold::of(Symbol::new("max"), &[Edn::Int(2)]).is_none());
    }

    #[test]
    fn a_product_enumerates_every_combination_once() {
        let mut a = RowSet::with_capacity(1, 3).unwrap();
        let mut b = RowSet::with_capacity(0, 1).unwrap();
        for i in 0..3 {
            a.insert([Value::Long(i)]).unwrap();
        }
        b.insert([]).unwrap();
        let mut c = RowSet::with_capacity(1, 2).unwrap();
        c.insert([Value::Long(10)]).unwrap();
        c.insert([Value::Long(20)]).unwrap();
        let tuples = Tuples { parts: vec![(a, vec![1]), (b, vec![]), (c, vec![0])], width: 2 };
        assert_eq!(tuples.len(), 6);
        let mut seen = Vec::new();
        tuples
            .for_each(|t| {
                seen.push(t.to_vec());
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
        seen.sort();
        let mut expected = Vec::new();
        for x in [10, 20] {
            for i in 0..3 {
                expected.push(vec![Value::Long(x), Value::Long(i)]);
            }
        }
        expected.sort();
        assert_eq!(seen, expected);
    }
}
