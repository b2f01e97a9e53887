//! The PostgreSQL flavour of the `:jdbc` backend: one table `(k TEXT COLLATE "C" PRIMARY KEY,
//! v BYTEA)`, every operation one statement on a prepared statement (one round trip), a
//! batch one `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE` per 64 MiB, inside
//! one transaction when there are several.
//!
//! Connection settings come from the config (keys, else `:jdbcUrl`), then from libpq's
//! environment (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`), then from
//! `~/.pgpass` (or `PGPASSFILE`) for the password, which the `postgres` crate does not read
//! itself. No message of this module contains the password: errors name user, host, port,
//! database and table, and any driver text is scrubbed of the password before it is shown.
//!
//! Commits are durable as PostgreSQL's are: a connection whose server has
//! `synchronous_commit = off` switches it back on for its session.

use super::{prefix_end, quote_table, string_or_int_key, table_name, Pool, Pooled};
use crate::edn::Edn;
use crate::store::backend::{optional_string_key, OpenMode};
use crate::store::{Store, StoreError, StoreResult, WriterGuard};
use postgres::types::ToSql;
use postgres::{Client, NoTls, Statement};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// At most this many value bytes go into one statement of a batch.
const CHUNK_BYTES: usize = 64 << 20;

/// At most this many keys go into one query of [`Store::stored_sizes`].
const SIZE_KEYS_PER_QUERY: usize = 10_000;

/// The high 32 bits of the writer lock's advisory-lock key (`DHRS`); the low 32 are the
/// table's oid, so each table has its own lock however its name is spelled.
const LOCK_CLASS: i64 = 0x4448_5253;

/// Where and as whom to connect, and the table.
#[derive(Clone)]
struct Target {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    dbname: String,
    table: String,
    connect_timeout: Duration,
}

impl Target {
    /// `user@host:port/dbname`, for messages and identities: never the password.
    fn describe(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, self.dbname)
    }

    /// `text` with every occurrence of the password replaced, for driver messages.
    fn scrub(&self, text: &str) -> String {
        match &self.password {
            Some(p) if !p.is_empty() => text.replace(p.as_str(), "***"),
            _ => text.to_string(),
        }
    }
}

/// The parts of a `jdbc:postgresql://` URL.
#[derive(Default, Debug, PartialEq)]
struct UrlParts {
    host: Option<String>,
    port: Option<String>,
    dbname: Option<String>,
    user: Option<String>,
    password: Option<String>,
    sslmode: Option<String>,
    connect_timeout: Option<String>,
}

/// Parses `[jdbc:]postgresql://[user[:password]@]host[:port][/dbname][?k=v&...]` (also
/// `postgres://`). Errors never repeat the URL (it may hold a password).
fn parse_url(url: &str) -> StoreResult<UrlParts> {
    let bad = |why: &str| StoreError::Invalid(format!(":store :jdbcUrl is not a PostgreSQL URL: {why}"));
    let rest = url.strip_prefix("jdbc:").unwrap_or(url);
    let lower = rest.to_ascii_lowercase();
    let rest = if lower.starts_with("postgresql://") {
        &rest["postgresql://".len()..]
    } else if lower.starts_with("postgres://") {
        &rest["postgres://".len()..]
    } else {
        return Err(bad("it must start with jdbc:postgresql://"));
    };
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let mut parts = UrlParts::default();
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let (user, password) = userinfo.split_once(':').map_or((userinfo, None), |(u, p)| (u, Some(p)));
            parts.user = Some(percent_decode(user)).filter(|u| !u.is_empty());
            parts.password = password.map(percent_decode);
            hostport
        }
        None => authority,
    };
    if hostport.contains(',') {
        return Err(bad("several hosts are not supported"));
    }
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(|| bad("an IPv6 host lacks its ]"))?;
        (host, after.strip_prefix(':'))
    } else {
        hostport.split_once(':').map_or((hostport, None), |(h, p)| (h, Some(p)))
    };
    parts.host = Some(percent_decode(host)).filter(|h| !h.is_empty());
    parts.port = port.map(str::to_string).filter(|p| !p.is_empty());
    parts.dbname = Some(percent_decode(path)).filter(|d| !d.is_empty());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = Some(percent_decode(value));
        match key {
            "user" => parts.user = value,
            "password" => parts.password = value,
            "sslmode" => parts.sslmode = value,
            "ssl" if value.as_deref() == Some("true") => parts.sslmode = Some("require".into()),
            "connectTimeout" | "connect_timeout" => parts.connect_timeout = value,
            // The driver's other properties (ApplicationName, ...) do not apply here.
            _ => {}
        }
    }
    Ok(parts)
}

