//! The Pull API: declarative, nested reads of entities as EDN maps, with Datahike's answers.
//!
//! A pattern is parsed once into a [`PullPattern`] (the grammar of Datahike's pull parser:
//! attribute names, `*`, `[attr :as x :limit n :default v]`, the legacy `(limit attr n)` and
//! `(default attr v)`, maps `{attr pattern-or-recursion}`, reverse attributes `:ns/_attr`) and
//! can then pull any number of entities. The walk follows Datahike's frame machine
//! (`datahike.pull-api`) rule for rule, including its corner cases:
//!
//! - a wildcard returns `:db/id` and every attribute (even for an entity without datoms, which
//!   gives `{:db/id e}`); explicit attribute specs next to `*` only supply options (`:as`,
//!   `:limit`, a subpattern) for attributes the entity has, and reverse specs are added after;
//! - a pattern without wildcard that matches nothing gives `nil`; `:db/id` appears only when
//!   the entity has datoms;
//! - card-many values are limited to 1000 unless `:limit` says otherwise (`nil`: unlimited);
//! - refs are `{:db/id e}`; forward component refs without a subpattern expand like `[*]`;
//!   reverse refs give a vector of maps, or a single map for a component attribute;
//! - recursion (`...` or a depth) tracks the entities on the current path: an entity seen
//!   before on the path is `{:db/id e}`; depths count per attribute along the path;
//! - a multi-valued subpattern that matches nothing gives `[]`, a single-valued one nothing;
//! - [`pull_many`] leaves out entities that pull to `nil`, as Datahike's `pull-many` does.

use crate::config::SchemaFlexibility;
use crate::datom::{Datom, DatomKey, IndexOrder};
use crate::db::Db;
use crate::edn::{Edn, Keyword};
use crate::error::{Detail, Error, Result, TxError};
use crate::schema::is_system_ident;
use crate::value::{Eid, Value};
use std::sync::{Arc, OnceLock};

/// Datahike's default limit on the values of a card-many attribute.
pub const DEFAULT_LIMIT: usize = 1000;

/// Pull nesting levels run on one thread's stack before the walk continues on a fresh thread
/// with a large stack, so that deep recursion (`{:friend ...}` over a long chain) cannot
/// overflow the caller's stack.
const LEVELS_PER_STACK: usize = 128;
/// Stack size of the threads deep recursion continues on.
const DEEP_STACK_BYTES: usize = 64 << 20;

/// A parsed pull pattern, reusable across entities and pulls.
#[derive(Clone, Debug, PartialEq)]
pub struct PullPattern {
    wildcard: bool,
    /// The attribute specs in Datahike's order: non-map specs as written, then map entries.
    /// Keys are distinct; a later spec with the same key replaces an earlier one in place.
    specs: Vec<AttrSpec>,
    /// For a wildcard pattern with reverse specs: those specs alone, as Datahike pulls them
    /// after the wildcard expansion.
    reverse_only: Option<Arc<PullPattern>>,
}

/// One attribute spec: the key as written (`:name`, `:_child`, `"name"`) and its options.
#[derive(Clone, Debug, PartialEq)]
struct AttrSpec {
    key: Edn,
    target: Target,
    opts: Opts,
}

/// What an attribute spec reads.
#[derive(Clone, Debug, PartialEq)]
enum Target {
    /// `:db/id`
    DbId,
    /// A forward attribute.
    Forward(Keyword),
    /// A reverse attribute `:ns/_attr`; holds `:ns/attr`.
    Reverse(Keyword),
    /// A string attribute name: attributes are keywords here, so it never matches.
    Nothing,
}

#[derive(Clone, Debug, PartialEq)]
struct Opts {
    as_key: Option<Edn>,
    /// `None`: unlimited.
    limit: Option<usize>,
    default: Option<Edn>,
    nested: Nested,
}

