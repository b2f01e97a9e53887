//! The `:jdbc` backend on PostgreSQL (cargo feature `postgres`), against a real server: the
//! store conformance suite, the database end to end, configs as users write them (keys,
//! `:jdbcUrl`, `:dbtype "postgres"`), table creation, secrets kept out of every text, two
//! handles and threads, and reopening.
//!
//! The server comes from `DATAHIKE_TEST_POSTGRES`, a libpq-style string such as
//! `host=127.0.0.1 port=55432 user=datahike password=datahike dbname=datahike` (what
//! `.ci/services.sh env` exports). Unset, each test fails under CI (`CI` set) and otherwise
//! prints a note and passes; the conformance checks then run on a memory store. Every test
//! uses tables of its own, so tests run in parallel; the tables are left behind in the test
//! database (a subject has no teardown), except where a test deletes its database.
#![cfg(feature = "postgres")]

use datahike::edn::read_str;
use datahike::store::backend::lookup;
use datahike::store::conformance::Subject;
use datahike::store::{MemoryStore, OpenMode, Store};
use datahike::{Config, Edn};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The server's connection settings, or `None` (with a note) when none is configured.
fn server() -> Option<BTreeMap<String, String>> {
    let Ok(text) = std::env::var("DATAHIKE_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "DATAHIKE_TEST_POSTGRES is unset under CI: start the test services (.ci/services.sh start) and export \
             their settings (eval \"$(.ci/services.sh env)\")"
        );
        eprintln!("note: DATAHIKE_TEST_POSTGRES is unset; the PostgreSQL backend is not tested against a server");
        return None;
    };
    let settings: BTreeMap<String, String> = text
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect();
    Some(settings)
}

/// A table name used by no other test, of this run or an earlier one.
fn fresh_table() -> String {
    format!("dhtest_{}", uuid::Uuid::new_v4().simple())
}

/// The `:store` map of `table` on the test server, as EDN text, with `extra` keys.
fn store_text(server: &BTreeMap<String, String>, table: &str, extra: &str) -> String {
    let mut text = format!(r#"{{:backend :jdbc :dbtype "postgresql" :table {table:?} {extra}"#);
    for (key, edn_key) in
        [("host", "host"), ("port", "port"), ("user", "user"), ("password", "password"), ("dbname", "dbname")]
    {
        if let Some(value) = server.get(key) {
            if !extra.contains(&format!(":{edn_key} ")) {
                text.push_str(&format!(" :{edn_key} {value:?}"));
            }
        }
    }
    text.push('}');
    text
}

fn open(store: &Edn, mode: OpenMode) -> Option<Arc<dyn Store>> {
    lookup("jdbc").expect("the jdbc backend is built in").open(store, mode).expect("open")
}

fn subject() -> Subject {
    let Some(server) = server() else {
        let store = Arc::new(MemoryStore::new());
        let again = Arc::clone(&store);
        return Subject::new(store, move || again.clone());
    };
    let store = read_str(&store_text(&server, &fresh_table(), "")).unwrap();
    let first = open(&store, OpenMode::Create).expect("created");
    Subject::new(first, move || open(&store, OpenMode::Open).expect("the table exists"))
}

mod conformance {
    datahike::store_conformance_tests!(super::subject);

    #[test]
    fn stored_sizes_reported() {
        datahike::store::conformance::stored_sizes_reported(&super::subject());
    }
}

fn config(server: &BTreeMap<String, String>, table: &str, extra: &str) -> Config {
    Config::parse(&format!("{{:store {} {extra}}}", store_text(server, table, ""))).expect("config")
}

fn count(conn: &datahike::Conn) -> Edn {
    datahike::q(&read_str("[:find (count ?e) . :where [?e :n]]").unwrap(), &[datahike::QueryInput::from(conn.db())])
        .unwrap()
}

#[test]
fn database_conformance() {
    let Some(server) = server() else { return };
    datahike::store::conformance::database(&config(&server, &fresh_table(), ""));
}

/// A direct connection to the test server, to look at what the backend made.
fn psql(server: &BTreeMap<String, String>) -> postgres::Client {
    let text: Vec<String> = server.iter().map(|(k, v)| format!("{k}='{v}'")).collect();
    postgres::Client::connect(&text.join(" "), postgres::NoTls).expect("connect to the test server")
}

#[test]
fn create_database_creates_the_table() {
    let Some(server) = server() else { return };
    let table = fresh_table();
    let config = config(&server, &table, ":schema-flexibility :read");
    assert!(!datahike::database_exists(&config).unwrap());
    assert!(datahike::connect(&config).is_err());
    let store = read_str(&store_text(&server, &table, "")).unwrap();
    assert!(open(&store, OpenMode::Open).is_none(), "a missing table opens nothing");
    assert!(open(&store, OpenMode::ReadOnly).is_none());
    let exists = |client: &mut postgres::Client| -> bool {
        client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).unwrap().get(0)
    };
    let mut client = psql(&server);
    assert!(!exists(&mut client), "checking for a database creates no table");

    datahike::create_database(&config).unwrap();
    assert!(exists(&mut client), "create-database creates the table");
    let columns: Vec<(String, String)> = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_name = $1 \
             ORDER BY ordinal_position",
            &[&table],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(columns, vec![("k".into(), "text".into()), ("v".into(), "bytea".into())]);
    assert!(datahike::database_exists(&config).unwrap());
    let conn = datahike::connect(&config).unwrap();
    conn.transact(&read_str("[{:n 1} {:n 2}]").unwrap()).unwrap();
    conn.release().unwrap();
    let heads: i64 =
        client.query_one(&format!("SELECT count(*) FROM \"{table}\" WHERE k LIKE 'heads/%'"), &[]).unwrap().get(0);
    assert_eq!(heads, 1, "the branch head is a row");

    let conn = datahike::connect(&config).unwrap();
    assert_eq!(count(&conn), Edn::Int(2), "reopened");
    conn.release().unwrap();
    datahike::delete_database(&config).unwrap();
    assert!(!exists(&mut client), "delete-database drops the table");
    assert!(!datahike::database_exists(&config).unwrap());
}