/// `%XX` escapes decoded (and `+` left alone, as in a URL's path); bad escapes stay as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while idx < bytes.len() {
        let hex = bytes.get(idx + 1..idx + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[idx], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                idx += 3;
            }
            (byte, _) => {
                out.push(byte);
                idx += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The connection target of `config`, without the password lookup in `.pgpass`.
fn target(config: &Edn) -> StoreResult<Target> {
    let url = match super::jdbc_url(config)? {
        Some(url) => parse_url(&url)?,
        None => UrlParts::default(),
    };
    let key = |name: &str| optional_string_key(config, "jdbc", name);
    let host = key("host")?.or(url.host).or_else(|| env("PGHOST")).unwrap_or_else(|| "localhost".into());
    let port_text = string_or_int_key(config, "port")?.or(url.port).or_else(|| env("PGPORT"));
    let port = match port_text {
        None => 5432,
        Some(text) => text
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| StoreError::Invalid(format!(":store :port must be a TCP port, got {text:?}")))?,
    };
    let user = key("user")?
        .or(key("username")?)
        .or(url.user)
        .or_else(|| env("PGUSER"))
        .or_else(|| env("USER"))
        .unwrap_or_else(|| "postgres".into());
    let password = key("password")?.or(url.password).or_else(|| env("PGPASSWORD"));
    let dbname = key("dbname")?.or(url.dbname).or_else(|| env("PGDATABASE")).unwrap_or_else(|| user.clone());
    let sslmode = key("sslmode")?.or(url.sslmode).or_else(|| env("PGSSLMODE"));
    if let Some(mode) = sslmode.filter(|m| !matches!(m.as_str(), "disable" | "allow" | "prefer")) {
        return Err(StoreError::Invalid(format!(
            "sslmode {mode} asks for TLS, which this build of the :jdbc backend does not speak; connect over a \
             trusted network, a Unix socket (:host \"/var/run/postgresql\") or a tunnel"
        )));
    }
    let timeout_text =
        string_or_int_key(config, "connect-timeout")?.or(url.connect_timeout).or_else(|| env("PGCONNECT_TIMEOUT"));
    let connect_timeout = match timeout_text {
        None => Duration::from_secs(30),
        Some(text) => Duration::from_secs(text.parse().map_err(|_| {
            StoreError::Invalid(format!(":store :connect-timeout must be whole seconds, got {text:?}"))
        })?),
    };
    // PostgreSQL folds unquoted names to lower case, as Datahike's SQL does with :table.
    let table = table_name(config)?.to_ascii_lowercase();
    Ok(Target { host, port, user, password, dbname, table, connect_timeout })
}

/// `postgresql://user@host:port/dbname#table`.
pub(super) fn identity(config: &Edn) -> Option<String> {
    let target = target(config).ok()?;
    Some(format!("postgresql://{}#{}", target.describe(), target.table))
}

/// The password for `target` from the password file (`PGPASSFILE`, else `~/.pgpass`), as
/// libpq finds it: the first line `host:port:dbname:user:password` whose fields match, `*`
/// matching anything. A file that others can read is ignored, as libpq ignores it.
fn pgpass_password(target: &Target) -> Option<String> {
    let path =
        env("PGPASSFILE").map(PathBuf::from).or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
    let meta = std::fs::metadata(&path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return None;
        }
    }
    if !meta.is_file() {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    // A Unix-socket directory matches the host `localhost`, as in libpq.
    let host = if target.host.starts_with('/') { "localhost" } else { target.host.as_str() };
    pgpass_lookup(&text, host, &target.port.to_string(), &target.dbname, &target.user)
}

