//! Python arguments to the [`Edn`] arguments of an operation, by the parameter types of the
//! arity they fill, with Datahike's binding conventions: configs as EDN strings or dicts;
//! databases as a config with an `input_format`, or as an input tuple `('db', cfg)`,
//! `('history', cfg)`, `('asof:MS', cfg)`, `('since:MS', cfg)`, `('branch:NAME', cfg)`,
//! `('commit:UUID', cfg)`; query inputs also `('edn', text)` (alias `'param'`),
//! `('json', text)`, `('cbor', bytes)` or plain Python values; transaction data as EDN,
//! JSON (read against the schema, as Datahike's JSON is) or CBOR text, or Python values.

use crate::convert::{keyword, to_edn, Mode};
use datahike::api::{json_tx, Connections, Op, Param, Returns, OPS};
use datahike::edn::{json, read_str};
use datahike::{Detail, Edn, Error, Symbol};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

/// A failed conversion: a Python error (a value with no EDN form) or the library's (bad
/// EDN text, a bad input format), raised as `DatahikeException`.
pub enum ShapeError {
    Python(PyErr),
    Datahike(Error),
}

impl From<PyErr> for ShapeError {
    fn from(e: PyErr) -> ShapeError {
        ShapeError::Python(e)
    }
}

impl From<Error> for ShapeError {
    fn from(e: Error) -> ShapeError {
        ShapeError::Datahike(e)
    }
}

impl From<datahike::edn::EdnError> for ShapeError {
    fn from(e: datahike::edn::EdnError) -> ShapeError {
        ShapeError::Datahike(e.into())
    }
}

type Shaped<T> = Result<T, ShapeError>;

fn argument(message: String) -> ShapeError {
    ShapeError::Datahike(Error::Argument(Detail::new(message)))
}

/// An argument ready for `api::call`, or one that needs the store to be built (so it is
/// built with the GIL released).
pub enum Slot {
    /// Data or a database named by a config map or a handle.
    Ready(Edn),
    /// The database at a commit of the database of a config.
    Commit { config: Edn, id: uuid::Uuid },
    /// Transaction data read from JSON: keywords restored by the schema of the database of
    /// the first argument.
    JsonTx(Edn),
}

/// The implemented operations by Python name, `dthk` name and `datahike.api` name.
static BY_NAME: LazyLock<HashMap<String, &'static Op>> = LazyLock::new(|| {
    let mut names = HashMap::new();
    for op in OPS.iter().filter(|op| op.run.is_some()) {
        for name in [python_name(op), op.name.to_string(), op.api.to_string()] {
            names.entry(name).or_insert(op);
        }
    }
    names
});

/// The operation of a Python name, a `dthk` name or a `datahike.api` name.
pub fn find(name: &str) -> Option<&'static Op> {
    BY_NAME.get(name).copied()
}

const PYTHON_KEYWORDS: [&str; 8] = ["with", "import", "from", "as", "in", "is", "not", "and"];

/// The Python function of an operation: its `datahike.api` name without namespace and
/// trailing `?`/`!`, in snake case (`database-exists?` is `database_exists`,
/// `datahike.migrate/export-db` `export_db`); a Python keyword gets a `_` (`with_`).
pub fn python_name(op: &Op) -> String {
    let api = op.api.rsplit('/').next().unwrap_or(op.api);
    let name = api.trim_end_matches(['?', '!']).replace('-', "_");
    if PYTHON_KEYWORDS.contains(&name.as_str()) {
        format!("{name}_")
    } else {
        name
    }
}

/// Why the binding offers no function for `op`, as Datahike's binding excludes these: the
/// binding holds the connections, and a database input names its view instead of a handle.
pub fn excluded(op: &Op) -> Option<&'static str> {
    if op.run.is_none() {
        Some("not implemented in this version of the library")
    } else if matches!(op.returns, Returns::DbHandle | Returns::ConnHandle) || !op.cli {
        Some(
            "a connection or database handle operation: the binding holds its connections; name a view in a database input instead: ('history', cfg), ('asof:MS', cfg), ('since:MS', cfg), ('branch:NAME', cfg), ('commit:UUID', cfg)",
        )
    } else {
        None
    }
}

