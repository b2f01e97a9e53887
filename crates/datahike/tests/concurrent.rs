//! Two processes transacting on one file store at the same time lose nothing: the writer
//! lock serialises them and each catches up with the other's commits before writing.

use datahike::{edn::read_str, Config, Edn, IndexOrder};
use std::process::Command;

const CHILD_ENV: &str = "DATAHIKE_CONCURRENT_CHILD";

fn config(dir: &str) -> Config {
    Config::parse(&format!("{{:store {{:backend :file :path {dir:?}}} :schema-flexibility :read}}")).unwrap()
}

#[test]
fn concurrent_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let (dir, name) = spec.split_once('|').unwrap();
    let conn = datahike::connect(&config(dir)).unwrap();
    for i in 0..150 {
        conn.transact(&read_str(&format!(r#"[{{:who "{name}" :i {i}}}]"#)).unwrap()).unwrap();
    }
    conn.release().unwrap();
}

#[test]
fn two_processes_transacting_lose_no_commit() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db").display().to_string();
    datahike::create_database(&config(&dir)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            Command::new(&exe)
                .args(["--exact", "concurrent_child", "--test-threads", "1"])
                .env(CHILD_ENV, format!("{dir}|{name}"))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let conn = datahike::connect(&config(&dir)).unwrap();
    let db = conn.db();
    let whos = db.datoms(IndexOrder::Aevt, &[Edn::kw("who")]).unwrap();
    assert_eq!(whos.len(), 300, "every commit of both processes is present");
    let is = db.datoms(IndexOrder::Aevt, &[Edn::kw("i")]).unwrap();
    assert_eq!(is.len(), 300);
    // Entity ids are unique: both writers allocated from the shared, caught-up counter.
    let mut es: Vec<i64> = whos.iter().map(|d| d.e).collect();
    es.dedup();
    assert_eq!(es.len(), 300);
    conn.release().unwrap();
}
