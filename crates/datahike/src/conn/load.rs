//! Datahike's `load-entities`: bulk loading exported datoms with fresh ids.

use super::*;
use crate::error::Detail;

/// One `[e a v added]` row of `load-entities`.
pub(super) type LoadRow = (i64, Keyword, Edn, bool);

impl Conn {
    /// Bulk-loads datoms `[e a v tx added]` exported from another database, remapping entity
    /// and transaction ids to fresh ones (Datahike's `load-entities`). Each source transaction
    /// becomes one transaction here; its `:db/txInstant` and other metadata are kept.
    pub fn load_entities(&self, entities: &Edn) -> Result<Vec<TxReport>> {
        self.load_entities_with_progress(entities, None)
    }

    /// [`Conn::load_entities`], reporting the datoms loaded after each source transaction
    /// (phase [`Phase::Load`](crate::migrate::Phase::Load)).
    pub fn load_entities_with_progress(
        &self,
        entities: &Edn,
        progress: Option<&dyn Fn(&crate::migrate::Progress)>,
    ) -> Result<Vec<TxReport>> {
        let Some(rows) = entities.as_seq() else {
            let message = format!("load-entities expects a collection of [e a v tx added], got {entities}");
            return Err(Error::Argument(Detail::new(message).value(entities.clone())));
        };
        let mut groups: Vec<(i64, Vec<LoadRow>)> = Vec::new();
        // Data exported with :attribute-refs? true names attributes by the ids they had in the
        // source: their idents come from the source's own `[id 1 ident]` rows.
        let mut source_idents: HashMap<i64, Keyword> = HashMap::new();
        for row in rows {
            let parts = match row {
                Edn::Tagged(_, inner) => inner.as_seq(),
                other => other.as_seq(),
            };
            if let Some([Edn::Int(e), Edn::Int(1), Edn::Keyword(ident), ..]) = parts {
                source_idents.insert(*e, *ident);
            }
        }
        for row in rows {
            let parts = match row {
                Edn::Tagged(_, inner) => inner.as_seq().map(<[Edn]>::to_vec),
                other => other.as_seq().map(<[Edn]>::to_vec),
            };
            let Some(parts) = parts.filter(|p| p.len() >= 4) else {
                return Err(Error::Argument(not_a_row(row)));
            };
            let (Edn::Int(e), Edn::Int(t)) = (&parts[0], &parts[3]) else {
                return Err(Error::Argument(not_a_row(row)));
            };
            let added = !matches!(parts.get(4), Some(Edn::Bool(false)));
            let a = match &parts[1] {
                Edn::Keyword(a) => *a,
                Edn::Int(id) if !self.config().attribute_refs => {
                    return Err(Error::Argument(
                        Detail::new(format!(
                            "load-entities: {row} names its attribute by id ({id}): data exported with \
                             :attribute-refs? true cannot be loaded into a database without attribute references"
                        ))
                        .value(row.clone())
                        .with("attribute", Edn::Int(*id)),
                    ));
                }
                Edn::Int(id) => {
                    if *t == TX0 && (attr_refs::is_system_entity(*e) || *e == TX0) {
                        // The system entities every such database starts with.
                        continue;
                    }
                    match source_idents.get(id).copied().or_else(|| attr_refs::system_ident(*id)) {
                        Some(a) => a,
                        None => {
                            return Err(Error::Argument(
                                Detail::new(format!(
                                "load-entities: {row} uses attribute {id}, whose :db/ident the data does not contain"
                            ))
                                .value(row.clone())
                                .with("attribute", Edn::Int(*id)),
                            ))
                        }
                    }
                }
                _ => return Err(Error::Argument(not_a_row(row))),
            };
            match groups.iter_mut().find(|(tx, _)| tx == t) {
                Some((_, g)) => g.push((*e, a, parts[2].clone(), added)),
                None => groups.push((*t, vec![(*e, a, parts[2].clone(), added)])),
            }
        }
        // Source transactions load in their original order, whatever order the rows came in
        // (an EAVT export lists an entity's later facts before other entities' earlier ones).
        groups.sort_by_key(|(tx, _)| *tx);
        let mut mapping: HashMap<i64, i64> = HashMap::new();
        let mut reports = Vec::new();
        let total: u64 = groups.iter().map(|(_, g)| g.len() as u64).sum();
        let mut done = 0u64;
        let report_progress = |done: u64| {
            if let Some(f) = progress {
                f(&crate::migrate::Progress { phase: crate::migrate::Phase::Load, done, total });
            }
        };
        report_progress(0);
        for (src_tx, datoms) in groups {
            done += datoms.len() as u64;
            let schema_db = self.db();
            let mut meta = Vec::new();
            let mut ops = Vec::new();
            let map_id = |x: i64, mapping: &HashMap<i64, i64>| -> Edn {
                match mapping.get(&x) {
                    Some(t) => Edn::Int(*t),
                    None => Edn::Str(format!("load-{x}").into()),
                }
            };
            for (e, a, v, added) in datoms {
                if e == src_tx {
                    if added && a.as_str() != "db.install/attribute" {
                        meta.push((Edn::Keyword(a), v));
                    }
                    continue;
                }
                let v = match (&v, schema_db.schema().is_ref(a)) {
                    (Edn::Int(x), true) => map_id(*x, &mapping),
                    _ => v,
                };
                let op = if added { "db/add" } else { "db/retract" };
                ops.push(Edn::Vector(vec![Edn::kw(op), map_id(e, &mapping), Edn::Keyword(a), v]));
            }
            // Retractions must name resolved ids; tempids are only allowed in :db/add.
            let meta_edn = if meta.is_empty() { None } else { Some(Edn::Map(meta)) };
            let report = self.transact_with_meta(&Edn::Vector(ops), meta_edn.as_ref())?;
            for (k, eid) in &report.tempids {
                if let Edn::Str(s) = k {
                    if let Some(src) = s.strip_prefix("load-").and_then(|x| x.parse::<i64>().ok()) {
                        mapping.insert(src, *eid);
                    }
                }
            }
            mapping.insert(src_tx, report.db_after.max_tx());
            reports.push(report);
            report_progress(done);
        }
        Ok(reports)
    }
}

/// A `load-entities` row of the wrong shape.
fn not_a_row(row: &Edn) -> Detail {
    Detail::new(format!("load-entities: {row} is not [e a v tx added]")).value(row.clone())
}
