//! Excision, Datahike's purge operations: `[:db/purge e a v]`, `[:db.purge/attribute e a]`,
//! `[:db.purge/entity e]` and `[:db.history.purge/before inst]`. A purge removes datoms from
//! the current and the history indices and leaves no history of them (erasure, as GDPR asks);
//! it needs a database that keeps history (`:keep-history? true`).
//!
//! A purge sees the database as the transaction has changed it so far, as in Datahike, and
//! adds nothing to tx-data: Datahike's report of a purge holds only the transaction's own
//! `:db/txInstant`. Of what it excises, datoms stored before the transaction go to
//! [`TxOutcome::purged`](super::TxOutcome) exactly as stored, and datoms this transaction
//! emitted earlier for the same `(e, a, v)` are dropped from tx-data. `Db::apply_tx` excises
//! `purged` before it applies tx-data, so the two never meet.
//!
//! Choices where Datahike is silent or loose:
//! - A datom that is current at the purge and belongs to a schema attribute (`:db/ident`,
//!   `:db/valueType`, `:db/doc`...) is refused, as Datahike's documentation says ("Cannot purge
//!   schema attributes"): purging it would change the schema under existing data. Once
//!   retracted it is history and may be purged.
//! - Each op must have exactly its elements. Datahike ignores extra ones, so there
//!   `[:db.purge/entity e :age]` silently purges the whole entity.
//! - `:db.history.purge/before` considers the datoms of earlier transactions only: those in
//!   history, and current ones this transaction has retracted so far. The transaction's own
//!   retractions stay, as do datoms of transactions without a `:db/txInstant`.
//! - As in Datahike, a numeric entity id is taken as is: purging an id that has no datoms
//!   does nothing. Idents and lookup refs must name an entity, now or in history.

use super::{is_tempid, op_detail, Item, ShowVec, Step, TxState};
use crate::datom::{Datom, DatomKey, IndexOrder};
use crate::edn::{Edn, Keyword};
use crate::error::TxError;
use crate::schema::is_schema_attr;
use crate::value::{Eid, Value};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

