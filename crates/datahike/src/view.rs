//! Views of a database value: `history`, `as-of`, `since` and `filter`, as in Datahike.
//!
//! A view is a [`Db`] whose three indices are `ViewIndex` wrappers over the current and
//! history indices of the plain database at the bottom of the view. The query engine, pull,
//! entity and the `datoms` family read a view exactly as they read a plain `Db`, through
//! `Db::index`; nothing above this module knows that time travel exists.
//!
//! Views stack (`(-> db history (as-of t) (since t2))`); the layers are flattened into one
//! `ReadSpec` when a view is made, with Datahike's composition rules: time bounds intersect,
//! `history` keeps every assertion and retraction inside the bounds, filters apply last.
//!
//! **What a read sees.** The history indices hold every assertion that was retracted or
//! overwritten and every retraction; the current indices hold the live assertions. Their
//! union, merged in index order, is the whole history (the `history` view). `as-of t` folds that
//! stream per `(e, a, v)`: a value is present when its last event at or before `t` is an
//! assertion, which is Datahike's `assemble-datoms` rule (a retraction wins over an assertion
//! of the same transaction unless the assertion is the live, current datom: retract-then-assert
//! in one transaction). Datoms of one `(e, a, v)` are adjacent in every index order, so the
//! fold is a streaming pass. `since t` is the same fold over the events after `t`, which
//! reduces to the current datoms asserted after `t`; it needs no history scan.
//!
//! ```
//! use datahike::{edn::read_str, q, Config, QueryInput, TimePoint};
//! # fn main() -> datahike::Result<()> {
//! let config = Config::parse(r#"{:store {:backend :memory :id "time-travel"} :schema-flexibility :read}"#)?;
//! datahike::create_database(&config)?;
//! let conn = datahike::connect(&config)?;
//! conn.transact(&read_str(r#"[{:db/id 1 :name "Alice" :age 20}]"#)?)?;
//! let t1 = conn.db().max_tx(); // 536870913
//! conn.transact(&read_str("[[:db/add 1 :age 21]]")?)?;
//!
//! let db = conn.db();
//! let ages = read_str("[:find ?a ?tx ?added :where [1 :age ?a ?tx ?added]]")?;
//! let history = q(&ages, &[QueryInput::from(db.history()?)])?;
//! assert_eq!(history, read_str("#{[20 536870913 true] [20 536870914 false] [21 536870914 true]}")?);
//! let as_of = q(&ages, &[QueryInput::from(db.as_of(TimePoint::Tx(t1))?)])?;
//! assert_eq!(as_of, read_str("#{[20 536870913 true]}")?);
//! let since = q(&ages, &[QueryInput::from(db.since(TimePoint::Tx(t1))?)])?;
//! assert_eq!(since, read_str("#{[21 536870914 true]}")?);
//! // An instant (epoch milliseconds) is compared with :db/txInstant.
//! let first = db.as_of(TimePoint::Tx(t1))?.datoms(datahike::IndexOrder::Eavt, &[read_str("536870913")?])?;
//! let datahike::Value::Instant(ms) = first[0].v else { unreachable!() };
//! assert_eq!(q(&ages, &[QueryInput::from(db.as_of(TimePoint::Instant(ms))?)])?, as_of);
//! # Ok(())
//! # }
//! ```

use crate::datom::{Datom, DatomKey, IndexOrder};
use crate::db::{Db, Indices};
use crate::edn::Edn;
use crate::index::{DatomIndex, DatomIter, IndexError, IndexResult, PendingFlush};
use crate::value::{Eid, Value};
use std::cmp::Ordering;
use std::iter::Peekable;
use std::sync::Arc;

/// A point in transaction time: a transaction id, or an instant compared with the
/// transactions' `:db/txInstant`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimePoint {
    /// A transaction id (`0x20000001` is the first).
    Tx(Eid),
    /// Epoch milliseconds, compared with `:db/txInstant`.
    Instant(i64),
}

