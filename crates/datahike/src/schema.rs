//! Schema: attribute definitions derived from schema datoms, the implicit system schema, value
//! type checks and the schema changes Datahike allows.

use crate::attr_refs::{self, Idents};
use crate::datom::Datom;
use crate::edn::{Edn, Keyword};
use crate::value::{Eid, Value};
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// `:db/valueType` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// `:db.type/bigdec`
    BigDec,
    /// `:db.type/bigint`
    BigInt,
    /// `:db.type/boolean`
    Boolean,
    /// `:db.type/bytes`
    Bytes,
    /// `:db.type/double`
    Double,
    /// `:db.type/float`
    Float,
    /// `:db.type/number`
    Number,
    /// `:db.type/instant`
    Instant,
    /// `:db.type/keyword`
    Keyword,
    /// `:db.type/long`
    Long,
    /// `:db.type/ref`
    Ref,
    /// `:db.type/string`
    String,
    /// `:db.type/symbol`
    Symbol,
    /// `:db.type/uuid`
    Uuid,
    /// `:db.type/tuple`
    Tuple,
    /// Internal: a value-type keyword (for `:db/valueType` itself).
    ValueTypeKw,
    /// Internal: `:db.cardinality/one|many`.
    CardinalityKw,
    /// Internal: `:db.unique/identity|value`.
    UniqueKw,
}

impl ValueType {
    /// Every user-visible type with its keyword.
    pub const USER: [(ValueType, &'static str); 15] = [
        (ValueType::BigDec, "db.type/bigdec"),
        (ValueType::BigInt, "db.type/bigint"),
        (ValueType::Boolean, "db.type/boolean"),
        (ValueType::Bytes, "db.type/bytes"),
        (ValueType::Double, "db.type/double"),
        (ValueType::Float, "db.type/float"),
        (ValueType::Number, "db.type/number"),
        (ValueType::Instant, "db.type/instant"),
        (ValueType::Keyword, "db.type/keyword"),
        (ValueType::Long, "db.type/long"),
        (ValueType::Ref, "db.type/ref"),
        (ValueType::String, "db.type/string"),
        (ValueType::Symbol, "db.type/symbol"),
        (ValueType::Uuid, "db.type/uuid"),
        (ValueType::Tuple, "db.type/tuple"),
    ];

    /// Parses a value type keyword.
    pub fn from_keyword(k: Keyword) -> Option<ValueType> {
        ValueType::USER.iter().find(|(_, name)| *name == k.as_str()).map(|(t, _)| *t)
    }

    /// The keyword text (without colon).
    pub fn keyword(self) -> &'static str {
        match self {
            ValueType::ValueTypeKw => "db.type/valueType",
            ValueType::CardinalityKw => "db.type/cardinality",
            ValueType::UniqueKw => "db.type/unique",
            t => ValueType::USER.iter().find(|(u, _)| *u == t).map_or("db.type/unknown", |(_, n)| n),
        }
    }

    /// Converts an EDN value to a datom value of this type, or `None` if it does not conform
    /// (Datahike's strict JVM predicates: a long is not a double, a double not a long). Refs
    /// are resolved by the caller; here they must already be entity ids.
    pub fn coerce(self, v: &Edn) -> Option<Value> {
        Some(match (self, v) {
            (ValueType::String, Edn::Str(s)) => Value::String(s.clone()),
            (ValueType::Long | ValueType::Ref, Edn::Int(i)) => Value::Long(*i),
            (ValueType::Double, Edn::Float(f)) => Value::Double(*f),
            (ValueType::Float, Edn::Float(f)) => Value::Float(*f as f32),
            (ValueType::Number, Edn::Int(i)) => Value::Long(*i),
            (ValueType::Number, Edn::Float(f)) => Value::Double(*f),
            (ValueType::Number, Edn::BigInt(b)) => Value::BigInt(b.clone()),
            (ValueType::Number, Edn::BigDec(d)) => Value::BigDec(d.clone()),
            (ValueType::Boolean, Edn::Bool(b)) => Value::Boolean(*b),
            (ValueType::Keyword, Edn::Keyword(k)) => Value::Keyword(*k),
            (ValueType::Symbol, Edn::Symbol(s)) => Value::Symbol(*s),
            (ValueType::Instant, Edn::Inst(ms)) => Value::Instant(*ms),
            (ValueType::Uuid, Edn::Uuid(u)) => Value::Uuid(*u),
            (ValueType::BigInt, Edn::BigInt(b)) => Value::BigInt(b.clone()),
            (ValueType::BigInt, Edn::Int(i)) => Value::BigInt(Arc::new((*i).into())),
            (ValueType::BigDec, Edn::BigDec(d)) => Value::BigDec(d.clone()),
            (ValueType::Tuple, Edn::Vector(_)) => Value::from_edn(v)?,
            (ValueType::Bytes, Edn::Tagged(..)) => match Value::from_edn(v)? {
                b @ Value::Bytes(_) => b,
                _ => return None,
            },
            (ValueType::ValueTypeKw, Edn::Keyword(k)) if ValueType::from_keyword(*k).is_some() => Value::Keyword(*k),
            (ValueType::CardinalityKw, Edn::Keyword(k))
                if matches!(k.as_str(), "db.cardinality/one" | "db.cardinality/many") =>
            {
                Value::Keyword(*k)
            }
            (ValueType::UniqueKw, Edn::Keyword(k))
                if matches!(k.as_str(), "db.unique/identity" | "db.unique/value") =>
            {
                Value::Keyword(*k)
            }
            _ => return None,
        })
    }

