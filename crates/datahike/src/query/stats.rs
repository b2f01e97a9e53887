//! What `query-stats` and `explain` report: for each clause in the order the executor chose
//! it, how it was evaluated (which index, scan or per-row lookup), the rows of the relation
//! before and after it, its time, and the same for the clauses nested in it (`not`, `or`, rule
//! bodies). The plan is chosen while the query runs, from the rows actually bound, so both
//! report a real run (like SQL's `EXPLAIN ANALYZE`).

use super::parser::Clause;
use crate::edn::{Edn, Keyword};
use std::fmt::Write as _;
use std::time::Duration;

/// Nested entries kept per clause; rules iterated to a fixpoint can evaluate their bodies many
/// times, and the report stays readable by counting the rest.
const MAX_BRANCHES: usize = 64;

/// One evaluated clause.
#[derive(Clone, Debug)]
pub struct ClauseStat {
    /// The clause as written.
    pub clause: Edn,
    /// `pattern`, `predicate`, `function`, `not`, `or`, `rule`.
    pub kind: &'static str,
    /// How a data pattern was read, e.g. `scan :avet [:name "Ivan"]`.
    pub access: Option<String>,
    /// Rows of the relation before the clause.
    pub rows_in: usize,
    /// Rows after it.
    pub rows_out: usize,
    /// Wall time, nested clauses included.
    pub time: Duration,
    /// Clauses evaluated inside this one.
    pub branches: Vec<ClauseStat>,
    /// Nested evaluations left out of `branches` (beyond [`MAX_BRANCHES`]).
    pub omitted: usize,
}

/// Collects [`ClauseStat`]s while a query runs: one frame per clause being evaluated.
#[derive(Debug)]
pub(crate) struct Recorder {
    frames: Vec<Frame>,
}

#[derive(Debug, Default)]
struct Frame {
    done: Vec<ClauseStat>,
    omitted: usize,
    access: Option<String>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder { frames: vec![Frame::default()] }
    }

    /// A clause starts: what it evaluates inside goes to its own frame.
    pub fn enter(&mut self) {
        self.frames.push(Frame::default());
    }

    /// Notes how the clause being evaluated reads its index.
    pub fn access(&mut self, how: String) {
        if let Some(frame) = self.frames.last_mut() {
            frame.access = Some(how);
        }
    }

    /// The clause entered last is done.
    pub fn leave(&mut self, clause: &Clause, rows_in: usize, rows_out: usize, time: Duration) {
        let Some(frame) = self.frames.pop() else { return };
        let stat = ClauseStat {
            clause: clause.form(),
            kind: kind(clause),
            access: frame.access,
            rows_in,
            rows_out,
            time,
            branches: frame.done,
            omitted: frame.omitted,
        };
        let top_level = self.frames.len() == 1;
        if let Some(parent) = self.frames.last_mut() {
            if parent.done.len() < MAX_BRANCHES || top_level {
                parent.done.push(stat);
            } else {
                parent.omitted += 1;
            }
        }
    }

    /// Drops frames left open by an error, and returns the top-level clauses.
    pub fn finish(mut self) -> Vec<ClauseStat> {
        self.frames.truncate(1);
        self.frames.pop().map(|f| f.done).unwrap_or_default()
    }
}

fn kind(c: &Clause) -> &'static str {
    match c {
        Clause::Pattern { .. } => "pattern",
        Clause::Pred { .. } => "predicate",
        Clause::Fn { .. } => "function",
        Clause::Not { .. } => "not",
        Clause::Or { .. } => "or",
        Clause::RuleCall { .. } => "rule",
    }
}

fn kw(name: &str) -> Edn {
    Edn::Keyword(Keyword::new(name))
}

fn millis(d: Duration) -> Edn {
    Edn::Float(d.as_secs_f64() * 1000.0)
}

impl ClauseStat {
    /// `{:clause [...] :type :pattern :access "..." :rows-in 1 :rows-out 2523 :t 0.12 :branches [...]}`
    /// (`:t` in milliseconds, as Datahike's query-stats).
    pub fn to_edn(&self) -> Edn {
        let mut entries = vec![
            (kw("clause"), self.clause.clone()),
            (kw("type"), kw(self.kind)),
            (kw("rows-in"), Edn::Int(self.rows_in as i64)),
            (kw("rows-out"), Edn::Int(self.rows_out as i64)),
            (kw("t"), millis(self.time)),
        ];
        if let Some(access) = &self.access {
            entries.push((kw("access"), Edn::Str(access.as_str().into())));
        }
        if !self.branches.is_empty() {
            entries.push((kw("branches"), Edn::Vector(self.branches.iter().map(ClauseStat::to_edn).collect())));
        }
        if self.omitted > 0 {
            entries.push((kw("omitted"), Edn::Int(self.omitted as i64)));
        }
        Edn::Map(entries)
    }

    fn write_text(&self, out: &mut String, depth: usize, number: &str) {
        let indent = "  ".repeat(depth);
        let op = match (self.kind, &self.access) {
            (_, Some(access)) => access.clone(),
            ("predicate", _) => "FILTER".to_owned(),
            ("function", _) => "BIND".to_owned(),
            ("not", _) => "NOT".to_owned(),
            ("or", _) => "OR".to_owned(),
            ("rule", _) => "RULE".to_owned(),
            _ => "MATCH".to_owned(),
        };
        let _ = writeln!(
            out,
            "{indent}{number} {op}  {}  rows {} -> {}  {:.3} ms",
            self.clause,
            self.rows_in,
            self.rows_out,
            self.time.as_secs_f64() * 1000.0
        );
        for (i, b) in self.branches.iter().enumerate() {
            b.write_text(out, depth + 1, &format!("{number}{}.", i + 1));
        }
        if self.omitted > 0 {
            let _ = writeln!(out, "{indent}  ... {} more nested evaluations", self.omitted);
        }
    }
}

/// The plan as text: one line per clause in evaluation order, nested clauses indented.
pub(crate) fn explain_text(find: &Edn, stats: &[ClauseStat], total: Duration) -> String {
    let mut out = String::from("=== Query Plan ===\n");
    let _ = writeln!(out, "find: {find}");
    for (i, s) in stats.iter().enumerate() {
        s.write_text(&mut out, 0, &format!("{}.", i + 1));
    }
    let _ = writeln!(out, "total: {:.3} ms", total.as_secs_f64() * 1000.0);
    out
}