/// The Python parameters of an arity: one per parameter, three for a range
/// (`attrid`, `start`, `end`, as Datahike's `index_range`).
pub fn slots(op: &Op, params: &[Param]) -> Vec<(&'static str, Param)> {
    let mut out = Vec::new();
    for (i, param) in params.iter().enumerate() {
        let names: &[&'static str] = match param {
            Param::Config | Param::Conn | Param::Db => &["config"],
            Param::TxData | Param::TxVector => &["tx_data"],
            Param::TxMeta => &["tx_meta"],
            Param::Entities => &["entities"],
            Param::Index | Param::IndexArgs => &["index"],
            Param::Components => &["components"],
            Param::RangeArgs => &["attrid", "start", "end"],
            Param::Pattern => &["selector"],
            Param::EntityId | Param::AnyEntityId => &["eid"],
            Param::EntityIds => &["eids"],
            Param::PullArgs => &["pull_args"],
            Param::Query => &["query"],
            Param::QueryInputs => &["inputs"],
            // The branch that `branch!` makes, after the one it starts from.
            Param::Branch if params[..i].contains(&Param::BranchOrCommit) => &["new_branch"],
            Param::Branch => &["branch"],
            Param::BranchOrCommit => &["from_"],
            Param::Parents => &["parents"],
            Param::CommitId => &["commit_id"],
            Param::Instant if op.api == "gc-storage" => &["before_timestamp_ms"],
            Param::Instant => &["instant"],
            Param::Path => &["path"],
            Param::Options => &["options"],
        };
        out.extend(names.iter().map(|n| (*n, *param)));
    }
    out
}

/// The arity that `n` Python arguments fill: all its parameters, or all but a trailing rest
/// parameter.
fn arity(op: &Op, n: usize) -> Option<&'static [Param]> {
    op.arities.iter().copied().find(|params| {
        let count = slots(op, params).len();
        let rest = params.last().is_some_and(|p| p.is_rest());
        n == count || (rest && n + 1 == count)
    })
}

/// The slots of `args` for `op`.
pub fn shape(op: &Op, args: &[Bound<'_, PyAny>], input_format: Option<&str>) -> Shaped<Vec<Slot>> {
    let Some(params) = arity(op, args.len()) else {
        let counts: Vec<String> = op
            .arities
            .iter()
            .map(|p| {
                let n = slots(op, p).len();
                match p.last().is_some_and(|p| p.is_rest()) {
                    true => format!("{} or {n}", n - 1),
                    false => n.to_string(),
                }
            })
            .collect();
        return Err(argument(format!(
            "{} takes {} arguments, got {}",
            python_name(op),
            counts.join(" or "),
            args.len()
        )));
    };
    let takes_tx = params.iter().any(|p| matches!(p, Param::TxData | Param::TxVector | Param::Entities));
    let tx_format = if takes_tx { input_format } else { None };
    let db_format = if takes_tx { None } else { input_format };
    let mut out = Vec::new();
    let mut rest = args.iter();
    for param in params {
        match param {
            Param::RangeArgs => {
                let attrid = rest.next().map_or(Ok(Edn::Nil), |a| attribute(a))?;
                let start = rest.next().map_or(Ok(Edn::Nil), |a| value(a))?;
                let end = rest.next().map_or(Ok(Edn::Nil), |a| value(a))?;
                out.push(Slot::Ready(Edn::Map(vec![
                    (Edn::kw("attrid"), attrid),
                    (Edn::kw("start"), start),
                    (Edn::kw("end"), end),
                ])));
            }
            Param::Components | Param::QueryInputs => {
                let Some(arg) = rest.next() else { continue };
                for item in sequence(arg)? {
                    out.push(match param {
                        Param::QueryInputs => query_input(&item)?,
                        _ => Slot::Ready(value(&item)?),
                    });
                }
            }
            _ => {
                let Some(arg) = rest.next() else { continue };
                out.push(one(*param, arg, db_format, tx_format)?);
            }
        }
    }
    Ok(out)
}

/// The items of a list argument (a tuple or any iterable but text); anything else is one item.
fn sequence<'py>(arg: &Bound<'py, PyAny>) -> Shaped<Vec<Bound<'py, PyAny>>> {
    if arg.is_none() {
        return Ok(Vec::new());
    }
    if let Ok(list) = arg.cast::<PyList>() {
        return Ok(list.iter().collect());
    }
    if arg.is_instance_of::<PyString>() || arg.is_instance_of::<PyBytes>() || arg.is_instance_of::<PyDict>() {
        return Ok(vec![arg.clone()]);
    }
    if let Ok(tuple) = arg.cast::<PyTuple>() {
        // An input tuple `('db', cfg)` given alone is one input.
        if input_kind(tuple).is_some() {
            return Ok(vec![arg.clone()]);
        }
        return Ok(tuple.iter().collect());
    }
    match arg.try_iter() {
        Ok(items) => Ok(items.collect::<PyResult<Vec<_>>>()?),
        Err(_) => Ok(vec![arg.clone()]),
    }
}

