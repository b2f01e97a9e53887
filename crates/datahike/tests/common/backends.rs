//! The backends of this build a test can run on, each with a way to make the config of a
//! fresh database. Memory and file always; the others when their cargo feature is on and the
//! variable naming their service is set (`.ci/services.sh env`). Under CI (`CI` set) a
//! feature whose service is missing is a failure, never a silent skip.

use datahike::Config;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The names of the backends to run on.
pub fn available() -> Vec<&'static str> {
    let mut out = vec!["memory", "file"];
    let mut want = |name: &'static str, var: Option<&str>| match var.map(std::env::var) {
        None | Some(Ok(_)) => out.push(name),
        Some(Err(_)) if std::env::var_os("CI").is_some() => {
            panic!("the {name} backend is built but its service is not configured ({})", var.unwrap_or(""))
        }
        Some(Err(_)) => eprintln!("note: {name} is built but {} is not set; not run", var.unwrap_or("")),
    };
    #[cfg(feature = "lmdb")]
    want("lmdb", None);
    #[cfg(feature = "redis")]
    want("redis", Some("DATAHIKE_TEST_REDIS"));
    #[cfg(feature = "sqlite")]
    want("sqlite", None);
    #[cfg(feature = "postgres")]
    want("postgres", Some("DATAHIKE_TEST_POSTGRES"));
    #[cfg(feature = "s3")]
    want("s3", Some("DATAHIKE_TEST_SEAWEED_ENDPOINT"));
    #[cfg(feature = "gcs")]
    want("gcs", Some("DATAHIKE_TEST_GCS_ENDPOINT"));
    #[cfg(feature = "dynamodb")]
    want("dynamodb", Some("DATAHIKE_TEST_DYNAMODB_ENDPOINT"));
    want("tiered", None);
    out
}

/// The config of a fresh database on `backend`, and what must live as long as it (a
/// temporary directory).
pub fn fresh(backend: &str, prefix: &str) -> (Config, Option<tempfile::TempDir>) {
    let (store, dir) = fresh_store(backend, prefix);
    (Config::parse(&format!("{{:store {store}}}")).unwrap(), dir)
}

/// The `:store` map of a fresh database on `backend` as EDN text (secrets included, for a
/// child process), and what must live as long as it.
pub fn fresh_store(backend: &str, prefix: &str) -> (String, Option<tempfile::TempDir>) {
    let unique = format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    let (store, dir) = match backend {
        "memory" => (format!("{{:backend :memory :id {unique:?}}}"), None),
        "file" => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db").display().to_string();
            (format!("{{:backend :file :path {path:?}}}"), Some(dir))
        }
        "lmdb" => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db").display().to_string();
            (format!("{{:backend :lmdb :path {path:?}}}"), Some(dir))
        }
        "redis" => {
            let url = std::env::var("DATAHIKE_TEST_REDIS").unwrap();
            (format!("{{:backend :redis :uri {url:?} :prefix {unique:?}}}"), None)
        }
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db.sqlite").display().to_string();
            (format!(r#"{{:backend :jdbc :dbtype "sqlite" :dbname {path:?}}}"#), Some(dir))
        }
        "postgres" => {
            // A libpq-style `key=value ...` string; the table is this database's own.
            let settings = std::env::var("DATAHIKE_TEST_POSTGRES").expect("DATAHIKE_TEST_POSTGRES");
            let keys: String = settings
                .split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| format!(" :{k} {:?}", v.trim_matches('\'')))
                .collect();
            let table = format!("t_{}", unique.replace('-', "_"));
            (format!(r#"{{:backend :jdbc :dbtype "postgresql" :table {table:?}{keys}}}"#), None)
        }
        "s3" => {
            // SeaweedFS, a real S3 server (credentials from the AWS_* variables).
            let endpoint = std::env::var("DATAHIKE_TEST_SEAWEED_ENDPOINT").unwrap();
            let store = format!(
                r#"{{:backend :s3 :bucket "dthk-shared-tests" :prefix {unique:?} :region "us-east-1" :endpoint {endpoint:?}}}"#
            );
            (store, None)
        }
        "gcs" => {
            let endpoint = std::env::var("DATAHIKE_TEST_GCS_ENDPOINT").unwrap();
            let store = format!(
                r#"{{:backend :gcs :bucket "dthk-shared-tests" :prefix {unique:?} :endpoint {endpoint:?} :project-id "test"}}"#
            );
            (store, None)
        }
        "dynamodb" => {
            let endpoint = std::env::var("DATAHIKE_TEST_DYNAMODB_ENDPOINT").unwrap();
            let store = format!(
                r#"{{:backend :dynamodb :endpoint {endpoint:?} :region "us-east-1" :table "dthk-shared-tests" :prefix {unique:?}}}"#
            );
            (store, None)
        }
        "tiered" => {
            // A memory frontend (its own per process) over a file backend.
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db").display().to_string();
            let store = format!(
                "{{:backend :tiered :frontend-config {{:backend :memory :id {unique:?}}} \
                  :backend-config {{:backend :file :path {path:?}}} :write-policy :write-through :read-policy :frontend-first}}"
            );
            (store, Some(dir))
        }
        other => panic!("no fresh config for backend {other}"),
    };
    (store, dir)
}
