//! `listen` follows the database whoever writes it: transactions committed by another
//! process reach the callbacks of a connection in this one (its watcher looks at the store),
//! in commit order, each once, beside the connection's own.

use datahike::{edn::read_str, Config, TxReport};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "DATAHIKE_LISTEN_CHILD";

fn config(dir: &str) -> Config {
    Config::parse(&format!("{{:store {{:backend :file :path {dir:?}}} :schema-flexibility :read}}")).unwrap()
}

/// The other process: `count` transactions, a few ms apart, then a release (which flushes and
/// moves the head past what the listening process has).
#[test]
fn listen_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let mut parts = spec.split('|');
    let (dir, name, count) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let conn = datahike::connect(&config(dir)).unwrap();
    for i in 0..count.parse::<i64>().unwrap() {
        conn.transact(&read_str(&format!(r#"[{{:who "{name}" :i {i}}}]"#)).unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
    conn.release().unwrap();
}

fn run_child(dir: &str, name: &str, count: usize) {
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "listen_child", "--test-threads", "1"])
        .env(CHILD_ENV, format!("{dir}|{name}|{count}"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A new database in a temporary directory (kept while the first is alive) and its path;
/// `None` in the child process.
fn fresh_db() -> Option<(tempfile::TempDir, String)> {
    if std::env::var(CHILD_ENV).is_ok() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db").display().to_string();
    datahike::create_database(&config(&dir)).unwrap();
    Some((tmp, dir))
}

/// What the callback saw: per report, the tx and the `:who`/`:i` it asserted.
type Seen = Arc<Mutex<Vec<(i64, Vec<(String, i64)>)>>>;

fn listen(conn: &datahike::Conn) -> Seen {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    conn.listen("follow", move |report: &TxReport| {
        let tx = report.db_after.max_tx();
        let mut who = None;
        let mut i = None;
        for d in &report.tx_data {
            match d.a.as_str() {
                "who" => who = Some(format!("{:?}", d.v)),
                "i" => i = d.v.as_long(),
                _ => {}
            }
        }
        let row = who.zip(i).into_iter().collect();
        sink.lock().unwrap().push((tx, row));
    });
    seen
}

fn wait_for(seen: &Seen, n: usize) -> Vec<(i64, Vec<(String, i64)>)> {
    let start = Instant::now();
    while seen.lock().unwrap().len() < n && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    seen.lock().unwrap().clone()
}

fn check(seen: &[(i64, Vec<(String, i64)>)], expected: usize) {
    assert_eq!(seen.len(), expected, "every transaction once: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "in commit order: {seen:?}");
}

#[test]
fn a_writer_connection_hears_another_process() {
    let Some((_tmp, dir)) = fresh_db() else { return };
    let conn = datahike::connect(&config(&dir)).unwrap();
    let seen = listen(&conn);
    // Its own transactions and another process's, interleaved.
    conn.transact(&read_str(r#"[{:who "self" :i 0}]"#).unwrap()).unwrap();
    run_child(&dir, "other", 25);
    conn.transact(&read_str(r#"[{:who "self" :i 1}]"#).unwrap()).unwrap();
    run_child(&dir, "third", 5);
    let seen = wait_for(&seen, 32);
    check(&seen, 32);
    let from_other = seen.iter().filter(|(_, rows)| rows.iter().any(|(w, _)| w.contains("other"))).count();
    assert_eq!(from_other, 25);
    let is: Vec<i64> =
        seen.iter().flat_map(|(_, rows)| rows.iter().filter(|(w, _)| w.contains("other")).map(|(_, i)| *i)).collect();
    assert_eq!(is, (0..25).collect::<Vec<_>>(), "the other process's transactions in its order");
    conn.release().unwrap();
}

#[test]
fn a_reader_on_shared_storage_hears_the_writer() {
    let Some((_tmp, dir)) = fresh_db() else { return };
    let reader = datahike::connect(&Config { read_only: true, ..config(&dir) }).unwrap();
    let shared = listen(&reader);
    run_child(&dir, "writer", 20);
    let seen = wait_for(&shared, 20);
    check(&seen, 20);
    assert_eq!(reader.db().max_tx(), seen.last().unwrap().0, "the reader's value is the last one heard");
    // Removing the last callback stops the deliveries.
    assert!(reader.unlisten("follow"));
    run_child(&dir, "writer2", 3);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(reader.db().max_tx(), seen.last().unwrap().0 + 3, "the reader still reads");
    assert_eq!(shared.lock().unwrap().len(), 20, "but nothing more is delivered");
    reader.release().unwrap();
}
