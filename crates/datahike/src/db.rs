//! The database value: immutable indices, schema and counters. A `Db` never changes once
//! returned; a transaction makes a new one that shares structure with it.

use crate::attr_refs::Idents;
use crate::config::{Config, SchemaFlexibility};
use crate::datom::{Datom, DatomKey, IndexOrder};
use crate::edn::{Edn, Keyword};
use crate::error::{Detail, Error, Result};
use crate::index::{open_index, DatomIndex, IndexResult, IndexRoot, NodeCache};
use crate::schema::{is_schema_attr, Schema};
use crate::tx::{self, Commit, TxOutcome, TxReport};
use crate::value::{Eid, Value};
use crate::view::{view_indices, DatomPred, Layer, ReadSpec, TimePoint, View};
use rustc_hash::FxHashMap as HashMap;
use std::cmp::Ordering;
use std::sync::Arc;

/// Transactions with more index changes than this update the three indices in parallel.
const PARALLEL_APPLY_MIN: usize = 4096;

/// The three current indices, or the three history indices.
#[derive(Clone, Debug)]
pub(crate) struct Indices {
    pub eavt: Arc<dyn DatomIndex>,
    pub aevt: Arc<dyn DatomIndex>,
    pub avet: Arc<dyn DatomIndex>,
}

impl Indices {
    pub(crate) fn open(
        config: &Config,
        temporal: bool,
        roots: Option<&[IndexRoot; 3]>,
        cache: &Arc<NodeCache>,
    ) -> Result<Indices> {
        let open = |i: usize, order| {
            open_index(config.index, order, temporal, roots.map(|r| &r[i]), cache, config.branching_factor)
        };
        Ok(Indices {
            eavt: open(0, IndexOrder::Eavt)?,
            aevt: open(1, IndexOrder::Aevt)?,
            avet: open(2, IndexOrder::Avet)?,
        })
    }

    pub(crate) fn get(&self, order: IndexOrder) -> &Arc<dyn DatomIndex> {
        match order {
            IndexOrder::Eavt => &self.eavt,
            IndexOrder::Aevt => &self.aevt,
            IndexOrder::Avet => &self.avet,
        }
    }

    pub(crate) fn all(&self) -> [&Arc<dyn DatomIndex>; 3] {
        [&self.eavt, &self.aevt, &self.avet]
    }
}

#[derive(Debug)]
pub(crate) struct DbInner {
    pub config: Arc<Config>,
    pub schema: Arc<Schema>,
    pub current: Indices,
    pub history: Option<Indices>,
    pub max_eid: Eid,
    pub max_tx: Eid,
    pub last_tx_instant: i64,
    pub cache: Arc<NodeCache>,
    /// For a view (history, as-of, since, filter): its layers and the indices reads go
    /// through. The fields above are those of the plain database under the view.
    pub view: Option<Arc<View>>,
    /// The commit this value is (`None` for a value made by `with`).
    pub commit: Option<Arc<Commit>>,
}

/// An immutable database value, or a read-only view of one ([`Db::history`], [`Db::as_of`],
/// [`Db::since`], [`Db::filter`]). Cloning is cheap.
#[derive(Clone, Debug)]
pub struct Db(pub(crate) Arc<DbInner>);