impl Default for Opts {
    fn default() -> Self {
        Opts { as_key: None, limit: Some(DEFAULT_LIMIT), default: None, nested: Nested::None }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Nested {
    None,
    Pattern(Arc<PullPattern>),
    /// `...` (`None`) or a depth.
    Recursion(Option<u64>),
}

/// A pull pattern that does not parse; `form` is the element at fault.
fn pattern_error(message: String, form: &Edn) -> Error {
    Error::Argument(Detail::new(message).form(form.clone()))
}

fn is_wildcard(x: &Edn) -> bool {
    match x {
        Edn::Symbol(s) => s.as_str() == "*",
        Edn::Keyword(k) => k.as_str() == "*",
        Edn::Str(s) => &**s == "*",
        _ => false,
    }
}

fn is_sequential(x: &Edn) -> bool {
    matches!(x, Edn::Vector(_) | Edn::List(_))
}

/// `limit`, `:limit` or `"limit"` (and likewise for `default`).
fn is_word(x: &Edn, word: &str) -> bool {
    match x {
        Edn::Symbol(s) => s.as_str() == word,
        Edn::Keyword(k) => k.as_str() == word,
        Edn::Str(s) => &**s == word,
        _ => false,
    }
}

/// An attribute name: a keyword or string; `:ns/_attr` is reverse.
fn parse_attr_name(x: &Edn) -> Option<AttrSpec> {
    let target = match x {
        Edn::Keyword(k) if k.as_str() == "db/id" => Target::DbId,
        Edn::Keyword(k) => match k.name().strip_prefix('_') {
            Some(rest) => Target::Reverse(Keyword::from_parts(k.namespace(), rest)),
            None => Target::Forward(*k),
        },
        Edn::Str(_) => Target::Nothing,
        _ => return None,
    };
    Some(AttrSpec { key: x.clone(), target, opts: Opts::default() })
}

/// A limit: a non-negative integer or `nil` (unlimited).
fn parse_limit(x: &Edn) -> Option<Option<usize>> {
    match x {
        Edn::Nil => Some(None),
        Edn::Int(n) if *n > 0 => Some(Some(usize::try_from(*n).unwrap_or(usize::MAX))),
        _ => None,
    }
}

/// The legacy three-element forms `(word attr arg)`: the attribute and the argument, or `None`
/// when `x` is not such a form.
fn legacy_expr<'a>(x: &'a Edn, word: &str) -> Option<(&'a Edn, &'a Edn)> {
    let [w, attr, arg] = x.as_seq().filter(|_| is_sequential(x)).and_then(|s| <&[Edn; 3]>::try_from(s).ok())?;
    is_word(w, word).then_some((attr, arg))
}

fn limit_expr(x: &Edn) -> Result<Option<AttrSpec>> {
    let Some((attr, n)) = legacy_expr(x, "limit") else { return Ok(None) };
    match (parse_attr_name(attr), parse_limit(n)) {
        (Some(mut spec), Some(limit)) => {
            spec.opts.limit = limit;
            Ok(Some(spec))
        }
        _ => Err(pattern_error(format!("Expected [\"limit\" attr-name (positive-number | nil)], got {x}"), x)),
    }
}

fn default_expr(x: &Edn) -> Result<Option<AttrSpec>> {
    let Some((attr, value)) = legacy_expr(x, "default") else { return Ok(None) };
    match parse_attr_name(attr) {
        Some(mut spec) => {
            spec.opts.default = Some(value.clone());
            Ok(Some(spec))
        }
        None => Err(pattern_error(format!("Expected [\"default\" attr-name any-value], got {x}"), x)),
    }
}

/// `[attr :as x :limit n :default v]`, or `None` when `x` does not have that shape.
fn attr_with_opts(x: &Edn) -> Result<Option<AttrSpec>> {
    let Some(items) = x.as_seq().filter(|_| is_sequential(x)) else {
        return Ok(None);
    };
    let Some((first, opts)) = items.split_first() else {
        return Ok(None);
    };
    let Some(mut spec) = parse_attr_name(first) else {
        return Ok(None);
    };
    let is_opt = |k: &Edn| matches!(k, Edn::Keyword(k) if matches!(k.as_str(), "as" | "limit" | "default"));
    if opts.len() % 2 != 0 || !opts.chunks(2).all(|pair| is_opt(&pair[0])) {
        return Ok(None);
    }
    for pair in opts.chunks(2) {
        let (name, value) = (pair[0].as_keyword().map_or("", |k| k.as_str()), &pair[1]);
        match name {
            "as" => spec.opts.as_key = Some(value.clone()),
            "default" => spec.opts.default = Some(value.clone()),
            _ => {
                spec.opts.limit = match value {
                    Edn::Nil => None,
                    Edn::Int(n) => Some(usize::try_from(*n).unwrap_or(0)),
                    _ => return Err(pattern_error(format!("Expected :limit (positive-number | nil) in {x}"), x)),
                }
            }
        }
    }
    Ok(Some(spec))
}

fn map_entry(k: &Edn, v: &Edn, db: &Db) -> Result<AttrSpec> {
    let entry = || Edn::Vector(vec![k.clone(), v.clone()]);
    let spec = match parse_attr_name(k) {
        Some(spec) => Some(spec),
        None => attr_expr(k)?,
    };
    let Some(mut spec) = spec else {
        return Err(pattern_error(format!("Expected (attr-name | attr-expr), got {}", entry()), &entry()));
    };
    spec.opts.nested = match v {
        Edn::Symbol(s) if s.as_str() == "..." => Nested::Recursion(None),
        Edn::Str(s) if &**s == "..." => Nested::Recursion(None),
        Edn::Int(n) if *n > 0 => Nested::Recursion(Some(n.unsigned_abs())),
        v if is_sequential(v) => Nested::Pattern(Arc::new(PullPattern::parse(v, db)?)),
        _ => return Err(pattern_error(format!("Expected (pattern | recursion-limit), got {}", entry()), &entry())),
    };
    Ok(spec)
}

/// An attribute with options, in the legacy `(limit ...)`/`(default ...)` or the
/// `[attr :limit n ...]` form: a spec of its own, or the key of a map spec.
fn attr_expr(x: &Edn) -> Result<Option<AttrSpec>> {
    if let Some(spec) = limit_expr(x)? {
        return Ok(Some(spec));
    }
    if let Some(spec) = default_expr(x)? {
        return Ok(Some(spec));
    }
    attr_with_opts(x)
}

fn attr_spec(x: &Edn) -> Result<AttrSpec> {
    if let Some(spec) = parse_attr_name(x) {
        return Ok(spec);
    }
    if let Some(spec) = attr_expr(x)? {
        return Ok(spec);
    }
    Err(pattern_error(
        format!("Cannot parse attr-spec, expected: (attr-name | wildcard | map-spec | attr-expr), got {x}"),
        x,
    ))
}

impl PullPattern {
    /// Parses a pull pattern (a vector or list of attribute specs). Under `:schema-flexibility
    /// :write`, an attribute the schema of `db` does not define is an error (`:transact/schema`),
    /// as Datahike reports it; here it is reported when the pattern is parsed.
    pub fn parse(pattern: &Edn, db: &Db) -> Result<PullPattern> {
        let Some(items) = pattern.as_seq().filter(|_| is_sequential(pattern)) else {
            return Err(pattern_error(
                format!("Cannot parse pull pattern, expected: [attr-spec+], got {pattern}"),
                pattern,
            ));
        };
        let mut compiled = PullPattern { wildcard: false, specs: Vec::new(), reverse_only: None };
        let mut map_specs = Vec::new();
        for item in items {
            if is_wildcard(item) {
                compiled.wildcard = true;
            } else if let Edn::Map(entries) = item {
                // Each map entry is its own spec, after every other spec (Datahike's order).
                for (k, v) in entries {
                    map_specs.push(map_entry(k, v, db)?);
                }
            } else {
                compiled.add(attr_spec(item)?, db)?;
            }
        }
        for spec in map_specs {
            compiled.add(spec, db)?;
        }
        if compiled.wildcard {
            let reverse: Vec<AttrSpec> =
                compiled.specs.iter().filter(|s| matches!(s.target, Target::Reverse(_))).cloned().collect();
            if !reverse.is_empty() {
                compiled.reverse_only =
                    Some(Arc::new(PullPattern { wildcard: false, specs: reverse, reverse_only: None }));
            }
        }
        Ok(compiled)
    }