fn pgpass_lookup(text: &str, host: &str, port: &str, dbname: &str, user: &str) -> Option<String> {
    text.lines().filter(|line| !line.starts_with('#') && !line.trim().is_empty()).find_map(|line| {
        let fields = pgpass_fields(line);
        let [h, p, d, u, password] = fields.as_slice() else { return None };
        let matches = |field: &str, value: &str| field == "*" || field == value;
        (matches(h, host) && matches(p, port) && matches(d, dbname) && matches(u, user)).then(|| password.clone())
    })
}

/// The five `:`-separated fields of a `.pgpass` line, `\:` and `\\` unescaped.
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field at least").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field at least").push(c),
        }
    }
    fields
}

/// The statements of one table, prepared once per connection.
#[derive(Clone, Copy)]
enum Q {
    Get,
    GetMany,
    Upsert,
    Delete,
    List,
    ListAll,
    InsertIfAbsent,
    Swap,
    Lock,
    Unlock,
    LogIsCurrent,
    Sizes,
}

const N_QUERIES: usize = 12;

struct Sql {
    texts: [String; N_QUERIES],
    create: String,
    drop: String,
    quoted: String,
}

impl Sql {
    fn new(table: &str) -> Sql {
        let t = quote_table(table);
        Sql {
            texts: [
                format!("SELECT v FROM {t} WHERE k = $1"),
                format!("SELECT k, v FROM {t} WHERE k = ANY($1::text[])"),
                format!(
                    "INSERT INTO {t} (k, v) SELECT * FROM unnest($1::text[], $2::bytea[]) \
                     ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"
                ),
                format!("DELETE FROM {t} WHERE k = ANY($1::text[])"),
                format!("SELECT k FROM {t} WHERE k >= $1::text COLLATE \"C\" AND k < $2::text COLLATE \"C\""),
                format!("SELECT k FROM {t} WHERE k >= $1::text COLLATE \"C\""),
                format!("INSERT INTO {t} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING"),
                format!("UPDATE {t} SET v = $3 WHERE k = $1 AND v = $2"),
                "SELECT pg_advisory_lock($1::bigint)".to_string(),
                "SELECT pg_advisory_unlock($1::bigint)".to_string(),
                // The floor, whether record $2 is there, and whether any record follows it
                // ($3 is the greatest record key).
                format!(
                    "SELECT (SELECT v FROM {t} WHERE k = $1), EXISTS (SELECT 1 FROM {t} WHERE k = $2), \
                     EXISTS (SELECT 1 FROM {t} WHERE k > $2::text COLLATE \"C\" AND k <= $3::text COLLATE \"C\")"
                ),
                // The length of a (possibly TOASTed) value is in its header: nothing is
                // decompressed or fetched from the TOAST table.
                format!("SELECT k, octet_length(v)::bigint FROM {t} WHERE k = ANY($1::text[])"),
            ],
            create: format!("CREATE TABLE IF NOT EXISTS {t} (k TEXT COLLATE \"C\" PRIMARY KEY, v BYTEA NOT NULL)"),
            drop: format!("DROP TABLE IF EXISTS {t}"),
            quoted: t,
        }
    }
}

/// A connection and its prepared statements.
struct PgConn {
    client: Client,
    statements: [Option<Statement>; N_QUERIES],
}

impl PgConn {
    fn statement(&mut self, q: Q, sql: &Sql) -> Result<Statement, postgres::Error> {
        if let Some(statement) = &self.statements[q as usize] {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&sql.texts[q as usize])?;
        self.statements[q as usize] = Some(statement.clone());
        Ok(statement)
    }