/// One argument for a parameter that takes one Python value.
fn one(param: Param, arg: &Bound<'_, PyAny>, db_format: Option<&str>, tx_format: Option<&str>) -> Shaped<Slot> {
    Ok(match param {
        Param::Config => Slot::Ready(config_of(arg)?),
        Param::Conn => Slot::Ready(conn(arg)?),
        Param::Db => database(arg, db_format)?,
        Param::TxData | Param::TxVector | Param::Entities => tx_data(param, arg, tx_format)?,
        Param::TxMeta | Param::Options | Param::PullArgs | Param::IndexArgs | Param::Index => {
            Slot::Ready(match arg.cast::<PyString>() {
                Ok(s) if param == Param::Index || param == Param::IndexArgs => keyword(&s.to_cow()?),
                Ok(s) => read_str(&s.to_cow()?)?,
                Err(_) => to_edn(arg, Mode::Value)?,
            })
        }
        Param::Pattern => Slot::Ready(text_or(arg, Mode::Pattern)?),
        Param::Query => Slot::Ready(text_or(arg, Mode::Query)?),
        Param::EntityId | Param::AnyEntityId => Slot::Ready(entity_id(arg)?),
        Param::EntityIds => Slot::Ready(match arg.cast::<PyString>() {
            Ok(s) => read_str(&s.to_cow()?)?,
            Err(_) => Edn::Vector(sequence(arg)?.iter().map(entity_id).collect::<Shaped<_>>()?),
        }),
        Param::Branch => Slot::Ready(branch(arg)?),
        Param::BranchOrCommit => Slot::Ready(branch_or_commit(arg)?),
        Param::Parents => Slot::Ready(match arg.cast::<PyString>() {
            Ok(s) if s.to_cow()?.starts_with("#{") => read_str(&s.to_cow()?)?,
            _ => Edn::Set(sequence(arg)?.iter().map(branch_or_commit).collect::<Shaped<_>>()?),
        }),
        Param::CommitId => Slot::Ready(commit_id(arg)?),
        Param::Instant => Slot::Ready(match arg.cast::<PyString>() {
            Ok(s) => instant_text(&s.to_cow()?)?,
            Err(_) => to_edn(arg, Mode::Value)?,
        }),
        Param::Path => Slot::Ready(match arg.cast::<PyString>() {
            Ok(s) => Edn::str(&s.to_cow()?),
            Err(_) => Edn::str(&arg.py().import("os")?.call_method1("fspath", (arg,))?.str()?.to_string()),
        }),
        Param::Components | Param::QueryInputs | Param::RangeArgs => {
            return Err(ShapeError::Datahike(Error::Internal(format!("{param:?} takes the rest of the arguments"))))
        }
    })
}

/// EDN text read as such, or Python data converted by `mode`.
fn text_or(arg: &Bound<'_, PyAny>, mode: Mode) -> Shaped<Edn> {
    match arg.cast::<PyString>() {
        Ok(s) => Ok(read_str(&s.to_cow()?)?),
        Err(_) => Ok(to_edn(arg, mode)?),
    }
}

