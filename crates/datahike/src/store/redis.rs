//! The `:redis` backend (cargo feature `redis`): `{:store {:backend :redis :host "127.0.0.1"
//! :port 6379}}`, over the synchronous `redis` client (no async runtime).
//!
//! Keys of the store live in the Redis database as `<prefix>:<key>`, values as Redis strings.
//! Beside them:
//!
//! ```text
//! <prefix>:__datahike_store   marker, written by create-database; absent = no store
//! <prefix>:__datahike_keys    sorted set of every key of the store (score 0, ordered by bytes)
//! <prefix>:__datahike_lock    the writer lease: a random token, with an expiry
//! ```
//!
//! Listing by a prefix is a `ZRANGEBYLEX` over the key index: `SCAN MATCH` walks the whole
//! Redis keyspace (every store in it) in pages, which took 4.7 s on 200,000 keys where the
//! index answered in 1 ms. Every write keeps data and index together: `put_batch` is one
//! `MULTI` with one `MSET` and one `ZADD`, `delete_batch` one `MULTI` with one `DEL` and one
//! `ZREM`, and the conditional writes are Lua scripts, which Redis runs atomically:
//! `put_if_absent` (`SET NX`), `compare_and_set` (byte comparison) and `log_append` (the
//! default key layout of [`Store::log_append`]: the record is written if absent and only while
//! the log's floor is below it, in one round trip). [`Store::log_is_current`] is one script
//! too: no newer record in the index and the floor not past ours.
//!
//! The writer lock is a lease, `SET <prefix>:__datahike_lock <token> NX PX 30000`, renewed
//! every 10 s while held and given back by a script that deletes it only if it still holds
//! the token. A writer that dies loses it after 30 s.
//!
//! Durability is Redis's: a store cannot make Redis keep what it acknowledged. For a commit
//! to survive a crash of the Redis server, run it with `appendonly yes` and
//! `appendfsync always`; with `appendfsync everysec` (Redis's default for AOF) a crash loses up
//! to a second of commits, and without persistence everything. Redis Cluster is not supported
//! (the scripts touch several keys).

use super::backend::{is_secret_key, optional_string_key, redact, Backend, OpenMode};
use super::{log_floor_key, log_key, Store, StoreError, StoreResult, WriterGuard};
use crate::edn::Edn;
use redis::{Client, Connection, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError, Script};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

const MARKER: &str = "__datahike_store";
const INDEX: &str = "__datahike_keys";
const LOCK: &str = "__datahike_lock";
const MARKER_TEXT: &str = "datahike-rs redis store, format 1";

/// How long the writer lease lasts without renewal.
const LEASE_MILLIS: u64 = 30_000;
/// Connecting gives up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A request gives up after this (a 100 MiB value takes well under it on a local network).
const IO_TIMEOUT: Duration = Duration::from_secs(120);
/// Keys per `MGET`, `DEL`, `ZREM` in one pipeline, so that no one command grows huge.
const KEYS_PER_COMMAND: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where a store is and how to log in; the password is never printed.
#[derive(Clone)]
pub struct RedisConfig {
    info: ConnectionInfo,
    prefix: String,
    /// A PEM file of the certificate authorities to trust for TLS, instead of the system's.
    ca_cert: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisConfig({} prefix {:?})", self.place(), self.prefix)
    }
}

