//! Operations called with plain data, as the HTTP server and the language bindings call them:
//! a database or connection argument is a config map, or a handle that an earlier call
//! returned (`#datahike/DB {:store-id ..}`, `#datahike/Connection {..}`, the history, as-of
//! and since handles). [`Connections`] keeps one connection per database open and turns
//! those into [`Arg`]s; [`call`] validates the arguments against the operation's arities and
//! runs it.

use super::{Arg, Context, Op, Param};
use crate::edn::pr_str;
use crate::{Config, Conn, Db, Detail, Edn, Error, Result, TimePoint};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// The connections a server (or a binding) holds open, one per database (store and branch),
/// keyed by the database's `:store-id`. Connections here write: the holder is the single
/// writer of these databases.
#[derive(Default)]
pub struct Connections {
    open: Mutex<HashMap<String, Conn>>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Connections").field("open", &open.keys().collect::<Vec<_>>()).finish()
    }
}

/// The keys a client's config carries for itself and a server must not act on again.
const CLIENT_KEYS: [&str; 2] = ["writer", "remote-peer"];

/// `edn` without the keys that send calls elsewhere (`:writer`, `:remote-peer`): the server
/// runs what a client forwarded, it does not forward it again.
pub fn strip_client_keys(edn: &Edn) -> Edn {
    match edn {
        Edn::Map(entries) => Edn::Map(
            entries
                .iter()
                .filter(|(k, _)| !k.as_keyword().is_some_and(|k| CLIENT_KEYS.contains(&k.as_str())))
                .cloned()
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Whether `edn` names a database: a config map (it has `:store`), a handle's map (it has
/// `:store-id`) or a tagged handle.
fn names_database(edn: &Edn) -> bool {
    match edn {
        Edn::Map(_) => edn.get_kw("store").is_some() || edn.get_kw("store-id").is_some(),
        Edn::Tagged(tag, _) => tag.as_str().starts_with("datahike/"),
        _ => false,
    }
}

impl Connections {
    /// No connections yet.
    pub fn new() -> Connections {
        Connections::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Conn>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection to the database of `config`, opened on first use.
    pub fn connect(&self, config: &Config) -> Result<Conn> {
        let key = pr_str(&config.store_id());
        if let Some(conn) = self.lock().get(&key) {
            return Ok(conn.clone());
        }
        // Connect outside the lock: opening replays the log, which may take a while.
        let conn = crate::connect(&Config { read_only: false, ..config.clone() })?;
        let mut open = self.lock();
        Ok(open.entry(key).or_insert(conn).clone())
    }

    /// Releases and forgets the connections to the database of `config`, on every branch
    /// (before it is deleted: a branch's connection kept open would outlive its head).
    /// Nothing happens when none is open. The first failure is returned after all were tried.
    pub fn forget(&self, config: &Config) -> Result<()> {
        let identity = config.store.identity();
        let conns: Vec<Conn> = {
            let mut open = self.lock();
            let keys: Vec<String> =
                open.iter().filter(|(_, c)| c.config().store.identity() == identity).map(|(k, _)| k.clone()).collect();
            keys.iter().filter_map(|k| open.remove(k)).collect()
        };
        let mut first = Ok(());
        for conn in conns {
            if let (Err(e), Ok(())) = (conn.release(), &first) {
                first = Err(e);
            }
        }
        first
    }

    /// Every open connection.
    pub fn all(&self) -> Vec<Conn> {
        self.lock().values().cloned().collect()
    }

    /// Releases every connection: flushes what each holds. The first failure is returned
    /// after all were tried.
    pub fn release_all(&self) -> Result<()> {
        let conns: Vec<Conn> = self.lock().drain().map(|(_, c)| c).collect();
        let mut first = Ok(());
        for conn in conns {
            if let (Err(e), Ok(())) = (conn.release(), &first) {
                first = Err(e);
            }
        }
        first
    }

    /// The connection of a config map, a connection handle or a database handle.
    pub fn conn_of(&self, edn: &Edn) -> Result<Conn> {
        let map = match edn {
            Edn::Tagged(_, inner) => inner.as_ref(),
            other => other,
        };
        if map.get_kw("store").is_some() {
            return self.connect(&Config::from_edn(&strip_client_keys(map))?);
        }
        if let Some(store_id) = map.get_kw("store-id") {
            let key = pr_str(store_id);
            return self.lock().get(&key).cloned().ok_or_else(|| {
                Error::Database(format!(
                    "no open connection to the database {key} on this server: name it by its config map first"
                ))
            });
        }
        if let Some(origin) = map.get_kw("origin") {
            return self.conn_of(origin);
        }
        let shown = crate::store::backend::redact(edn);
        Err(Error::Argument(
            Detail::new(format!("expected a config map or a database handle with :store-id, got {}", pr_str(&shown)))
                .value(shown),
        ))
    }

    /// The database value of a config map (its current value) or a handle: a
    /// `#datahike/DB` handle names its commit (the current value when the commit is the
    /// head), the history, as-of and since handles wrap their origin.
    pub fn db_of(&self, edn: &Edn) -> Result<Db> {
        if let Edn::Tagged(tag, inner) = edn {
            let view = match tag.as_str() {
                "datahike/HistoricalDB" | "datahike/AsOfDB" | "datahike/SinceDB" => Some(tag.as_str()),
                _ => None,
            };
            if let Some(view) = view {
                let origin = inner.get_kw("origin").ok_or_else(|| {
                    Error::Argument(
                        Detail::new(format!("a #{view} handle needs :origin, got {}", pr_str(edn))).value(edn.clone()),
                    )
                })?;
                let db = self.db_of(origin)?;
                let point = || {
                    inner.get_kw("time-point").and_then(TimePoint::from_edn).ok_or_else(|| {
                        Error::Argument(
                            Detail::new(format!(
                                "a #{view} handle needs :time-point, a transaction id or an instant, got {}",
                                pr_str(edn)
                            ))
                            .value(edn.clone()),
                        )
                    })
                };
                return match view {
                    "datahike/HistoricalDB" => db.history(),
                    "datahike/AsOfDB" => db.as_of(point()?),
                    _ => db.since(point()?),
                };
            }
            return self.db_of(inner);
        }
        let conn = self.conn_of(edn)?;
        let db = conn.db();
        match edn.get_kw("commit-id") {
            Some(Edn::Uuid(id)) if edn.get_kw("store").is_none() && db.commit_id() != Some(*id) => {
                conn.commit_as_db(*id)?.ok_or_else(|| {
                    Error::Database(format!("no commit {id} in the database {}", pr_str(&db.config().store_id())))
                })
            }
            _ => Ok(db),
        }
    }

    /// The [`Arg`] of `edn` where the operation expects `param`.
    fn arg(&self, param: Param, edn: &Edn) -> Result<Arg> {
        Ok(match param {
            Param::Conn if names_database(edn) => Arg::Conn(self.conn_of(edn)?),
            Param::Db | Param::QueryInputs if names_database(edn) => Arg::Db(self.db_of(edn)?),
            Param::Config => Arg::Data(strip_client_keys(edn)),
            _ => Arg::Data(edn.clone()),
        })
    }
}

/// The `:remote-peer` of a config map or a handle's origin, if it has one.
fn remote_peer(edn: &Edn) -> Option<crate::RemoteSpec> {
    let map = match edn {
        Edn::Tagged(_, inner) => inner.get_kw("origin").unwrap_or(inner),
        other => other,
    };
    let map = match map {
        Edn::Tagged(_, inner) => inner.as_ref(),
        other => other,
    };
    let peer = map.get_kw("remote-peer")?;
    crate::RemoteSpec::from_edn(":remote-peer", peer).ok()
}

/// Runs `op` on arguments given as data, resolving config maps and handles through
/// `connections`; when a config among them has `:remote-peer`, the whole call goes to that
/// server instead. Arguments that fit no arity give [`Error::Argument`] naming the first bad
/// one. `delete-database` first releases the held connections to that database, every branch.
pub fn call(op: &Op, args: &[Edn], connections: &Connections) -> Result<Edn> {
    if let Some(peer) = args.iter().find_map(remote_peer) {
        if !op.remote {
            return Err(Error::Argument(
                Detail::new(format!(
                    "{} is not supported remotely; the config names the server {} (:remote-peer)",
                    op.api, peer.url
                ))
                .with("operation", Edn::Symbol(crate::Symbol::new(op.api))),
            ));
        }
        return crate::remote::call(&peer, &op.route(), op.pure, args);
    }
    call_local(op, args, connections)
}

/// [`call`] that runs here whatever the configs say: what a server runs for its clients
/// (`:remote-peer` and `:writer` keys in their configs are ignored, never followed again).
pub fn call_local(op: &Op, args: &[Edn], connections: &Connections) -> Result<Edn> {
    let run = op.run.ok_or_else(|| Error::Argument(format!("{} is not implemented in this version", op.api).into()))?;
    // The arity whose parameters the arguments are read by: the first with a fitting count.
    let params = op.arities.iter().find(|params| super::count_fits(params, args.len())).copied().unwrap_or(&[]);
    if op.name == "delete-database" {
        if let Some(config) = args.first() {
            connections.forget(&Config::from_edn(&strip_client_keys(config))?)?;
        }
    }
    let resolved = args
        .iter()
        .enumerate()
        .map(|(i, edn)| match params.is_empty() {
            true => Ok(Arg::Data(edn.clone())),
            false => connections.arg(super::param_at(params, i), edn),
        })
        .collect::<Result<Vec<Arg>>>()?;
    if !op.fits(&resolved) {
        let message = format!("invalid arguments for {}: {}", op.api, op.mismatch(&resolved));
        let given = Edn::Vector(args.iter().map(crate::store::backend::redact).collect());
        return Err(Error::Argument(
            Detail::new(message).with("operation", Edn::Symbol(crate::Symbol::new(op.api))).value(given),
        ));
    }
    run(&resolved, &Context::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::read_str;

    #[test]
    fn deleting_a_database_releases_the_connections_of_every_branch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db").display().to_string();
        let config =
            read_str(&format!("{{:store {{:backend :file :path {path:?}}} :schema-flexibility :read}}")).unwrap();
        let feature = read_str(&format!("{{:store {{:backend :file :path {path:?}}} :branch :feature}}")).unwrap();
        let op = |name| super::super::find(name).unwrap();
        let connections = Connections::new();
        call(op("create-database"), std::slice::from_ref(&config), &connections).unwrap();
        call(op("branch"), &[config.clone(), Edn::kw("db"), Edn::kw("feature")], &connections).unwrap();
        call(op("transact"), &[feature.clone(), read_str(r#"[{:name "x"}]"#).unwrap()], &connections).unwrap();
        assert_eq!(connections.all().len(), 2);
        call(op("delete-database"), std::slice::from_ref(&config), &connections).unwrap();
        assert!(connections.all().is_empty(), "a branch's connection outlived the database");
        connections.release_all().unwrap();
    }
}
