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
use rustc_hash::FxHashMap as HashMap;
use std::sync::{Arc, OnceLock};

/// Datahike's default limit on the values of a card-many attribute.
pub const DEFAULT_LIMIT: usize = 1000;

/// How deep a pull pattern may nest, in EDN levels (a map spec and its subpattern vector are
/// two): 100 nested subpatterns, far more than any real pattern, and little enough stack for
/// the recursive parser on a 2 MiB thread. Recursion (`...`) reaches any depth in the data.
pub const MAX_PATTERN_DEPTH: usize = 200;

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
        v if is_sequential(v) => Nested::Pattern(Arc::new(PullPattern::parse_nested(v, db)?)),
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
    ///
    /// A pattern nested deeper than [`MAX_PATTERN_DEPTH`] is an error: parsing recurses once
    /// per nested pattern, and must not overflow a small thread stack.
    pub fn parse(pattern: &Edn, db: &Db) -> Result<PullPattern> {
        let depth = crate::value::edn_depth(pattern);
        if depth > MAX_PATTERN_DEPTH {
            let message =
                format!("The pull pattern nests {depth} levels deep, more than the {MAX_PATTERN_DEPTH} a pattern may");
            return Err(Error::Argument(Detail::new(message).with("depth", Edn::Int(depth as i64))));
        }
        PullPattern::parse_nested(pattern, db)
    }

    fn parse_nested(pattern: &Edn, db: &Db) -> Result<PullPattern> {
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

/// The options of an attribute a wildcard reaches without a spec of its own.
fn default_opts() -> &'static Opts {
    static DEFAULTS: OnceLock<Opts> = OnceLock::new();
    DEFAULTS.get_or_init(Opts::default)
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
    Ok(Puller::new(db).pull(pattern, eid)?.map_or(Edn::Nil, Edn::Map))
}

/// Pulls a parsed pattern for resolved entity ids; entities that pull to `nil` are left out.
pub fn pull_many_eids(db: &Db, pattern: &PullPattern, eids: &[Eid]) -> Result<Edn> {
    let puller = Puller::new(db);
    let mut out = Vec::with_capacity(eids.len());
    for &eid in eids {
        if let Some(map) = puller.pull(pattern, eid)? {
            out.push(Edn::Map(map));
        }
    }
    Ok(Edn::Vector(out))
}

/// The key a path entry is recorded under: an attribute key, or (`None`) Datahike's internal
/// `::recursion` marker, which marks an entity seen without counting toward any depth.
type RecKey = Option<Edn>;

/// The recursion record of the current path (Datahike's `:recursion` of a frame): which
/// entities were entered under which key. A nested subpattern starts a new, empty record.
///
/// Entries come and go in stack order as the walk enters and leaves entities, so the record
/// keeps counts rather than the path itself: whether an entity is on the path and how deep an
/// attribute has recursed are answered in constant time, however long the path.
#[derive(Default)]
struct Rec {
    /// How often each entity is on the path.
    seen: HashMap<Eid, u32>,
    /// How often each attribute key is on the path: the recursion depth of that key. The
    /// keys come from the pattern, so there are few.
    depths: Vec<(Edn, u64)>,
}

impl Rec {
    fn seen(&self, eid: Eid) -> bool {
        self.seen.contains_key(&eid)
    }

    fn depth(&self, key: &Edn) -> u64 {
        self.depths.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n)
    }

    fn push(&mut self, key: &RecKey, eid: Eid) {
        *self.seen.entry(eid).or_insert(0) += 1;
        if let Some(key) = key {
            match self.depths.iter_mut().find(|(k, _)| k == key) {
                Some((_, n)) => *n += 1,
                None => self.depths.push((key.clone(), 1)),
            }
        }
    }

    /// Undoes the matching [`Rec::push`].
    fn pop(&mut self, key: &RecKey, eid: Eid) {
        if let Some(n) = self.seen.get_mut(&eid) {
            *n -= 1;
            if *n == 0 {
                self.seen.remove(&eid);
            }
        }
        if let Some(key) = key {
            if let Some((_, n)) = self.depths.iter_mut().find(|(k, _)| k == key) {
                *n -= 1;
            }
        }
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

/// Datahike's pattern frame: one entity being pulled with one pattern.
struct Frame<'p> {
    pattern: &'p PullPattern,
    eid: Eid,
    kvps: Map,
    cursor: Cursor,
    /// The recursion record this frame reads and records into: an index into the walk's
    /// stack of records.
    rec: usize,
    /// Whether the frame opened `rec` itself (a nested subpattern), to drop when it closes.
    own_rec: bool,
    /// The path entry the frame recorded when it opened (a wildcard frame opened under a key),
    /// to undo when it closes.
    entered: Option<RecKey>,
    /// The attribute whose referenced entities are being pulled, if any.
    attr: Option<AttrWalk<'p>>,
}