impl RedisConfig {
    /// The config of a `:store` map: `:uri`/`:url` (`redis://user:pass@host:port/db`,
    /// `rediss://` for TLS where built with it), or `:host`/`:port`, or else the environment's
    /// `REDIS_URL`, or else `127.0.0.1:6379`; then `:username`, `:password` (else the
    /// environment's `REDISCLI_AUTH`), `:db`, and `:prefix` (or `:id`, else `"datahike"`).
    /// With the cargo feature `redis-tls`, `:tls? true` makes `:host`/`:port` use TLS, and
    /// `:ca-cert` names a PEM file of certificate authorities to trust instead of the system's.
    pub fn from_edn(config: &Edn) -> StoreResult<RedisConfig> {
        let url = match optional_string_key(config, "redis", "uri")? {
            Some(url) => Some(url),
            None => optional_string_key(config, "redis", "url")?,
        };
        let host = optional_string_key(config, "redis", "host")?;
        let port = match config.get_kw("port") {
            None | Some(Edn::Nil) => None,
            Some(Edn::Int(p)) if (1..=65535).contains(p) => Some(u16::try_from(*p).unwrap_or(6379)),
            Some(other) => return Err(invalid("port", other, "a port number")),
        };
        let url = match (url, &host) {
            (Some(url), _) => Some(url),
            (None, Some(_)) => None,
            (None, None) => std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()),
        };
        let mut info = match &url {
            Some(url) => url.as_str().into_connection_info().map_err(|e| {
                StoreError::Invalid(format!(
                    ":store :uri {} is not a Redis URL: {}",
                    redact(&Edn::str(url)),
                    scrub(&e.to_string(), &secrets_of_url(url))
                ))
            })?,
            None => ConnectionAddr::Tcp("127.0.0.1".into(), 6379)
                .into_connection_info()
                .map_err(|e| StoreError::Invalid(format!(":store of the :redis backend: {e}")))?,
        };
        let want_tls = match config.get_kw("tls?") {
            None | Some(Edn::Nil) | Some(Edn::Bool(false)) => false,
            Some(Edn::Bool(true)) => true,
            Some(other) => return Err(invalid("tls?", other, "true or false")),
        };
        if host.is_some() || port.is_some() || want_tls {
            let (old_host, old_port, tls) = match info.addr() {
                ConnectionAddr::Tcp(h, p) => (h.clone(), *p, false),
                ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port, true),
                _ => ("127.0.0.1".to_string(), 6379, false),
            };
            let host = host.unwrap_or(old_host);
            let port = port.unwrap_or(old_port);
            let addr = if tls || want_tls { tls_addr(host, port)? } else { ConnectionAddr::Tcp(host, port) };
            info = info.set_addr(addr);
        }
        let mut settings = info.redis_settings().clone();
        if let Some(username) = optional_string_key(config, "redis", "username")? {
            settings = settings.set_username(username);
        }
        match config.get_kw("password") {
            None | Some(Edn::Nil) => {}
            Some(Edn::Str(p)) => settings = settings.set_password(p.as_ref()),
            Some(_) => {
                return Err(StoreError::Invalid(":store :password must be a string for the :redis backend".into()))
            }
        }
        if settings.password().is_none() {
            if let Some(password) = std::env::var("REDISCLI_AUTH").ok().filter(|p| !p.is_empty()) {
                settings = settings.set_password(password);
            }
        }
        match config.get_kw("db") {
            None | Some(Edn::Nil) => {}
            Some(Edn::Int(db)) if *db >= 0 => settings = settings.set_db(*db),
            Some(other) => return Err(invalid("db", other, "a database number (0, 1, ...)")),
        }
        let info = info.set_redis_settings(settings);
        let prefix = match config.get_kw("prefix").filter(|v| !matches!(v, Edn::Nil)).or(config.get_kw("id")) {
            None | Some(Edn::Nil) => "datahike".to_string(),
            Some(Edn::Str(s)) if !s.is_empty() => s.to_string(),
            Some(Edn::Keyword(k)) => k.to_string(),
            Some(Edn::Uuid(u)) => u.to_string(),
            Some(other) => return Err(invalid("prefix", other, "a non-empty string")),
        };
        let ca_cert = optional_string_key(config, "redis", "ca-cert")?.map(std::path::PathBuf::from);
        Ok(RedisConfig { info, prefix, ca_cert })
    }

    /// `redis://host:port/db` (or `rediss://`, or the socket path), without user or password.
    pub fn place(&self) -> String {
        let db = self.info.redis_settings().db();
        match self.info.addr() {
            ConnectionAddr::Tcp(host, port) => format!("redis://{host}:{port}/{db}"),
            ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{host}:{port}/{db}"),
            ConnectionAddr::Unix(path) => format!("redis+unix://{}?db={db}", path.display()),
            other => format!("redis://{other}/{db}"),
        }
    }

    /// The key prefix (without its colon).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The texts that must not appear in an error.
    fn secrets(&self) -> Vec<String> {
        self.info.redis_settings().password().map(str::to_string).into_iter().filter(|p| !p.is_empty()).collect()
    }
}