    fn query(
        &mut self,
        q: Q,
        sql: &Sql,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, postgres::Error> {
        let statement = self.statement(q, sql)?;
        self.client.query(&statement, params)
    }

    fn execute(&mut self, q: Q, sql: &Sql, params: &[&(dyn ToSql + Sync)]) -> Result<u64, postgres::Error> {
        let statement = self.statement(q, sql)?;
        self.client.execute(&statement, params)
    }
}

fn connect(target: &Target) -> StoreResult<PgConn> {
    let mut config = postgres::Config::new();
    config
        .host(&target.host)
        .port(target.port)
        .user(&target.user)
        .dbname(&target.dbname)
        .application_name("datahike-rs")
        .connect_timeout(target.connect_timeout);
    if let Some(password) = target.password.clone().or_else(|| pgpass_password(target)) {
        config.password(password);
    }
    let fail = |e: postgres::Error| StoreError::Backend {
        backend: "postgresql",
        key: format!("connect to {}", target.describe()),
        reason: target.scrub(&driver_message(&e)),
    };
    let mut client = config.connect(NoTls).map_err(fail)?;
    // Durable commits whatever the server's default (a write is acknowledged only when it is
    // durable); stronger settings (remote_apply ...) are left as they are.
    client
        .batch_execute(
            "SELECT set_config('synchronous_commit', 'on', false) WHERE current_setting('synchronous_commit') = 'off'",
        )
        .map_err(fail)?;
    Ok(PgConn { client, statements: Default::default() })
}

/// The driver's text of `e`, with the server's detail when it gave one.
fn driver_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            text
        }
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    }
}

/// Opens the store of `config`: creates the table in [`OpenMode::Create`], otherwise `None`
/// when it is missing. The PostgreSQL database itself must exist.
pub(super) fn open(config: &Edn, mode: OpenMode) -> StoreResult<Option<Arc<dyn Store>>> {
    let target = target(config)?;
    let sql = Arc::new(Sql::new(&target.table));
    let mut first = connect(&target)?;
    let fail = |e: postgres::Error| PostgresStore::error_of(&target, &format!("table {}", target.table), &e);
    let mut oid = table_oid(&mut first.client, &sql).map_err(fail)?;
    if oid.is_none() {
        if mode != OpenMode::Create {
            return Ok(None);
        }
        // Two creators at once may collide inside PostgreSQL's catalog even with IF NOT
        // EXISTS; the loser finds the table there.
        let created = first.client.batch_execute(&sql.create);
        oid = table_oid(&mut first.client, &sql).map_err(fail)?;
        if oid.is_none() {
            created.map_err(fail)?;
        }
    }
    let oid = oid.ok_or_else(|| StoreError::Backend {
        backend: "postgresql",
        key: format!("table {}", target.table),
        reason: "the table vanished while it was being opened".into(),
    })?;
    let pool = {
        let target = target.clone();
        Pool::new(move || connect(&target))
    };
    pool.give_back(first);
    Ok(Some(Arc::new(PostgresStore { target, sql, pool, lock_key: (LOCK_CLASS << 32) | i64::from(oid) })))
}

/// The oid of the table, `None` when there is none.
fn table_oid(client: &mut Client, sql: &Sql) -> Result<Option<u32>, postgres::Error> {
    let row = client.query_one("SELECT to_regclass($1)::oid", &[&sql.quoted])?;
    row.try_get::<_, Option<u32>>(0)
}

/// A store in one PostgreSQL table.
struct PostgresStore {
    target: Target,
    sql: Arc<Sql>,
    pool: Arc<Pool<PgConn>>,
    lock_key: i64,
}

impl PostgresStore {
    fn error_of(target: &Target, key: &str, e: &postgres::Error) -> StoreError {
        StoreError::Backend {
            backend: "postgresql",
            key: key.to_string(),
            reason: format!("{} (on {}, table {})", target.scrub(&driver_message(e)), target.describe(), target.table),
        }
    }

    /// Runs `op` on a pooled connection. A connection that broke is closed, not pooled; an
    /// operation that may be repeated (`idempotent`) is tried once more on a new connection
    /// then, which covers a pooled connection that the server closed meanwhile.
    fn run<T>(
        &self,
        key: &str,
        idempotent: bool,
        mut op: impl FnMut(&mut PgConn, &Sql) -> Result<T, postgres::Error>,
    ) -> StoreResult<T> {
        let mut tries = 0;
        loop {
            tries += 1;
            let mut conn = self.pool.take()?;
            match op(&mut conn, &self.sql) {
                Ok(value) => return Ok(value),
                Err(e) => {
                    let closed = conn.client.is_closed();
                    if closed {
                        conn.discard();
                    }
                    if !(closed && idempotent && tries == 1) {
                        return Err(Self::error_of(&self.target, key, &e));
                    }
                }
            }
        }
    }
}