/// Datahike's and next.jdbc's shapes: keys with `:dbtype "postgres"`, `:jdbcUrl` with the
/// credentials as parameters, `:jdbc-url` with them in the authority; `:port` as a string.
/// Databases in different tables of one PostgreSQL database stay apart.
#[test]
fn config_shapes_and_tables_in_one_database() {
    let Some(server) = server() else { return };
    let host = server.get("host").cloned().unwrap_or_else(|| "localhost".into());
    let port = server.get("port").cloned().unwrap_or_else(|| "5432".into());
    let user = server.get("user").cloned().unwrap_or_else(|| "postgres".into());
    let dbname = server.get("dbname").cloned().unwrap_or_else(|| user.clone());
    let password = server.get("password").cloned().unwrap_or_default();
    let tables: Vec<String> = (0..3).map(|_| fresh_table()).collect();
    let configs = [
        format!(
            r#"{{:store {{:backend :jdbc :dbtype "postgres" :host {host:?} :port {port:?} :user {user:?} :password {password:?} :dbname {dbname:?} :table {:?}}} :schema-flexibility :read}}"#,
            tables[0]
        ),
        format!(
            r#"{{:store {{:backend :jdbc :jdbcUrl "jdbc:postgresql://{host}:{port}/{dbname}?user={user}&password={password}" :table {:?}}} :schema-flexibility :read}}"#,
            tables[1]
        ),
        format!(
            r#"{{:store {{:backend :jdbc :jdbc-url "postgresql://{user}:{password}@{host}:{port}/{dbname}" :table {:?}}} :schema-flexibility :read}}"#,
            tables[2]
        ),
    ];
    for (idx, text) in configs.iter().enumerate() {
        let config = Config::parse(text).unwrap();
        assert_eq!(config.store.backend_name(), "jdbc");
        assert!(!datahike::database_exists(&config).unwrap(), "{idx}");
        datahike::create_database(&config).unwrap();
        let conn = datahike::connect(&config).unwrap();
        for n in 0..=idx {
            conn.transact(&read_str(&format!("[{{:n {n}}}]")).unwrap()).unwrap();
        }
        conn.release().unwrap();
    }
    for (idx, text) in configs.iter().enumerate() {
        let conn = datahike::connect(&Config::parse(text).unwrap()).unwrap();
        assert_eq!(count(&conn), Edn::Int(idx as i64 + 1), "config {idx}");
        conn.release().unwrap();
    }
    for text in &configs {
        datahike::delete_database(&Config::parse(text).unwrap()).unwrap();
    }
}

/// The password is in no text a user or a log sees: the config's debug form, the config
/// `create-database` returns, and the error of a connection that fails (a wrong password,
/// or a database that does not exist), which names the user, host and database instead.
#[test]
fn secrets_stay_secret() {
    let Some(server) = server() else { return };
    let secret = "Sw0rdfish-not-the-password";
    let host = server.get("host").cloned().unwrap_or_else(|| "localhost".into());
    let dbname = server.get("dbname").cloned().unwrap_or_default();
    let table = fresh_table();
    let config = config(&server, &table, "");
    let real = server.get("password").cloned().unwrap_or_default();
    for text in [format!("{config:?}"), format!("{:?}", config.store)] {
        assert!(real.is_empty() || !text.contains(&real), "the password in {text}");
    }
    let created = datahike::create_database(&config).unwrap();
    let printed = created.store.to_edn().to_string();
    assert!(real.is_empty() || !printed.contains(&real), "the password in {printed}");
    assert!(printed.contains("***"), "{printed}");
    datahike::delete_database(&config).unwrap();

    let wrong =
        Config::parse(&format!("{{:store {}}}", store_text(&server, &fresh_table(), &format!(":password {secret:?}"))))
            .unwrap();
    assert!(!format!("{wrong:?}").contains(secret));
    match datahike::create_database(&wrong) {
        Err(e) => {
            let message = e.to_string();
            eprintln!("a wrong password: {message}");
            assert!(!message.contains(secret), "the password in {message}");
            assert!(message.contains(&host) && message.contains(&dbname), "{message}");
            assert!(message.contains("password") || message.contains("authentication"), "{message}");
        }
        // A server that trusts this client checks no password (the test services do).
        Ok(_) => {
            eprintln!("note: the server accepted a wrong password (trust authentication); not checked");
            datahike::delete_database(&wrong).unwrap();
        }
    }
    let missing = Config::parse(&format!(
        "{{:store {}}}",
        store_text(&server, &fresh_table(), &format!(":password {secret:?} :dbname \"no_such_database_here\""))
    ))
    .unwrap();
    let message = datahike::create_database(&missing).unwrap_err().to_string();
    assert!(!message.contains(secret), "the password in {message}");
    assert!(message.contains(&host) && message.contains("no_such_database_here"), "{message}");
    let url = Config::parse(&format!(
        r#"{{:store {{:backend :jdbc :jdbcUrl "jdbc:postgresql://{host}:1/x?user=u&password={secret}"}}}}"#
    ))
    .unwrap();
    assert!(!format!("{url:?}").contains(secret));
    let message = datahike::create_database(&url).unwrap_err().to_string();
    assert!(!message.contains(secret), "the password in {message}");
}