/// A value where Datahike's binding took EDN text (an index component, a range bound, a
/// query parameter): a string in double quotes is read as EDN (`'"Alice"'` is the string
/// `Alice`), any other value converts by the rule for values (`':kw'` a keyword).
fn value(arg: &Bound<'_, PyAny>) -> Shaped<Edn> {
    if let Ok(s) = arg.cast::<PyString>() {
        let s = s.to_cow()?;
        let s: &str = &s;
        if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
            return Ok(read_str(s)?);
        }
    }
    Ok(to_edn(arg, Mode::Value)?)
}

/// An attribute: text with or without the colon, or a keyword helper.
fn attribute(arg: &Bound<'_, PyAny>) -> Shaped<Edn> {
    match arg.cast::<PyString>() {
        Ok(s) => Ok(keyword(&s.to_cow()?)),
        Err(_) => Ok(to_edn(arg, Mode::Value)?),
    }
}

/// An entity id: a number, an ident (`':ident'`), a lookup ref (`[':email', 'a@b.c']` or
/// its EDN text).
fn entity_id(arg: &Bound<'_, PyAny>) -> Shaped<Edn> {
    match arg.cast::<PyString>() {
        Ok(s) => {
            let s = s.to_cow()?;
            let s: &str = &s;
            // Text that is no EDN names no entity, as in Datahike: it stays a string.
            Ok(read_str(s).unwrap_or_else(|_| Edn::str(s)))
        }
        Err(_) => Ok(to_edn(arg, Mode::Value)?),
    }
}

fn branch(arg: &Bound<'_, PyAny>) -> Shaped<Edn> {
    attribute(arg)
}

/// A branch name or a commit id: a `uuid.UUID`, text that is a uuid (or `#uuid "..."`), or
/// else a branch name with or without the colon.
fn branch_or_commit(arg: &Bound<'_, PyAny>) -> Shaped<Edn> {
    match arg.cast::<PyString>() {
        Ok(s) => {
            let s = s.to_cow()?;
            let s: &str = &s;
            if let Ok(id) = s.parse::<uuid::Uuid>() {
                return Ok(Edn::Uuid(id));
            }
            if s.starts_with("#uuid") {
                return Ok(read_str(s)?);
            }
            Ok(keyword(s))
        }
        Err(_) => Ok(to_edn(arg, Mode::Value)?),
    }
}

fn commit_id(arg: &Bound<'_, PyAny>) -> Shaped<Edn> {
    match arg.cast::<PyString>() {
        Ok(s) => {
            let s = s.to_cow()?;
            let s: &str = &s;
            match s.parse::<uuid::Uuid>() {
                Ok(id) => Ok(Edn::Uuid(id)),
                Err(_) => Ok(read_str(s)?),
            }
        }
        Err(_) => Ok(to_edn(arg, Mode::Value)?),
    }
}

/// A point in time given as text: epoch milliseconds, `#inst "..."`, or an ISO 8601 date.
fn instant_text(s: &str) -> Shaped<Edn> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(Edn::Inst(ms));
    }
    if s.starts_with('#') {
        return Ok(read_str(s)?);
    }
    Ok(read_str(&format!("#inst {s:?}"))?)
}

/// A config map: EDN text, a dict (by the rule for values), or the config of an input
/// tuple.
pub fn config_of(arg: &Bound<'_, PyAny>) -> Shaped<Edn> {
    if let Ok(s) = arg.cast::<PyString>() {
        return config_text(&s.to_cow()?);
    }
    if let Ok(tuple) = arg.cast::<PyTuple>() {
        if let Some((_, config)) = input_kind(tuple) {
            return config_of(&config);
        }
    }
    Ok(to_edn(arg, Mode::Value)?)
}

/// Config texts read before: a program names its few databases by the same strings call
/// after call, and reading the text is a good part of a short call.
static CONFIG_TEXTS: LazyLock<Mutex<HashMap<String, Edn>>> = LazyLock::new(Mutex::default);

/// How many config texts [`CONFIG_TEXTS`] keeps before it starts over.
const CONFIG_TEXTS_MAX: usize = 256;

fn config_text(text: &str) -> Shaped<Edn> {
    let mut known = CONFIG_TEXTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(edn) = known.get(text) {
        return Ok(edn.clone());
    }
    let edn = read_str(text)?;
    if known.len() >= CONFIG_TEXTS_MAX {
        known.clear();
    }
    known.insert(text.to_string(), edn.clone());
    Ok(edn)
}