impl TxState<'_> {
    /// Runs one purge op. `e` is the op's entity argument with `:db/current-tx` already
    /// resolved. Returns the purges of component entities to run next.
    pub(super) fn purge_op(&mut self, op: Keyword, e: &Edn, op_vec: &[Edn]) -> Step<Vec<Item<'static>>> {
        let ctx = ShowVec(op_vec);
        let (what, arity, shape) = match op.as_str() {
            "db/purge" => ("Purge", 4, "[:db/purge e a v]"),
            "db.purge/attribute" => ("Purge attribute", 3, "[:db.purge/attribute e a]"),
            "db.purge/entity" => ("Purge entity", 2, "[:db.purge/entity e]"),
            _ => ("History purge", 2, "[:db.history.purge/before inst]"),
        };
        if op_vec.len() != arity {
            return Err(TxError::Syntax(op_detail(format!("Bad {op} {ctx}, expected {shape}"), op_vec)).into());
        }
        if !self.db.config().keep_history {
            let message =
                format!("{what} is only available in temporal databases (created with :keep-history? true): {ctx}");
            return Err(TxError::Purge(op_detail(message, op_vec)).into());
        }
        match op.as_str() {
            "db/purge" => {
                let eid = self.purge_entid(e, &ctx)?;
                let a = self.attr_of(&op_vec[2], &ctx)?;
                let v = if self.schema.is_ref(a) {
                    Value::Long(self.purge_entid(&op_vec[3], &ctx)?)
                } else {
                    self.coerce_value(a, &op_vec[3], &ctx)?
                };
                self.excise(eid, a, &v, &ctx)?;
                Ok(Vec::new())
            }
            "db.purge/attribute" => {
                let eid = self.purge_entid(e, &ctx)?;
                let a = self.attr_of(&op_vec[2], &ctx)?;
                let excised = self.excise_attribute(eid, a, &ctx)?;
                Ok(self.component_purges(&excised))
            }
            "db.purge/entity" => {
                let eid = self.purge_entid(e, &ctx)?;
                let mut excised = Vec::new();
                for a in self.attrs_ever(eid)? {
                    excised.extend(self.excise_attribute(eid, a, &ctx)?);
                }
                for (source, a) in self.referrers_ever(eid)? {
                    self.excise(source, a, &Value::Long(eid), &ctx)?;
                }
                Ok(self.component_purges(&excised))
            }
            _ => {
                let Edn::Inst(before) = *e else {
                    let message = format!(
                        "Bad {op} {ctx}, expected an instant: [:db.history.purge/before #inst \"2024-01-01T00:00:00.000Z\"]"
                    );
                    let detail = op_detail(message, op_vec).value(e.clone()).expected(Edn::kw("db.type/instant"));
                    return Err(TxError::Syntax(detail).into());
                };
                let excised = self.excise_history_before(before)?;
                Ok(self.component_purges(&excised))
            }
        }
    }

    /// Resolves the entity of a purge: a number, an ident or a lookup ref. An ident or a lookup
    /// ref may name data that only history still has, so that a retracted entity can be
    /// purged.
    fn purge_entid(&mut self, x: &Edn, ctx: &ShowVec<'_>) -> Step<Eid> {
        if is_tempid(x) {
            let message = format!("Can't use tempid in '{ctx}'. Tempids are allowed in :db/add only");
            return Err(TxError::Syntax(op_detail(message, ctx.0).entity_id(x.clone())).into());
        }
        if let Some(e) = self.entid(x)? {
            return Ok(e);
        }
        let historical = match x {
            Edn::Keyword(k) => self.history_entity(Keyword::new("db/ident"), &Value::Keyword(*k))?,
            Edn::Vector(xs) | Edn::List(xs) => match (xs.first().and_then(Edn::as_keyword), xs.get(1)) {
                (Some(a), Some(v)) if *v != Edn::Nil => {
                    let v = self.coerce_value(a, v, ctx)?;
                    self.history_entity(a, &v)?
                }
                _ => None,
            },
            _ => None,
        };
        historical.ok_or_else(|| {
            let message = format!("Can't find entity with ID {x} to be purged: {ctx}");
            TxError::Purge(op_detail(message, ctx.0).entity_id(x.clone())).into()
        })
    }

    /// The entity of a history datom `[? a v]` that no purge of this transaction took.
    fn history_entity(&self, a: Keyword, v: &Value) -> Step<Option<Eid>> {
        let key = DatomKey { a: Some(a), v: Some(v.clone()), ..Default::default() };
        let found = self.db.history_datoms_key(IndexOrder::Avet, &key)?;
        Ok(found.into_iter().find(|d| !self.purged_set.contains(d)).map(|d| d.e))
    }

    /// Excises every occurrence of `(e, a, v)`: the current datom and its history, both as
    /// stored before the transaction, and what this transaction emitted for it. Returns the
    /// excised datoms.
    fn excise(&mut self, e: Eid, a: Keyword, v: &Value, ctx: &ShowVec<'_>) -> Step<Vec<Datom>> {
        let current = self.ea_datoms(e, a)?.iter().any(|d| d.v == *v);
        if current && is_schema_attr(a) {
            let message = format!(
                "Cannot purge the schema datom [{e} {a} {}] at {ctx}: schema is not purged; retract it first, then purge it from history",
                v.to_edn()
            );
            let detail = op_detail(message, ctx.0).entity_id(Edn::Int(e)).attribute(a).value(v.to_edn());
            return Err(TxError::Purge(detail).into());
        }
        let key = DatomKey { e: Some(e), a: Some(a), v: Some(v.clone()), tx: None };
        let mut stored = self.db.datoms_key(IndexOrder::Eavt, &key)?;
        stored.extend(self.db.history_datoms_key(IndexOrder::Eavt, &key)?);
        let mut excised = Vec::new();
        for d in stored {
            if self.purged_set.insert(d.clone()) {
                self.purged.push(d.clone());
                excised.push(d);
            }
        }
        self.tx_data.retain(|d| {
            let hit = d.e == e && d.a == a && d.v == *v;
            if hit {
                excised.push(d.clone());
            }
            !hit
        });
        if current {
            self.ea_datoms(e, a)?.remove_value(v);
        }
        if self.schema.attr(a).is_some_and(|x| x.unique.is_some()) {
            self.unique.insert((a, v.clone()), None);
        }
        Ok(excised)
    }

    /// Excises every value attribute `a` of entity `e` ever had. Returns the excised datoms.
    fn excise_attribute(&mut self, e: Eid, a: Keyword, ctx: &ShowVec<'_>) -> Step<Vec<Datom>> {
        let mut values: Vec<Value> = self.ea_datoms(e, a)?.iter().map(|d| d.v.clone()).collect();
        let key = DatomKey { e: Some(e), a: Some(a), ..Default::default() };
        let history = self.db.history_datoms_key(IndexOrder::Eavt, &key)?;
        values.extend(history.into_iter().filter(|d| !self.purged_set.contains(d)).map(|d| d.v));
        values.extend(self.tx_data.iter().filter(|d| d.e == e && d.a == a).map(|d| d.v.clone()));
        let mut seen = HashSet::default();
        values.retain(|v| seen.insert(v.clone()));
        let mut excised = Vec::new();
        for v in values {
            excised.extend(self.excise(e, a, &v, ctx)?);
        }
        Ok(excised)
    }

    /// Every attribute entity `e` has or had: in the database, in its history, or in this
    /// transaction.
    fn attrs_ever(&self, e: Eid) -> Step<Vec<Keyword>> {
        let key = DatomKey { e: Some(e), ..Default::default() };
        let mut attrs: Vec<Keyword> = self.db.datoms_key(IndexOrder::Eavt, &key)?.into_iter().map(|d| d.a).collect();
        attrs.extend(self.db.history_datoms_key(IndexOrder::Eavt, &key)?.into_iter().map(|d| d.a));
        attrs.extend(self.tx_data.iter().filter(|d| d.e == e).map(|d| d.a));
        let mut seen = HashSet::default();
        attrs.retain(|a| seen.insert(*a));
        Ok(attrs)
    }

    /// Every `(entity, ref attribute)` that points or pointed at `e`: in the database, in its
    /// history, or in this transaction.
    fn referrers_ever(&self, e: Eid) -> Step<Vec<(Eid, Keyword)>> {
        let target = Value::Long(e);
        let ref_attrs: Vec<Keyword> = self.schema.user_attrs().iter().filter(|a| a.is_ref()).map(|a| a.ident).collect();
        let mut out = Vec::new();
        for a in ref_attrs {
            let key = DatomKey { a: Some(a), v: Some(target.clone()), ..Default::default() };
            out.extend(self.db.datoms_key(IndexOrder::Avet, &key)?.into_iter().map(|d| (d.e, a)));
            out.extend(self.db.history_datoms_key(IndexOrder::Avet, &key)?.into_iter().map(|d| (d.e, a)));
            out.extend(self.tx_data.iter().filter(|d| d.a == a && d.v == target).map(|d| (d.e, a)));
        }
        let mut seen = HashSet::default();
        out.retain(|x| seen.insert(*x));
        Ok(out)
    }

    /// Excises the datoms of earlier transactions whose `:db/txInstant` is before `before`
    /// (epoch milliseconds) and that are history only: in the history indices and not still
    /// current with the same transaction, or current before this transaction and retracted by
    /// it. Returns the excised datoms.
    fn excise_history_before(&mut self, before: i64) -> Step<Vec<Datom>> {
        let db = self.db;
        let Some(history) = db.history_index(IndexOrder::Eavt) else { return Ok(Vec::new()) };
        let mut instants: HashMap<Eid, bool> = HashMap::default();
        // Current datoms this transaction has retracted so far are history by now.
        let mut retracted: Vec<DatomKey> = Vec::new();
        let mut retracted_eav = HashSet::default();
        for d in self.tx_data.iter().filter(|d| !d.added()) {
            if retracted_eav.insert((d.e, d.a, d.v.clone())) {
                retracted.push(DatomKey { e: Some(d.e), a: Some(d.a), v: Some(d.v.clone()), tx: None });
            }
        }
        let mut candidates = Vec::new();
        let all = DatomKey::default();
        for d in history.range(&all, &all) {
            let d = d?;
            if self.purged_set.contains(&d) || !self.tx_before(d.tx(), before, &mut instants)? {
                continue;
            }
            // A retraction and a re-assertion of the value in one transaction leave the
            // retraction in history and the assertion current, with the same tx: Datahike
            // compares (e, a, v, tx) and keeps both while the assertion is current.
            let key = DatomKey { e: Some(d.e), a: Some(d.a), v: Some(d.v.clone()), tx: None };
            let still_current = db.datoms_key(IndexOrder::Eavt, &key)?.first().is_some_and(|c| c.tx() == d.tx())
                && !retracted_eav.contains(&(d.e, d.a, d.v.clone()));
            if !still_current {
                candidates.push(d);
            }
        }
        for key in &retracted {
            for c in db.datoms_key(IndexOrder::Eavt, key)? {
                if !self.purged_set.contains(&c) && self.tx_before(c.tx(), before, &mut instants)? {
                    candidates.push(c);
                }
            }
        }
        for d in &candidates {
            if self.purged_set.insert(d.clone()) {
                self.purged.push(d.clone());
            }
        }
        Ok(candidates)
    }

    /// Whether transaction `tx` is an earlier one whose `:db/txInstant` is before `before`.
    fn tx_before(&self, tx: Eid, before: i64, cache: &mut HashMap<Eid, bool>) -> Step<bool> {
        if tx >= self.tx {
            return Ok(false);
        }
        if let Some(known) = cache.get(&tx) {
            return Ok(*known);
        }
        let key = DatomKey { e: Some(tx), a: Some(Keyword::new("db/txInstant")), ..Default::default() };
        let instant = self.db.datoms_key(IndexOrder::Eavt, &key)?.into_iter().next().map(|d| d.v);
        let is_before = matches!(instant, Some(Value::Instant(ms)) if ms < before);
        cache.insert(tx, is_before);
        Ok(is_before)
    }

    /// `[:db.purge/entity child]` for every entity an excised datom of a component attribute
    /// referenced, as Datahike purges components.
    fn component_purges(&self, excised: &[Datom]) -> Vec<Item<'static>> {
        let mut children: Vec<Eid> = Vec::new();
        for d in excised {
            if let (true, Value::Long(child)) = (self.schema.attr(d.a).is_some_and(|x| x.component), &d.v) {
                if !children.contains(child) {
                    children.push(*child);
                }
            }
        }
        children.into_iter().map(|c| Item::Op(vec![Edn::kw("db.purge/entity"), Edn::Int(c)])).collect()
    }
}
