//! Relations: the intermediate results of a query, rows of [`Value`]s stored flat, one column
//! per variable, with set-like helpers (projection, distinct, hash join).

use super::parser::Var;
use crate::value::Value;
use hashbrown::HashTable;
use rustc_hash::FxHasher;
use std::hash::{Hash, Hasher};

/// The hash of a sequence of values, as [`RowSet`] hashes its rows.
pub(crate) fn hash_values<'a>(values: impl IntoIterator<Item = &'a Value>) -> u64 {
    let mut h = FxHasher::default();
    for v in values {
        v.hash(&mut h);
    }
    h.finish()
}

/// Distinct rows of one width, stored flat and numbered in insertion order: deduplication,
/// grouping and hash-join keys without an allocation per row.
#[derive(Debug)]
pub(crate) struct RowSet {
    width: usize,
    data: Vec<Value>,
    table: HashTable<u32>,
}

impl RowSet {
    pub fn with_capacity(width: usize, rows: usize) -> RowSet {
        RowSet { width, data: Vec::with_capacity(width * rows), table: HashTable::with_capacity(rows) }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn row(&self, i: usize) -> &[Value] {
        &self.data[i * self.width..(i + 1) * self.width]
    }

    /// The number of the row made of `values` (exactly `width` of them), added if new, and
    /// whether it was added.
    pub fn insert(&mut self, values: impl IntoIterator<Item = Value>) -> (usize, bool) {
        let start = self.data.len();
        self.data.extend(values);
        debug_assert_eq!(self.data.len() - start, self.width, "row of the wrong width");
        let hash = hash_values(&self.data[start..]);
        let (width, data) = (self.width, &self.data);
        let candidate = &data[start..];
        if let Some(&i) = self.table.find(hash, |&i| &data[i as usize * width..(i as usize + 1) * width] == candidate) {
            self.data.truncate(start);
            return (i as usize, false);
        }
        let n = self.table.len() as u32;
        let rows = &self.data;
        self.table.insert_unique(hash, n, |&i| hash_values(&rows[i as usize * width..(i as usize + 1) * width]));
        (n as usize, true)
    }

    /// The rows as a relation over `vars` (in insertion order).
    pub fn into_rel(self, vars: Vec<Var>) -> Rel {
        Rel { vars, n_rows: self.table.len(), data: self.data, sorted_by: None }
    }

    /// The number of the row equal to the values `eq` accepts, whose hash is `hash` (from
    /// [`hash_values`]).
    pub fn find(&self, hash: u64, eq: impl Fn(&[Value]) -> bool) -> Option<usize> {
        let width = self.width;
        self.table.find(hash, |&i| eq(&self.data[i as usize * width..(i as usize + 1) * width])).map(|&i| i as usize)
    }
}

/// Rows grouped under distinct keys: the row numbers of each key, chained in a flat vector.
#[derive(Debug)]
pub(crate) struct Groups {
    pub keys: RowSet,
    head: Vec<u32>,
    next: Vec<u32>,
}

const NONE: u32 = u32::MAX;

impl Groups {
    pub fn new(width: usize, rows: usize) -> Groups {
        Groups { keys: RowSet::with_capacity(width, rows), head: Vec::new(), next: Vec::with_capacity(rows) }
    }

    /// Files row `row` (numbered from 0 up, in order) under `key`.
    pub fn add(&mut self, key: impl IntoIterator<Item = Value>, row: usize) {
        let (k, added) = self.keys.insert(key);
        if added {
            self.head.push(NONE);
        }
        debug_assert_eq!(self.next.len(), row, "rows are added in order");
        self.next.push(self.head[k]);
        self.head[k] = row as u32;
    }

    /// The rows filed under key number `k`, most recent first.
    pub fn rows_of(&self, k: usize) -> impl Iterator<Item = usize> + '_ {
        let mut at = self.head.get(k).copied().unwrap_or(NONE);
        std::iter::from_fn(move || {
            (at != NONE).then(|| {
                let row = at as usize;
                at = self.next[row];
                row
            })
        })
    }
}

/// A bag of rows over `vars`, stored row-major in `data`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rel {
    pub vars: Vec<Var>,
    pub n_rows: usize,
    pub data: Vec<Value>,
    /// A column of entity ids (longs) the rows are sorted by, ascending, when known: a data
    /// pattern on that entity can then merge with an index scan instead of hashing.
    pub sorted_by: Option<usize>,
}