impl TimePoint {
    /// A transaction id (an integer) or an instant (`#inst`), as Datahike's `as-of` and
    /// `since` take them.
    pub fn from_edn(x: &Edn) -> Option<TimePoint> {
        match x {
            Edn::Int(t) => Some(TimePoint::Tx(*t)),
            Edn::Inst(ms) => Some(TimePoint::Instant(*ms)),
            _ => None,
        }
    }

    /// A transaction id (`Value::Long`) or an instant (`Value::Instant`).
    pub fn from_value(x: &Value) -> Option<TimePoint> {
        match x {
            Value::Long(t) => Some(TimePoint::Tx(*t)),
            Value::Instant(ms) => Some(TimePoint::Instant(*ms)),
            _ => None,
        }
    }

    /// The time point as EDN: an integer or an `#inst`.
    pub fn to_edn(self) -> Edn {
        match self {
            TimePoint::Tx(t) => Edn::Int(t),
            TimePoint::Instant(ms) => Edn::Inst(ms),
        }
    }
}

/// A filter predicate: called with the database the filter was applied to and a datom.
pub type DatomPred = Arc<dyn Fn(&Db, &Datom) -> bool + Send + Sync>;

/// One filter of a view with the database its predicate is called with.
#[derive(Clone)]
pub(crate) struct Filter {
    pred: DatomPred,
    db: Db,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("#datahike/Filter")
    }
}

/// What the reads of a view see, flattened from its layers.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReadSpec {
    /// Assertions and retractions both, unfolded (the `history` view).
    pub historical: bool,
    /// Only transactions after this one (`since`, exclusive).
    pub after_tx: Option<Eid>,
    /// Only transactions up to this one (`as-of`, inclusive).
    pub upto_tx: Option<Eid>,
    /// Predicates every datom read must satisfy.
    pub filters: Vec<Filter>,
}

impl ReadSpec {
    /// Whether reads merge the history indices into the current ones.
    pub(crate) fn merges_history(&self) -> bool {
        self.historical || self.upto_tx.is_some()
    }

    fn in_window(&self, tx: Eid) -> bool {
        self.after_tx.is_none_or(|a| tx > a) && self.upto_tx.is_none_or(|u| tx <= u)
    }

    fn passes_filters(&self, d: &Datom) -> bool {
        self.filters.iter().all(|f| (f.pred)(&f.db, d))
    }

    pub(crate) fn with_filter(mut self, pred: DatomPred, db: Db) -> ReadSpec {
        self.filters.push(Filter { pred, db });
        self
    }
}

/// The layer a view adds on top of its origin.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Layer {
    History,
    AsOf(TimePoint),
    Since(TimePoint),
    Filter,
}

/// The view part of a [`Db`].
#[derive(Debug)]
pub(crate) struct View {
    /// This view's own layer.
    pub layer: Layer,
    /// The database this layer was applied to (for a filter of a filter, the unfiltered one,
    /// as Datahike merges the predicates).
    pub origin: Db,
    /// All layers, flattened.
    pub spec: Arc<ReadSpec>,
    /// What `Db::index` returns.
    pub indices: Indices,
}

/// The three wrapper indices of a view over the plain database `base`.
pub(crate) fn view_indices(base: &Db, spec: &Arc<ReadSpec>) -> Indices {
    let make = |order: IndexOrder| -> Arc<dyn DatomIndex> {
        let history = match (&base.0.history, spec.merges_history()) {
            (Some(h), true) => Some(h.get(order).clone()),
            _ => None,
        };
        Arc::new(ViewIndex { order, current: base.0.current.get(order).clone(), history, spec: spec.clone() })
    };
    Indices { eavt: make(IndexOrder::Eavt), aevt: make(IndexOrder::Aevt), avet: make(IndexOrder::Avet) }
}

/// A read-only index of a view: the current index, merged with the history index when the
/// view needs history, then windowed by transaction, folded to the values current at the
/// upper bound (unless historical) and filtered.
struct ViewIndex {
    order: IndexOrder,
    current: Arc<dyn DatomIndex>,
    /// The history index, when reads merge it in.
    history: Option<Arc<dyn DatomIndex>>,
    spec: Arc<ReadSpec>,
}

