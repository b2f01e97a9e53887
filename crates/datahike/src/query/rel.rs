//! Relations: the intermediate results of a query, rows of [`Value`]s stored flat, one column
//! per variable, with set-like helpers (projection, distinct, hash join). Every structure
//! here that grows with the data charges the query's memory budget (`deadline::charge`)
//! before it grows, and allocates fallibly, so a query too large fails with an error.

use super::deadline;
use super::parser::Var;
use crate::error::Result;
use crate::value::Value;
use hashbrown::HashTable;
use rustc_hash::FxHasher;
use std::hash::{Hash, Hasher};

/// A vector whose capacity is charged to the running query's memory budget: it grows only
/// through the fallible methods here (`try_reserve`, so neither the budget nor a refused
/// allocation can abort the process) and gives its bytes back when dropped.
pub(crate) struct Tracked<T> {
    vec: Vec<T>,
    /// Bytes charged for `vec`'s capacity.
    charged: usize,
}

impl<T> Tracked<T> {
    pub fn new() -> Tracked<T> {
        Tracked { vec: Vec::new(), charged: 0 }
    }

    pub fn with_capacity(n: usize) -> Result<Tracked<T>> {
        let mut t = Tracked::new();
        t.reserve(n)?;
        Ok(t)
    }

    /// Room for `additional` more items; grows by at least doubling, as `Vec` does.
    #[inline]
    pub fn reserve(&mut self, additional: usize) -> Result<()> {
        if self.vec.capacity() - self.vec.len() >= additional {
            return Ok(());
        }
        self.grow(additional)
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, additional: usize) -> Result<()> {
        let len = self.vec.len();
        let wanted = len.saturating_add(additional).max(len.saturating_mul(2)).max(4);
        let bytes = (wanted - self.vec.capacity()).saturating_mul(std::mem::size_of::<T>());
        deadline::charge(bytes)?;
        if self.vec.try_reserve_exact(wanted - len).is_err() {
            deadline::release(bytes);
            return Err(deadline::allocation_failed(bytes));
        }
        self.sync(bytes);
        Ok(())
    }

    /// Records the capacity actually allocated after `reserve` charged `bytes` for it; an
    /// allocator's rounding up is charged without a check (the next growth checks the total).
    fn sync(&mut self, bytes: usize) {
        self.charged += bytes;
        let actual = self.vec.capacity().saturating_mul(std::mem::size_of::<T>());
        if actual > self.charged {
            deadline::force_charge(actual - self.charged);
            self.charged = actual;
        }
    }

    #[inline]
    pub fn push(&mut self, x: T) -> Result<()> {
        if self.vec.len() == self.vec.capacity() {
            self.grow(1)?;
        }
        self.vec.push(x);
        Ok(())
    }

    /// Appends the items of `xs`, reserving for the lower bound of its size first.
    #[inline]
    pub fn extend(&mut self, xs: impl IntoIterator<Item = T>) -> Result<()> {
        let xs = xs.into_iter();
        self.reserve(xs.size_hint().0)?;
        for x in xs {
            self.push(x)?;
        }
        Ok(())
    }

    pub fn truncate(&mut self, len: usize) {
        self.vec.truncate(len);
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.vec
    }
}

impl<T: Clone> Tracked<T> {
    pub fn extend_from_slice(&mut self, xs: &[T]) -> Result<()> {
        self.reserve(xs.len())?;
        self.vec.extend_from_slice(xs);
        Ok(())
    }
}

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        deadline::release(self.charged);
    }
}

impl<T> Default for Tracked<T> {
    fn default() -> Self {
        Tracked::new()
    }
}

impl<T: Clone> Clone for Tracked<T> {
    fn clone(&self) -> Self {
        let vec = self.vec.clone();
        // Already allocated: charged without a check; the next growth checks the total.
        let charged = vec.capacity().saturating_mul(std::mem::size_of::<T>());
        deadline::force_charge(charged);
        Tracked { vec, charged }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Tracked<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.vec.fmt(f)
    }
}

impl<T> std::ops::Deref for Tracked<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.vec
    }
}

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
    data: Tracked<Value>,
    /// The number of rows (`data` holds `rows * width` values).
    rows: usize,
    /// Row numbers by hash; empty while `indexed` is false.
    table: HashTable<u32>,
    /// Whether `table` holds every row. A set made by [`RowSet::unindexed`] gets its rows from
    /// a caller that knows them distinct, and builds the table only when a lookup needs it.
    indexed: bool,
    /// Bytes charged for `table`'s capacity.
    table_charged: usize,
}