impl Rel {
    /// The relation with no columns and one row: the identity of joins.
    pub fn unit() -> Rel {
        Rel { vars: Vec::new(), n_rows: 1, data: Vec::new(), sorted_by: None }
    }

    /// No rows over `vars`.
    pub fn empty(vars: Vec<Var>) -> Rel {
        Rel { vars, n_rows: 0, data: Vec::new(), sorted_by: None }
    }

    pub fn width(&self) -> usize {
        self.vars.len()
    }

    pub fn col(&self, v: Var) -> Option<usize> {
        self.vars.iter().position(|x| *x == v)
    }

    pub fn has(&self, v: Var) -> bool {
        self.vars.contains(&v)
    }

    pub fn row(&self, i: usize) -> &[Value] {
        let w = self.width();
        &self.data[i * w..(i + 1) * w]
    }

    pub fn push_row(&mut self, row: &[Value]) {
        self.data.extend_from_slice(row);
        self.n_rows += 1;
    }

    pub fn rows(&self) -> impl Iterator<Item = &[Value]> {
        (0..self.n_rows).map(move |i| self.row(i))
    }

    /// The rows ordered by column `col` of entity ids (a stable sort; other values sort first).
    pub fn sorted_by_long(self, col: usize) -> Rel {
        let key = |i: usize| self.row(i)[col].as_long().unwrap_or(i64::MIN);
        let mut order: Vec<usize> = (0..self.n_rows).collect();
        order.sort_by_key(|i| key(*i));
        let mut data = Vec::with_capacity(self.data.len());
        for i in order {
            data.extend_from_slice(self.row(i));
        }
        Rel { vars: self.vars, n_rows: self.n_rows, data, sorted_by: Some(col) }
    }

    /// The distinct rows over `vars` (each must be a column).
    pub fn project_distinct(&self, vars: &[Var]) -> Rel {
        let cols: Vec<usize> = vars.iter().map(|v| self.col(*v).expect("projected var is a column")).collect();
        let mut set = RowSet::with_capacity(cols.len(), self.n_rows);
        for row in self.rows() {
            set.insert(cols.iter().map(|c| row[*c].clone()));
        }
        Rel { vars: vars.to_vec(), n_rows: set.len(), data: set.data, sorted_by: None }
    }

    /// Removes duplicate rows.
    pub fn distinct(self) -> Rel {
        let vars = self.vars.clone();
        self.project_distinct(&vars)
    }

    /// Natural join on the shared variables (a product when there are none). Hashes the
    /// smaller side.
    pub fn join(self, other: Rel) -> Rel {
        if self.vars.is_empty() {
            return if self.n_rows == 0 { Rel::empty(other.vars) } else { other };
        }
        if other.vars.is_empty() {
            return if other.n_rows == 0 { Rel::empty(self.vars) } else { self };
        }
        let (build, probe) = if self.n_rows <= other.n_rows { (&self, &other) } else { (&other, &self) };
        let shared: Vec<Var> = probe.vars.iter().copied().filter(|v| build.has(*v)).collect();
        let build_cols: Vec<usize> = shared.iter().map(|v| build.col(*v).unwrap_or(0)).collect();
        let probe_cols: Vec<usize> = shared.iter().map(|v| probe.col(*v).unwrap_or(0)).collect();
        let extra: Vec<usize> = (0..build.width()).filter(|c| !shared.contains(&build.vars[*c])).collect();
        let mut vars = probe.vars.clone();
        vars.extend(extra.iter().map(|c| build.vars[*c]));
        let mut out = Rel::empty(vars);
        let mut groups = Groups::new(build_cols.len(), build.n_rows);
        for i in 0..build.n_rows {
            let row = build.row(i);
            groups.add(build_cols.iter().map(|c| row[*c].clone()), i);
        }
        for row in probe.rows() {
            let hash = hash_values(probe_cols.iter().map(|c| &row[*c]));
            let Some(k) = groups.keys.find(hash, |key| probe_cols.iter().zip(key).all(|(c, v)| row[*c] == *v)) else {
                continue;
            };
            for i in groups.rows_of(k) {
                let b = build.row(i);
                out.data.extend_from_slice(row);
                out.data.extend(extra.iter().map(|c| b[*c].clone()));
                out.n_rows += 1;
            }
        }
        out
    }
}