fn invalid(key: &str, value: &Edn, what: &str) -> StoreError {
    let shown = if is_secret_key(key) { "***".to_string() } else { redact(value).to_string() };
    StoreError::Invalid(format!(":store :{key} must be {what} for the :redis backend, got {shown}"))
}

#[cfg(not(feature = "redis-tls"))]
const TLS_NEEDS_FEATURE: &str = "TLS to Redis (rediss://, :tls?, :ca-cert) needs datahike's cargo feature redis-tls";

#[cfg(feature = "redis-tls")]
fn tls_addr(host: String, port: u16) -> StoreResult<ConnectionAddr> {
    Ok(ConnectionAddr::TcpTls { host, port, insecure: false, tls_params: None })
}

#[cfg(not(feature = "redis-tls"))]
fn tls_addr(_host: String, _port: u16) -> StoreResult<ConnectionAddr> {
    Err(StoreError::Invalid(TLS_NEEDS_FEATURE.into()))
}

/// The client of `config`: TLS with `:ca-cert`'s authorities when given.
fn client_of(config: &RedisConfig) -> Result<Client, StoreError> {
    // With other features beside this one (the object stores), rustls has two crypto
    // providers compiled in and picks none by itself: name one for the process, once. A
    // provider installed before (by the program) is kept.
    #[cfg(feature = "redis-tls")]
    {
        static PROVIDER: std::sync::Once = std::sync::Once::new();
        // Deprecated only for lacking post-quantum key exchange, which Redis servers do not
        // offer either; ring is the provider this feature builds (no C toolchain for aws-lc).
        #[allow(deprecated)]
        PROVIDER.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
    }
    let Some(path) = &config.ca_cert else {
        return Client::open(config.info.clone()).map_err(|e| StoreError::Invalid(e.to_string()));
    };
    #[cfg(feature = "redis-tls")]
    {
        let root = std::fs::read(path).map_err(|source| StoreError::Io { path: path.clone(), source })?;
        let certificates = redis::TlsCertificates { client_tls: None, root_cert: Some(root) };
        Client::build_with_tls(config.info.clone(), certificates).map_err(|e| StoreError::Invalid(e.to_string()))
    }
    #[cfg(not(feature = "redis-tls"))]
    {
        let _ = path;
        Err(StoreError::Invalid(TLS_NEEDS_FEATURE.into()))
    }
}

/// The password of a URL's user info, to keep it out of parse errors.
fn secrets_of_url(url: &str) -> Vec<String> {
    let Some(rest) = url.split_once("://").map(|(_, rest)| rest) else { return Vec::new() };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    match authority.rsplit_once('@').and_then(|(userinfo, _)| userinfo.split_once(':')) {
        Some((_, password)) if !password.is_empty() => vec![password.to_string()],
        _ => Vec::new(),
    }
}

/// `text` with every secret replaced.
fn scrub(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_string(), |text, secret| text.replace(secret.as_str(), "***"))
}