/// `entries` without earlier duplicates of a key (one statement may not update a row twice);
/// the last value of a key wins, as if written one after another.
fn last_of_each_key(entries: &[(String, Vec<u8>)]) -> Vec<&(String, Vec<u8>)> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(entries.len());
    for (idx, (key, _)) in entries.iter().enumerate() {
        last.insert(key, idx);
    }
    if last.len() == entries.len() {
        return entries.iter().collect();
    }
    entries.iter().enumerate().filter(|(idx, (key, _))| last[key.as_str()] == *idx).map(|(_, e)| e).collect()
}

/// The keys and values of `chunk`, as the parameters of the batch statement.
fn columns<'a>(chunk: &[&'a (String, Vec<u8>)]) -> (Vec<&'a str>, Vec<&'a [u8]>) {
    chunk.iter().map(|(k, v)| (k.as_str(), v.as_slice())).unzip()
}

/// `entries` cut into runs of at most [`CHUNK_BYTES`] of values (at least one entry each).
fn chunks<'a>(entries: &[&'a (String, Vec<u8>)]) -> Vec<Vec<&'a (String, Vec<u8>)>> {
    let mut out: Vec<Vec<&(String, Vec<u8>)>> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let len = entry.0.len() + entry.1.len();
        match out.last_mut() {
            Some(chunk) if bytes + len <= CHUNK_BYTES => {
                chunk.push(entry);
                bytes += len;
            }
            _ => {
                out.push(vec![entry]);
                bytes = len;
            }
        }
    }
    out
}