/// The connection argument: a config, or the config of an input tuple, at the branch that a
/// `branch:NAME` tuple names.
fn conn(arg: &Bound<'_, PyAny>) -> Shaped<Edn> {
    if let Ok(tuple) = arg.cast::<PyTuple>() {
        if let Some((kind, config)) = input_kind(tuple) {
            let config = config_of(&config)?;
            return match kind.split_once(':') {
                Some(("branch", name)) => Ok(with_branch(config, name)),
                _ => Ok(config),
            };
        }
    }
    config_of(arg)
}

/// `(kind, value)` of an input tuple whose first element is a known input kind.
fn input_kind<'py>(tuple: &Bound<'py, PyTuple>) -> Option<(String, Bound<'py, PyAny>)> {
    if tuple.len() != 2 {
        return None;
    }
    let kind: String = tuple.get_item(0).ok()?.extract().ok()?;
    let head = kind.split_once(':').map_or(kind.as_str(), |(h, _)| h);
    let known = matches!(
        head,
        "db" | "history" | "since" | "asof" | "as-of" | "branch" | "commit" | "edn" | "param" | "json" | "cbor"
    );
    let value = tuple.get_item(1).ok()?;
    known.then_some((kind, value))
}

fn with_branch(config: Edn, name: &str) -> Edn {
    let branch = keyword(name);
    match &config {
        Edn::Map(entries) => {
            let mut entries: Vec<(Edn, Edn)> =
                entries.iter().filter(|(k, _)| *k != Edn::kw("branch")).cloned().collect();
            entries.push((Edn::kw("branch"), branch));
            Edn::Map(entries)
        }
        _ => config,
    }
}

fn tagged(tag: &str, entries: Vec<(Edn, Edn)>) -> Edn {
    Edn::Tagged(Symbol::new(tag), Box::new(Edn::Map(entries)))
}

/// The database of a config viewed as `kind` says.
fn view(kind: &str, config: Edn) -> Shaped<Slot> {
    let (head, tail) = kind.split_once(':').unwrap_or((kind, ""));
    let at = |tag: &str| -> Shaped<Slot> {
        Ok(Slot::Ready(tagged(
            tag,
            vec![(Edn::kw("origin"), config.clone()), (Edn::kw("time-point"), instant_text(tail)?)],
        )))
    };
    match head {
        "db" if tail.is_empty() => Ok(Slot::Ready(config)),
        "history" if tail.is_empty() => Ok(Slot::Ready(tagged("datahike/HistoricalDB", vec![(Edn::kw("origin"), config)]))),
        "asof" | "as-of" if !tail.is_empty() => at("datahike/AsOfDB"),
        "since" if !tail.is_empty() => at("datahike/SinceDB"),
        "branch" if !tail.is_empty() => Ok(Slot::Ready(with_branch(config, tail))),
        "commit" if !tail.is_empty() => match tail.trim().parse::<uuid::Uuid>() {
            Ok(id) => Ok(Slot::Commit { config, id }),
            Err(e) => Err(argument(format!("input format {kind:?}: {tail:?} is no commit id: {e}"))),
        },
        _ => Err(argument(format!(
            "input format not supported: {kind:?}; expected 'db', 'history', 'asof:MS', 'since:MS', 'branch:NAME' or 'commit:UUID'"
        ))),
    }
}

/// A database argument: an input tuple, or a config viewed as `input_format` says.
fn database(arg: &Bound<'_, PyAny>, input_format: Option<&str>) -> Shaped<Slot> {
    if let Ok(tuple) = arg.cast::<PyTuple>() {
        if let Some((kind, config)) = input_kind(tuple) {
            return view(&kind, config_of(&config)?);
        }
    }
    view(input_format.unwrap_or("db"), config_of(arg)?)
}

/// One query input: an input tuple, or a Python value.
fn query_input(arg: &Bound<'_, PyAny>) -> Shaped<Slot> {
    if let Ok(tuple) = arg.cast::<PyTuple>() {
        if let Some((kind, item)) = input_kind(tuple) {
            return match kind.as_str() {
                "edn" | "param" => Ok(Slot::Ready(text_or(&item, Mode::Value)?)),
                "json" => Ok(Slot::Ready(json_text(&item)?)),
                "cbor" => Ok(Slot::Ready(cbor(&item)?)),
                _ => view(&kind, config_of(&item)?),
            };
        }
    }
    Ok(Slot::Ready(value(arg)?))
}

