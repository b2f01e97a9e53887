//! The transaction report: `db-before`, `db-after`, `tx-data`, `tempids`, `tx-meta`.

use crate::datom::Datom;
use crate::db::Db;
use crate::edn::{Edn, Keyword};
use crate::value::Eid;

/// What `transact` and `with` return.
#[derive(Clone, Debug)]
pub struct TxReport {
    /// The database before the transaction.
    pub db_before: Db,
    /// The database after it.
    pub db_after: Db,
    /// Every datom asserted or retracted, in order.
    pub tx_data: Vec<Datom>,
    /// Tempids and the entity ids they resolved to, ending with `:db/current-tx`.
    pub tempids: Vec<(Edn, Eid)>,
    /// The transaction metadata, including `:db/txInstant`.
    pub tx_meta: Vec<(Keyword, Edn)>,
}

impl TxReport {
    /// The id a tempid resolved to.
    pub fn tempid(&self, tempid: &Edn) -> Option<Eid> {
        self.tempids.iter().find(|(k, _)| k == tempid).map(|(_, e)| *e)
    }

    /// The report as EDN, as `dthk transact` prints it: `{:db-before ... :tx-data [...] ...}`.
    /// The database values print as their summary `#datahike/DB {...}`.
    pub fn to_edn(&self) -> Edn {
        Edn::Map(vec![
            (Edn::kw("db-before"), self.db_before.to_edn_summary()),
            (Edn::kw("db-after"), self.db_after.to_edn_summary()),
            (Edn::kw("tx-data"), Edn::Vector(self.tx_data.iter().map(|d| self.db_after.datom_tagged_edn(d)).collect())),
            (Edn::kw("tempids"), Edn::Map(self.tempids.iter().map(|(k, e)| (k.clone(), Edn::Int(*e))).collect())),
            (Edn::kw("tx-meta"), Edn::Map(self.tx_meta.iter().map(|(k, v)| (Edn::Keyword(*k), v.clone())).collect())),
        ])
    }
}
