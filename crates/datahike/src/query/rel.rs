//! Relations: the intermediate results of a query, rows of [`Value`]s stored flat, one column
//! per variable, with set-like helpers (projection, distinct, hash join).

use super::parser::Var;
use crate::value::Value;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// A bag of rows over `vars`, stored row-major in `data`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rel {
    pub vars: Vec<Var>,
    pub n_rows: usize,
    pub data: Vec<Value>,
}

impl Rel {
    /// The relation with no columns and one row: the identity of joins.
    pub fn unit() -> Rel {
        Rel { vars: Vec::new(), n_rows: 1, data: Vec::new() }
    }

    /// No rows over `vars`.
    pub fn empty(vars: Vec<Var>) -> Rel {
        Rel { vars, n_rows: 0, data: Vec::new() }
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

    /// The distinct rows over `vars` (each must be a column).
    pub fn project_distinct(&self, vars: &[Var]) -> Rel {
        let cols: Vec<usize> = vars.iter().map(|v| self.col(*v).expect("projected var is a column")).collect();
        let mut seen: HashSet<Vec<Value>> = HashSet::default();
        let mut out = Rel::empty(vars.to_vec());
        for row in self.rows() {
            let key: Vec<Value> = cols.iter().map(|c| row[*c].clone()).collect();
            if !seen.contains(&key) {
                out.push_row(&key);
                seen.insert(key);
            }
        }
        out
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
        let mut table: HashMap<Vec<Value>, Vec<usize>> = HashMap::default();
        for i in 0..build.n_rows {
            let row = build.row(i);
            table.entry(build_cols.iter().map(|c| row[*c].clone()).collect()).or_default().push(i);
        }
        let mut key = Vec::with_capacity(probe_cols.len());
        for row in probe.rows() {
            key.clear();
            key.extend(probe_cols.iter().map(|c| row[*c].clone()));
            if let Some(matches) = table.get(&key) {
                for &i in matches {
                    let b = build.row(i);
                    out.data.extend_from_slice(row);
                    out.data.extend(extra.iter().map(|c| b[*c].clone()));
                    out.n_rows += 1;
                }
            }
        }
        out
    }
}
