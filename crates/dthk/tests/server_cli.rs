//! `dthk serve` as its own process, with `dthk` clients in other processes: three remote-writer
//! clients transact through the server while reading the shared store locally, a
//! `:remote-peer` client sends every call to the server, and SIGTERM shuts the server down
//! with everything flushed.

mod common;

use common::{fails, ok};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A server process, killed if a test fails before it is terminated.
struct Server(Option<Child>);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `dthk serve` on a free port; returns the child and its URL.
fn serve(dir: &Path, token: &str) -> (Server, String) {
    std::fs::write(dir.join("server.edn"), format!("{{:port 0 :token \"{token}\" :level :warn}}")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dthk"))
        .current_dir(dir)
        .args(["serve", "server.edn"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the server printed no address").unwrap();
        if let Some(url) = line.strip_prefix("datahike server listening on ") {
            break url.trim().to_string();
        }
    };
    // Keep draining standard error so the server never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    (Server(Some(child)), url)
}

/// SIGTERM, and the exit status.
fn terminate(mut server: Server) -> std::process::ExitStatus {
    let mut child = server.0.take().unwrap();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap()
}

#[test]
fn remote_writer_clients_in_three_processes_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, url) = serve(d, "tok");
    let store = format!("{{:backend :file :path {:?}}}", d.join("db").display().to_string());
    std::fs::write(
        d.join("w.edn"),
        format!("{{:store {store} :schema-flexibility :read :writer {{:backend :datahike-server :url \"{url}\" :token \"tok\"}}}}"),
    )
    .unwrap();
    let created = ok(d, &["create-database", "edn:w.edn"]);
    assert!(created.contains(":token \"***\"") && !created.contains("tok\""), "{created}");
    // Each client process transacts, then reads its own write from the shared store.
    const PER_CLIENT: usize = 12;
    let clients: Vec<Child> = (0..3)
        .map(|c| {
            let script = format!(
                r#"for i in $(seq 1 {PER_CLIENT}); do
                     "$DTHK" transact conn:w.edn "[{{:name \"c{c}-$i\" :client {c}}}]" >/dev/null || exit 1
                     "$DTHK" query '[:find (count ?e) . :in $ ?c :where [?e :client ?c]]' db:w.edn {c} || exit 2
                   done"#
            );
            Command::new("bash")
                .current_dir(d)
                .env("DTHK", env!("CARGO_BIN_EXE_dthk"))
                .args(["-c", &script])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (c, client) in clients.into_iter().enumerate() {
        let out = client.wait_with_output().unwrap();
        assert!(out.status.success(), "client {c}: {}", String::from_utf8_lossy(&out.stderr));
        // Read-your-writes: after its i-th transaction a client counts i of its own.
        let counts: Vec<usize> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().parse().unwrap()).collect();
        assert_eq!(counts, (1..=PER_CLIENT).collect::<Vec<_>>(), "client {c}");
    }
    let all = ok(d, &["query", "[:find (count ?e) . :where [?e :name]]", "db:w.edn"]);
    assert_eq!(all.trim(), (3 * PER_CLIENT).to_string());
    let distinct = ok(d, &["query", "[:find (count-distinct ?n) . :where [?e :name ?n]]", "db:w.edn"]);
    assert_eq!(distinct.trim(), (3 * PER_CLIENT).to_string());
    // A schema violation comes back as the server's error, and nothing is written.
    let err = fails(d, &["transact", "conn:w.edn", "[[:db/add 1 :name]]"], 1);
    assert!(err.contains("expected [:db/add e a v]"), "{err}");
    // A wrong token is refused.
    let wrong = std::fs::read_to_string(d.join("w.edn")).unwrap().replace("\"tok\"", "\"nope\"");
    std::fs::write(d.join("wrong.edn"), wrong).unwrap();
    let err = fails(d, &["transact", "conn:wrong.edn", "[{:name \"x\"}]"], 1);
    assert!(err.contains("missing or wrong token"), "{err}");
    let status = terminate(server);
    assert!(status.success(), "the server exits cleanly on SIGTERM: {status:?}");
    // After shutdown the store is complete and flushed: a plain local reader sees it all.
    std::fs::write(d.join("local.edn"), format!("{{:store {store}}}")).unwrap();
    let all = ok(d, &["query", "[:find (count ?e) . :where [?e :name]]", "db:local.edn"]);
    assert_eq!(all.trim(), (3 * PER_CLIENT).to_string());
}

#[test]
fn remote_peer_sends_every_call_to_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, url) = serve(d, "tok");
    let store = format!("{{:backend :file :path {:?}}}", d.join("db").display().to_string());
    std::fs::write(
        d.join("p.edn"),
        format!("{{:store {store} :schema-flexibility :read :remote-peer {{:backend :datahike-server :url \"{url}\" :token \"tok\"}}}}"),
    )
    .unwrap();
    assert_eq!(ok(d, &["database-exists", "edn:p.edn"]).trim(), "false");
    ok(d, &["create-database", "edn:p.edn"]);
    let report = ok(d, &["transact", "conn:p.edn", r#"[{:name "Ada" :age 36} {:name "Bob" :age 25}]"#]);
    assert!(report.contains(":tx-data [#datahike/Datom"), "{report}");
    assert_eq!(ok(d, &["query", "[:find ?n . :where [?e :age 25] [?e :name ?n]]", "db:p.edn"]).trim(), "\"Bob\"");
    assert_eq!(ok(d, &["-f", "json", "pull", "db:p.edn", "[:name]", "1"]).trim(), r#"{"name":"Ada"}"#);
    ok(d, &["transact", "conn:p.edn", "[[:db/retract 2 :age 25]]"]);
    let history = ok(d, &["datoms", "history:p.edn", ":eavt", "2", ":age"]);
    assert_eq!(history.matches("#datahike/Datom").count(), 2, "{history}");
    assert_eq!(ok(d, &["schema", "db:p.edn"]).trim(), "{}");
    let err = fails(d, &["export", "db:p.edn", "dump"], 1);
    assert!(err.contains("not supported remotely"), "{err}");
    assert!(!d.join("dump").exists());
    ok(d, &["delete-database", "edn:p.edn"]);
    assert_eq!(ok(d, &["database-exists", "edn:p.edn"]).trim(), "false");
    assert!(terminate(server).success());
}