/// The scripts, each atomic on the server. Keys and members come from Rust; a member is a
/// store key, the Redis key being `<prefix>:<member>`.
struct Scripts {
    /// KEYS: key, index. ARGV: bytes, member. 1 when written.
    put_if_absent: Script,
    /// KEYS: key, index. ARGV: expect a value ("1"/"0"), expected bytes, new bytes, member.
    compare_and_set: Script,
    /// KEYS: record key, floor key, index. ARGV: framed record, seq (8 bytes LE), member.
    /// 0 written, 1 the record exists, 2 the floor is at or past seq, 3 a corrupt floor.
    log_append: Script,
    /// KEYS: floor key, index, record key. ARGV: seq (8 bytes LE), after ours (`(member`),
    /// the last possible record (`[log/<log>/999...`). 1 when the log ends at our record.
    log_is_current: Script,
    /// KEYS: lock. ARGV: token. Deletes the lock if it holds the token.
    release: Script,
    /// KEYS: lock. ARGV: token, milliseconds. Extends the lock if it holds the token.
    renew: Script,
}

const FLOOR_AT_OR_PAST: &str = r"
local function at_or_past(floor, seq)
  if not floor then return 0 end
  if #floor ~= 8 then return 3 end
  for i = 8, 1, -1 do
    local f, s = string.byte(floor, i), string.byte(seq, i)
    if f ~= s then if f > s then return 2 else return 0 end end
  end
  return 2
end
";

fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        put_if_absent: Script::new(
            r"if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
                redis.call('ZADD', KEYS[2], 0, ARGV[2])
                return 1
              end
              return 0",
        ),
        compare_and_set: Script::new(
            r"local current = redis.call('GET', KEYS[1])
              if ARGV[1] == '1' then
                if current ~= ARGV[2] then return 0 end
              elseif current then
                return 0
              end
              redis.call('SET', KEYS[1], ARGV[3])
              redis.call('ZADD', KEYS[2], 0, ARGV[4])
              return 1",
        ),
        log_append: Script::new(&format!(
            r"{FLOOR_AT_OR_PAST}
              local fenced = at_or_past(redis.call('GET', KEYS[2]), ARGV[2])
              if fenced ~= 0 then return fenced end
              if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 1 end
              redis.call('ZADD', KEYS[3], 0, ARGV[3])
              return 0"
        )),
        log_is_current: Script::new(&format!(
            r"{FLOOR_AT_OR_PAST}
              local floor = redis.call('GET', KEYS[1])
              if floor and (#floor ~= 8 or (floor ~= ARGV[1] and at_or_past(floor, ARGV[1]) ~= 0)) then return 0 end
              if redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
              local newer = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[2], ARGV[3], 'LIMIT', 0, 1)
              if #newer > 0 then return 0 end
              return 1"
        )),
        release: Script::new(
            r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
              return 0",
        ),
        renew: Script::new(
            r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
              return 0",
        ),
    })
}

/// What the handles of one store share: the client, idle connections, the lease renewer.
struct Inner {
    client: Client,
    config: RedisConfig,
    place: String,
    secrets: Vec<String>,
    idle: Mutex<Vec<Connection>>,
    /// Tokens of the leases this store holds, renewed by `renewer`.
    leases: Mutex<HashSet<String>>,
    renewer: OnceLock<()>,
}

/// A store in a Redis database. See the module documentation.
pub struct RedisStore {
    inner: Arc<Inner>,
    /// The last sequence number this handle appended to each log (for `log_is_current`).
    appended: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisStore({:?})", self.inner.config)
    }
}