/// Bytes of one slot of a [`RowSet`]'s hash table: the row number and a control byte.
const SLOT_BYTES: usize = std::mem::size_of::<u32>() + 1;

impl RowSet {
    pub fn with_capacity(width: usize, rows: usize) -> Result<RowSet> {
        let mut set = RowSet::unindexed(width);
        set.indexed = true;
        set.data.reserve(width.saturating_mul(rows))?;
        set.reserve_table(rows)?;
        Ok(set)
    }

    /// An empty set whose rows come through [`RowSet::push_distinct`] from a caller that
    /// knows them distinct: no hash table is built unless a later lookup or insert needs it.
    pub fn unindexed(width: usize) -> RowSet {
        RowSet { width, data: Tracked::new(), rows: 0, table: HashTable::new(), indexed: false, table_charged: 0 }
    }

    /// Room for `rows` more rows without growing.
    pub fn reserve_rows(&mut self, rows: usize) -> Result<()> {
        self.data.reserve(rows.saturating_mul(self.width))
    }

    /// Adds a row the caller knows differs from every row of the set (see
    /// [`RowSet::unindexed`]); on an indexed set this is [`RowSet::insert`].
    pub fn push_distinct(&mut self, values: impl IntoIterator<Item = Value>) -> Result<()> {
        if self.indexed {
            return self.insert(values).map(|_| ());
        }
        let start = self.data.len();
        self.data.extend(values)?;
        debug_assert_eq!(self.data.len() - start, self.width, "row of the wrong width");
        self.rows += 1;
        Ok(())
    }

    /// Builds the hash table of an unindexed set.
    fn index(&mut self) -> Result<()> {
        if self.indexed {
            return Ok(());
        }
        self.reserve_table(self.rows)?;
        let (width, data) = (self.width, &self.data);
        for i in 0..self.rows {
            let hash = hash_values(&data[i * width..(i + 1) * width]);
            self.table
                .insert_unique(hash, i as u32, |&j| hash_values(&data[j as usize * width..(j as usize + 1) * width]));
        }
        self.indexed = true;
        Ok(())
    }

