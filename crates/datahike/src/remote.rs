//! The client of Datahike's HTTP server, for `:writer {:backend :datahike-server ...}`
//! (writes go to the server, reads stay local on the shared store) and `:remote-peer`
//! (every call goes to the server). Requests are EDN: the body is the vector of the
//! operation's arguments, as Datahike's client sends them; GET for pure operations (with a
//! body, as Datahike's client does), POST for the rest.

use crate::config::{Config, RemoteSpec};
use crate::datom::Datom;
use crate::edn::{pr_str, read_str};
use crate::error::{Error, Result};
use crate::{Conn, Db, Edn, TxReport, Value};
use std::time::{Duration, Instant};

/// The largest response read (a query result can be large).
const MAX_RESPONSE: u64 = 1 << 30;

/// How long a remote writer's client waits to see its acknowledged transaction in the
/// shared store before it reports an error.
const CATCH_UP: Duration = Duration::from_secs(30);

/// The config a server is sent: the caller's own, writable, without the keys that route
/// calls (the server would otherwise forward them again), with `:initial-tx`.
pub(crate) fn wire_config(config: &Config) -> Edn {
    let plain = Config { read_only: false, writer: None, remote_peer: None, ..config.clone() };
    let mut edn = plain.to_edn();
    if let (Edn::Map(entries), Some(tx)) = (&mut edn, &config.initial_tx) {
        entries.push((Edn::kw("initial-tx"), tx.clone()));
    }
    edn
}

/// Calls `route` on the server with `args`; the server's error body becomes
/// [`Error::Remote`] with its code and message.
#[cfg(feature = "remote")]
pub fn call(spec: &RemoteSpec, route: &str, get: bool, args: &[Edn]) -> Result<Edn> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("{}{route}", spec.url);
    let body = pr_str(&Edn::Vector(args.to_vec()));
    let failed = |e: ureq::Error| Error::Remote {
        status: 0,
        message: format!("the server {} did not answer {route}: {e}", spec.url),
        data: code_data("remote/unreachable"),
    };
    let auth = spec.token.as_ref().map(|t| format!("token {t}"));
    let mut response = if get {
        let mut request = agent.get(&url).header("Content-Type", "application/edn").header("Accept", "application/edn");
        if let Some(auth) = &auth {
            request = request.header("Authorization", auth);
        }
        request.force_send_body().send(body.as_bytes()).map_err(failed)?
    } else {
        let mut request =
            agent.post(&url).header("Content-Type", "application/edn").header("Accept", "application/edn");
        if let Some(auth) = &auth {
            request = request.header("Authorization", auth);
        }
        request.send(body.as_bytes()).map_err(failed)?
    };
    let status = response.status().as_u16();
    let bytes = response.body_mut().with_config().limit(MAX_RESPONSE).read_to_vec().map_err(failed)?;
    let text = String::from_utf8_lossy(&bytes);
    let value = if text.trim().is_empty() { Ok(Edn::Nil) } else { read_str(&text) };
    if (200..300).contains(&status) {
        return value.map_err(|e| Error::Remote {
            status,
            message: format!("the server {} answered {route} with what is not EDN: {e}", spec.url),
            data: code_data("remote/response"),
        });
    }
    // Datahike's error body: {:msg "..." :ex-data {:error code ...}}.
    let (message, data) = match &value {
        Ok(body) => (
            match body.get_kw("msg") {
                Some(Edn::Str(s)) => s.to_string(),
                _ => text.trim().to_string(),
            },
            body.get_kw("ex-data").cloned().unwrap_or_else(|| code_data("remote/error")),
        ),
        Err(_) => (text.trim().to_string(), code_data("remote/error")),
    };
    Err(Error::Remote { status, message, data })
}

/// `{:error code}`.
fn code_data(code: &str) -> Edn {
    Edn::Map(vec![(Edn::kw("error"), Edn::kw(code))])
}

/// Without the `remote` feature there is no client.
#[cfg(not(feature = "remote"))]
pub fn call(spec: &RemoteSpec, route: &str, _get: bool, _args: &[Edn]) -> Result<Edn> {
    Err(Error::Config(format!(
        "{route} would go to the server {}, but this build has no HTTP client: enable the `remote` feature of the datahike crate",
        spec.url
    )))
}

/// A datom of a report the server sent, `#datahike/Datom [e a v tx added]`, read against
/// `db` (which names attributes that come as ids).
fn datom_of(db: &Db, edn: &Edn) -> Option<Datom> {
    let items = match edn {
        Edn::Tagged(_, inner) => inner.as_seq()?,
        other => other.as_seq()?,
    };
    let [e, a, v, tx, rest @ ..] = items else { return None };
    let attr = match a {
        Edn::Keyword(k) => *k,
        Edn::Int(id) => db.schema().eid_ident(*id)?,
        _ => return None,
    };
    let added = !matches!(rest.first(), Some(Edn::Bool(false)));
    Some(Datom::new(int(e)?, attr, Value::from_edn(v)?, int(tx)?, added))
}

impl Conn {
    /// A transaction sent to the remote writer: the server commits it, then this connection
    /// reads the shared store until it sees it, and reports it against the local values.
    pub(crate) fn transact_remote(&self, spec: &RemoteSpec, tx_data: &Edn, tx_meta: Option<&Edn>) -> Result<TxReport> {
        let before = self.db();
        let arg = match tx_meta {
            Some(meta) => Edn::Map(vec![(Edn::kw("tx-data"), tx_data.clone()), (Edn::kw("tx-meta"), meta.clone())]),
            None => tx_data.clone(),
        };
        let report = call(spec, "/transact!-writer", false, &[wire_config(self.config()), arg])?;
        let tx = report.get_kw("tempids").and_then(|t| t.get_kw("db/current-tx")).and_then(int).ok_or_else(|| {
            Error::Remote {
                status: 200,
                message: format!(
                    "the server's transaction report has no :db/current-tx: {}",
                    crate::edn::pr_str_short(&report, 200)
                ),
                data: code_data("remote/response"),
            }
        })?;
        let started = Instant::now();
        let after = loop {
            let db = self.latest()?;
            if db.max_tx() >= tx {
                break db;
            }
            if started.elapsed() > CATCH_UP {
                return Err(Error::Database(format!(
                    "the server acknowledged transaction {tx}, but the shared store {} still ends at {} after {}s: does the server write the same store?",
                    pr_str(&self.config().store.to_edn()),
                    db.max_tx(),
                    CATCH_UP.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let tx_data = report
            .get_kw("tx-data")
            .and_then(Edn::as_seq)
            .unwrap_or(&[])
            .iter()
            .filter_map(|d| datom_of(&after, d))
            .collect();
        let entries = |key: &str| match report.get_kw(key) {
            Some(Edn::Map(m)) => m.clone(),
            _ => Vec::new(),
        };
        Ok(TxReport {
            db_before: before,
            db_after: after,
            tx_data,
            tempids: entries("tempids").into_iter().filter_map(|(k, v)| Some((k, int(&v)?))).collect(),
            tx_meta: entries("tx-meta").into_iter().filter_map(|(k, v)| Some((k.as_keyword()?, v))).collect(),
        })
    }
}

fn int(edn: &Edn) -> Option<i64> {
    match edn {
        Edn::Int(i) => Some(*i),
        _ => None,
    }
}