impl Inner {
    /// The Redis key of a store key.
    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.config.prefix)
    }

    fn meta(&self, name: &str) -> String {
        self.key(name)
    }

    fn error(&self, key: &str, err: &RedisError) -> StoreError {
        StoreError::Backend {
            backend: "redis",
            key: key.to_string(),
            reason: scrub(&format!("{} (prefix {}): {err}", self.place, self.config.prefix), &self.secrets),
        }
    }

    fn connect(&self) -> Result<Connection, RedisError> {
        let conn = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        conn.set_read_timeout(Some(IO_TIMEOUT))?;
        conn.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(conn)
    }

    /// Runs `f` on a connection of the pool (a new one when none is idle). A connection that
    /// failed below the protocol is dropped; when `retry`, `f` runs once more on a new one
    /// (for requests that may be repeated: a pooled connection may have been closed by the
    /// server meanwhile).
    fn run<T>(
        &self,
        key: &str,
        retry: bool,
        mut f: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
    ) -> StoreResult<T> {
        let pooled = lock(&self.idle).pop();
        let was_pooled = pooled.is_some();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.connect().map_err(|e| self.error(key, &e))?,
        };
        match f(&mut conn) {
            Ok(value) => {
                lock(&self.idle).push(conn);
                Ok(value)
            }
            Err(e) if is_broken(&e) => {
                if retry && was_pooled {
                    let mut conn = self.connect().map_err(|e| self.error(key, &e))?;
                    let value = f(&mut conn).map_err(|e| self.error(key, &e))?;
                    lock(&self.idle).push(conn);
                    return Ok(value);
                }
                Err(self.error(key, &e))
            }
            Err(e) => {
                lock(&self.idle).push(conn);
                Err(self.error(key, &e))
            }
        }
    }

    fn is_store(&self) -> StoreResult<bool> {
        let marker = self.meta(MARKER);
        self.run("opening the store", true, |c| redis::cmd("EXISTS").arg(&marker).query::<bool>(c))
    }

    /// Starts the thread that renews this store's leases (once per store).
    fn start_renewer(self: &Arc<Self>) {
        self.renewer.get_or_init(|| {
            let weak: Weak<Inner> = Arc::downgrade(self);
            let _ = std::thread::Builder::new().name("datahike-redis-lease".into()).spawn(move || loop {
                std::thread::sleep(Duration::from_millis(LEASE_MILLIS / 3));
                let Some(inner) = weak.upgrade() else { return };
                let tokens: Vec<String> = lock(&inner.leases).iter().cloned().collect();
                let lock_key = inner.meta(LOCK);
                for token in tokens {
                    // A failed renewal lets the lease lapse; the conditional writes keep a
                    // collision safe.
                    let _ = inner.run(LOCK, true, |c| {
                        scripts().renew.key(&lock_key).arg(&token).arg(LEASE_MILLIS).invoke::<i64>(c)
                    });
                }
            });
        });
    }
}