impl Store for PostgresStore {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.run(key, true, |conn, sql| {
            let rows = conn.query(Q::Get, sql, &[&key])?;
            rows.first().map(|row| row.try_get::<_, Vec<u8>>(0)).transpose()
        })
    }

    /// One query: `WHERE k = ANY($1)`.
    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let Some(first) = keys.first() else { return Ok(Vec::new()) };
        let mut found: HashMap<String, Vec<u8>> = self.run(first, true, |conn, sql| {
            conn.query(Q::GetMany, sql, &[&keys])?
                .into_iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect()
        })?;
        // A key asked for twice gets a copy of its value; the last asking takes the value.
        let mut asked: HashMap<&str, usize> = HashMap::with_capacity(keys.len());
        for key in keys {
            *asked.entry(key).or_default() += 1;
        }
        Ok(keys
            .iter()
            .map(|key| {
                let left = asked.get_mut(key.as_str()).expect("every key was counted");
                *left -= 1;
                if *left == 0 {
                    found.remove(key)
                } else {
                    found.get(key).cloned()
                }
            })
            .collect())
    }

    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        let Some((first, _)) = entries.first() else { return Ok(()) };
        let entries = last_of_each_key(entries);
        let chunks = chunks(&entries);
        self.run(first, true, |conn, sql| {
            let statement = conn.statement(Q::Upsert, sql)?;
            if let [chunk] = chunks.as_slice() {
                let (keys, values) = columns(chunk);
                conn.client.execute(&statement, &[&keys, &values])?;
                return Ok(());
            }
            let mut tx = conn.client.transaction()?;
            for chunk in &chunks {
                let (keys, values) = columns(chunk);
                tx.execute(&statement, &[&keys, &values])?;
            }
            tx.commit()
        })
    }

    /// `octet_length(v)` by `WHERE k = ANY($1)`, one query per [`SIZE_KEYS_PER_QUERY`] keys:
    /// the length of the value, not the space TOAST compression leaves it on disk. A deleted
    /// row's space is reused once `VACUUM` (or autovacuum) has run.
    fn stored_sizes(&self, keys: &[String]) -> StoreResult<Vec<Option<u64>>> {
        let mut found: HashMap<String, u64> = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(SIZE_KEYS_PER_QUERY) {
            let rows: Vec<(String, i64)> = self.run(&chunk[0], true, |conn, sql| {
                conn.query(Q::Sizes, sql, &[&chunk])?
                    .into_iter()
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                    .collect()
            })?;
            found.extend(rows.into_iter().filter_map(|(key, size)| Some((key, u64::try_from(size).ok()?))));
        }
        Ok(keys.iter().map(|key| found.get(key).copied()).collect())
    }

    /// One statement: `DELETE ... WHERE k = ANY($1)`.
    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        let Some(first) = keys.first() else { return Ok(()) };
        self.run(first, true, |conn, sql| conn.execute(Q::Delete, sql, &[&keys]).map(|_| ()))
    }

    /// A range scan `k >= prefix AND k < end` under the `"C"` collation: exact for any prefix.
    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let end = prefix_end(prefix);
        let keys: Vec<String> = self.run(prefix, true, |conn, sql| {
            let rows = match &end {
                Some(end) => conn.query(Q::List, sql, &[&prefix, end])?,
                None => conn.query(Q::ListAll, sql, &[&prefix])?,
            };
            rows.iter().map(|row| row.try_get(0)).collect()
        })?;
        Ok(keys.into_iter().filter(|k| k.starts_with(prefix)).collect())
    }

    /// One statement: an `UPDATE ... WHERE k = $1 AND v = $2` (PostgreSQL re-checks the
    /// condition on the newest row version when a concurrent update commits first), or an
    /// insert that does nothing when the key exists.
    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        let Some(expected) = expected else { return self.put_if_absent(key, new) };
        self.run(key, false, |conn, sql| conn.execute(Q::Swap, sql, &[&key, &expected, &new]).map(|n| n == 1))
    }

    /// One query: the log's last record is `last_seq` and its floor is below it. Then no
    /// other writer committed since `last_seq` (each commit appends a record after it, and a
    /// flush or `log_delete` elsewhere raises the floor or removes the record), so the writer
    /// skips re-reading the head and the log: one round trip instead of three or four.
    fn log_is_current(&self, log: &str, last_seq: u64) -> StoreResult<bool> {
        let floor_key = crate::store::log_floor_key(log);
        let last_key = crate::store::log_key(log, last_seq);
        let max_key = crate::store::log_key(log, u64::MAX);
        let (floor, present, followed) = self.run(&last_key, true, |conn, sql| {
            let rows = conn.query(Q::LogIsCurrent, sql, &[&floor_key, &last_key, &max_key])?;
            let row = rows.first().expect("a SELECT without FROM returns one row");
            Ok((row.try_get::<_, Option<Vec<u8>>>(0)?, row.try_get::<_, bool>(1)?, row.try_get::<_, bool>(2)?))
        })?;
        let floor = match floor {
            None => 0,
            Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
                Ok(bytes) => u64::from_le_bytes(bytes),
                // Not ours to judge here; the slow path reports it.
                Err(_) => return Ok(false),
            },
        };
        // A floor at the record itself means a flush (ours or another process's) covered it
        // and may have published a head this handle has not read: take the slow path once.
        Ok(present && !followed && floor < last_seq)
    }

    /// Every read is a round trip: the index fetches the nodes a scan will need in batches.
    fn prefers_batched_reads(&self) -> bool {
        true
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> StoreResult<bool> {
        self.run(key, false, |conn, sql| conn.execute(Q::InsertIfAbsent, sql, &[&key, &bytes]).map(|n| n == 1))
    }

    /// A session-level `pg_advisory_lock` on a key made of the table's oid, held on a
    /// connection of the pool that the guard keeps until it is dropped (then
    /// `pg_advisory_unlock`, and the connection goes back). If that connection drops while
    /// the lock is held (network, server restart, this process dying), PostgreSQL releases
    /// the lock and another writer may take it while this one still commits: that is safe,
    /// because every log record is written if absent and every head by compare-and-set (the
    /// lock only keeps writers from colliding often). Session locks need a session: a pooler
    /// in transaction mode (PgBouncer) in front of the server does not keep them.
    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        let mut conn = self.pool.take()?;
        let key = self.lock_key;
        if let Err(e) = conn.query(Q::Lock, &self.sql, &[&key]) {
            conn.discard();
            return Err(Self::error_of(&self.target, "the writer lock", &e));
        }
        Ok(WriterGuard::new(Box::new(AdvisoryLock { conn: Some(conn), key, sql: Arc::clone(&self.sql) })))
    }

    /// Drops the table.
    fn destroy(&self) -> StoreResult<()> {
        self.run(&format!("table {}", self.target.table), true, |conn, sql| conn.client.batch_execute(&sql.drop))?;
        self.pool.clear();
        Ok(())
    }
}