/// Where a frame is in its pattern.
enum Cursor {
    /// The next attribute spec of a pattern without wildcard.
    Spec(usize),
    /// The wildcard expansion: the entity's datoms and where the next attribute starts.
    Wildcard { datoms: Vec<Datom>, next: usize },
    /// A wildcard frame waiting for its reverse specs, pulled as a frame of their own.
    Reverse,
    /// Nothing left but to close.
    Done,
}

/// The entities one attribute refers to, being pulled one after the other.
struct AttrWalk<'p> {
    /// The key the values go under.
    key: Edn,
    multi: bool,
    eids: Vec<Eid>,
    next: usize,
    results: Vec<Edn>,
    follow: Follow<'p>,
    /// The entity a recursion step recorded before pulling it, to undo once it is pulled.
    entered: Option<Eid>,
}

/// How the entities an attribute refers to are pulled.
#[derive(Clone, Copy)]
enum Follow<'p> {
    /// A subpattern, with a new recursion record.
    Pattern(&'p PullPattern),
    /// The frame's own pattern again (`...` or a depth).
    Recursion,
    /// A component without subpattern: `[*]`, with the parent recorded on the path.
    Component,
}

/// What the walk does next.
enum Step<'p> {
    /// Pull `pattern` for `eid` and hand the result back to the current frame.
    Enter { pattern: &'p PullPattern, eid: Eid, new_rec: bool, key: Option<RecKey> },
    /// The current frame is complete.
    Close(Option<Map>),
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

    /// Pulls `pattern` for one entity. The walk keeps its frames on a heap stack rather than
    /// recursing, so a pull follows a chain of any length in constant native stack; each
    /// entity costs its datoms plus constant work for the recursion bookkeeping.
    fn pull<'p>(&self, pattern: &'p PullPattern, eid: Eid) -> Result<Option<Map>> {
        let mut recs = vec![Rec::default()];
        let mut frames: Vec<Frame<'p>> = Vec::new();
        let mut opened = Some(self.open(pattern, eid, &mut recs, 0, false, None)?);
        loop {
            // Either a frame to run, or a result for the frame below (or for the caller).
            let result = match opened.take() {
                Some(Ok(frame)) => {
                    frames.push(frame);
                    None
                }
                Some(Err(result)) => Some(result),
                None => None,
            };
            if let Some(result) = result {
                let Some(parent) = frames.last_mut() else { return Ok(result) };
                self.deliver(parent, result, &mut recs);
                continue;
            }
            let Some(frame) = frames.last_mut() else { return Ok(None) };
            match self.advance(frame, &mut recs)? {
                Step::Enter { pattern, eid, new_rec, key } => {
                    let rec = frame.rec;
                    opened = Some(self.open(pattern, eid, &mut recs, rec, new_rec, key)?);
                }
                Step::Close(result) => {
                    let frame = frames.pop().expect("the current frame is on the stack");
                    if let Some(key) = &frame.entered {
                        recs[frame.rec].pop(key, frame.eid);
                    }
                    if frame.own_rec {
                        recs.pop();
                    }
                    opened = Some(Err(result));
                }
            }
        }
    }

    /// Opens a frame for `pattern` and `eid` under record `rec` (or a new record), or answers
    /// at once (`Err`) when a wildcard frame finds the entity already on the path.
    fn open<'p>(
        &self,
        pattern: &'p PullPattern,
        eid: Eid,
        recs: &mut Vec<Rec>,
        rec: usize,
        new_rec: bool,
        key: Option<RecKey>,
    ) -> Result<std::result::Result<Frame<'p>, Option<Map>>> {
        let rec = if new_rec {
            recs.push(Rec::default());
            recs.len() - 1
        } else {
            rec
        };
        let mut frame = Frame {
            pattern,
            eid,
            kvps: Map::new(),
            cursor: Cursor::Spec(0),
            rec,
            own_rec: new_rec,
            entered: None,
            attr: None,
        };
        if pattern.wildcard {
            // An entity entered by recursion (`[* {:child ...}]`) was checked against the path
            // and put on it by its attribute's walk.
            let by_recursion = matches!(key, Some(None));
            if !by_recursion && recs[rec].seen(eid) {
                if new_rec {
                    recs.pop();
                }
                return Ok(Err(Some(vec![(self.db_id.clone(), Edn::Int(eid))])));
            }
            if let Some(key) = key.filter(|_| !by_recursion) {
                // A subpattern (`{:father [* {:father 1}]}`) starts its own record: the entity
                // is on its path, but no depth of the attribute that led here is spent yet.
                let key = if new_rec { None } else { key };
                recs[rec].push(&key, eid);
                frame.entered = Some(key);
            }
            let range = DatomKey { e: Some(eid), ..Default::default() };
            let datoms: std::result::Result<Vec<Datom>, _> =
                self.db.index(IndexOrder::Eavt).range(&range, &range).collect();
            frame.kvps.reserve(12);
            frame.kvps.push((self.db_id.clone(), Edn::Int(eid)));
            frame.cursor = Cursor::Wildcard { datoms: datoms?, next: 0 };
        }
        Ok(Ok(frame))
    }

    /// Hands the result of a frame to the frame that entered it.
    fn deliver(&self, parent: &mut Frame<'_>, result: Option<Map>, recs: &mut [Rec]) {
        match &mut parent.attr {
            Some(walk) => {
                if let Some(eid) = walk.entered.take() {
                    recs[parent.rec].pop(&Some(walk.key.clone()), eid);
                }
                walk.results.extend(result.map(Edn::Map));
            }
            // The reverse specs of a wildcard frame.
            None => {
                for (k, v) in result.into_iter().flatten() {
                    assoc(&mut parent.kvps, k, v);
                }
            }
        }
    }

    /// Runs a frame until it needs another entity pulled or is complete.
    fn advance<'p>(&self, frame: &mut Frame<'p>, recs: &mut [Rec]) -> Result<Step<'p>> {
        loop {
            if let Some(walk) = &mut frame.attr {
                if let Some(&e) = walk.eids.get(walk.next) {
                    walk.next += 1;
                    let key = Some(walk.key.clone());
                    return Ok(match walk.follow {
                        Follow::Pattern(sub) => Step::Enter { pattern: sub, eid: e, new_rec: true, key: Some(key) },
                        Follow::Component => {
                            Step::Enter { pattern: wildcard_pattern(), eid: e, new_rec: false, key: Some(key) }
                        }
                        Follow::Recursion => {
                            let rec = &mut recs[frame.rec];
                            if rec.seen(e) {
                                walk.results.push(db_id_map(&self.db_id, e));
                                continue;
                            }
                            rec.push(&key, e);
                            walk.entered = Some(e);
                            Step::Enter { pattern: frame.pattern, eid: e, new_rec: false, key: Some(None) }
                        }
                    });
                }
                let walk = frame.attr.take().expect("the walk is there");
                if let Follow::Component = walk.follow {
                    recs[frame.rec].pop(&Some(walk.key.clone()), frame.eid);
                }
                if walk.multi {
                    assoc(&mut frame.kvps, walk.key, Edn::Vector(walk.results));
                } else if let Some(first) = walk.results.into_iter().next() {
                    assoc(&mut frame.kvps, walk.key, first);
                }
                continue;
            }
            match &mut frame.cursor {
                Cursor::Spec(i) => {
                    let Some(spec) = frame.pattern.specs.get(*i) else {
                        frame.cursor = Cursor::Done;
                        let kvps = std::mem::take(&mut frame.kvps);
                        return Ok(Step::Close(if kvps.is_empty() { None } else { Some(kvps) }));
                    };
                    *i += 1;
                    self.spec(frame, spec, recs)?;
                }
                Cursor::Wildcard { datoms, next } => {
                    let start = *next;
                    let Some(first) = datoms.get(start) else {
                        frame.cursor = Cursor::Reverse;
                        if let Some(reverse) = &frame.pattern.reverse_only {
                            let (pattern, eid) = (&**reverse, frame.eid);
                            return Ok(Step::Enter { pattern, eid, new_rec: true, key: None });
                        }
                        continue;
                    };
                    let a = first.a;
                    let end = datoms[start..].iter().position(|d| d.a != a).map_or(datoms.len(), |n| start + n);
                    *next = end;
                    let group = std::mem::take(datoms);
                    let pattern: &'p PullPattern = frame.pattern;
                    let opts: &'p Opts = match pattern.forward_spec(a) {
                        Some(spec) => &spec.opts,
                        None => default_opts(),
                    };
                    let limited = opts.limit.map_or(end, |n| end.min(start.saturating_add(n)));
                    let result = self.attr_datoms(frame, &Edn::Keyword(a), a, true, &group[start..limited], opts, recs);
                    if let Cursor::Wildcard { datoms, .. } = &mut frame.cursor {
                        *datoms = group;
                    }
                    result?;
                }
                Cursor::Reverse => {
                    frame.cursor = Cursor::Done;
                    return Ok(Step::Close(Some(std::mem::take(&mut frame.kvps))));
                }
                Cursor::Done => return Ok(Step::Close(None)),
            }
        }
    }

    /// One attribute spec of a pattern without wildcard.
    fn spec<'p>(&self, frame: &mut Frame<'p>, spec: &'p AttrSpec, recs: &mut [Rec]) -> Result<()> {
        let eid = frame.eid;
        match spec.target {
            Target::DbId => {
                if self.has_datoms(eid)? {
                    assoc(&mut frame.kvps, self.db_id.clone(), Edn::Int(eid));
                }
            }
            Target::Forward(a) => {
                let key = DatomKey { e: Some(eid), a: Some(a), ..Default::default() };
                let datoms = self.datoms(IndexOrder::Eavt, &key, spec.opts.limit)?;
                self.attr_datoms(frame, &spec.key, a, true, &datoms, &spec.opts, recs)?;
            }
            Target::Reverse(a) => {
                let key = DatomKey { a: Some(a), v: Some(Value::Long(eid)), ..Default::default() };
                let datoms = if self.db.schema().is_indexed(a) {
                    self.datoms(IndexOrder::Avet, &key, spec.opts.limit)?
                } else {
                    Vec::new()
                };
                self.attr_datoms(frame, &spec.key, a, false, &datoms, &spec.opts, recs)?;
            }
            Target::Nothing => {
                if let Some(default) = &spec.opts.default {
                    let key = spec.opts.as_key.clone().unwrap_or_else(|| spec.key.clone());
                    assoc(&mut frame.kvps, key, default.clone());
                }
            }
        }
        Ok(())
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
    /// the entry `attr_key` of the frame's map, at once, or by starting a walk over the
    /// entities they refer to (`frame.attr`) whose results the walk puts there.
    #[allow(clippy::too_many_arguments)]
    fn attr_datoms<'p>(
        &self,
        frame: &mut Frame<'p>,
        attr_key: &Edn,
        a: Keyword,
        forward: bool,
        datoms: &[Datom],
        opts: &'p Opts,
        recs: &mut [Rec],
    ) -> Result<()> {
        let key = opts.as_key.as_ref().unwrap_or(attr_key);
        let kvps = &mut frame.kvps;
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
        let follow = match &opts.nested {
            Nested::Pattern(sub) => Follow::Pattern(sub),
            Nested::Recursion(_) => {
                let depth = recs[frame.rec].depth(key);
                if frame.pattern.recursion_limit(key) == Some(depth) {
                    return Ok(());
                }
                Follow::Recursion
            }
            Nested::None if component && forward => Follow::Component,
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
        let eids = eids()?;
        if let Follow::Component = follow {
            // The component's parent is on the path while its components are pulled.
            recs[frame.rec].push(&Some(key.clone()), frame.eid);
        }
        frame.attr =
            Some(AttrWalk { key: key.clone(), multi, eids, next: 0, results: Vec::new(), follow, entered: None });
        Ok(())
    }
}