    fn add(&mut self, spec: AttrSpec, db: &Db) -> Result<()> {
        if let Target::Forward(a) | Target::Reverse(a) = spec.target {
            check_attr(db, a)?;
        }
        match self.specs.iter_mut().find(|s| s.key == spec.key) {
            Some(slot) => *slot = spec,
            None => self.specs.push(spec),
        }
        Ok(())
    }

    /// Whether the pattern has a wildcard.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The spec whose key is the attribute `a` itself (the options a wildcard uses for `a`).
    fn forward_spec(&self, a: Keyword) -> Option<&AttrSpec> {
        self.specs.iter().find(|s| matches!(&s.key, Edn::Keyword(k) if *k == a))
    }

    /// The recursion depth limit of the spec with key `key`, as Datahike looks it up.
    fn recursion_limit(&self, key: &Edn) -> Option<u64> {
        self.specs.iter().find(|s| s.key == *key).and_then(|s| match s.opts.nested {
            Nested::Recursion(limit) => limit,
            _ => None,
        })
    }
}

fn check_attr(db: &Db, a: Keyword) -> Result<()> {
    if db.config().schema_flexibility == SchemaFlexibility::Write
        && db.schema().attr(a).is_none()
        && !is_system_ident(a)
    {
        let known = db.schema().user_attrs().into_iter().map(|x| Edn::Keyword(x.ident));
        let message = format!("Bad entity attribute {a} at (pull), not defined in current schema");
        return Err(TxError::Schema(Detail::new(message).attribute(a).choices(known)).into());
    }
    Ok(())
}

/// The pattern `[*]`, which component refs expand with.
fn wildcard_pattern() -> &'static PullPattern {
    static WILDCARD: OnceLock<PullPattern> = OnceLock::new();
    WILDCARD.get_or_init(|| PullPattern { wildcard: true, specs: Vec::new(), reverse_only: None })
}

