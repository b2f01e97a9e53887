//! The Entity API: a lazy, navigable view of one entity in one database value, as Datahike's
//! `entity`. Nothing is read until asked: [`Entity::get`] reads one attribute, [`Entity::touch`]
//! all of them. Refs navigate to further entities, reverse attributes (`:ns/_attr`) to the
//! entities pointing here.
//!
//! Deliberately absent: Datahike's per-entity cache. Reads here cost one index range each, so
//! an `Entity` is just `(db, eid)` and is cheap to clone and share between threads.

use crate::datom::{Datom, DatomKey, IndexOrder};
use crate::db::Db;
use crate::edn::{Edn, Keyword};
use crate::error::Result;
use crate::pull::lookup_eid;
use crate::value::{Eid, Value};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Returns the entity `eid` names (a number, an ident keyword or a lookup ref), or `None` when
/// an ident or lookup ref names nothing, as Datahike's `entity`. A number always gives an
/// entity, even one without datoms. Other kinds of value give `None`; a malformed lookup ref or
/// one on a non-unique attribute is an error.
pub fn entity(db: &Db, eid: &Edn) -> Result<Option<Entity>> {
    if !matches!(eid, Edn::Int(_) | Edn::Keyword(_) | Edn::Vector(_) | Edn::List(_)) {
        return Ok(None);
    }
    Ok(lookup_eid(db, eid)?.map(|e| Entity::new(db.clone(), e)))
}

/// One entity of one database value. Equal to another when both have the same id and the same
/// database value.
#[derive(Clone, Debug)]
pub struct Entity {
    db: Db,
    eid: Eid,
}

/// The value of an entity's attribute.
#[derive(Clone, Debug, PartialEq)]
pub enum EntityValue {
    /// A value of a non-ref attribute (or `:db/id`).
    Value(Value),
    /// A referenced (or, for reverse attributes, referencing) entity.
    Entity(Entity),
    /// The values of a card-many attribute, or the entities of a reverse attribute, in index
    /// order; a set, as in Datahike.
    Set(Vec<EntityValue>),
}

impl EntityValue {
    /// The value, if this is a single value.
    pub fn as_value(&self) -> Option<&Value> {
        match self {
            EntityValue::Value(v) => Some(v),
            _ => None,
        }
    }
    /// The entity, if this is a single entity.
    pub fn as_entity(&self) -> Option<&Entity> {
        match self {
            EntityValue::Entity(e) => Some(e),
            _ => None,
        }
    }
    /// The elements, if this is a set.
    pub fn as_set(&self) -> Option<&[EntityValue]> {
        match self {
            EntityValue::Set(xs) => Some(xs),
            _ => None,
        }
    }
    /// EDN as Datahike prints it: entities as `{:db/id e}`, sets as `#{...}`.
    pub fn to_edn(&self) -> Edn {
        match self {
            EntityValue::Value(v) => v.to_edn(),
            EntityValue::Entity(e) => e.to_edn(),
            EntityValue::Set(xs) => Edn::Set(xs.iter().map(EntityValue::to_edn).collect()),
        }
    }
}

impl Entity {
    /// The entity `eid` of `db`, whether or not it has datoms.
    pub fn new(db: Db, eid: Eid) -> Entity {
        Entity { db, eid }
    }

    /// The entity id (`:db/id`).
    pub fn db_id(&self) -> Eid {
        self.eid
    }

    /// The database value this entity reads (Datahike's `entity-db`).
    pub fn db(&self) -> &Db {
        &self.db
    }