    /// Room for `additional` more rows in the hash table, charged before it grows.
    fn reserve_table(&mut self, additional: usize) -> Result<()> {
        let len = self.table.len();
        if self.table.capacity() - len >= additional {
            return Ok(());
        }
        // The table grows to the next power of two of 8/7 of its rows.
        let wanted = len.saturating_add(additional).max(len.saturating_mul(2));
        let estimate = (wanted / 7).saturating_mul(8).saturating_mul(SLOT_BYTES).saturating_sub(self.table_charged);
        deadline::charge(estimate)?;
        let (width, data) = (self.width, &self.data);
        let rehash = |&i: &u32| hash_values(&data[i as usize * width..(i as usize + 1) * width]);
        if self.table.try_reserve(wanted - len, rehash).is_err() {
            deadline::release(estimate);
            return Err(deadline::allocation_failed(estimate));
        }
        self.table_charged += estimate;
        let actual = self.table.capacity().saturating_mul(8).div_ceil(7).saturating_mul(SLOT_BYTES);
        if actual > self.table_charged {
            deadline::force_charge(actual - self.table_charged);
            self.table_charged = actual;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn row(&self, i: usize) -> &[Value] {
        &self.data[i * self.width..(i + 1) * self.width]
    }

    /// The number of the row made of `values` (exactly `width` of them), added if new, and
    /// whether it was added.
    pub fn insert(&mut self, values: impl IntoIterator<Item = Value>) -> Result<(usize, bool)> {
        self.index()?;
        let start = self.data.len();
        self.data.extend(values)?;
        debug_assert_eq!(self.data.len() - start, self.width, "row of the wrong width");
        let hash = hash_values(&self.data[start..]);
        let (width, data) = (self.width, &self.data);
        let candidate = &data[start..];
        if let Some(&i) = self.table.find(hash, |&i| &data[i as usize * width..(i as usize + 1) * width] == candidate) {
            self.data.truncate(start);
            return Ok((i as usize, false));
        }
        if let Err(e) = self.reserve_table(1) {
            self.data.truncate(start);
            return Err(e);
        }
        let n = self.rows as u32;
        let rows = &self.data;
        self.table.insert_unique(hash, n, |&i| hash_values(&rows[i as usize * width..(i as usize + 1) * width]));
        self.rows += 1;
        Ok((n as usize, true))
    }

    /// The rows as a relation over `vars` (in insertion order).
    pub fn into_rel(self, vars: Vec<Var>) -> Rel {
        let n_rows = self.rows;
        Rel { vars, n_rows, data: self.data_owned(), sorted_by: None, distinct: true }
    }

    /// The rows' values, the table dropped.
    fn data_owned(mut self) -> Tracked<Value> {
        std::mem::take(&mut self.data)
    }

    /// The number of the row equal to the values `eq` accepts, whose hash is `hash` (from
    /// [`hash_values`]).
    pub fn find(&self, hash: u64, eq: impl Fn(&[Value]) -> bool) -> Option<usize> {
        let width = self.width;
        if !self.indexed {
            return (0..self.rows).find(|&i| eq(&self.data[i * width..(i + 1) * width]));
        }
        self.table.find(hash, |&i| eq(&self.data[i as usize * width..(i as usize + 1) * width])).map(|&i| i as usize)
    }
}

impl Drop for RowSet {
    fn drop(&mut self) {
        deadline::release(self.table_charged);
    }
}

/// Rows grouped under distinct keys: the row numbers of each key, chained in a flat vector.
#[derive(Debug)]
pub(crate) struct Groups {
    pub keys: RowSet,
    head: Tracked<u32>,
    next: Tracked<u32>,
}

const NONE: u32 = u32::MAX;

impl Groups {
    pub fn new(width: usize, rows: usize) -> Result<Groups> {
        Ok(Groups {
            keys: RowSet::with_capacity(width, rows)?,
            head: Tracked::new(),
            next: Tracked::with_capacity(rows)?,
        })
    }

    /// Files row `row` (numbered from 0 up, in order) under `key`.
    pub fn add(&mut self, key: impl IntoIterator<Item = Value>, row: usize) -> Result<()> {
        let (k, added) = self.keys.insert(key)?;
        if added {
            self.head.push(NONE)?;
        }
        debug_assert_eq!(self.next.len(), row, "rows are added in order");
        self.next.push(self.head[k])?;
        self.head.as_mut_slice()[k] = row as u32;
        Ok(())
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
    pub data: Tracked<Value>,
    /// A column of entity ids (longs) the rows are sorted by, ascending, when known: a data
    /// pattern on that entity can then merge with an index scan instead of hashing.
    pub sorted_by: Option<usize>,
    /// Whether the rows are known pairwise distinct (false when unknown): the find tuples of
    /// such rows need no deduplication when they keep every column.
    pub distinct: bool,
}

impl Rel {
    /// The relation with no columns and one row: the identity of joins.
    pub fn unit() -> Rel {
        Rel { vars: Vec::new(), n_rows: 1, data: Tracked::new(), sorted_by: None, distinct: true }
    }

    /// No rows over `vars`.
    pub fn empty(vars: Vec<Var>) -> Rel {
        Rel { vars, n_rows: 0, data: Tracked::new(), sorted_by: None, distinct: false }
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

    pub fn push_row(&mut self, row: &[Value]) -> Result<()> {
        self.data.extend_from_slice(row)?;
        self.n_rows += 1;
        Ok(())
    }

    /// Appends a row made of `row` followed by `extra`.
    pub fn push_joined(&mut self, row: &[Value], extra: impl IntoIterator<Item = Value>) -> Result<()> {
        self.data.extend_from_slice(row)?;
        self.data.extend(extra)?;
        self.n_rows += 1;
        Ok(())
    }

    pub fn rows(&self) -> impl Iterator<Item = &[Value]> {
        (0..self.n_rows).map(move |i| self.row(i))
    }

    /// The rows ordered by column `col` of entity ids (a stable sort; other values sort first).
    pub fn sorted_by_long(self, col: usize) -> Result<Rel> {
        let key = |i: usize| self.row(i)[col].as_long().unwrap_or(i64::MIN);
        let mut order: Tracked<usize> = Tracked::with_capacity(self.n_rows)?;
        order.extend(0..self.n_rows)?;
        order.as_mut_slice().sort_by_key(|i| key(*i));
        let mut data = Tracked::with_capacity(self.data.len())?;
        for i in order.iter() {
            data.extend_from_slice(self.row(*i))?;
        }
        Ok(Rel { vars: self.vars.clone(), n_rows: self.n_rows, data, sorted_by: Some(col), distinct: self.distinct })
    }

    /// The distinct rows over `vars` (each must be a column).
    pub fn project_distinct(&self, vars: &[Var]) -> Result<Rel> {
        let cols: Vec<usize> = vars.iter().map(|v| self.col(*v).expect("projected var is a column")).collect();
        let mut set = RowSet::with_capacity(cols.len(), self.n_rows)?;
        for row in self.rows() {
            deadline::tick()?;
            set.insert(cols.iter().map(|c| row[*c].clone()))?;
        }
        Ok(set.into_rel(vars.to_vec()))
    }

    /// Removes duplicate rows.
    pub fn distinct(self) -> Result<Rel> {
        let vars = self.vars.clone();
        self.project_distinct(&vars)
    }

    /// Natural join on the shared variables (a product when there are none). Hashes the
    /// smaller side.
    pub fn join(self, other: Rel) -> Result<Rel> {
        if self.vars.is_empty() {
            return Ok(if self.n_rows == 0 { Rel::empty(other.vars.clone()) } else { other });
        }
        if other.vars.is_empty() {
            return Ok(if other.n_rows == 0 { Rel::empty(self.vars.clone()) } else { self });
        }
        let (build, probe) = if self.n_rows <= other.n_rows { (&self, &other) } else { (&other, &self) };
        let shared: Vec<Var> = probe.vars.iter().copied().filter(|v| build.has(*v)).collect();
        let build_cols: Vec<usize> = shared.iter().map(|v| build.col(*v).unwrap_or(0)).collect();
        let probe_cols: Vec<usize> = shared.iter().map(|v| probe.col(*v).unwrap_or(0)).collect();
        let extra: Vec<usize> = (0..build.width()).filter(|c| !shared.contains(&build.vars[*c])).collect();
        let mut vars = probe.vars.clone();
        vars.extend(extra.iter().map(|c| build.vars[*c]));
        let mut out = Rel::empty(vars);
        let mut groups = Groups::new(build_cols.len(), build.n_rows)?;
        for i in 0..build.n_rows {
            let row = build.row(i);
            groups.add(build_cols.iter().map(|c| row[*c].clone()), i)?;
        }
        for row in probe.rows() {
            deadline::tick()?;
            let hash = hash_values(probe_cols.iter().map(|c| &row[*c]));
            let Some(k) = groups.keys.find(hash, |key| probe_cols.iter().zip(key).all(|(c, v)| row[*c] == *v)) else {
                continue;
            };
            for i in groups.rows_of(k) {
                deadline::tick()?;
                let b = build.row(i);
                out.push_joined(row, extra.iter().map(|c| b[*c].clone()))?;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracked_vectors_charge_their_capacity_and_give_it_back() {
        let _query = deadline::start(None, 1 << 20);
        let before = deadline::charged();
        {
            let mut rows: Tracked<Value> = Tracked::new();
            for i in 0..1000 {
                rows.push(Value::Long(i)).unwrap();
            }
            let bytes = deadline::charged() - before;
            assert!(bytes >= 1000 * std::mem::size_of::<Value>() as u64, "{bytes} charged");
            let copy = rows.clone();
            let values = 1000 * std::mem::size_of::<Value>() as u64;
            assert!(deadline::charged() - before >= bytes + values, "a clone is charged too");
            drop(copy);
            assert_eq!(deadline::charged() - before, bytes);
        }
        assert_eq!(deadline::charged(), before, "dropping gives every byte back");
    }

    #[test]
    fn growth_past_the_budget_is_an_error_that_changes_nothing() {
        let _query = deadline::start(None, 64 * 1024);
        let mut rows: Tracked<Value> = Tracked::new();
        let e = loop {
            if let Err(e) = rows.push(Value::Long(1)) {
                break e;
            }
        };
        assert_eq!(e.code(), "query/memory-limit");
        assert!(rows.len() * std::mem::size_of::<Value>() <= 64 * 1024);
        let mut set = RowSet::with_capacity(2, 0).unwrap();
        let e = loop {
            if let Err(e) = set.insert([Value::Long(set.len() as i64), Value::Nil]) {
                break e;
            }
        };
        assert_eq!(e.code(), "query/memory-limit");
        // The failed insert left the set as it was: every row still found, none half-written.
        for i in 0..set.len() {
            assert_eq!(set.row(i), &[Value::Long(i as i64), Value::Nil]);
        }
    }

    #[test]
    fn an_allocation_the_system_refuses_is_an_error_not_an_abort() {
        // No budget outside a query; the allocator refuses an absurd reservation.
        let mut rows: Tracked<Value> = Tracked::new();
        let e = rows.reserve(usize::MAX / 64).unwrap_err();
        assert_eq!(e.code(), "query/memory-limit");
        assert!(e.to_string().contains("could not allocate"), "{e}");
        rows.push(Value::Long(1)).unwrap();
        assert_eq!(&rows[..], &[Value::Long(1)]);
    }
}