/// Resolves an entity id as Datahike's `entid-strict` does: a positive number is itself; an
/// ident keyword or lookup ref must name an entity (`:entity-id/missing`).
pub fn resolve_eid(db: &Db, eid: &Edn) -> Result<Eid> {
    lookup_eid(db, eid)?.ok_or_else(|| {
        TxError::EntityIdMissing(Detail::new(format!("Nothing found for entity id {eid}")).entity_id(eid.clone()))
            .into()
    })
}

/// Datahike's `entid`: `Ok(None)` for an ident or lookup ref that names nothing.
pub(crate) fn lookup_eid(db: &Db, eid: &Edn) -> Result<Option<Eid>> {
    match eid {
        Edn::Int(e) if *e > 0 => Ok(Some(*e)),
        Edn::Keyword(k) => Ok(db.schema().ident_eid(*k)),
        Edn::Vector(xs) | Edn::List(xs) => {
            let [attr, value] = xs.as_slice() else {
                let message = format!("Lookup ref should contain 2 elements: {eid}");
                return Err(TxError::LookupRefSyntax(Detail::new(message).entity_id(eid.clone())).into());
            };
            let unique = attr.as_keyword().and_then(|a| db.schema().attr(a)).is_some_and(|a| a.unique.is_some());
            let (Some(a), true) = (attr.as_keyword(), unique) else {
                let message = format!("Lookup ref attribute should be marked as :db/unique: {eid}");
                let detail = Detail::new(message).entity_id(eid.clone()).with("attribute", attr.clone());
                return Err(TxError::LookupRefUnique(detail).into());
            };
            if *value == Edn::Nil {
                return Ok(None);
            }
            let Ok(v) = db.value_for(a, value) else {
                return Ok(None);
            };
            let key = DatomKey { a: Some(a), v: Some(v), ..Default::default() };
            Ok(db.index(IndexOrder::Avet).range(&key, &key).next().transpose()?.map(|d| d.e))
        }
        _ => Err(TxError::EntityIdSyntax(
            Detail::new(format!("Expected number or lookup ref for entity id, got {eid}")).entity_id(eid.clone()),
        )
        .into()),
    }
}

/// Pulls `pattern` (EDN) for the entity `eid` (number, ident or lookup ref): a map, or `nil`.
pub fn pull(db: &Db, pattern: &Edn, eid: &Edn) -> Result<Edn> {
    let pattern = PullPattern::parse(pattern, db)?;
    let eid = resolve_eid(db, eid)?;
    pull_eid(db, &pattern, eid)
}