    /// Whether an already-typed value conforms (used for tuple elements and replay checks).
    pub fn accepts(self, v: &Value) -> bool {
        matches!(
            (self, v),
            (ValueType::String, Value::String(_))
                | (ValueType::Long | ValueType::Ref, Value::Long(_))
                | (ValueType::Double, Value::Double(_))
                | (ValueType::Float, Value::Float(_) | Value::Double(_))
                | (
                    ValueType::Number,
                    Value::Long(_) | Value::Double(_) | Value::Float(_) | Value::BigInt(_) | Value::BigDec(_)
                )
                | (ValueType::Boolean, Value::Boolean(_))
                | (ValueType::Keyword, Value::Keyword(_))
                | (ValueType::Symbol, Value::Symbol(_))
                | (ValueType::Instant, Value::Instant(_))
                | (ValueType::Uuid, Value::Uuid(_))
                | (ValueType::BigInt, Value::BigInt(_) | Value::Long(_))
                | (ValueType::BigDec, Value::BigDec(_))
                | (ValueType::Tuple, Value::Tuple(_))
                | (ValueType::Bytes, Value::Bytes(_))
        )
    }
}

/// `:db/unique`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unique {
    /// `:db.unique/identity`: upserts.
    Identity,
    /// `:db.unique/value`: duplicates are rejected.
    Value,
}

/// One attribute's definition.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    /// `:db/ident`
    pub ident: Keyword,
    /// The schema entity's id (0 for implicit system attributes).
    pub eid: Eid,
    /// `:db/valueType`; `None` only under `:read` flexibility for undeclared attributes.
    pub value_type: Option<ValueType>,
    /// `:db.cardinality/many`
    pub many: bool,
    /// `:db/unique`
    pub unique: Option<Unique>,
    /// `:db/index`
    pub index: bool,
    /// `:db/isComponent`
    pub component: bool,
    /// `:db/noHistory`
    pub no_history: bool,
    /// `:db/tupleAttrs`
    pub tuple_attrs: Option<Vec<Keyword>>,
    /// `:db/tupleTypes`
    pub tuple_types: Option<Vec<ValueType>>,
    /// `:db/tupleType`
    pub tuple_type: Option<ValueType>,
}

impl Attribute {
    fn new(ident: Keyword, eid: Eid) -> Attribute {
        Attribute {
            ident,
            eid,
            value_type: None,
            many: false,
            unique: None,
            index: false,
            component: false,
            no_history: false,
            tuple_attrs: None,
            tuple_types: None,
            tuple_type: None,
        }
    }
    /// A `:db.type/ref` attribute.
    pub fn is_ref(&self) -> bool {
        self.value_type == Some(ValueType::Ref)
    }
    /// Whether the attribute's datoms go into AVET (`:db/index`, unique or ref), as in Datahike.
    pub fn indexed(&self) -> bool {
        self.index || self.unique.is_some() || self.is_ref()
    }
}

