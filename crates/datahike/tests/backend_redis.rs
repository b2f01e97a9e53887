//! The `:redis` backend against a real Redis server, named by `DATAHIKE_TEST_REDIS` (e.g.
//! `redis://127.0.0.1:56379/`; `.ci/services.sh` starts one). Without it a test prints a note
//! and passes, unless `CI` is set: then it fails. Each test works under its own key prefix, so
//! tests run in parallel on one server.
#![cfg(feature = "redis")]

use datahike::store::conformance::Subject;
use datahike::store::{RedisConfig, RedisStore, Store};
use datahike::{edn::read_str, Config, Edn};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The test server's URL, or `None` (after a note) when there is none outside CI.
fn server() -> Option<String> {
    match std::env::var("DATAHIKE_TEST_REDIS") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("DATAHIKE_TEST_REDIS is not set under CI: start Redis with .ci/services.sh")
        }
        _ => {
            eprintln!("note: DATAHIKE_TEST_REDIS is not set; skipping the Redis test");
            None
        }
    }
}

/// A key prefix no other test (or earlier run) uses.
fn fresh_prefix(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("dthk-test-{what}-{}-{}", uuid_ish(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn uuid_ish() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{}-{nanos:x}", std::process::id())
}

fn store_edn(url: &str, prefix: &str, extra: &str) -> String {
    format!("{{:backend :redis :uri {url:?} :prefix {prefix:?} {extra}}}")
}

fn redis_config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig::from_edn(&read_str(&store_edn(url, prefix, "")).unwrap()).unwrap()
}

fn subject() -> Subject {
    let Some(url) = server() else {
        // Outside CI without a server: a memory store stands in, so that the test has a subject.
        let id = fresh_prefix("stand-in");
        let store = datahike::store::MemoryStore::open(&id);
        return Subject::new(Arc::new(store), move || Arc::new(datahike::store::MemoryStore::open(&id)));
    };
    let config = redis_config(&url, &fresh_prefix("suite"));
    let store = RedisStore::open(config.clone(), true).unwrap().expect("created");
    Subject::new(Arc::new(store), move || {
        Arc::new(RedisStore::open(config.clone(), false).expect("reopen").expect("the store exists"))
    })
}

mod conformance {
    datahike::store_conformance_tests!(super::subject);

    #[test]
    fn stored_sizes_reported() {
        datahike::store::conformance::stored_sizes_reported(&super::subject());
    }
}

fn config(url: &str, prefix: &str, extra: &str) -> Config {
    Config::parse(&format!("{{:store {} :schema-flexibility :write}}", store_edn(url, prefix, extra))).unwrap()
}

#[test]
fn database_conformance() {
    let Some(url) = server() else { return };
    datahike::store::conformance::database(&config(&url, &fresh_prefix("db"), ""));
}

#[test]
fn config_and_lifecycle() {
    let Some(url) = server() else { return };
    let prefix = fresh_prefix("life");
    let config = config(&url, &prefix, ":db 0");
    assert_eq!(config.store.backend_name(), "redis");
    assert!(!datahike::database_exists(&config).unwrap());
    let Err(err) = datahike::connect(&config) else { panic!("connected before create") };
    assert!(err.to_string().contains("does not exist"), "{err}");
    let returned = datahike::create_database(&config).unwrap();
    assert!(datahike::database_exists(&returned).unwrap());
    let conn = datahike::connect(&config).unwrap();
    conn.transact(
        &read_str(r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one}]"#).unwrap(),
    )
    .unwrap();
    conn.transact(&read_str(r#"[{:name "Ada"}]"#).unwrap()).unwrap();
    conn.release().unwrap();
    let conn = datahike::connect(&config).unwrap();
    let names =
        datahike::q(&read_str("[:find ?n . :where [_ :name ?n]]").unwrap(), &[datahike::QueryInput::from(conn.db())])
            .unwrap();
    assert_eq!(names, Edn::str("Ada"), "a reopened database");
    conn.release().unwrap();
    // Another prefix on the same server is another store.
    assert!(!datahike::database_exists(&self::config(&url, &format!("{prefix}-other"), "")).unwrap());
    datahike::delete_database(&config).unwrap();
    assert!(!datahike::database_exists(&config).unwrap());
}

/// The marker, index and every key of a store live under its prefix, and go with it.
#[test]
fn keys_live_under_the_prefix() {
    let Some(url) = server() else { return };
    let prefix = fresh_prefix("keys");
    let store = RedisStore::open(redis_config(&url, &prefix), true).unwrap().unwrap();
    store.put_batch(&[("heads/db".into(), b"h".to_vec()), ("a*b?[c]\\d".into(), b"g".to_vec())]).unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query(&mut conn).unwrap();
    keys.sort();
    let expected: Vec<String> = ["__datahike_keys", "__datahike_store", "a*b?[c]\\d", "heads/db"]
        .iter()
        .map(|k| format!("{prefix}:{k}"))
        .collect();
    assert_eq!(keys, expected);
    assert_eq!(store.list("a*").unwrap(), vec!["a*b?[c]\\d"], "glob characters in a prefix are plain");
    assert_eq!(store.list("a").unwrap(), vec!["a*b?[c]\\d"]);
    assert!(store.list("a?").unwrap().is_empty());
    store.destroy().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query(&mut conn).unwrap();
    assert!(keys.is_empty(), "destroy leaves {keys:?}");
    assert!(RedisStore::open(redis_config(&url, &prefix), false).unwrap().is_none(), "no store after destroy");
}

/// Passwords stay out of printed configs, the config `create-database` returns, and errors.
#[test]
fn secrets_are_never_shown() {
    let Some(url) = server() else { return };
    let rest = url.strip_prefix("redis://").expect("a redis:// URL");
    let (host_port, _) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host_port.rsplit_once('@').map_or(host_port, |(_, h)| h);
    // A user of its own on the server, with a password (ACL; the default user stays as it is).
    let user = fresh_prefix("user");
    let password = format!("pw-{}", fresh_prefix("secret"));
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = client.get_connection().unwrap();
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg(format!(">{password}"))
        .arg("~*")
        .arg("+@all")
        .query::<()>(&mut admin)
        .unwrap();

    let prefix = fresh_prefix("auth");
    let with_url = Config::parse(&format!(
        "{{:store {{:backend :redis :uri \"redis://{user}:{password}@{host}/0\" :prefix {prefix:?}}}}}"
    ))
    .unwrap();
    let with_key = Config::parse(&format!(
        "{{:store {{:backend :redis :host {:?} :port {} :username {user:?} :password {password:?} :prefix {prefix:?}}}}}",
        host.rsplit_once(':').unwrap().0,
        host.rsplit_once(':').unwrap().1
    ))
    .unwrap();
    for config in [&with_url, &with_key] {
        assert!(!format!("{config:?}").contains(&password), "{config:?}");
        assert!(!config.to_edn().to_string().contains(&password));
    }
    let returned = datahike::create_database(&with_url).unwrap();
    assert!(!returned.to_edn().to_string().contains(&password));
    assert!(!returned.store.to_edn().to_string().contains(&password));
    assert!(!format!("{returned:?}").contains(&password));
    assert!(datahike::database_exists(&with_key).unwrap(), "the right password in :password works");

    let wrong = format!("{password}-wrong");
    for text in [
        format!("{{:store {{:backend :redis :uri \"redis://{user}:{wrong}@{host}/0\" :prefix {prefix:?}}}}}"),
        format!(
            "{{:store {{:backend :redis :uri \"redis://{host}/0\" :username {user:?} :password {wrong:?} :prefix {prefix:?}}}}}"
        ),
    ] {
        let config = Config::parse(&text).unwrap();
        let err = datahike::database_exists(&config).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(&wrong) && !shown.contains(&password), "{shown}");
        assert!(shown.contains(host), "the error names the server: {shown}");
        let Err(err) = datahike::connect(&config) else { panic!("connected with a wrong password") };
        assert!(!err.to_string().contains(&wrong), "{err}");
    }
    datahike::delete_database(&with_key).unwrap();
    redis::cmd("ACL").arg("DELUSER").arg(&user).query::<()>(&mut admin).unwrap();
}

/// Nothing listens: the error names the server, and says what failed.
#[test]
fn an_unreachable_server_is_named() {
    if server().is_none() {
        return;
    }
    let config = Config::parse(r#"{:store {:backend :redis :uri "redis://:s3cret@127.0.0.1:1/0"}}"#).unwrap();
    let err = datahike::database_exists(&config).unwrap_err().to_string();
    assert!(err.contains("127.0.0.1:1") && !err.contains("s3cret"), "{err}");
}

/// A Redis server of this test's own, listening for TLS only, with a certificate of a private
/// authority made here (`openssl`); killed when dropped.
#[cfg(feature = "redis-tls")]
struct TlsServer {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

#[cfg(feature = "redis-tls")]
impl TlsServer {
    fn start() -> TlsServer {
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let sh = |script: &str| {
            let out = Command::new("sh").arg("-c").arg(script).current_dir(dir.path()).output().expect("sh");
            assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
        };
        sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=datahike test CA'");
        sh("openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=localhost'");
        sh("printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf && openssl x509 -req -in server.csr \
            -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", "0", "--tls-port", &port.to_string()])
            .args(["--tls-cert-file", "server.pem", "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.pem"])
            .args(["--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", "."])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed().as_secs() < 10, "the TLS Redis server did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        TlsServer { child, port, dir }
    }
}

#[cfg(feature = "redis-tls")]
impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// TLS by `:tls? true` and by `rediss://`, trusting a private authority through `:ca-cert`;
/// without it the server's certificate is refused.
#[cfg(feature = "redis-tls")]
#[test]
fn tls_with_a_private_certificate_authority() {
    if server().is_none() {
        return;
    }
    let tls = TlsServer::start();
    let ca = tls.dir.path().join("ca.pem").display().to_string();
    let port = tls.port;
    let prefix = fresh_prefix("tls");
    for store in [
        format!("{{:backend :redis :host \"localhost\" :port {port} :tls? true :ca-cert {ca:?} :prefix {prefix:?}}}"),
        format!("{{:backend :redis :uri \"rediss://localhost:{port}/0\" :ca-cert {ca:?} :prefix \"{prefix}-uri\"}}"),
    ] {
        let config = Config::parse(&format!("{{:store {store} :schema-flexibility :read}}")).unwrap();
        assert!(!datahike::database_exists(&config).unwrap());
        datahike::create_database(&config).unwrap();
        let conn = datahike::connect(&config).unwrap();
        conn.transact(&read_str(r#"[{:name "over TLS"}]"#).unwrap()).unwrap();
        conn.release().unwrap();
        let conn = datahike::connect(&config).unwrap();
        let name = datahike::q(
            &read_str("[:find ?n . :where [_ :name ?n]]").unwrap(),
            &[datahike::QueryInput::from(conn.db())],
        )
        .unwrap();
        assert_eq!(name, Edn::str("over TLS"));
        conn.release().unwrap();
        datahike::delete_database(&config).unwrap();
    }
    let untrusted = Config::parse(&format!(
        "{{:store {{:backend :redis :uri \"rediss://localhost:{port}/0\" :prefix {prefix:?}}}}}"
    ))
    .unwrap();
    let err = datahike::database_exists(&untrusted).unwrap_err().to_string();
    assert!(err.contains(&format!("rediss://localhost:{port}")), "{err}");
}