impl std::fmt::Debug for ViewIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ViewIndex({} {:?})", self.order.name(), self.spec)
    }
}

/// How a scan is bounded; the scan itself runs on `lo`/`hi` without the tx component when
/// folding, so that every event of an `(e, a, v)` reaches the fold.
#[derive(Clone, Copy)]
enum Scan<'k> {
    Range(&'k DatomKey, &'k DatomKey),
    RangeRev(&'k DatomKey, &'k DatomKey),
    Seek(&'k DatomKey),
    Rseek(&'k DatomKey),
}

impl Scan<'_> {
    fn rev(self) -> bool {
        matches!(self, Scan::RangeRev(..) | Scan::Rseek(_))
    }
    fn run<'a>(self, index: &'a dyn DatomIndex) -> DatomIter<'a> {
        match self {
            Scan::Range(lo, hi) => index.range(lo, hi),
            Scan::RangeRev(lo, hi) => index.range_rev(lo, hi),
            Scan::Seek(from) => index.seek(from),
            Scan::Rseek(from) => index.rseek(from),
        }
    }
}

fn without_tx(key: &DatomKey) -> DatomKey {
    DatomKey { tx: None, ..key.clone() }
}

impl ViewIndex {
    fn folds(&self) -> bool {
        self.history.is_some() && !self.spec.historical
    }

    fn iter(&self, scan: Scan<'_>) -> DatomIter<'_> {
        let order = self.order;
        let spec = &*self.spec;
        let Some(history) = &self.history else {
            // Current datoms only (a since or filter view): a filtering pass.
            return Box::new(scan.run(self.current.as_ref()).filter(move |d| match d {
                Ok(d) => spec.in_window(d.tx()) && spec.passes_filters(d),
                Err(_) => true,
            }));
        };
        if !self.folds() {
            let merged = Merge::new(order, scan.rev(), scan.run(self.current.as_ref()), scan.run(history.as_ref()));
            return Box::new(merged.filter_map(move |r| match r {
                Ok((d, _)) => (spec.in_window(d.tx()) && spec.passes_filters(&d)).then_some(Ok(d)),
                Err(e) => Some(Err(e)),
            }));
        }
        // Folding: scan whole (e, a, v) groups, check a tx component of the bounds afterwards.
        let norm = |k: &DatomKey| k.clone().prefix_for(order);
        let (lo, hi) = match scan {
            Scan::Range(lo, hi) | Scan::RangeRev(lo, hi) => (Some(norm(lo)), Some(norm(hi))),
            Scan::Seek(from) => (Some(norm(from)), None),
            Scan::Rseek(from) => (None, Some(norm(from))),
        };
        let lo = lo.filter(|k| k.tx.is_some());
        let hi = hi.filter(|k| k.tx.is_some());
        let (scan_lo, scan_hi);
        let inner = match scan {
            Scan::Range(a, b) | Scan::RangeRev(a, b) if lo.is_some() || hi.is_some() => {
                scan_lo = without_tx(&norm(a));
                scan_hi = without_tx(&norm(b));
                if scan.rev() {
                    Scan::RangeRev(&scan_lo, &scan_hi)
                } else {
                    Scan::Range(&scan_lo, &scan_hi)
                }
            }
            Scan::Seek(from) if lo.is_some() => {
                scan_lo = without_tx(&norm(from));
                Scan::Seek(&scan_lo)
            }
            Scan::Rseek(from) if hi.is_some() => {
                scan_hi = without_tx(&norm(from));
                Scan::Rseek(&scan_hi)
            }
            other => other,
        };
        let merged = Merge::new(order, scan.rev(), inner.run(self.current.as_ref()), inner.run(history.as_ref()));
        Box::new(Fold { order, rev: scan.rev(), src: merged.peekable(), spec, lo, hi, group: Vec::new() })
    }
}

impl ViewIndex {
    /// `visit` of an as-of (or as-of and since) view, without merging the two streams datom
    /// by datom. A current datom inside the window is live at the upper bound (nothing
    /// retracted it since); a history assertion is live when it is inside the window and its
    /// retraction is not. The two never name the same `(e, a, v)` (an assertion is elided
    /// while its value is present), so the history's live datoms, folded by reference and
    /// cloned only when live, are merged into a by-reference pass over the current index.
    fn visit_folded(&self, lo: &DatomKey, hi: &DatomKey, f: &mut dyn FnMut(&Datom) -> bool) -> IndexResult<()> {
        let spec = &*self.spec;
        let order = self.order;
        let Some(history) = &self.history else { return Ok(()) };
        let mut live: Vec<Datom> = Vec::new();
        let mut candidate: Option<Datom> = None;
        history.visit(lo, hi, &mut |d| {
            if candidate.as_ref().is_some_and(|c| order.cmp_eav(c, d) != Ordering::Equal) {
                live.extend(candidate.take().filter(|c| spec.passes_filters(c)));
            }
            if spec.in_window(d.tx()) {
                candidate = if d.added() { Some(d.clone()) } else { None };
            }
            true
        })?;
        live.extend(candidate.take().filter(|c| spec.passes_filters(c)));
        let mut pending = live.into_iter().peekable();
        let mut go_on = true;
        self.current.visit(lo, hi, &mut |d| {
            if !spec.in_window(d.tx()) || !spec.passes_filters(d) {
                return true;
            }
            while let Some(h) = pending.next_if(|h| order.cmp(h, d) == Ordering::Less) {
                if !f(&h) {
                    go_on = false;
                    return false;
                }
            }
            go_on = f(d);
            go_on
        })?;
        if go_on {
            for h in pending {
                if !f(&h) {
                    break;
                }
            }
        }
        Ok(())
    }
}

impl DatomIndex for ViewIndex {
    fn order(&self) -> IndexOrder {
        self.order
    }