/// The attributes every database has without declaring them.
fn system_attributes() -> &'static std::collections::HashMap<Keyword, Arc<Attribute>> {
    static SYSTEM: OnceLock<std::collections::HashMap<Keyword, Arc<Attribute>>> = OnceLock::new();
    SYSTEM.get_or_init(|| {
        let defs: [(&str, ValueType, bool, Option<Unique>, bool); 20] = [
            ("db/ident", ValueType::Keyword, false, Some(Unique::Identity), false),
            ("db/valueType", ValueType::ValueTypeKw, false, None, false),
            ("db/cardinality", ValueType::CardinalityKw, false, None, false),
            ("db/unique", ValueType::UniqueKw, false, None, false),
            ("db/index", ValueType::Boolean, false, None, false),
            ("db/isComponent", ValueType::Boolean, false, None, false),
            ("db/noHistory", ValueType::Boolean, false, None, false),
            ("db/doc", ValueType::String, false, None, true),
            ("db/txInstant", ValueType::Instant, false, None, true),
            ("db/tupleAttrs", ValueType::Tuple, false, None, false),
            ("db/tupleTypes", ValueType::Tuple, false, None, false),
            ("db/tupleType", ValueType::ValueTypeKw, false, None, false),
            ("db/ensure", ValueType::Keyword, false, None, false),
            ("db.entity/attrs", ValueType::Keyword, true, None, false),
            ("db.entity/preds", ValueType::Symbol, true, None, false),
            ("db/maxLength", ValueType::Long, false, None, false),
            ("db.attr/preds", ValueType::Symbol, true, None, false),
            ("db.valid/from", ValueType::Instant, false, None, true),
            ("db.valid/to", ValueType::Instant, false, None, true),
            ("db.install/_attribute", ValueType::Keyword, false, None, false),
        ];
        defs.iter()
            .map(|(name, t, many, unique, index)| {
                let ident = Keyword::new(name);
                let mut a = Attribute::new(ident, 0);
                a.value_type = Some(*t);
                a.many = *many;
                a.unique = *unique;
                a.index = *index;
                a.no_history = *name == "db/txInstant";
                (ident, Arc::new(a))
            })
            .collect()
    })
}

/// Whether `a` is one of the attributes that define schema (`:db/valueType`...).
pub fn is_schema_attr(a: Keyword) -> bool {
    // Cheap rejection first: this runs for every datom of every transaction.
    if !a.namespace().is_some_and(|ns| ns.starts_with("db")) {
        return false;
    }
    matches!(
        a.as_str(),
        "db/ident"
            | "db/valueType"
            | "db/cardinality"
            | "db/unique"
            | "db/index"
            | "db/isComponent"
            | "db/noHistory"
            | "db/doc"
            | "db/tupleAttrs"
            | "db/tupleTypes"
            | "db/tupleType"
            | "db/maxLength"
            | "db.attr/preds"
            | "db.install/_attribute"
    )
}

/// Whether `a` is a built-in attribute in the reserved `db` namespaces.
pub fn is_system_ident(a: Keyword) -> bool {
    a.namespace().is_some_and(|ns| ns == "db" || ns.starts_with("db."))
}

/// The schema of one database value: user attributes by ident, plus the idents of entities.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    /// Schema properties of each entity that has any, as datom values by attribute.
    entities: BTreeMap<Eid, BTreeMap<Keyword, Vec<Value>>>,
    attrs: HashMap<Keyword, Arc<Attribute>>,
    ident_eid: HashMap<Keyword, Eid>,
    eid_ident: HashMap<Eid, Keyword>,
    /// For each attribute, the composite tuple attributes it is part of and its position.
    attr_tuples: HashMap<Keyword, Vec<(Keyword, usize)>>,
    /// Composite tuple attributes that are `:db.unique/identity`, with their parts.
    identity_tuples: Vec<(Keyword, Vec<Keyword>)>,
    /// `:attribute-refs? true`: the system entities have ids (and are not schema here).
    attr_refs: bool,
}

impl Schema {
    /// An empty schema; `attr_refs` for an `:attribute-refs? true` database.
    pub fn new(attr_refs: bool) -> Schema {
        Schema { attr_refs, ..Schema::default() }
    }

    /// The definition of attribute `a`: user-declared or built in.
    pub fn attr(&self, a: Keyword) -> Option<&Attribute> {
        self.attrs.get(&a).or_else(|| system_attributes().get(&a)).map(|x| x.as_ref())
    }

    /// Whether `a` is cardinality many.
    pub fn is_many(&self, a: Keyword) -> bool {
        self.attr(a).is_some_and(|x| x.many)
    }

    /// Whether `a` is a ref attribute.
    pub fn is_ref(&self, a: Keyword) -> bool {
        self.attr(a).is_some_and(Attribute::is_ref)
    }

    /// Whether `a` is `:db.unique/identity`.
    pub fn is_identity(&self, a: Keyword) -> bool {
        self.attr(a).is_some_and(|x| x.unique == Some(Unique::Identity))
    }

    /// Whether `a` goes into AVET.
    pub fn is_indexed(&self, a: Keyword) -> bool {
        self.attr(a).is_some_and(Attribute::indexed)
    }

    /// Whether `a` keeps no history.
    pub fn is_no_history(&self, a: Keyword) -> bool {
        self.attr(a).is_some_and(|x| x.no_history)
    }