/// Pulls `pattern` for each entity in `eids` (a vector or list). Every id is resolved first;
/// entities that pull to `nil` are left out, as in Datahike.
pub fn pull_many(db: &Db, pattern: &Edn, eids: &Edn) -> Result<Edn> {
    let pattern = PullPattern::parse(pattern, db)?;
    let Some(items) = eids.as_seq() else {
        let message = format!("pull-many expects a collection of entity ids, got {eids}");
        return Err(Error::Argument(Detail::new(message).value(eids.clone())));
    };
    let eids = items.iter().map(|e| resolve_eid(db, e)).collect::<Result<Vec<Eid>>>()?;
    pull_many_eids(db, &pattern, &eids)
}

/// Pulls a parsed pattern for one resolved entity id: a map, or `nil`.
pub fn pull_eid(db: &Db, pattern: &PullPattern, eid: Eid) -> Result<Edn> {
    let puller = Puller::new(db);
    Ok(puller.entity(pattern, eid, &Rec::ROOT, None, 0)?.map_or(Edn::Nil, Edn::Map))
}

/// Pulls a parsed pattern for resolved entity ids; entities that pull to `nil` are left out.
pub fn pull_many_eids(db: &Db, pattern: &PullPattern, eids: &[Eid]) -> Result<Edn> {
    let puller = Puller::new(db);
    let mut out = Vec::with_capacity(eids.len());
    for &eid in eids {
        if let Some(map) = puller.entity(pattern, eid, &Rec::ROOT, None, 0)? {
            out.push(Edn::Map(map));
        }
    }
    Ok(Edn::Vector(out))
}

/// What a frame's recursion record is keyed by: an attribute key, or Datahike's internal
/// `::recursion` marker.
#[derive(Clone, Debug, PartialEq)]
enum RecKey {
    Attr(Edn),
    Recursion,
}

/// The recursion record of the current path: which entities were entered under which key.
/// A linked list on the stack; a nested subpattern starts a new, empty one.
struct Rec<'a> {
    parent: Option<&'a Rec<'a>>,
    entry: Option<(RecKey, Eid)>,
}

impl<'a> Rec<'a> {
    const ROOT: Rec<'static> = Rec { parent: None, entry: None };

    fn push(&'a self, key: RecKey, eid: Eid) -> Rec<'a> {
        Rec { parent: Some(self), entry: Some((key, eid)) }
    }

    fn entries(&self) -> impl Iterator<Item = &(RecKey, Eid)> {
        std::iter::successors(Some(self), |r| r.parent).filter_map(|r| r.entry.as_ref())
    }

    fn seen(&self, eid: Eid) -> bool {
        self.entries().any(|(_, e)| *e == eid)
    }

    fn depth(&self, key: &Edn) -> u64 {
        self.entries().filter(|(k, _)| matches!(k, RecKey::Attr(x) if x == key)).count() as u64
    }
}

type Map = Vec<(Edn, Edn)>;

/// Sets `key` in a small map, replacing an existing entry in place (Clojure's `assoc`).
fn assoc(map: &mut Map, key: Edn, value: Edn) {
    match map.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => map.push((key, value)),
    }
}

fn db_id_map(db_id: &Edn, e: Eid) -> Edn {
    Edn::Map(vec![(db_id.clone(), Edn::Int(e))])
}

struct Puller<'a> {
    db: &'a Db,
    /// `:db/id`, interned once per pull.
    db_id: Edn,
}