    fn datoms(&self, order: IndexOrder, key: &DatomKey) -> Result<Vec<Datom>> {
        Ok(self.db.index(order).range(key, key).collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// The value of `attr`: `:db/id` is the id; a card-many attribute gives a set; a ref gives
    /// an entity (a set of entities if card-many); a reverse attribute `:ns/_attr` gives the
    /// set of entities whose `:ns/attr` is this one, or the single entity for a component
    /// attribute. `None` when there is nothing.
    pub fn get(&self, attr: Keyword) -> Result<Option<EntityValue>> {
        if attr.as_str() == "db/id" {
            return Ok(Some(EntityValue::Value(Value::Long(self.eid))));
        }
        if let Some(forward) = attr.name().strip_prefix('_') {
            return self.get_reverse(Keyword::from_parts(attr.namespace(), forward));
        }
        let key = DatomKey { e: Some(self.eid), a: Some(attr), ..Default::default() };
        let datoms = self.datoms(IndexOrder::Eavt, &key)?;
        Ok(self.attr_value(attr, &datoms))
    }

    /// `get` with the attribute given as text, e.g. `"name"` or `"person/_friend"`.
    pub fn get_kw(&self, attr: &str) -> Result<Option<EntityValue>> {
        self.get(Keyword::new(attr))
    }

    /// Whether `attr` has a value (Clojure's `contains?`).
    pub fn contains(&self, attr: Keyword) -> Result<bool> {
        Ok(self.get(attr)?.is_some())
    }

    fn get_reverse(&self, attr: Keyword) -> Result<Option<EntityValue>> {
        let schema = self.db.schema();
        let datoms = if schema.is_indexed(attr) {
            let key = DatomKey { a: Some(attr), v: Some(Value::Long(self.eid)), ..Default::default() };
            self.datoms(IndexOrder::Avet, &key)?
        } else {
            let key = DatomKey { a: Some(attr), ..Default::default() };
            let mut found = self.datoms(IndexOrder::Aevt, &key)?;
            found.retain(|d| d.v == Value::Long(self.eid));
            found
        };
        let Some(first) = datoms.first() else {
            return Ok(None);
        };
        if schema.attr(attr).is_some_and(|a| a.component) {
            return Ok(Some(EntityValue::Entity(Entity::new(self.db.clone(), first.e))));
        }
        let entities = datoms.iter().map(|d| EntityValue::Entity(Entity::new(self.db.clone(), d.e)));
        Ok(Some(EntityValue::Set(entities.collect())))
    }

    /// Datahike's `entity-attr`: the value of one attribute from its datoms.
    fn attr_value(&self, attr: Keyword, datoms: &[Datom]) -> Option<EntityValue> {
        let first = datoms.first()?;
        let schema = self.db.schema();
        let is_ref = schema.is_ref(attr);
        let one = |v: &Value| match (is_ref, v) {
            (true, Value::Long(e)) => EntityValue::Entity(Entity::new(self.db.clone(), *e)),
            (_, v) => EntityValue::Value(v.clone()),
        };
        Some(if schema.is_many(attr) {
            EntityValue::Set(datoms.iter().map(|d| one(&d.v)).collect())
        } else {
            one(&first.v)
        })
    }

    /// Every attribute this entity has, in index order.
    pub fn keys(&self) -> Result<Vec<Keyword>> {
        let key = DatomKey { e: Some(self.eid), ..Default::default() };
        let mut keys: Vec<Keyword> = Vec::new();
        for d in self.db.index(IndexOrder::Eavt).range(&key, &key) {
            let d = d?;
            if keys.last() != Some(&d.a) {
                keys.push(d.a);
            }
        }
        Ok(keys)
    }

    /// Every attribute and value, as Datahike's `touch`: a map with `:db/id` first, then the
    /// attributes in index order; card-many values are sets, refs `{:db/id e}`, and component
    /// entities touched in turn (an entity met again below itself stays `{:db/id e}`).
    pub fn touch(&self) -> Result<Edn> {
        self.touch_path(&mut Vec::new())
    }

    fn touch_path(&self, path: &mut Vec<Eid>) -> Result<Edn> {
        let db_id = Edn::kw("db/id");
        let mut map = vec![(db_id, Edn::Int(self.eid))];
        if path.contains(&self.eid) {
            return Ok(Edn::Map(map));
        }
        path.push(self.eid);
        let key = DatomKey { e: Some(self.eid), ..Default::default() };
        let datoms = self.datoms(IndexOrder::Eavt, &key)?;
        let schema = self.db.schema();
        for group in datoms.chunk_by(|x, y| x.a == y.a) {
            let attr = group[0].a;
            let Some(value) = self.attr_value(attr, group) else {
                continue;
            };
            let component = schema.attr(attr).is_some_and(|a| a.is_ref() && a.component);
            let edn = if component {
                match &value {
                    EntityValue::Entity(e) => e.touch_path(path)?,
                    EntityValue::Set(xs) => Edn::Set(
                        xs.iter()
                            .map(|x| match x {
                                EntityValue::Entity(e) => e.touch_path(path),
                                other => Ok(other.to_edn()),
                            })
                            .collect::<Result<_>>()?,
                    ),
                    other => other.to_edn(),
                }
            } else {
                value.to_edn()
            };
            map.push((Edn::Keyword(attr), edn));
        }
        path.pop();
        Ok(Edn::Map(map))
    }

    /// The entity as Datahike prints one that has not been touched: `{:db/id e}`. For every
    /// attribute use [`Entity::touch`].
    pub fn to_edn(&self) -> Edn {
        Edn::Map(vec![(Edn::kw("db/id"), Edn::Int(self.eid))])
    }
}

impl PartialEq for Entity {
    fn eq(&self, other: &Self) -> bool {
        self.eid == other.eid && Arc::ptr_eq(&self.db.0, &other.db.0)
    }
}
impl Eq for Entity {}
impl Hash for Entity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.eid.hash(state);
    }
}