    /// The composite tuples that contain `a`.
    pub fn tuples_of(&self, a: Keyword) -> &[(Keyword, usize)] {
        self.attr_tuples.get(&a).map_or(&[], Vec::as_slice)
    }

    /// The entity carrying `:db/ident ident`.
    pub fn ident_eid(&self, ident: Keyword) -> Option<Eid> {
        match self.ident_eid.get(&ident) {
            Some(e) => Some(*e),
            None if self.attr_refs => attr_refs::system_eid(ident),
            None => None,
        }
    }

    /// The ident of entity `e`.
    pub fn eid_ident(&self, e: Eid) -> Option<Keyword> {
        match self.eid_ident.get(&e) {
            Some(k) => Some(*k),
            None if self.attr_refs => attr_refs::system_ident(e),
            None => None,
        }
    }

    /// User attributes, sorted by ident.
    pub fn user_attrs(&self) -> Vec<&Attribute> {
        let mut v: Vec<&Attribute> = self.attrs.values().map(|a| a.as_ref()).collect();
        v.sort_by_key(|a| a.ident);
        v
    }

    /// The raw schema properties of entity `e` (values by schema attribute).
    pub fn entity_props(&self, e: Eid) -> Option<&BTreeMap<Keyword, Vec<Value>>> {
        self.entities.get(&e)
    }

    /// Folds one datom of a schema attribute into the schema. Callers pass every datom whose
    /// attribute satisfies [`is_schema_attr`], in transaction order.
    pub fn apply_datom(&mut self, d: &Datom) {
        if self.attr_refs && attr_refs::is_system_entity(d.e) {
            // Fixed: the system table describes them.
            return;
        }
        let props = self.entities.entry(d.e).or_default();
        let values = props.entry(d.a).or_default();
        if d.added() {
            if system_attributes().get(&d.a).is_some_and(|x| x.many) {
                if !values.contains(&d.v) {
                    values.push(d.v.clone());
                }
            } else {
                *values = vec![d.v.clone()];
            }
        } else {
            values.retain(|v| *v != d.v);
        }
        if values.is_empty() {
            props.remove(&d.a);
        }
        self.rebuild_entity(d.e);
    }

    /// Recomputes the derived maps for entity `e` from its raw properties.
    fn rebuild_entity(&mut self, e: Eid) {
        // Drop what `e` contributed before.
        if let Some(old) = self.eid_ident.remove(&e) {
            self.ident_eid.remove(&old);
            if self.attrs.get(&old).is_some_and(|a| a.eid == e) {
                self.attrs.remove(&old);
            }
        }
        let Some(props) = self.entities.get(&e) else {
            self.rebuild_tuples();
            return;
        };
        if props.is_empty() {
            self.entities.remove(&e);
            self.rebuild_tuples();
            return;
        }
        let first = |name: &str| props.get(&Keyword::new(name)).and_then(|v| v.first().cloned());
        if let Some(Value::Keyword(ident)) = first("db/ident") {
            self.ident_eid.insert(ident, e);
            self.eid_ident.insert(e, ident);
            let defines = [
                "db/valueType",
                "db/cardinality",
                "db/unique",
                "db/index",
                "db/tupleAttrs",
                "db/isComponent",
                "db/noHistory",
            ]
            .iter()
            .any(|k| props.contains_key(&Keyword::new(k)));
            if defines {
                let mut a = Attribute::new(ident, e);
                a.value_type = first("db/valueType").and_then(|v| v.as_keyword()).and_then(ValueType::from_keyword);
                a.many = first("db/cardinality")
                    .and_then(|v| v.as_keyword())
                    .is_some_and(|k| k.as_str() == "db.cardinality/many");
                a.unique = match first("db/unique").and_then(|v| v.as_keyword()).map(Keyword::as_str) {
                    Some("db.unique/identity") => Some(Unique::Identity),
                    Some("db.unique/value") => Some(Unique::Value),
                    _ => None,
                };
                a.index = first("db/index") == Some(Value::Boolean(true));
                a.component = first("db/isComponent") == Some(Value::Boolean(true));
                a.no_history = first("db/noHistory") == Some(Value::Boolean(true));
                a.tuple_attrs = match first("db/tupleAttrs") {
                    Some(Value::Tuple(xs)) => xs.iter().map(Value::as_keyword).collect(),
                    _ => None,
                };
                a.tuple_types = match first("db/tupleTypes") {
                    Some(Value::Tuple(xs)) => {
                        xs.iter().map(|x| x.as_keyword().and_then(ValueType::from_keyword)).collect()
                    }
                    _ => None,
                };
                a.tuple_type = first("db/tupleType").and_then(|v| v.as_keyword()).and_then(ValueType::from_keyword);
                if a.value_type.is_none()
                    && (a.tuple_attrs.is_some() || a.tuple_types.is_some() || a.tuple_type.is_some())
                {
                    a.value_type = Some(ValueType::Tuple);
                }
                self.attrs.insert(ident, Arc::new(a));
            }
        }
        self.rebuild_tuples();
    }