    /// An upper bound: the datoms of the indices the view reads.
    fn count(&self) -> u64 {
        self.current.count() + self.history.as_ref().map_or(0, |h| h.count())
    }

    fn apply(&self, _adds: Vec<Datom>, _removes: Vec<Datom>) -> IndexResult<Arc<dyn DatomIndex>> {
        Err(IndexError::ReadOnlyView)
    }

    fn range(&self, lo: &DatomKey, hi: &DatomKey) -> DatomIter<'_> {
        self.iter(Scan::Range(lo, hi))
    }

    fn visit(&self, lo: &DatomKey, hi: &DatomKey, f: &mut dyn FnMut(&Datom) -> bool) -> IndexResult<()> {
        if self.history.is_none() {
            // No merge: visit the current index in place, without cloning.
            let spec = &*self.spec;
            return self.current.visit(lo, hi, &mut |d| {
                if spec.in_window(d.tx()) && spec.passes_filters(d) {
                    f(d)
                } else {
                    true
                }
            });
        }
        let (lo_n, hi_n) = (lo.clone().prefix_for(self.order), hi.clone().prefix_for(self.order));
        if self.folds() && lo_n.tx.is_none() && hi_n.tx.is_none() {
            return self.visit_folded(lo, hi, f);
        }
        for d in self.range(lo, hi) {
            if !f(&d?) {
                break;
            }
        }
        Ok(())
    }

    fn range_rev(&self, lo: &DatomKey, hi: &DatomKey) -> DatomIter<'_> {
        self.iter(Scan::RangeRev(lo, hi))
    }

    fn seek(&self, from: &DatomKey) -> DatomIter<'_> {
        self.iter(Scan::Seek(from))
    }

    fn rseek(&self, from: &DatomKey) -> DatomIter<'_> {
        self.iter(Scan::Rseek(from))
    }

    /// An upper bound for planning: the count of the same range in the indices the view
    /// reads, before windowing, folding and filtering.
    fn count_range(&self, lo: &DatomKey, hi: &DatomKey) -> IndexResult<u64> {
        let history = match &self.history {
            Some(h) => h.count_range(lo, hi)?,
            None => 0,
        };
        Ok(self.current.count_range(lo, hi)? + history)
    }

    fn prepare_flush(&self) -> IndexResult<PendingFlush> {
        Err(IndexError::ReadOnlyView)
    }
}

