//! The library reports what it does through `tracing`: log groups appended, index flushes,
//! garbage collection and slow queries, with their numbers, to whatever subscriber the
//! application installed.

use datahike::edn::read_str;
use datahike::{Config, QueryInput};
use std::sync::{Arc, Mutex};

/// A writer into a shared buffer, for the subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn commits_flushes_collections_and_slow_queries_are_reported() {
    // Every query counts as slow in this process.
    std::env::set_var("DATAHIKE_SLOW_QUERY_MS", "0");
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .without_time()
        .init();

    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(&format!(
        "{{:store {{:backend :file :path {:?}}} :schema-flexibility :read}}",
        dir.path().display().to_string()
    ))
    .unwrap();
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    conn.transact(&read_str(r#"[{:name "Ada"}]"#).unwrap()).unwrap();
    conn.flush().unwrap();
    conn.gc_storage(None).unwrap();
    datahike::q(&read_str("[:find ?n :where [_ :name ?n]]").unwrap(), &[QueryInput::Db(conn.db())]).unwrap();
    conn.release().unwrap();

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for expected in [
        "datahike::commit: log group appended",
        "records=1",
        "datahike::flush: index flush published",
        "datahike::gc: garbage collected",
        "freed_bytes=",
        "datahike::query: slow query",
        ":find ?n",
    ] {
        assert!(text.contains(expected), "no {expected:?} in the events:\n{text}");
    }
}