    /// Composite tuple attributes that are `:db.unique/identity`, with their parts.
    pub fn identity_tuples(&self) -> &[(Keyword, Vec<Keyword>)] {
        &self.identity_tuples
    }

    /// Whether any composite tuple attribute exists.
    pub fn has_tuples(&self) -> bool {
        !self.attr_tuples.is_empty()
    }

    fn rebuild_tuples(&mut self) {
        self.attr_tuples.clear();
        self.identity_tuples = self
            .attrs
            .values()
            .filter(|a| a.unique == Some(Unique::Identity))
            .filter_map(|a| a.tuple_attrs.clone().map(|parts| (a.ident, parts)))
            .collect();
        self.identity_tuples.sort();
        for a in self.attrs.values() {
            if let Some(parts) = &a.tuple_attrs {
                for (i, p) in parts.iter().enumerate() {
                    self.attr_tuples.entry(*p).or_default().push((a.ident, i));
                }
            }
        }
        for v in self.attr_tuples.values_mut() {
            v.sort();
        }
    }

    /// Datahike's `(d/schema db)`: `{ident {:db/ident .. :db/valueType .. :db/id eid}}`.
    pub fn to_edn(&self) -> Edn {
        let mut out = Vec::new();
        for a in self.user_attrs() {
            let mut m = Vec::new();
            if let Some(props) = self.entities.get(&a.eid) {
                for (k, vs) in props {
                    let many = system_attributes().get(k).is_some_and(|x| x.many);
                    let v = if many {
                        Edn::Set(vs.iter().map(Value::to_edn).collect())
                    } else {
                        vs.first().map_or(Edn::Nil, Value::to_edn)
                    };
                    m.push((Edn::Keyword(*k), v));
                }
            }
            // Datahike lists :db/ident first and :db/id last.
            m.sort_by_key(|(k, _)| if k.as_keyword().map(Keyword::as_str) == Some("db/ident") { 0 } else { 1 });
            m.push((Edn::kw("db/id"), Edn::Int(a.eid)));
            out.push((Edn::Keyword(a.ident), Edn::Map(m)));
        }
        Edn::Map(out)
    }

    /// Datahike's `(d/reverse-schema db)`: `{property #{idents}}`, with Datahike's property
    /// keys (`db.utils/attr->properties`): unique and ref attributes also count as `:db/index`,
    /// string and bytes attributes as `:db.attr/constrained`.
    pub fn reverse_edn(&self) -> Edn {
        let mut groups: BTreeMap<&'static str, Vec<Keyword>> = BTreeMap::new();
        for a in self.user_attrs() {
            let mut add = |k: &'static str| {
                let v = groups.entry(k).or_default();
                if !v.contains(&a.ident) {
                    v.push(a.ident);
                }
            };
            add("db/ident");
            match a.unique {
                Some(Unique::Identity) => {
                    add("db/unique");
                    add("db.unique/identity");
                    add("db/index");
                }
                Some(Unique::Value) => {
                    add("db/unique");
                    add("db.unique/value");
                    add("db/index");
                }
                None => {}
            }
            if a.many {
                add("db.cardinality/many");
            }
            match a.value_type {
                Some(ValueType::Ref) => {
                    add("db.type/ref");
                    add("db/index");
                }
                Some(ValueType::Tuple) => add("db.type/tuple"),
                Some(ValueType::String | ValueType::Bytes) => add("db.attr/constrained"),
                _ => {}
            }
            if a.index {
                add("db/index");
            }
            if a.component {
                add("db/isComponent");
            }
            if a.no_history {
                add("db/noHistory");
            }
        }
        Edn::Map(
            groups
                .into_iter()
                .map(|(k, vs)| (Edn::kw(k), Edn::Set(vs.into_iter().map(Edn::Keyword).collect())))
                .collect(),
        )
    }
}

impl Idents for Schema {
    fn eid_of(&self, k: Keyword) -> Option<Eid> {
        self.ident_eid(k)
    }
    fn ident_of(&self, e: Eid) -> Option<Keyword> {
        self.eid_ident(e)
    }
}