/// Threads transacting through one connection, while another store handle reads; a second
/// connection (the registry shares one per store) reopens the database afterwards.
#[test]
fn writers_on_several_threads_and_handles() {
    let Some(server) = server() else { return };
    let config = config(&server, &fresh_table(), ":schema-flexibility :read");
    datahike::create_database(&config).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = datahike::connect(&config).unwrap();
                for i in 0..40 {
                    conn.transact(&read_str(&format!("[{{:n {}}}]", t * 1000 + i)).unwrap()).unwrap();
                }
                conn.release().unwrap();
            })
        })
        .collect();
    let store = match &config.store {
        datahike::StoreConfig::Backend { config, .. } => config.clone(),
        other => panic!("not a backend store: {other:?}"),
    };
    let reader = open(&store, OpenMode::ReadOnly).unwrap();
    for _ in 0..20 {
        assert!(reader.get("heads/db").unwrap().is_some());
    }
    for t in threads {
        t.join().unwrap();
    }
    let conn = datahike::connect(&config).unwrap();
    assert_eq!(count(&conn), Edn::Int(160));
    conn.release().unwrap();
    datahike::delete_database(&config).unwrap();
}

/// A config without a password takes it from `PGPASSFILE` (libpq's `.pgpass`), which the
/// driver itself does not read. Only when `PGPASSWORD` is unset (it would win).
#[test]
fn password_from_the_password_file() {
    let Some(server) = server() else { return };
    let Some(password) = server.get("password") else { return };
    if std::env::var_os("PGPASSWORD").is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgpass");
    std::fs::write(&file, format!("*:*:*:*:{}\n", password.replace('\\', "\\\\").replace(':', "\\:"))).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Other tests give their password in the config, which wins over the file.
    std::env::set_var("PGPASSFILE", &file);
    let mut without = server.clone();
    without.remove("password");
    let config = config(&without, &fresh_table(), ":schema-flexibility :read");
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    conn.transact(&read_str("[{:n 1}]").unwrap()).unwrap();
    conn.release().unwrap();
    datahike::delete_database(&config).unwrap();
    std::env::remove_var("PGPASSFILE");
}

/// `log_is_current` (the writer's shortcut past re-reading the head and the log) is true
/// only while the log ends at the given record and nothing discarded it.
#[test]
fn log_is_current_only_while_nobody_else_wrote() {
    let Some(server) = server() else { return };
    let store = read_str(&store_text(&server, &fresh_table(), "")).unwrap();
    let a = open(&store, OpenMode::Create).unwrap();
    let b = open(&store, OpenMode::Open).unwrap();
    assert!(!a.log_is_current("db", 0).unwrap(), "an empty log");
    for seq in 1..=3 {
        a.log_append("db", seq, b"r").unwrap();
    }
    assert!(a.log_is_current("db", 3).unwrap());
    assert!(!a.log_is_current("db", 2).unwrap(), "record 3 follows");
    b.log_append("db", 4, b"r").unwrap();
    assert!(!a.log_is_current("db", 3).unwrap(), "another handle appended");
    assert!(b.log_is_current("db", 4).unwrap());
    // A sub-log's records never count as this log's.
    a.log_append("db/x", 9, b"r").unwrap();
    assert!(a.log_is_current("db", 4).unwrap());
    a.log_append("db", 5, b"r").unwrap();
    b.log_discard("db", 4).unwrap();
    assert!(a.log_is_current("db", 5).unwrap(), "a discard below the record");
    b.log_discard("db", 5).unwrap();
    assert!(!a.log_is_current("db", 5).unwrap(), "discarded through the record");
    a.log_append("db", 6, b"r").unwrap();
    assert!(a.log_is_current("db", 6).unwrap());
    b.log_delete("db").unwrap();
    assert!(!a.log_is_current("db", 6).unwrap(), "a deleted log");
    a.destroy().unwrap();
}