/// Whether the connection is unusable after `e` (as opposed to an error reply).
fn is_broken(e: &RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

/// `seq` as the 8 little-endian bytes of the floor key.
fn seq_bytes(seq: u64) -> [u8; 8] {
    seq.to_le_bytes()
}

/// The smallest byte string above every key starting with `prefix`: UTF-8 never contains 0xFF.
fn past_prefix(prefix: &str) -> Vec<u8> {
    let mut bound = Vec::with_capacity(prefix.len() + 2);
    bound.push(b'(');
    bound.extend_from_slice(prefix.as_bytes());
    bound.push(0xFF);
    bound
}

impl RedisStore {
    /// Connects to the store `config` names: creates it (writes its marker) when `create`,
    /// else `None` when it has no marker.
    pub fn open(config: RedisConfig, create: bool) -> StoreResult<Option<RedisStore>> {
        let place = config.place();
        let secrets = config.secrets();
        let client = client_of(&config).map_err(|e| match e {
            StoreError::Invalid(reason) => StoreError::Backend {
                backend: "redis",
                key: "connect".into(),
                reason: scrub(&format!("{place}: {reason}"), &secrets),
            },
            other => other,
        })?;
        let inner = Arc::new(Inner {
            client,
            config,
            place,
            secrets,
            idle: Mutex::new(Vec::new()),
            leases: Mutex::new(HashSet::new()),
            renewer: OnceLock::new(),
        });
        if create {
            let marker = inner.meta(MARKER);
            inner.run("creating the store", true, |c| {
                redis::cmd("SET").arg(&marker).arg(MARKER_TEXT).arg("NX").query::<()>(c)
            })?;
        } else if !inner.is_store()? {
            return Ok(None);
        }
        Ok(Some(RedisStore { inner, appended: Mutex::new(HashMap::new()) }))
    }

    /// Another handle on the same store, with its own connections (as another process has).
    pub fn reopen(&self) -> StoreResult<RedisStore> {
        Self::open(self.inner.config.clone(), false)?.ok_or_else(|| {
            StoreError::Invalid(format!(
                "the Redis store {} prefix {} is gone",
                self.inner.place, self.inner.config.prefix
            ))
        })
    }

    /// The server and database, without credentials.
    pub fn place(&self) -> &str {
        &self.inner.place
    }
}

impl Store for RedisStore {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let rkey = self.inner.key(key);
        self.inner.run(key, true, |c| redis::cmd("GET").arg(&rkey).query(c))
    }

    /// One round trip answers many keys (MGET / BatchGetItem): worth a prefetch.
    fn prefers_batched_reads(&self) -> bool {
        true
    }

    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for chunk in keys.chunks(KEYS_PER_COMMAND) {
            let mut mget = redis::cmd("MGET");
            for key in chunk {
                mget.arg(self.inner.key(key));
            }
            pipe.add_command(mget);
        }
        let chunks: Vec<Vec<Option<Vec<u8>>>> = self.inner.run(&keys[0], true, |c| pipe.query(c))?;
        Ok(chunks.into_iter().flatten().collect())
    }

    /// `STRLEN` of every key in one pipeline (one round trip); `STRLEN` answers 0 for an
    /// absent key too, so those of length 0 are asked `EXISTS` in a second one.
    fn stored_sizes(&self, keys: &[String]) -> StoreResult<Vec<Option<u64>>> {
        let Some(first) = keys.first() else { return Ok(Vec::new()) };
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("STRLEN").arg(self.inner.key(key));
        }
        let lengths: Vec<u64> = self.inner.run(first, true, |c| pipe.query(c))?;
        let zero: Vec<usize> = (0..keys.len()).filter(|&i| lengths.get(i) == Some(&0)).collect();
        let mut present = vec![true; keys.len()];
        if !zero.is_empty() {
            let mut pipe = redis::pipe();
            for &i in &zero {
                pipe.cmd("EXISTS").arg(self.inner.key(&keys[i]));
            }
            let exists: Vec<bool> = self.inner.run(&keys[zero[0]], true, |c| pipe.query(c))?;
            for (&i, exists) in zero.iter().zip(exists) {
                present[i] = exists;
            }
        }
        Ok(lengths.into_iter().zip(present).map(|(len, present)| present.then_some(len)).collect())
    }

    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        let Some((first, _)) = entries.first() else { return Ok(()) };
        let mut mset = redis::cmd("MSET");
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(self.inner.meta(INDEX));
        for (key, bytes) in entries {
            mset.arg(self.inner.key(key)).arg(bytes.as_slice());
            zadd.arg(0).arg(key);
        }
        let mut pipe = redis::pipe();
        pipe.atomic().add_command(mset).ignore().add_command(zadd).ignore();
        // Writing the same bytes again is harmless: a broken pooled connection is retried.
        self.inner.run(first, true, |c| pipe.query::<()>(c))
    }

    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        let Some(first) = keys.first() else { return Ok(()) };
        let mut pipe = redis::pipe();
        pipe.atomic();
        for chunk in keys.chunks(KEYS_PER_COMMAND) {
            let mut del = redis::cmd("DEL");
            let mut zrem = redis::cmd("ZREM");
            zrem.arg(self.inner.meta(INDEX));
            for key in chunk {
                del.arg(self.inner.key(key));
                zrem.arg(key);
            }
            pipe.add_command(del).ignore().add_command(zrem).ignore();
        }
        self.inner.run(first, true, |c| pipe.query::<()>(c))
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let index = self.inner.meta(INDEX);
        let (min, max) = if prefix.is_empty() {
            (b"-".to_vec(), b"+".to_vec())
        } else {
            (format!("[{prefix}").into_bytes(), past_prefix(prefix))
        };
        let keys: Vec<Vec<u8>> =
            self.inner.run(prefix, true, |c| redis::cmd("ZRANGEBYLEX").arg(&index).arg(&min).arg(&max).query(c))?;
        keys.into_iter()
            .map(|key| {
                String::from_utf8(key).map_err(|e| StoreError::Corrupt {
                    key: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                    reason: "a key in the index that is not UTF-8".into(),
                })
            })
            .collect()
    }

    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        let (rkey, index) = (self.inner.key(key), self.inner.meta(INDEX));
        let (flag, expected) = match expected {
            Some(bytes) => ("1", bytes),
            None => ("0", &b""[..]),
        };
        let swapped: i64 = self.inner.run(key, false, |c| {
            scripts().compare_and_set.key(&rkey).key(&index).arg(flag).arg(expected).arg(new).arg(key).invoke(c)
        })?;
        Ok(swapped == 1)
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> StoreResult<bool> {
        let (rkey, index) = (self.inner.key(key), self.inner.meta(INDEX));
        let written: i64 = self
            .inner
            .run(key, false, |c| scripts().put_if_absent.key(&rkey).key(&index).arg(bytes).arg(key).invoke(c))?;
        Ok(written == 1)
    }

    /// The default layout in one round trip: a fenced append writes nothing.
    fn log_append(&self, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
        let key = log_key(log, seq);
        let mut framed = Vec::with_capacity(record.len() + 4);
        framed.extend_from_slice(&crc32fast::hash(record).to_le_bytes());
        framed.extend_from_slice(record);
        let (rkey, floor, index) = (self.inner.key(&key), self.inner.key(&log_floor_key(log)), self.inner.meta(INDEX));
        let outcome: i64 = self.inner.run(&key, false, |c| {
            scripts()
                .log_append
                .key(&rkey)
                .key(&floor)
                .key(&index)
                .arg(&framed)
                .arg(&seq_bytes(seq)[..])
                .arg(&key)
                .invoke(c)
        })?;
        match outcome {
            0 => {
                lock(&self.appended).insert(log.to_string(), seq);
                Ok(())
            }
            1 => Err(StoreError::Conflict {
                key,
                reason: format!("log {log} already holds record {seq}: another writer committed it first"),
            }),
            2 => {
                let floor = self.get(&log_floor_key(log))?.and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
                Err(StoreError::Conflict {
                    key,
                    reason: format!(
                        "log {log} was discarded through record {}: a newer head covers record {seq}, \
                         so this writer is behind another one",
                        floor.map_or_else(|| "?".to_string(), |f| f.to_string())
                    ),
                })
            }
            _ => Err(StoreError::Corrupt { key: log_floor_key(log), reason: "a log floor that is not 8 bytes".into() }),
        }
    }

    fn log_is_current(&self, log: &str, last_seq: u64) -> StoreResult<bool> {
        if lock(&self.appended).get(log) != Some(&last_seq) {
            return Ok(false);
        }
        let ours = log_key(log, last_seq);
        let (floor, index, rkey) = (self.inner.key(&log_floor_key(log)), self.inner.meta(INDEX), self.inner.key(&ours));
        let after = format!("({ours}");
        let last = format!("[log/{log}/{}", "9".repeat(20));
        let current: i64 = self.inner.run(&ours, true, |c| {
            scripts()
                .log_is_current
                .key(&floor)
                .key(&index)
                .key(&rkey)
                .arg(&seq_bytes(last_seq)[..])
                .arg(&after)
                .arg(&last)
                .invoke(c)
        })?;
        Ok(current == 1)
    }

    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        let token = uuid::Uuid::new_v4().to_string();
        let lock_key = self.inner.meta(LOCK);
        let mut backoff = Duration::from_millis(1);
        loop {
            let taken: bool = self
                .inner
                .run(LOCK, false, |c| {
                    redis::cmd("SET")
                        .arg(&lock_key)
                        .arg(&token)
                        .arg("NX")
                        .arg("PX")
                        .arg(LEASE_MILLIS)
                        .query::<Option<String>>(c)
                })?
                .is_some();
            if taken {
                break;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(20));
        }
        lock(&self.inner.leases).insert(token.clone());
        self.inner.start_renewer();
        Ok(WriterGuard::new(Box::new(Lease { inner: self.inner.clone(), token })))
    }

    fn destroy(&self) -> StoreResult<()> {
        let index = self.inner.meta(INDEX);
        // Data first and the marker last: a destroy cut short leaves a store to destroy again.
        loop {
            let keys: Vec<String> = self
                .inner
                .run("destroy", true, |c| redis::cmd("ZRANGE").arg(&index).arg(0).arg(KEYS_PER_COMMAND - 1).query(c))?;
            if keys.is_empty() {
                break;
            }
            self.delete_batch(&keys)?;
        }
        let (marker, lock_key) = (self.inner.meta(MARKER), self.inner.meta(LOCK));
        self.inner.run("destroy", true, |c| redis::cmd("DEL").arg(&index).arg(&marker).arg(&lock_key).query::<()>(c))
    }
}

