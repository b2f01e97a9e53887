//! Command arguments: the prefixes of Datahike's `dthk` (`conn:FILE`, `db:FILE`, `edn:FILE`,
//! `json:FILE`, `cbor:FILE`, and the temporal `history:`, `since:MILLIS:`, `asof:MILLIS:`),
//! tried in that order, else the text itself read as EDN.

use crate::log;
pub use datahike::api::{redacted_text, Arg};
use datahike::edn::json;
use datahike::edn::{pr_str, read_str};
use datahike::{Config, Conn, Edn, TimePoint};

/// Why an argument could not be made.
#[derive(Debug)]
pub enum InputError {
    /// A file that cannot be read, bad data, or a database that cannot be opened.
    Failed(String),
}

impl From<datahike::Error> for InputError {
    fn from(e: datahike::Error) -> Self {
        InputError::Failed(e.to_string())
    }
}

fn read_file(path: &str) -> Result<Vec<u8>, InputError> {
    std::fs::read(path).map_err(|e| InputError::Failed(format!("cannot read file {path}: {e}")))
}

fn read_text_file(path: &str) -> Result<String, InputError> {
    String::from_utf8(read_file(path)?).map_err(|_| InputError::Failed(format!("file {path} is not UTF-8 text")))
}

/// EDN text from a file, or an error naming the file, line and column.
pub fn read_edn_file(path: &str) -> Result<Edn, InputError> {
    read_edn_text(&read_text_file(path)?, path)
}

/// EDN text from `origin` (a file name, `standard input`...), or an error naming it.
pub fn read_edn_text(text: &str, origin: &str) -> Result<Edn, InputError> {
    read_str(text).map_err(|e| {
        InputError::Failed(format!("{origin} is not valid EDN: error at {}:{}: {}", e.line(), e.column(), e.message()))
    })
}

fn config_file(path: &str) -> Result<Config, InputError> {
    let edn = read_edn_file(path)?;
    if matches!(edn, Edn::Map(_)) && edn.get_kw("store").is_none() {
        return Err(InputError::Failed(format!(
            "config file {path} has no :store: its database would live in memory and vanish when dthk exits; add :store {{:backend :file :path \"...\"}} (or {{:backend :memory}} to mean it)"
        )));
    }
    Config::from_edn(&edn).map_err(|e| InputError::Failed(format!("config file {path}: {e}")))
}

/// Connects with the config in `path`.
pub fn connect(path: &str) -> Result<Conn, InputError> {
    let config = config_file(path)?;
    log::info(&format!("connecting to {}", pr_str(&config.store.to_edn())));
    Ok(datahike::connect(&config)?)
}

/// Connects read-only with the config in `path`, for the database values of `db:`,
/// `history:`, `since:` and `asof:`: reading commands never write the store (no lock, no
/// flush), so they work on read-only storage and beside a writer in another process.
fn connect_reader(path: &str) -> Result<Conn, InputError> {
    let config = Config { read_only: true, ..config_file(path)? };
    log::info(&format!("connecting read-only to {}", pr_str(&config.store.to_edn())));
    Ok(datahike::connect(&config)?)
}

/// The argument as data for a server, when it names a database whose config has
/// `:remote-peer`: the config map (`conn:`, `db:`), or a history, as-of or since handle
/// around it. `None` for every other argument.
pub fn remote_form(text: &str) -> Result<Option<Edn>, InputError> {
    let tagged = |tag: &str, config: Edn, point: Option<i64>| {
        let mut m = vec![(Edn::kw("origin"), config)];
        if let Some(ms) = point {
            m.push((Edn::kw("time-point"), Edn::Inst(ms)));
        }
        Edn::Tagged(datahike::Symbol::new(tag), Box::new(Edn::Map(m)))
    };
    let remote = |path: &str| -> Result<Option<Edn>, InputError> {
        let edn = read_edn_file(path)?;
        Ok(edn.get_kw("remote-peer").filter(|p| !matches!(p, Edn::Nil)).map(|_| edn.clone()))
    };
    for prefix in ["conn:", "db:", "edn:"] {
        if let Some(path) = non_empty(text.strip_prefix(prefix)) {
            return remote(path);
        }
    }
    if let Some(path) = non_empty(text.strip_prefix("history:")) {
        return Ok(remote(path)?.map(|c| tagged("datahike/HistoricalDB", c, None)));
    }
    for (prefix, tag) in [("since:", "datahike/SinceDB"), ("asof:", "datahike/AsOfDB")] {
        let Some((millis, path)) = text.strip_prefix(prefix).and_then(|rest| rest.split_once(':')) else { continue };
        let Ok(ms) = millis.parse::<i64>() else { continue };
        if !path.is_empty() {
            return Ok(remote(path)?.map(|c| tagged(tag, c, Some(ms))));
        }
    }
    // An inline config map.
    Ok(read_str(text).ok().filter(|edn| edn.get_kw("remote-peer").is_some_and(|p| !matches!(p, Edn::Nil))))
}

/// A prefixed or plain argument.
pub fn parse(text: &str) -> Result<Arg, InputError> {
    if let Some(path) = non_empty(text.strip_prefix("conn:")) {
        return Ok(Arg::Conn(connect(path)?));
    }
    if let Some(path) = non_empty(text.strip_prefix("db:")) {
        return Ok(Arg::Db(connect_reader(path)?.db()));
    }
    if let Some(path) = non_empty(text.strip_prefix("history:")) {
        return Ok(Arg::Db(connect_reader(path)?.db().history()?));
    }
    for prefix in ["since:", "asof:"] {
        // Datahike's `since:MILLIS:FILE` and `asof:MILLIS:FILE`: epoch milliseconds, compared
        // with `:db/txInstant` (as-of inclusive, since exclusive).
        let Some((millis, path)) = text.strip_prefix(prefix).and_then(|rest| rest.split_once(':')) else { continue };
        if millis.is_empty() || path.is_empty() {
            continue;
        }
        let ms: i64 = millis.parse().map_err(|_| {
            InputError::Failed(format!(
                "argument {text:?}: {millis:?} is not a time in epoch milliseconds (expected {prefix}MILLIS:FILE)"
            ))
        })?;
        let db = connect_reader(path)?.db();
        let t = TimePoint::Instant(ms);
        return Ok(Arg::Db(if prefix == "since:" { db.since(t)? } else { db.as_of(t)? }));
    }
    if let Some(path) = non_empty(text.strip_prefix("cbor:")) {
        let bytes = read_file(path)?;
        return datahike::cbor::edn_from_cbor(&bytes)
            .map(Arg::Data)
            .map_err(|e| InputError::Failed(format!("cbor:{path}: {e}")));
    }
    if let Some(path) = non_empty(text.strip_prefix("edn:")) {
        return Ok(Arg::Data(read_edn_file(path)?));
    }
    if let Some(path) = non_empty(text.strip_prefix("json:")) {
        let text = read_text_file(path)?;
        return json::from_tagged_json(&text)
            .map(Arg::Data)
            .map_err(|e| InputError::Failed(format!("json:{path}: {e}")));
    }
    Ok(match read_str(text) {
        Ok(edn) => Arg::Data(edn),
        Err(error) => Arg::Text { text: text.to_string(), error },
    })
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}