impl<'a> Puller<'a> {
    fn new(db: &'a Db) -> Puller<'a> {
        Puller { db, db_id: Edn::kw("db/id") }
    }

    fn datoms(&self, order: IndexOrder, key: &DatomKey, limit: Option<usize>) -> Result<Vec<Datom>> {
        let iter = self.db.index(order).range(key, key);
        let datoms: std::result::Result<Vec<Datom>, _> = match limit {
            Some(n) => iter.take(n).collect(),
            None => iter.collect(),
        };
        Ok(datoms?)
    }

    fn has_datoms(&self, eid: Eid) -> Result<bool> {
        let key = DatomKey { e: Some(eid), ..Default::default() };
        Ok(self.db.index(IndexOrder::Eavt).range(&key, &key).next().transpose()?.is_some())
    }

    /// Pulls `pattern` for one entity: Datahike's pattern frame. `frame_attr` is the key the
    /// frame was opened under (none at the top), `level` the nesting depth.
    fn entity(
        &self,
        pattern: &PullPattern,
        eid: Eid,
        rec: &Rec<'_>,
        frame_attr: Option<RecKey>,
        level: usize,
    ) -> Result<Option<Map>> {
        if level > 0 && level.is_multiple_of(LEVELS_PER_STACK) {
            // Continue on a fresh stack; the walk is the same.
            return std::thread::scope(|scope| {
                let worker = std::thread::Builder::new()
                    .stack_size(DEEP_STACK_BYTES)
                    .spawn_scoped(scope, || self.entity_here(pattern, eid, rec, frame_attr, level))
                    .map_err(|e| Error::Internal(format!("cannot start a thread for a deep pull: {e}")))?;
                worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            });
        }
        self.entity_here(pattern, eid, rec, frame_attr, level)
    }

    fn entity_here(
        &self,
        pattern: &PullPattern,
        eid: Eid,
        rec: &Rec<'_>,
        frame_attr: Option<RecKey>,
        level: usize,
    ) -> Result<Option<Map>> {
        if pattern.wildcard {
            if rec.seen(eid) {
                return Ok(Some(vec![(self.db_id.clone(), Edn::Int(eid))]));
            }
            let pushed;
            let rec = match frame_attr {
                Some(key) => {
                    pushed = rec.push(key, eid);
                    &pushed
                }
                None => rec,
            };
            return self.wildcard(pattern, eid, rec, level).map(Some);
        }
        let mut kvps = Map::new();
        for spec in &pattern.specs {
            match spec.target {
                Target::DbId => {
                    if self.has_datoms(eid)? {
                        assoc(&mut kvps, self.db_id.clone(), Edn::Int(eid));
                    }
                }
                Target::Forward(a) => {
                    let key = DatomKey { e: Some(eid), a: Some(a), ..Default::default() };
                    let datoms = self.datoms(IndexOrder::Eavt, &key, spec.opts.limit)?;
                    self.attr_datoms(&mut kvps, &spec.key, a, eid, true, &datoms, &spec.opts, pattern, rec, level)?;
                }
                Target::Reverse(a) => {
                    let key = DatomKey { a: Some(a), v: Some(Value::Long(eid)), ..Default::default() };
                    let datoms = if self.db.schema().is_indexed(a) {
                        self.datoms(IndexOrder::Avet, &key, spec.opts.limit)?
                    } else {
                        Vec::new()
                    };
                    self.attr_datoms(&mut kvps, &spec.key, a, eid, false, &datoms, &spec.opts, pattern, rec, level)?;
                }
                Target::Nothing => {
                    if let Some(default) = &spec.opts.default {
                        assoc(&mut kvps, spec.opts.as_key.clone().unwrap_or_else(|| spec.key.clone()), default.clone());
                    }
                }
            }
        }
        Ok(if kvps.is_empty() { None } else { Some(kvps) })
    }

    /// Datahike's wildcard expansion: `:db/id`, every attribute with the options the pattern
    /// gives it, then the pattern's reverse specs.
    fn wildcard(&self, pattern: &PullPattern, eid: Eid, rec: &Rec<'_>, level: usize) -> Result<Map> {
        let mut kvps: Map = Vec::with_capacity(12);
        kvps.push((self.db_id.clone(), Edn::Int(eid)));
        let key = DatomKey { e: Some(eid), ..Default::default() };
        let mut datoms = self.db.index(IndexOrder::Eavt).range(&key, &key).peekable();
        let defaults = Opts::default();
        let mut group: Vec<Datom> = Vec::new();
        while let Some(first) = datoms.next().transpose()? {
            let a = first.a;
            let spec = pattern.forward_spec(a);
            let opts = spec.map_or(&defaults, |s| &s.opts);
            group.clear();
            group.push(first);
            while let Some(Ok(next)) = datoms.peek() {
                if next.a != a {
                    break;
                }
                if let Some(Ok(d)) = datoms.next() {
                    group.push(d);
                }
            }
            if let Some(limit) = opts.limit {
                group.truncate(limit);
            }
            self.attr_datoms(&mut kvps, &Edn::Keyword(a), a, eid, true, &group, opts, pattern, rec, level)?;
        }
        if let Some(reverse) = &pattern.reverse_only {
            if let Some(extra) = self.entity(reverse, eid, &Rec::ROOT, None, level)? {
                for (k, v) in extra {
                    assoc(&mut kvps, k, v);
                }
            }
        }
        Ok(kvps)
    }

    /// The entity id a value names when a subpattern or recursion follows it.
    fn value_eid(&self, v: &Value) -> Result<Option<Eid>> {
        match v {
            Value::Long(e) => Ok(Some(*e)),
            Value::Keyword(k) => Ok(self.db.schema().ident_eid(*k)),
            other => {
                let eid = other.to_edn();
                let message = format!("Expected number or lookup ref for entity id, got {eid}");
                Err(TxError::EntityIdSyntax(Detail::new(message).entity_id(eid)).into())
            }
        }
    }

    /// Datahike's `pull-attr-datoms`: turns the (already limited) datoms of one attribute into
    /// the entry `attr_key` of `kvps`.
    #[allow(clippy::too_many_arguments)]
    fn attr_datoms(
        &self,
        kvps: &mut Map,
        attr_key: &Edn,
        a: Keyword,
        eid: Eid,
        forward: bool,
        datoms: &[Datom],
        opts: &Opts,
        pattern: &PullPattern,
        rec: &Rec<'_>,
        level: usize,
    ) -> Result<()> {
        let key = opts.as_key.as_ref().unwrap_or(attr_key);
        if datoms.is_empty() {
            if let Some(default) = &opts.default {
                assoc(kvps, key.clone(), default.clone());
            }
            return Ok(());
        }
        let attr = self.db.schema().attr(a);
        let is_ref = attr.is_some_and(|x| x.is_ref());
        let component = is_ref && attr.is_some_and(|x| x.component);
        let multi = if forward { attr.is_some_and(|x| x.many) } else { !component };
        let eids = || -> Result<Vec<Eid>> {
            let mut out = Vec::with_capacity(datoms.len());
            for d in datoms {
                let target = if forward { self.value_eid(&d.v)? } else { Some(d.e) };
                out.extend(target);
            }
            Ok(out)
        };
        let results: Vec<Edn> = match &opts.nested {
            Nested::Pattern(sub) => {
                let mut out = Vec::new();
                for e in eids()? {
                    if let Some(map) = self.entity(sub, e, &Rec::ROOT, Some(RecKey::Attr(key.clone())), level + 1)? {
                        out.push(Edn::Map(map));
                    }
                }
                out
            }
            Nested::Recursion(_) => {
                let depth = rec.depth(key);
                if pattern.recursion_limit(key) == Some(depth) {
                    return Ok(());
                }
                let mut out = Vec::new();
                for e in eids()? {
                    if rec.seen(e) {
                        out.push(db_id_map(&self.db_id, e));
                        continue;
                    }
                    let inner = rec.push(RecKey::Attr(key.clone()), e);
                    if let Some(map) = self.entity(pattern, e, &inner, Some(RecKey::Recursion), level + 1)? {
                        out.push(Edn::Map(map));
                    }
                }
                out
            }
            Nested::None if component && forward => {
                let inner = rec.push(RecKey::Attr(key.clone()), eid);
                let mut out = Vec::new();
                for e in eids()? {
                    let frame = Some(RecKey::Attr(key.clone()));
                    if let Some(map) = self.entity(wildcard_pattern(), e, &inner, frame, level + 1)? {
                        out.push(Edn::Map(map));
                    }
                }
                out
            }
            Nested::None => {
                let render = |d: &Datom| match (forward, is_ref) {
                    (true, true) => match &d.v {
                        Value::Long(e) => db_id_map(&self.db_id, *e),
                        v => v.to_edn(),
                    },
                    (true, false) => d.v.to_edn(),
                    (false, true) => db_id_map(&self.db_id, d.e),
                    (false, false) => Edn::Int(d.e),
                };
                // The common case, kept free of intermediate vectors.
                let value = if multi { Edn::Vector(datoms.iter().map(render).collect()) } else { render(&datoms[0]) };
                assoc(kvps, key.clone(), value);
                return Ok(());
            }
        };
        if multi {
            assoc(kvps, key.clone(), Edn::Vector(results));
        } else if let Some(first) = results.into_iter().next() {
            assoc(kvps, key.clone(), first);
        }
        Ok(())
    }
}