/// The writer lock: a connection holding the advisory lock.
struct AdvisoryLock {
    conn: Option<Pooled<PgConn>>,
    key: i64,
    sql: Arc<Sql>,
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        let unlocked = conn.query(Q::Unlock, &self.sql, &[&self.key]).map(|rows| rows.first().map(|r| r.get(0)));
        if !matches!(unlocked, Ok(Some(true))) {
            // Closing the session releases whatever it holds.
            conn.discard();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::read_str;

    #[test]
    fn urls() {
        let parts = parse_url("jdbc:postgresql://db.example:6543/app?user=u&password=p%40ss&ssl=false").unwrap();
        assert_eq!(
            parts,
            UrlParts {
                host: Some("db.example".into()),
                port: Some("6543".into()),
                dbname: Some("app".into()),
                user: Some("u".into()),
                password: Some("p@ss".into()),
                ..Default::default()
            }
        );
        let parts = parse_url("postgres://u:secret@[::1]/app").unwrap();
        assert_eq!((parts.host.as_deref(), parts.port, parts.password.as_deref()), (Some("::1"), None, Some("secret")));
        let parts = parse_url("jdbc:postgresql://h/").unwrap();
        assert_eq!((parts.host.as_deref(), parts.dbname), (Some("h"), None));
        assert_eq!(parse_url("jdbc:postgresql://h/d?ssl=true").unwrap().sslmode.as_deref(), Some("require"));
        let err = parse_url("jdbc:mysql://u:secret@h/d").unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
        assert!(parse_url("jdbc:postgresql://a,b/d").is_err());
    }

    #[test]
    fn targets_from_keys_and_urls() {
        let t = target(
            &read_str(
                r#"{:dbtype "postgresql" :host "h" :port 6000 :dbname "d" :user "u" :password "pw" :table "KV"}"#,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (t.describe(), t.table.as_str(), t.password.as_deref()),
            ("u@h:6000/d".to_string(), "kv", Some("pw"))
        );
        // Keys win over the URL's parts.
        let t =
            target(&read_str(r#"{:jdbcUrl "jdbc:postgresql://h:7000/d?user=u&password=pw" :dbname "other"}"#).unwrap())
                .unwrap();
        assert_eq!(t.describe(), "u@h:7000/other");
        assert_eq!(t.scrub("password pw is wrong"), "password *** is wrong");
        let err = target(&read_str(r#"{:host "h" :sslmode "require"}"#).unwrap()).err().unwrap().to_string();
        assert!(err.contains("TLS"), "{err}");
        assert!(target(&read_str(r#"{:host "h" :port "x"}"#).unwrap()).is_err());
        assert!(!identity(&read_str(r#"{:host "h" :password "pw" :user "u" :dbname "d"}"#).unwrap())
            .unwrap()
            .contains("pw"));
    }

    #[test]
    fn pgpass() {
        let file = "# comment\nother:5432:*:u:no\nh:5432:d:u:first\\:pw\n*:*:*:*:fallback\n";
        assert_eq!(pgpass_lookup(file, "h", "5432", "d", "u").as_deref(), Some("first:pw"));
        assert_eq!(pgpass_lookup(file, "h", "5433", "d", "u").as_deref(), Some("fallback"));
        assert_eq!(pgpass_lookup("h:5432:d:u:x", "h", "5432", "d", "v"), None);
        assert_eq!(pgpass_fields(r"a\\b:c"), vec![r"a\b".to_string(), "c".to_string()]);
    }

    #[test]
    fn batches() {
        let entries: Vec<(String, Vec<u8>)> = vec![("a".into(), vec![1]), ("b".into(), vec![2]), ("a".into(), vec![3])];
        let last = last_of_each_key(&entries);
        assert_eq!(last.iter().map(|(k, v)| (k.as_str(), v[0])).collect::<Vec<_>>(), vec![("b", 2), ("a", 3)]);
        let big: Vec<(String, Vec<u8>)> = (0..5).map(|i| (format!("k{i}"), vec![0; 30 << 20])).collect();
        let refs: Vec<&(String, Vec<u8>)> = big.iter().collect();
        assert_eq!(chunks(&refs).iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
    }
}
