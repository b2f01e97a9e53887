//! What JSON cannot say, restored as Datahike's server restores it: keywords that arrive as
//! strings. In a config map the backend, schema flexibility, index and branch; in
//! transaction data the operation (`"db/add"`), attributes of op vectors and lookup refs,
//! and the values of keyword-, symbol- and (our addition) uuid- and instant-typed
//! attributes, looked up in the database's schema (`datahike.json/xf-data-for-tx`). The
//! HTTP server and the Python binding read JSON arguments through this.

use crate::schema::ValueType;
use crate::{Db, Edn, Keyword, Symbol};

/// A keyword from a string, with or without the leading colon.
fn keyword(s: &str) -> Edn {
    Edn::Keyword(Keyword::new(s.strip_prefix(':').unwrap_or(s)))
}

fn keywordize(v: &Edn) -> Edn {
    match v {
        Edn::Str(s) => keyword(s),
        other => other.clone(),
    }
}

/// A config map with the keyword-valued keys that came as strings made keywords.
pub fn config(edn: &Edn) -> Edn {
    let Edn::Map(entries) = edn else { return edn.clone() };
    Edn::Map(
        entries
            .iter()
            .map(|(k, v)| {
                let key = k.as_keyword().map(|k| k.as_str().to_string()).unwrap_or_default();
                let v = match key.as_str() {
                    "backend" | "schema-flexibility" | "index" | "branch" => keywordize(v),
                    "store" | "writer" | "remote-peer" => config(v),
                    _ => v.clone(),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

/// The arguments of a JSON request with config maps (and handles' origins) restored.
pub fn args(args: Vec<Edn>) -> Vec<Edn> {
    args.into_iter()
        .map(|a| match &a {
            Edn::Map(_) if a.get_kw("store").is_some() => config(&a),
            _ => a,
        })
        .collect()
}

/// The value type of `attr` in `db`, with the keyword-valued schema attributes.
fn value_type(db: &Db, attr: Keyword) -> Option<ValueType> {
    match attr.as_str() {
        "db/ident" | "db/valueType" | "db/cardinality" | "db/unique" | "db.install/attribute" => {
            Some(ValueType::Keyword)
        }
        _ => db.schema().attr(attr).and_then(|a| a.value_type),
    }
}

/// `v` as a value of `attr`.
fn value(db: &Db, attr: &Edn, v: &Edn) -> Edn {
    let Some(attr) = attr.as_keyword() else { return v.clone() };
    let convert = |x: &Edn| -> Edn {
        match (value_type(db, attr), x) {
            (Some(ValueType::Keyword), Edn::Str(s)) => keyword(s),
            (Some(ValueType::Symbol), Edn::Str(s)) => Edn::Symbol(Symbol::new(s)),
            (Some(ValueType::Uuid), Edn::Str(s)) => s.parse().map_or_else(|_| x.clone(), Edn::Uuid),
            (Some(ValueType::Instant), Edn::Int(ms)) => Edn::Inst(*ms),
            (Some(ValueType::Ref), Edn::Vector(pair)) if pair.len() == 2 => lookup_ref(db, x),
            _ => x.clone(),
        }
    };
    match v {
        Edn::Vector(items) if db.schema().is_many(attr) && !db.schema().is_ref(attr) => {
            Edn::Vector(items.iter().map(convert).collect())
        }
        Edn::Vector(items) if db.schema().is_many(attr) && items.iter().all(|i| matches!(i, Edn::Vector(_))) => {
            Edn::Vector(items.iter().map(convert).collect())
        }
        other => convert(other),
    }
}

/// `["attr", value]` as a lookup ref `[:attr value]`.
fn lookup_ref(db: &Db, v: &Edn) -> Edn {
    match v {
        Edn::Vector(pair) if pair.len() == 2 => {
            let attr = keywordize(&pair[0]);
            let value = value(db, &attr, &pair[1]);
            Edn::Vector(vec![attr, value])
        }
        other => other.clone(),
    }
}

/// One entity map or op vector of transaction data.
fn item(db: &Db, item: &Edn) -> Edn {
    match item {
        Edn::Map(entries) => Edn::Map(
            entries
                .iter()
                .map(|(k, v)| {
                    let v = if k.as_keyword().is_some_and(|k| k.as_str() == "db/id") {
                        lookup_ref(db, v)
                    } else {
                        value(db, k, v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Edn::Vector(op) if !op.is_empty() => {
            let mut out = vec![keywordize(&op[0])];
            if let Some(e) = op.get(1) {
                out.push(lookup_ref(db, e));
            }
            if let Some(a) = op.get(2) {
                out.push(keywordize(a));
            }
            if let Some(v) = op.get(3) {
                out.push(value(db, &out[2], v));
            }
            out.extend(op.iter().skip(4).cloned());
            Edn::Vector(out)
        }
        other => other.clone(),
    }
}

/// Transaction data (a vector, or `{:tx-data [..] :tx-meta {..}}`) read against `db`.
pub fn tx_data(db: &Db, tx: &Edn) -> Edn {
    match tx {
        Edn::Vector(items) | Edn::List(items) => Edn::Vector(items.iter().map(|i| item(db, i)).collect()),
        Edn::Map(entries) if tx.get_kw("tx-data").is_some() => Edn::Map(
            entries
                .iter()
                .map(|(k, v)| match k.as_keyword().map(|k| k.as_str().to_string()).as_deref() {
                    Some("tx-data") => (k.clone(), tx_data(db, v)),
                    _ => (k.clone(), v.clone()),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::{pr_str, read_str};

    #[test]
    fn strings_become_keywords_where_the_schema_says() {
        let db_config = crate::Config::memory("json-tx-test");
        crate::create_database(&db_config).unwrap();
        let conn = crate::connect(&db_config).unwrap();
        conn.transact(&read_str("[{:db/ident :kind :db/valueType :db.type/keyword :db/cardinality :db.cardinality/one} {:db/ident :id :db/valueType :db.type/uuid :db/cardinality :db.cardinality/one :db/unique :db.unique/identity} {:db/ident :at :db/valueType :db.type/instant :db/cardinality :db.cardinality/one}]").unwrap()).unwrap();
        let db = conn.db();
        let json = crate::edn::json::from_tagged_json(
            r#"[{"db/ident": "color", "db/valueType": "db.type/string", "db/cardinality": "db.cardinality/one"},
                {"kind": "fruit", "id": "6f1d1c1e-0000-4000-8000-000000000001", "at": 1700000000000, "name": "kind"},
                ["db/add", ["id", "6f1d1c1e-0000-4000-8000-000000000001"], "kind", "veg"]]"#,
        )
        .unwrap();
        let got = pr_str(&tx_data(&db, &json));
        assert_eq!(
            got,
            r#"[{:db/ident :color, :db/valueType :db.type/string, :db/cardinality :db.cardinality/one} {:kind :fruit, :id #uuid "6f1d1c1e-0000-4000-8000-000000000001", :at #inst "2023-11-14T22:13:20.000-00:00", :name "kind"} [:db/add [:id #uuid "6f1d1c1e-0000-4000-8000-000000000001"] :kind :veg]]"#
        );
        let cfg = crate::edn::json::from_tagged_json(
            r#"{"store": {"backend": "file", "path": "/x"}, "schema-flexibility": "read"}"#,
        )
        .unwrap();
        assert_eq!(pr_str(&config(&cfg)), r#"{:store {:backend :file, :path "/x"}, :schema-flexibility :read}"#);
        conn.release().unwrap();
    }
}