fn json_text(arg: &Bound<'_, PyAny>) -> Shaped<Edn> {
    match arg.cast::<PyString>() {
        Ok(s) => Ok(json::from_tagged_json(&s.to_cow()?)?),
        Err(_) => Ok(to_edn(arg, Mode::Value)?),
    }
}

/// CBOR: bytes, or text holding their base64 (as Datahike's binding hands CBOR out).
fn cbor(arg: &Bound<'_, PyAny>) -> Shaped<Edn> {
    let bytes: Vec<u8> = match arg.cast::<PyBytes>() {
        Ok(b) => b.as_bytes().to_vec(),
        Err(_) => {
            let base64 = arg.py().import("base64")?;
            base64.call_method1("b64decode", (arg,))?.extract()?
        }
    };
    datahike::cbor::edn_from_cbor(&bytes).map_err(|e| argument(format!("the CBOR input does not decode: {e}")))
}

/// Transaction data. Text is read as `input_format` says (`json`, `edn`, `cbor`; without
/// one: JSON when it parses as JSON, else EDN); Python values convert by the rule for values.
/// JSON and Python values (unless `input_format` is `edn`) are then read against the
/// database's schema as Datahike reads JSON: strings become keywords, uuids, lookup refs
/// where the attribute's type says so. One entity map alone is a transaction of one.
fn tx_data(param: Param, arg: &Bound<'_, PyAny>, input_format: Option<&str>) -> Shaped<Slot> {
    let is_text = arg.is_instance_of::<PyString>() || arg.is_instance_of::<PyBytes>();
    let (edn, from_json) = match (input_format, is_text) {
        (Some("edn"), true) => (text_or(arg, Mode::Value)?, false),
        (Some("json"), true) => (json_text(arg)?, true),
        (Some("cbor"), true) => (cbor(arg)?, false),
        (None, true) => match arg.cast::<PyString>() {
            Ok(s) => match json::from_tagged_json(&s.to_cow()?) {
                Ok(edn) => (edn, true),
                Err(_) => (read_str(&s.to_cow()?)?, false),
            },
            Err(_) => (cbor(arg)?, false),
        },
        (Some("edn"), false) => (to_edn(arg, Mode::Value)?, false),
        (None | Some("json" | "cbor"), false) => (to_edn(arg, Mode::Value)?, true),
        (Some(other), _) => {
            return Err(argument(format!(
                "input format not supported for transaction data: {other:?}; expected 'json', 'edn' or 'cbor'"
            )))
        }
    };
    // A single entity map (no :tx-data key) is a transaction of one entity.
    let edn = match edn {
        Edn::Map(_) if param == Param::TxVector || edn.get_kw("tx-data").is_none() => Edn::Vector(vec![edn]),
        other => other,
    };
    Ok(if from_json && param != Param::Entities { Slot::JsonTx(edn) } else { Slot::Ready(edn) })
}

/// The [`Edn`] arguments of `slots`: commits looked up and JSON transaction data read
/// against the schema of the database of the first argument.
pub fn resolve(slots: Vec<Slot>, connections: &Connections) -> Result<Vec<Edn>, Error> {
    let mut out: Vec<Edn> = Vec::with_capacity(slots.len());
    for slot in slots {
        let edn = match slot {
            Slot::Ready(edn) => edn,
            Slot::Commit { config, id } => {
                // A handle `{:store-id .. :commit-id ..}` of the open connection: the
                // connections resolve it to the database at that commit.
                connections.conn_of(&config)?;
                let store_id = datahike::Config::from_edn(&config)?.store_id();
                Edn::Map(vec![(Edn::kw("store-id"), store_id), (Edn::kw("commit-id"), Edn::Uuid(id))])
            }
            Slot::JsonTx(edn) => match out.first() {
                Some(first) => json_tx::tx_data(&connections.db_of(first)?, &edn),
                None => edn,
            },
        };
        out.push(edn);
    }
    Ok(out)
}