/// The writer lease, given back on drop.
struct Lease {
    inner: Arc<Inner>,
    token: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        lock(&self.inner.leases).remove(&self.token);
        let lock_key = self.inner.meta(LOCK);
        // On failure the lease expires by itself.
        let _ = self.inner.run(LOCK, true, |c| scripts().release.key(&lock_key).arg(&self.token).invoke::<i64>(c));
    }
}

/// `{:backend :redis ...}`; see [`RedisConfig::from_edn`] for the keys.
pub(crate) struct RedisBackend;

impl Backend for RedisBackend {
    fn open(&self, config: &Edn, mode: OpenMode) -> StoreResult<Option<Arc<dyn Store>>> {
        let config = RedisConfig::from_edn(config)?;
        Ok(RedisStore::open(config, mode == OpenMode::Create)?.map(|s| Arc::new(s) as Arc<dyn Store>))
    }

    fn identity(&self, config: &Edn) -> String {
        match RedisConfig::from_edn(config) {
            Ok(config) => format!("{} {}", config.place(), config.prefix),
            Err(_) => redact(config).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::read_str;

    fn parse(text: &str) -> StoreResult<RedisConfig> {
        RedisConfig::from_edn(&read_str(text).unwrap())
    }

    #[test]
    fn configs() {
        let c = parse(r#"{:backend :redis :host "10.1.2.3" :port 6380 :db 2 :prefix "app"}"#).unwrap();
        assert_eq!((c.place().as_str(), c.prefix()), ("redis://10.1.2.3:6380/2", "app"));
        let c = parse(r#"{:backend :redis :uri "redis://bob:hunter2@db.example:7000/3" :id "x"}"#).unwrap();
        assert_eq!((c.place().as_str(), c.prefix()), ("redis://db.example:7000/3", "x"));
        assert_eq!(c.info.redis_settings().username(), Some("bob"));
        assert_eq!(c.info.redis_settings().password(), Some("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
        let c = parse(r#"{:backend :redis :url "redis://h/1" :port 7001 :password "p" :username "u"}"#).unwrap();
        assert_eq!(c.place(), "redis://h:7001/1");
        assert_eq!(c.info.redis_settings().password(), Some("p"));
        for bad in [r#"{:port "x"}"#, r#"{:port 0}"#, r#"{:db -1}"#, r#"{:prefix ""}"#, r#"{:password 5}"#] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let err = parse(r#"{:uri "redis://u:sekrit@host:notaport"}"#).unwrap_err().to_string();
        assert!(!err.contains("sekrit") && err.contains(":uri"), "{err}");
    }

    #[test]
    fn prefix_bounds() {
        assert_eq!(past_prefix("ab"), b"(ab\xff".to_vec());
    }
}