impl Db {
    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }
    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.0.schema
    }
    /// The largest user entity id.
    pub fn max_eid(&self) -> Eid {
        self.0.max_eid
    }
    /// The id of the last transaction (`0x20000000` for a new database).
    pub fn max_tx(&self) -> Eid {
        self.0.max_tx
    }
    /// The `:db/txInstant` of the last transaction, epoch milliseconds.
    pub fn last_tx_instant(&self) -> i64 {
        self.0.last_tx_instant
    }

    /// Datahike's `commit-id`: the id of the commit this value is, `None` for a value made
    /// by [`Db::with`]. A view has the commit id of the database under it.
    pub fn commit_id(&self) -> Option<uuid::Uuid> {
        self.0.commit.as_ref().map(|c| c.id)
    }

    /// Datahike's `parent-commit-ids`: the commits this one was made from (two or more for a
    /// merge, none for the first commit of a database).
    pub fn parent_commit_ids(&self) -> Option<Vec<uuid::Uuid>> {
        self.0.commit.as_ref().map(|c| c.parents.clone())
    }

    /// The index reads go through: the current index, or a view's wrapper.
    pub(crate) fn index(&self, order: IndexOrder) -> &Arc<dyn DatomIndex> {
        match &self.0.view {
            Some(view) => view.indices.get(order),
            None => self.0.current.get(order),
        }
    }

    /// Whether reads see each (e, a, v) at most once: true unless the value merges the
    /// history indices in (a history or as-of view).
    pub(crate) fn eav_unique(&self) -> bool {
        self.0.view.as_deref().is_none_or(|v| !v.spec.merges_history())
    }

    // ------------------------------------------------------------------ views

    /// Datahike's `history`: every assertion and every retraction the database keeps, with
    /// `added` telling them apart (`[?e ?a ?v ?tx ?added]`). Idempotent. An error for a
    /// database created with `:keep-history? false`.
    pub fn history(&self) -> Result<Db> {
        self.require_history("history")?;
        if matches!(self.0.view.as_deref(), Some(View { layer: Layer::History, .. })) {
            return Ok(self.clone());
        }
        let spec = ReadSpec { historical: true, ..self.read_spec() };
        Ok(self.make_view(Layer::History, self.clone(), spec))
    }

    /// Datahike's `as-of`: the database as it was after transaction `t` (a transaction id, or an
    /// instant compared with `:db/txInstant`), inclusive. Schema and idents are the current ones,
    /// as in Datahike. An error for a database created with `:keep-history? false`.
    pub fn as_of(&self, t: TimePoint) -> Result<Db> {
        self.require_history("as-of")?;
        if let TimePoint::Tx(tx) = t {
            if tx < crate::datom::TX0 {
                return Err(Error::Temporal(format!(
                    "Invalid transaction ID. Must be bigger than {}. Got {tx}",
                    crate::datom::TX0
                )));
            }
        }
        let bound = self.tx_bound(t)?;
        let mut spec = self.read_spec();
        spec.upto_tx = Some(spec.upto_tx.map_or(bound, |u| u.min(bound)));
        Ok(self.make_view(Layer::AsOf(t), self.clone(), spec))
    }

    /// Datahike's `since`: only what was asserted after transaction `t` (a transaction id, or an
    /// instant compared with `:db/txInstant`), exclusive, and is still current (or current at the
    /// `as-of` point of an enclosing view). An error for a database created with
    /// `:keep-history? false`.
    pub fn since(&self, t: TimePoint) -> Result<Db> {
        self.require_history("since")?;
        let bound = self.tx_bound(t)?;
        let mut spec = self.read_spec();
        spec.after_tx = Some(spec.after_tx.map_or(bound, |a| a.max(bound)));
        Ok(self.make_view(Layer::Since(t), self.clone(), spec))
    }

    /// Datahike's `filter`: a view with only the datoms for which `pred(db, datom)` is true,
    /// where `db` is this database (for a filter of a filtered database, the unfiltered one,
    /// and the two predicates must both hold). Every read path applies it.
    pub fn filter(&self, pred: impl Fn(&Db, &Datom) -> bool + Send + Sync + 'static) -> Db {
        let pred: DatomPred = Arc::new(pred);
        match self.0.view.as_deref() {
            Some(View { layer: Layer::Filter, origin, spec, .. }) => {
                let spec = (**spec).clone().with_filter(pred, origin.clone());
                self.make_view(Layer::Filter, origin.clone(), spec)
            }
            _ => self.make_view(Layer::Filter, self.clone(), self.read_spec().with_filter(pred, self.clone())),
        }
    }

    /// Datahike's `is-filtered`: whether this is a [`Db::filter`] view.
    pub fn is_filtered(&self) -> bool {
        matches!(self.0.view.as_deref(), Some(View { layer: Layer::Filter, .. }))
    }

    /// Whether this is a view (history, as-of, since or filter) rather than a database value.
    pub fn is_view(&self) -> bool {
        self.0.view.is_some()
    }

    /// The database a view was made from; `None` for a plain database.
    pub fn origin(&self) -> Option<&Db> {
        self.0.view.as_deref().map(|v| &v.origin)
    }

    /// The time point of an as-of or since view.
    pub fn time_point(&self) -> Option<TimePoint> {
        match self.0.view.as_deref()?.layer {
            Layer::AsOf(t) | Layer::Since(t) => Some(t),
            Layer::History | Layer::Filter => None,
        }
    }

    fn read_spec(&self) -> ReadSpec {
        self.0.view.as_deref().map(|v| (*v.spec).clone()).unwrap_or_default()
    }

    fn require_history(&self, what: &str) -> Result<()> {
        if self.0.history.is_none() {
            return Err(Error::Temporal(format!(
                "{what} is only allowed on temporal indexed databases; this database was created with :keep-history? false"
            )));
        }
        Ok(())
    }

    /// The plain database under any views.
    fn base(&self) -> Db {
        let mut db = self;
        while let Some(view) = &db.0.view {
            db = &view.origin;
        }
        db.clone()
    }

    /// The last transaction at or before `t`: `t` itself for a transaction id; for an instant,
    /// the last transaction whose `:db/txInstant` is at or before it (`TX0` when there is
    /// none). Instants never decrease from one transaction to the next, so the transactions at
    /// or before an instant are exactly those up to this one.
    fn tx_bound(&self, t: TimePoint) -> Result<Eid> {
        let ms = match t {
            TimePoint::Tx(tx) => return Ok(tx),
            TimePoint::Instant(ms) => ms,
        };
        let a = Keyword::new("db/txInstant");
        let key = DatomKey { a: Some(a), v: Some(Value::Instant(ms)), ..Default::default() };
        for d in self.base().0.current.avet.rseek(&key) {
            let d = d?;
            if d.a != a {
                break;
            }
            if d.e > crate::datom::TX0 {
                return Ok(d.e);
            }
        }
        Ok(crate::datom::TX0)
    }

    fn make_view(&self, layer: Layer, origin: Db, spec: ReadSpec) -> Db {
        let base = self.base();
        let spec = Arc::new(spec);
        let indices = view_indices(&base, &spec);
        let b = &base.0;
        Db(Arc::new(DbInner {
            config: b.config.clone(),
            schema: b.schema.clone(),
            current: b.current.clone(),
            history: b.history.clone(),
            max_eid: b.max_eid,
            max_tx: b.max_tx,
            commit: b.commit.clone(),
            last_tx_instant: b.last_tx_instant,
            cache: b.cache.clone(),
            view: Some(Arc::new(View { layer, origin, spec, indices })),
        }))
    }

    fn refuse_view(&self) -> Result<()> {
        if self.0.view.is_some() {
            return Err(Error::ReadOnlyView(
                "A history, as-of, since or filtered database cannot be modified; transact against the connection or a plain database value".into(),
            ));
        }
        Ok(())
    }

    /// Every datom with the prefix `key` in `order`.
    pub fn datoms_key(&self, order: IndexOrder, key: &DatomKey) -> IndexResult<Vec<Datom>> {
        let key = key.clone().prefix_for(order);
        self.index(order).range(&key, &key).collect()
    }

    /// Number of datoms with the prefix `key` in `order`.
    pub fn count_key(&self, order: IndexOrder, key: &DatomKey) -> IndexResult<u64> {
        let key = key.clone().prefix_for(order);
        if self.0.view.is_some() {
            // A view's `count_range` is an upper bound: count by a scan.
            let mut n = 0;
            self.index(order).visit(&key, &key, &mut |_| {
                n += 1;
                true
            })?;
            return Ok(n);
        }
        self.index(order).count_range(&key, &key)
    }

    /// Datoms with the prefix `key` in the history index of `order`: the assertions that were
    /// retracted or overwritten, and the retractions. Empty for a database without history.
    pub(crate) fn history_datoms_key(&self, order: IndexOrder, key: &DatomKey) -> IndexResult<Vec<Datom>> {
        match &self.0.history {
            Some(h) => {
                let key = key.clone().prefix_for(order);
                h.get(order).range(&key, &key).collect()
            }
            None => Ok(Vec::new()),
        }
    }

    /// The history index of `order`, when the database keeps history.
    pub(crate) fn history_index(&self, order: IndexOrder) -> Option<&Arc<dyn DatomIndex>> {
        self.0.history.as_ref().map(|h| h.get(order))
    }

    /// Applies a transaction's outcome: the one path from tx-data to new indices, used both by
    /// `transact` and by log replay. The excised datoms go first, then tx-data is applied to
    /// what is left: the pipeline reports in `purged` only datoms stored before the
    /// transaction and drops from tx-data what a purge excised of the transaction's own
    /// datoms, so tx-data never touches a purged datom and the order of the two lists does
    /// not matter.
    pub(crate) fn apply_tx(&self, outcome: &TxOutcome) -> Result<Db> {
        self.refuse_view()?;
        if outcome.purged.is_empty() {
            self.apply_tx_data(outcome)
        } else {
            self.excise(&outcome.purged)?.apply_tx_data(outcome)
        }
    }

    /// A new value without the excised datoms, leaving no history of them. A datom leaves
    /// the current indices only if they hold exactly it (same tx), since a current index
    /// keeps one datom per (e, a, v) and an older assertion of the same value may be in
    /// history; it leaves the history indices wherever it is (removing an absent datom is a
    /// no-op, so AVET needs no check of `:db/index`, which may have changed). An excised
    /// current schema datom leaves the schema as a retraction would.
    fn excise(&self, purged: &[Datom]) -> Result<Db> {
        let inner = &self.0;
        let mut schema: Option<Schema> = None;
        let mut current_removes = Vec::new();
        for d in purged.iter().filter(|d| d.added()) {
            let key = DatomKey { e: Some(d.e), a: Some(d.a), v: Some(d.v.clone()), tx: None };
            let stored = inner.current.eavt.range(&key, &key).next().transpose()?;
            if stored.as_ref() == Some(d) {
                if is_schema_attr(d.a) {
                    let retraction = Datom::new(d.e, d.a, d.v.clone(), d.tx(), false);
                    schema.get_or_insert_with(|| (*inner.schema).clone()).apply_datom(&retraction);
                }
                current_removes.push(d.clone());
            }
        }
        let current = if current_removes.is_empty() {
            inner.current.clone()
        } else {
            Indices {
                eavt: inner.current.eavt.apply(Vec::new(), current_removes.clone())?,
                aevt: inner.current.aevt.apply(Vec::new(), current_removes.clone())?,
                avet: inner.current.avet.apply(Vec::new(), current_removes)?,
            }
        };
        let history = match &inner.history {
            Some(h) => Some(Indices {
                eavt: h.eavt.apply(Vec::new(), purged.to_vec())?,
                aevt: h.aevt.apply(Vec::new(), purged.to_vec())?,
                avet: h.avet.apply(Vec::new(), purged.to_vec())?,
            }),
            None => None,
        };
        Ok(Db(Arc::new(DbInner {
            config: inner.config.clone(),
            schema: schema.map_or_else(|| inner.schema.clone(), Arc::new),
            current,
            history,
            max_eid: inner.max_eid,
            max_tx: inner.max_tx,
            last_tx_instant: inner.last_tx_instant,
            cache: inner.cache.clone(),
            view: None,
            commit: inner.commit.clone(),
        })))
    }

    /// Applies tx-data: the current indices gain its final assertions and lose what it
    /// retracted; the history indices gain the retracted or overwritten assertions and the
    /// retractions (unless the attribute is `:db/noHistory`).
    fn apply_tx_data(&self, outcome: &TxOutcome) -> Result<Db> {
        let inner = &self.0;
        let mut schema = (*inner.schema).clone();
        // Final state per (e, a, v): what the database had before (looked up once, only for
        // retractions of datoms this transaction did not add) and what it has after.
        struct Entry {
            base: Option<Datom>,
            last: Option<Datom>,
        }
        let mut history_adds: Vec<Datom> = Vec::new();
        let keep_history = inner.config.keep_history;
        let mut adds = Vec::new();
        let mut removes = Vec::new();
        if outcome.tx_data.iter().all(Datom::added) {
            // Only assertions (a load): the pipeline never asserts a datom that is present, so
            // tx-data is exactly what the indices gain.
            for d in &outcome.tx_data {
                if is_schema_attr(d.a) {
                    schema.apply_datom(d);
                }
            }
            adds = outcome.tx_data.clone();
        } else {
            let mut state: HashMap<(Eid, Keyword, Value), Entry> =
                HashMap::with_capacity_and_hasher(outcome.tx_data.len(), Default::default());
            for d in &outcome.tx_data {
                if is_schema_attr(d.a) {
                    schema.apply_datom(d);
                }
                let key = (d.e, d.a, d.v.clone());
                let entry = match state.get_mut(&key) {
                    Some(entry) => entry,
                    None => {
                        let base = if d.added() {
                            None
                        } else {
                            let k = DatomKey { e: Some(d.e), a: Some(d.a), v: Some(d.v.clone()), tx: None };
                            self.index(IndexOrder::Eavt).range(&k, &k).next().transpose()?
                        };
                        state.entry(key).or_insert(Entry { last: base.clone(), base })
                    }
                };
                if d.added() {
                    entry.last = Some(d.clone());
                } else {
                    if keep_history && !schema.is_no_history(d.a) {
                        if let Some(prior) = &entry.last {
                            history_adds.push(prior.clone());
                        }
                        history_adds.push(d.clone());
                    }
                    entry.last = None;
                }
            }
            for entry in state.into_values() {
                match (entry.base, entry.last) {
                    (Some(b), Some(l)) if b.tx() == l.tx() => {}
                    (b, l) => {
                        if let Some(b) = b {
                            removes.push(b);
                        }
                        if let Some(l) = l {
                            adds.push(l);
                        }
                    }
                }
            }
        }
        let indexed = |d: &&Datom| schema.is_indexed(d.a);
        let avet_adds: Vec<Datom> = adds.iter().filter(indexed).cloned().collect();
        let avet_removes: Vec<Datom> = removes.iter().filter(indexed).cloned().collect();
        let current = if adds.len() + removes.len() > PARALLEL_APPLY_MIN {
            // The three indices are independent: build them on parallel threads (a bulk load
            // spends most of its time sorting and building leaves).
            let (eavt, aevt, avet) = std::thread::scope(|scope| {
                let (a1, r1) = (adds.clone(), removes.clone());
                let eavt = scope.spawn(move || inner.current.eavt.apply(a1, r1));
                let avet = scope.spawn(move || inner.current.avet.apply(avet_adds, avet_removes));
                let aevt = inner.current.aevt.apply(adds, removes);
                (eavt.join(), aevt, avet.join())
            });
            let join = |r: std::thread::Result<IndexResult<Arc<dyn DatomIndex>>>| {
                r.map_err(|_| Error::Internal("an index update thread panicked".into()))?.map_err(Error::from)
            };
            Indices { eavt: join(eavt)?, aevt: aevt?, avet: join(avet)? }
        } else {
            Indices {
                eavt: inner.current.eavt.apply(adds.clone(), removes.clone())?,
                aevt: inner.current.aevt.apply(adds, removes)?,
                avet: inner.current.avet.apply(avet_adds, avet_removes)?,
            }
        };
        let history = match &inner.history {
            Some(h) if !history_adds.is_empty() => {
                let hist_avet: Vec<Datom> = history_adds.iter().filter(indexed).cloned().collect();
                Some(Indices {
                    eavt: h.eavt.apply(history_adds.clone(), Vec::new())?,
                    aevt: h.aevt.apply(history_adds, Vec::new())?,
                    avet: h.avet.apply(hist_avet, Vec::new())?,
                })
            }
            other => other.clone(),
        };
        Ok(Db(Arc::new(DbInner {
            config: inner.config.clone(),
            schema: Arc::new(schema),
            current,
            history,
            max_eid: outcome.max_eid.max(inner.max_eid),
            max_tx: outcome.tx.max(inner.max_tx),
            last_tx_instant: outcome.tx_instant.max(inner.last_tx_instant),
            cache: inner.cache.clone(),
            view: None,
            commit: outcome.commit.clone().map(Arc::new),
        })))
    }

    /// Datahike's `with`: runs a transaction against this value without storing anything.
    pub fn with(&self, tx_data: &Edn) -> Result<TxReport> {
        self.with_meta(tx_data, None)
    }

    /// `with` with transaction metadata.
    pub fn with_meta(&self, tx_data: &Edn, tx_meta: Option<&Edn>) -> Result<TxReport> {
        self.refuse_view()?;
        let outcome = tx::run(self, tx_data, tx_meta, now_millis())?;
        let db_after = self.apply_tx(&outcome)?;
        Ok(TxReport {
            db_before: self.clone(),
            db_after,
            tx_data: outcome.tx_data,
            tempids: outcome.tempids,
            tx_meta: outcome.tx_meta,
        })
    }

    /// Datahike's `db-with`: the database after `with`.
    pub fn db_with(&self, tx_data: &Edn) -> Result<Db> {
        Ok(self.with(tx_data)?.db_after)
    }

    // ------------------------------------------------------------------ read API

    /// Resolves an entity id given as a number, ident keyword or lookup ref. `Ok(None)` when
    /// the ident or lookup ref names nothing.
    pub fn entid(&self, x: &Edn) -> Result<Option<Eid>> {
        match x {
            Edn::Int(i) => Ok(Some(*i)),
            Edn::Keyword(k) => Ok(self.schema().ident_eid(*k)),
            Edn::Vector(xs) | Edn::List(xs) if xs.len() == 2 => {
                let a = self.attr_of(&xs[0]).ok_or_else(|| {
                    let message = format!("Lookup ref attribute should be a keyword: {x}");
                    Error::Argument(Detail::new(message).entity_id(x.clone()).with("attribute", xs[0].clone()))
                })?;
                if self.schema().attr(a).is_none_or(|attr| attr.unique.is_none()) {
                    let message = format!("Lookup ref attribute should be marked as :db/unique: {x}");
                    return Err(Error::Argument(Detail::new(message).entity_id(x.clone()).attribute(a)));
                }
                let v = self.value_for(a, &xs[1])?;
                Ok(self
                    .datoms_key(IndexOrder::Avet, &DatomKey { a: Some(a), v: Some(v), ..Default::default() })?
                    .first()
                    .map(|d| d.e))
            }
            _ => Err(Error::Argument(
                Detail::new(format!("Expected number, keyword or lookup ref as entity id, got {x}"))
                    .entity_id(x.clone()),
            )),
        }
    }

    /// An attribute given as its ident or, under `:attribute-refs? true`, its entity id.
    pub fn attr_of(&self, a: &Edn) -> Option<Keyword> {
        match a {
            Edn::Keyword(k) => Some(*k),
            Edn::Int(e) if self.attr_refs() => self.schema().eid_ident(*e),
            _ => None,
        }
    }

    /// Converts an EDN value to the datom value of attribute `a` (refs resolved to ids).
    pub fn value_for(&self, a: Keyword, v: &Edn) -> Result<Value> {
        if let (true, Edn::Int(e)) = (self.attr_refs() && crate::attr_refs::is_enum_attr(a), v) {
            // A schema enum given by its id.
            if let Some(k) = self.schema().eid_ident(*e) {
                return Ok(Value::Keyword(k));
            }
        }
        if self.schema().is_ref(a) && !matches!(v, Edn::Int(_)) {
            return self.entid(v)?.map(Value::Long).ok_or_else(|| Error::Argument(nothing_found(v).attribute(a)));
        }
        if let Some(t) = self.schema().attr(a).and_then(|x| x.value_type) {
            if let Some(value) = t.coerce(v) {
                return Ok(value);
            }
        }
        Value::from_edn(v).ok_or_else(|| Error::Argument(not_a_value(v).attribute(a)))
    }

    fn check_attr(&self, a: Keyword) -> Result<()> {
        if self.config().schema_flexibility == SchemaFlexibility::Write && self.schema().attr(a).is_none() {
            let known = self.schema().user_attrs().into_iter().map(|x| Edn::Keyword(x.ident));
            let detail = Detail::new(format!("{a} is not defined in the current schema")).attribute(a).choices(known);
            return Err(Error::Argument(detail));
        }
        Ok(())
    }

    /// Turns `components` (in index order, Datahike style) into a key.
    pub fn components_key(&self, order: IndexOrder, components: &[Edn]) -> Result<DatomKey> {
        if components.len() > 4 {
            let message = format!("at most 4 components are allowed, got {}", components.len());
            return Err(Error::Argument(Detail::new(message).value(Edn::Vector(components.to_vec()))));
        }
        let slots: [usize; 4] = match order {
            IndexOrder::Eavt => [0, 1, 2, 3],
            IndexOrder::Aevt => [1, 0, 2, 3],
            IndexOrder::Avet => [1, 2, 0, 3],
        };
        // slots[i] = which datom component (0 e, 1 a, 2 v, 3 tx) the i-th given one is.
        let mut key = DatomKey::default();
        let attr_pos = slots.iter().position(|s| *s == 1).unwrap_or(1);
        if let Some(a) = components.get(attr_pos) {
            if *a != Edn::Nil {
                let k = self.attr_of(a).ok_or_else(|| {
                    let expected = if self.attr_refs() { "a keyword or an attribute id" } else { "a keyword" };
                    Error::Argument(
                        Detail::new(format!("attribute must be {expected}, got {a}")).with("attribute", a.clone()),
                    )
                })?;
                self.check_attr(k)?;
                key.a = Some(k);
            }
        }
        for (i, c) in components.iter().enumerate() {
            if *c == Edn::Nil {
                continue;
            }
            match slots[i] {
                0 => key.e = Some(self.entid(c)?.ok_or_else(|| Error::Argument(nothing_found(c)))?),
                2 => {
                    key.v = Some(match key.a {
                        Some(a) => self.value_for(a, c)?,
                        None => Value::from_edn(c).ok_or_else(|| Error::Argument(not_a_value(c)))?,
                    })
                }
                3 => {
                    key.tx = Some(self.entid(c)?.ok_or_else(|| {
                        Error::Argument(Detail::new(format!("bad transaction id {c}")).entity_id(c.clone()))
                    })?)
                }
                _ => {}
            }
        }
        if order == IndexOrder::Avet {
            if let Some(a) = key.a {
                if !self.schema().is_indexed(a) {
                    return Err(Error::Argument(
                        Detail::new(format!(
                            "Attribute {a} has no AVET index; declare it with :db/index true, :db/unique or :db.type/ref"
                        ))
                        .attribute(a),
                    ));
                }
            }
        }
        Ok(key)
    }

    /// Datahike's `datoms`: every datom whose leading components equal `components`.
    pub fn datoms(&self, order: IndexOrder, components: &[Edn]) -> Result<Vec<Datom>> {
        let key = self.components_key(order, components)?.prefix_for(order);
        let mut out = self.index(order).range(&key, &key).collect::<IndexResult<Vec<_>>>()?;
        if self.attr_refs() {
            self.schema().sort_presented(order, &mut out);
        }
        Ok(out)
    }

    /// Datahike's `seek-datoms`: from `components` to the end of the index.
    pub fn seek_datoms(&self, order: IndexOrder, components: &[Edn]) -> Result<Vec<Datom>> {
        let key = self.components_key(order, components)?.prefix_for(order);
        if self.attr_refs() {
            return self.seek_presented(order, &key, Ordering::Greater);
        }
        Ok(self.index(order).seek(&key).collect::<IndexResult<Vec<_>>>()?)
    }

    /// Datahike's `rseek-datoms`: from `components` backwards to the start of the index.
    pub fn rseek_datoms(&self, order: IndexOrder, components: &[Edn]) -> Result<Vec<Datom>> {
        let key = self.components_key(order, components)?.prefix_for(order);
        if self.attr_refs() {
            return self.seek_presented(order, &key, Ordering::Less);
        }
        Ok(self.index(order).rseek(&key).collect::<IndexResult<Vec<_>>>()?)
    }

    /// `seek-datoms` (`dir` Greater) or `rseek-datoms` (Less) under `:attribute-refs? true`,
    /// where the index order by id differs from the stored order by ident across attributes:
    /// the datoms at or beyond `key` in id order, sorted in that order.
    fn seek_presented(&self, order: IndexOrder, key: &DatomKey, dir: Ordering) -> Result<Vec<Datom>> {
        let schema = self.schema();
        let a_id = key.a.map(|a| schema.eid_of(a).unwrap_or(Eid::MAX));
        let v = key.v.as_ref().map(|v| (key.a, v));
        // Compares a datom with the key on the key's components, in index order.
        let cmp = |d: &Datom| -> Ordering {
            let a = || a_id.map_or(Ordering::Equal, |x| schema.eid_of(d.a).unwrap_or(Eid::MAX).cmp(&x));
            let e = || key.e.map_or(Ordering::Equal, |x| d.e.cmp(&x));
            let v = || match v {
                Some((Some(a), x)) => schema.present_value(d.a, &d.v).cmp(&schema.present_value(a, x)),
                Some((None, x)) => d.v.cmp(x),
                None => Ordering::Equal,
            };
            let tx = || key.tx.map_or(Ordering::Equal, |x| d.tx().cmp(&x));
            match order {
                IndexOrder::Eavt => e().then_with(a).then_with(v).then_with(tx),
                IndexOrder::Aevt => a().then_with(e).then_with(v).then_with(tx),
                IndexOrder::Avet => a().then_with(v).then_with(e).then_with(tx),
            }
        };
        // EAVT leads with the entity in both orders: entities before (after) the key's are
        // skipped by the index itself.
        let index = self.index(order);
        let scan = match (order, key.e) {
            (IndexOrder::Eavt, Some(e)) => {
                let from = DatomKey { e: Some(e), ..DatomKey::default() };
                if dir == Ordering::Greater {
                    index.seek(&from)
                } else {
                    index.rseek(&from)
                }
            }
            _ => index.range(&DatomKey::default(), &DatomKey::default()),
        };
        let mut out = Vec::new();
        for d in scan {
            let d = d?;
            if cmp(&d) != dir.reverse() {
                out.push(d);
            }
        }
        schema.sort_presented(order, &mut out);
        if dir == Ordering::Less {
            out.reverse();
        }
        Ok(out)
    }

    /// Whether this database has `:attribute-refs? true`.
    pub fn attr_refs(&self) -> bool {
        self.config().attribute_refs
    }

    /// The entity id of attribute (or other ident) `ident`; under `:attribute-refs? true` this
    /// is what datoms show in their `a` slot.
    pub fn ident_id(&self, ident: Keyword) -> Option<Eid> {
        self.schema().ident_eid(ident)
    }

    /// A datom as `[e a v tx added]`, as a user of this database sees it: under
    /// `:attribute-refs? true` the attribute (and a schema enum value) as entity ids.
    pub fn datom_edn(&self, d: &Datom) -> Edn {
        if self.attr_refs() {
            self.schema().datom_edn(d)
        } else {
            d.to_edn_vector()
        }
    }

    /// [`Db::datom_edn`] with Datahike's `#datahike/Datom` tag.
    pub fn datom_tagged_edn(&self, d: &Datom) -> Edn {
        crate::datom::tagged(self.datom_edn(d))
    }

    /// Datahike's `index-range`: AVET datoms of `attr` with `start <= v <= end` (either bound
    /// may be nil). The attribute must be indexed.
    pub fn index_range(&self, attr: Keyword, start: &Edn, end: &Edn) -> Result<Vec<Datom>> {
        self.check_attr(attr)?;
        if !self.schema().is_indexed(attr) {
            return Err(Error::Argument(
                Detail::new(format!(
                    "Attribute {attr} should be marked as indexed (:db/index true, :db/unique or :db.type/ref) for index-range"
                ))
                .attribute(attr),
            ));
        }
        let bound = |x: &Edn| -> Result<DatomKey> {
            Ok(DatomKey {
                a: Some(attr),
                v: if *x == Edn::Nil { None } else { Some(self.value_for(attr, x)?) },
                ..Default::default()
            })
        };
        let (lo, hi) = (bound(start)?, bound(end)?);
        Ok(self.index(IndexOrder::Avet).range(&lo, &hi).collect::<IndexResult<Vec<_>>>()?)
    }

    /// Datahike's `schema`.
    pub fn schema_edn(&self) -> Edn {
        self.schema().to_edn()
    }

    /// Datahike's `reverse-schema`.
    pub fn reverse_schema_edn(&self) -> Edn {
        self.schema().reverse_edn()
    }

    /// Datahike's `metrics`: datom counts overall, in AVET, per attribute and per entity.
    pub fn metrics(&self) -> Result<Edn> {
        let mut per_attr: Vec<(Keyword, i64)> = Vec::new();
        let mut per_entity: Vec<(Eid, i64)> = Vec::new();
        let mut count = 0i64;
        for d in self.index(IndexOrder::Aevt).range(&DatomKey::default(), &DatomKey::default()) {
            let d = d?;
            count += 1;
            match per_attr.last_mut() {
                Some((a, n)) if *a == d.a => *n += 1,
                _ => per_attr.push((d.a, 1)),
            }
        }
        for d in self.index(IndexOrder::Eavt).range(&DatomKey::default(), &DatomKey::default()) {
            let d = d?;
            match per_entity.last_mut() {
                Some((e, n)) if *e == d.e => *n += 1,
                _ => per_entity.push((d.e, 1)),
            }
        }
        let mut m = vec![
            (Edn::kw("count"), Edn::Int(count)),
            (Edn::kw("avet-count"), Edn::Int(self.avet_count()?)),
            (
                Edn::kw("per-attr-counts"),
                Edn::Map(per_attr.into_iter().map(|(a, n)| (Edn::Keyword(a), Edn::Int(n))).collect()),
            ),
            (
                Edn::kw("per-entity-counts"),
                Edn::Map(per_entity.into_iter().map(|(e, n)| (Edn::Int(e), Edn::Int(n))).collect()),
            ),
        ];
        if let (Some(h), None) = (&self.0.history, &self.0.view) {
            m.push((Edn::kw("temporal-count"), Edn::Int(h.eavt.count() as i64)));
            m.push((Edn::kw("temporal-avet-count"), Edn::Int(h.avet.count() as i64)));
        }
        Ok(Edn::Map(m))
    }

    /// The number of AVET datoms; counted by a scan for a view, whose counts are bounds.
    fn avet_count(&self) -> Result<i64> {
        let index = self.index(IndexOrder::Avet);
        if self.0.view.is_none() {
            return Ok(index.count() as i64);
        }
        let mut n = 0;
        index.visit(&DatomKey::default(), &DatomKey::default(), &mut |_| {
            n += 1;
            true
        })?;
        Ok(n)
    }

    /// A short printable summary, `#datahike/DB {:max-tx .. :max-eid .. :commit-id ..}`; a view prints as
    /// Datahike prints it, `#datahike/AsOfDB {:origin #datahike/DB {..} :time-point ..}`
    /// (`HistoricalDB`, `SinceDB`; a filtered database prints as its origin).
    pub fn to_edn_summary(&self) -> Edn {
        self.summary(false)
    }

    /// The summary with the store's id, `:store-id [[backend "identity"] branch]`: the
    /// handle Datahike's server returns for a database, which names it again in a later
    /// request (see [`crate::api::Connections`]).
    pub fn to_edn_handle(&self) -> Edn {
        self.summary(true)
    }

    fn summary(&self, with_store: bool) -> Edn {
        if let Some(view) = self.0.view.as_deref() {
            let (tag, time_point) = match view.layer {
                Layer::History => ("datahike/HistoricalDB", None),
                Layer::AsOf(t) => ("datahike/AsOfDB", Some(t)),
                Layer::Since(t) => ("datahike/SinceDB", Some(t)),
                Layer::Filter => return view.origin.summary(with_store),
            };
            let mut m = vec![(Edn::kw("origin"), view.origin.summary(with_store))];
            if let Some(t) = time_point {
                m.push((Edn::kw("time-point"), t.to_edn()));
            }
            return Edn::Tagged(crate::edn::Symbol::new(tag), Box::new(Edn::Map(m)));
        }
        Edn::Tagged(
            crate::edn::Symbol::new("datahike/DB"),
            Box::new(Edn::Map(
                [
                    with_store.then(|| (Edn::kw("store-id"), self.config().store_id())),
                    Some((Edn::kw("max-tx"), Edn::Int(self.max_tx()))),
                    Some((Edn::kw("max-eid"), Edn::Int(self.max_eid()))),
                    self.commit_id().map(|c| (Edn::kw("commit-id"), Edn::Uuid(c))),
                ]
                .into_iter()
                .flatten()
                .collect(),
            )),
        )
    }
}

/// Milliseconds since the Unix epoch by the wall clock.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An entity id, ident or lookup ref that names no entity.
fn nothing_found(x: &Edn) -> Detail {
    Detail::new(format!("Nothing found for entity id {x}")).entity_id(x.clone())
}

/// A value that no datom can hold.
fn not_a_value(v: &Edn) -> Detail {
    Detail::new(format!("{v} is not a datom value")).value(v.clone())
}
