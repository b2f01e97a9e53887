//! End-to-end tests of the branch, commit and garbage collection commands of `dthk`, each
//! command a separate process on one file database, as a user would run them.

mod common;

use common::{fails, ok};
use std::path::Path;

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (file, branch) in [("cfg.edn", ":db"), ("staging.edn", ":staging")] {
        let config = format!(
            "{{:store {{:backend :file :path {:?}}} :schema-flexibility :read :branch {branch}}}",
            dir.path().join("db").display().to_string()
        );
        std::fs::write(dir.path().join(file), config).unwrap();
    }
    ok(dir.path(), &["create-database", "edn:cfg.edn"]);
    ok(dir.path(), &["transact", "conn:cfg.edn", r#"[{:name "Alice"}]"#]);
    dir
}

fn names(dir: &Path, db: &str) -> String {
    ok(dir, &["query", "[:find [?n ...] :where [_ :name ?n]]", db]).trim().to_string()
}

#[test]
fn branch_transact_merge_and_delete() {
    let dir = setup();
    let d = dir.path();
    assert_eq!(ok(d, &["branches", "conn:cfg.edn"]).trim(), "#{:db}");
    assert_eq!(ok(d, &["branch", "conn:cfg.edn", ":db", ":staging"]).trim(), "nil");
    assert_eq!(ok(d, &["branches", "conn:cfg.edn"]).trim(), "#{:db :staging}");
    let err = fails(d, &["branch", "conn:cfg.edn", ":db", ":staging"], 1);
    assert!(err.contains("Branch :staging already exists"), "{err}");
    ok(d, &["transact", "conn:staging.edn", r#"[{:name "Sam"}]"#]);
    assert_eq!(names(d, "db:staging.edn"), r#"["Alice" "Sam"]"#);
    assert_eq!(names(d, "db:cfg.edn"), r#"["Alice"]"#);
    let staging_head = ok(d, &["commit-id", "db:staging.edn"]).trim().to_string();
    assert!(staging_head.starts_with("#uuid \""), "{staging_head}");
    let own_head = ok(d, &["commit-id", "db:cfg.edn"]).trim().to_string();
    let report = ok(d, &["merge-db", "conn:cfg.edn", "#{:staging}", r#"[{:name "Sam"}]"#]);
    assert!(report.contains(":tx-data [#datahike/Datom"), "{report}");
    assert_eq!(names(d, "db:cfg.edn"), r#"["Alice" "Sam"]"#);
    let parents = ok(d, &["parent-commit-ids", "db:cfg.edn"]);
    assert!(parents.contains(&staging_head) && parents.contains(&own_head), "{parents}");
    // The staging head, read through a branch-as-db and a commit-as-db.
    let summary = ok(d, &["branch-as-db", "conn:cfg.edn", ":staging"]);
    assert!(summary.contains(&format!(":commit-id {staging_head}")), "{summary}");
    let summary = ok(d, &["commit-as-db", "conn:cfg.edn", &staging_head]);
    assert!(summary.starts_with("#datahike/DB {"), "{summary}");
    assert_eq!(ok(d, &["commit-as-db", "db:cfg.edn", r#"#uuid "00000000-0000-0000-0000-000000000001""#]).trim(), "nil");
    assert_eq!(ok(d, &["branch-as-db", "conn:cfg.edn", ":nope"]).trim(), "nil");
    // Deleting a merged branch keeps what the merge commit reaches through its parents;
    // deleting one that nobody merged, then collecting, reclaims its nodes.
    let err = fails(d, &["delete-branch", "conn:cfg.edn", ":db"], 1);
    assert!(err.contains("main branch"), "{err}");
    ok(d, &["delete-branch", "conn:cfg.edn", ":staging"]);
    assert_eq!(ok(d, &["gc-storage", "conn:cfg.edn", "--keys"]).trim(), "#{}");
    ok(d, &["branch", "conn:cfg.edn", ":db", ":staging"]);
    ok(d, &["transact", "conn:staging.edn", r#"[{:name "Tmp"}]"#]);
    ok(d, &["delete-branch", "conn:cfg.edn", ":staging"]);
    assert_eq!(ok(d, &["branches", "conn:cfg.edn"]).trim(), "#{:db}");
    // The summary: what went, by kind, the bytes freed, what stayed.
    let summary = datahike::edn::read_str(&ok(d, &["gc-storage", "conn:cfg.edn"])).unwrap();
    let deleted = summary.get_kw("deleted").unwrap();
    let n = |m: &datahike::Edn, k: &str| match m.get_kw(k) {
        Some(datahike::Edn::Int(n)) => *n,
        other => panic!("{k}: {other:?} in {summary}"),
    };
    assert!(n(deleted, "nodes") > 0 && n(deleted, "commits") > 0, "{summary}");
    let parts = ["nodes", "values", "commits", "packs", "temporaries"].iter().map(|k| n(deleted, k)).sum::<i64>();
    assert_eq!(n(deleted, "total"), parts, "{summary}");
    assert!(n(&summary, "freed-bytes") > 0, "{summary}");
    assert!(n(summary.get_kw("kept").unwrap(), "nodes") > 0, "{summary}");
    // Nothing is left to collect; --keys prints the set of deleted keys, as Datahike returns it.
    assert_eq!(ok(d, &["gc-storage", "--keys", "conn:cfg.edn"]).trim(), "#{}");
    let json: serde_json::Value = serde_json::from_str(&ok(d, &["-f", "json", "gc-storage", "conn:cfg.edn"])).unwrap();
    assert_eq!(json["deleted"]["total"], 0, "{json}");
    assert_eq!(json["freed-bytes"], 0, "{json}");
    assert_eq!(names(d, "db:cfg.edn"), r#"["Alice" "Sam"]"#);
    // Bad arguments name what is wrong.
    let err = fails(d, &["branch", "conn:cfg.edn", ":db", "staging2"], 1);
    assert!(err.contains("expected a branch keyword"), "{err}");
    let err = fails(d, &["gc-storage", "conn:cfg.edn", "\"yesterday\""], 1);
    assert!(err.contains("expected an instant"), "{err}");
}

#[test]
fn force_branch_and_gc_with_a_cutoff() {
    let dir = setup();
    let d = dir.path();
    let first = ok(d, &["commit-id", "db:cfg.edn"]).trim().to_string();
    ok(d, &["transact", "conn:cfg.edn", r#"[{:name "Bob"}]"#]);
    // Branch from a commit id, then reset :db to it.
    ok(d, &["branch", "conn:cfg.edn", &first, ":old"]);
    std::fs::write(
        d.join("old.edn"),
        format!("{{:store {{:backend :file :path {:?}}} :branch :old}}", d.join("db").display().to_string()),
    )
    .unwrap();
    assert_eq!(names(d, "db:old.edn"), r#"["Alice"]"#);
    ok(d, &["force-branch", "db:old.edn", ":db", "#{:db}"]);
    assert_eq!(names(d, "db:cfg.edn"), r#"["Alice"]"#);
    let parents = ok(d, &["parent-commit-ids", "db:cfg.edn"]);
    assert!(parents.starts_with("#{#uuid"), "{parents}");
    // Everything older than now goes, except what the heads reach.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let deleted = ok(d, &["gc-storage", "conn:cfg.edn", &now.to_string(), "--keys"]);
    assert!(deleted.contains("\"commits/"), "{deleted}");
    // The first commit is the head of :old, so it stays.
    let summary = ok(d, &["commit-as-db", "conn:cfg.edn", &first]);
    assert!(summary.starts_with("#datahike/DB {"), "{summary}");
    assert_eq!(names(d, "db:cfg.edn"), r#"["Alice"]"#);
    assert_eq!(names(d, "db:old.edn"), r#"["Alice"]"#);
}
