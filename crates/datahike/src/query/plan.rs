//! Physical choices for data patterns: which index serves the bound components, and how many
//! rows a pattern is expected to produce (from `count_range` over the index), so that the
//! executor can order clauses by estimated result size.

use crate::datom::{DatomKey, IndexOrder};
use crate::db::Db;
use crate::edn::Keyword;
use crate::schema::Schema;

/// The index and key prefix that serve a pattern whose known components are those of `key`.
/// Components the prefix does not cover must be checked on each datom.
pub(crate) fn choose_index(schema: &Schema, key: &DatomKey) -> (IndexOrder, DatomKey) {
    let order = if key.e.is_some() {
        IndexOrder::Eavt
    } else if let Some(a) = key.a {
        if key.v.is_some() && schema.is_indexed(a) {
            IndexOrder::Avet
        } else {
            IndexOrder::Aevt
        }
    } else {
        IndexOrder::Eavt
    };
    (order, key.clone().prefix_for(order))
}

/// Number of datoms in the index range that serves `key` (its prefix), an upper bound of the
/// pattern's matches; `fallback` when the index fails.
pub(crate) fn count_prefix(db: &Db, key: &DatomKey) -> u64 {
    let (order, prefix) = choose_index(db.schema(), key);
    db.index(order).count_range(&prefix, &prefix).unwrap_or(u64::MAX / 4)
}

/// Datoms of attribute `a`.
pub(crate) fn count_attr(db: &Db, a: Keyword) -> u64 {
    count_prefix(db, &DatomKey { a: Some(a), ..Default::default() })
}