/// A datom and whether it comes from the current index (is the live datom).
type Tagged = (Datom, bool);

/// The union of the current and history streams, in index order (descending when `rev`).
struct Merge<'a> {
    order: IndexOrder,
    rev: bool,
    current: Peekable<DatomIter<'a>>,
    history: Peekable<DatomIter<'a>>,
}

impl<'a> Merge<'a> {
    fn new(order: IndexOrder, rev: bool, current: DatomIter<'a>, history: DatomIter<'a>) -> Merge<'a> {
        Merge { order, rev, current: current.peekable(), history: history.peekable() }
    }
}

impl Iterator for Merge<'_> {
    type Item = IndexResult<Tagged>;

    fn next(&mut self) -> Option<Self::Item> {
        let take_current = match (self.current.peek(), self.history.peek()) {
            (None, None) => return None,
            (Some(Err(_)), _) | (Some(Ok(_)), None) => true,
            (_, Some(Err(_))) | (None, Some(Ok(_))) => false,
            (Some(Ok(c)), Some(Ok(h))) => {
                let ord = self.order.cmp(c, h);
                match if self.rev { ord.reverse() } else { ord } {
                    Ordering::Less => true,
                    Ordering::Greater => false,
                    Ordering::Equal => {
                        // The same datom in both: keep one.
                        self.history.next();
                        true
                    }
                }
            }
        };
        if take_current {
            self.current.next().map(|r| r.map(|d| (d, true)))
        } else {
            self.history.next().map(|r| r.map(|d| (d, false)))
        }
    }
}

/// Folds each `(e, a, v)` group of a merged stream to the datom that is live at the view's
/// upper bound, if any; then applies the view's filters and the tx component of the bounds.
struct Fold<'a> {
    order: IndexOrder,
    rev: bool,
    src: Peekable<Merge<'a>>,
    spec: &'a ReadSpec,
    lo: Option<DatomKey>,
    hi: Option<DatomKey>,
    group: Vec<Tagged>,
}

impl Fold<'_> {
    /// The position in `group` (ascending) of the live datom: the last event inside the window
    /// if it is an assertion; if it is a retraction, the current datom asserted in the same
    /// transaction (retracted and asserted again in one transaction), else none.
    fn live(&self, group: &[Tagged]) -> Option<usize> {
        let mut last: Option<usize> = None;
        let mut live_at_last: Option<usize> = None;
        for (i, (d, is_current)) in group.iter().enumerate() {
            if !self.spec.in_window(d.tx()) {
                continue;
            }
            if last.is_none_or(|l| group[l].0.tx() != d.tx()) {
                live_at_last = None;
            }
            if *is_current && d.added() {
                live_at_last = Some(i);
            }
            last = Some(i);
        }
        let last = last?;
        if group[last].0.added() {
            Some(last)
        } else {
            live_at_last
        }
    }

    fn in_bounds(&self, d: &Datom) -> bool {
        self.lo.as_ref().is_none_or(|k| self.order.cmp_prefix(d, k) != Ordering::Less)
            && self.hi.as_ref().is_none_or(|k| self.order.cmp_prefix(d, k) != Ordering::Greater)
    }
}

impl Iterator for Fold<'_> {
    type Item = IndexResult<Datom>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let first = match self.src.next()? {
                Ok(t) => t,
                Err(e) => return Some(Err(e)),
            };
            // The group buffer is reused: most groups hold one datom, and a scan has many.
            let mut group = std::mem::take(&mut self.group);
            group.clear();
            group.push(first);
            while let Some(Ok((d, _))) = self.src.peek() {
                if self.order.cmp_eav(d, &group[0].0) != Ordering::Equal {
                    break;
                }
                if let Some(Ok(t)) = self.src.next() {
                    group.push(t);
                }
            }
            if self.rev {
                group.reverse();
            }
            let found = self.live(&group).map(|i| group.swap_remove(i).0);
            self.group = group;
            if let Some(d) = found {
                if self.in_bounds(&d) && self.spec.passes_filters(&d) {
                    return Some(Ok(d));
                }
            }
        }
    }
}
