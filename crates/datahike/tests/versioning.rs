//! Commits, branches, merges and garbage collection on the memory and the file backend.
//! Cases follow Datahike's `doc/versioning.md` and `test/datahike/test/versioning_test.cljc`.

mod common;

use common::{edn, fresh_store, Backend, BACKENDS};
use datahike::edn::pr_str;
use datahike::{q, BranchOrCommit, Config, Conn, Db, Keyword, QueryInput};
use std::collections::BTreeSet;

struct TestDb {
    conn: Conn,
    config: Config,
    dir: Option<tempfile::TempDir>,
}

impl TestDb {
    fn new(backend: Backend) -> TestDb {
        let (store, dir) = fresh_store(backend, "versioning");
        let config = Config::parse(&format!("{{:store {store} :schema-flexibility :read}}")).unwrap();
        datahike::create_database(&config).unwrap();
        let conn = datahike::connect(&config).unwrap();
        TestDb { conn, config, dir }
    }

    fn transact(&self, text: &str) -> datahike::TxReport {
        self.conn.transact(&edn(text)).unwrap_or_else(|e| panic!("transaction failed: {e}: {text}"))
    }

    fn reopen(&mut self) {
        self.conn.release().unwrap();
        self.conn = datahike::connect(&self.config).unwrap();
    }

    /// A connection to another branch of the same store.
    fn connect_branch(&self, branch: &str) -> Conn {
        let config = Config { branch: Keyword::new(branch), ..self.config.clone() };
        datahike::connect(&config).unwrap()
    }
}

fn kw(s: &str) -> Keyword {
    Keyword::new(s)
}

fn names(db: &Db) -> BTreeSet<String> {
    let result = q(&edn("[:find ?n :where [_ :name ?n]]"), &[QueryInput::Db(db.clone())]).unwrap();
    match &result {
        datahike::Edn::Set(rows) => rows.iter().map(pr_str).collect(),
        other => panic!("unexpected result {other}"),
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|n| format!("[{n:?}]")).collect()
}

#[test]
fn every_transaction_is_a_commit_with_its_parent() {
    for backend in BACKENDS {
        let mut t = TestDb::new(backend);
        let first = t.conn.db().commit_id().expect("a new database has a commit");
        assert_eq!(t.conn.db().parent_commit_ids(), Some(vec![]), "{backend:?}");
        let r1 = t.transact(r#"[{:name "Alice"}]"#);
        let c1 = r1.db_after.commit_id().unwrap();
        assert_ne!(c1, first);
        assert_eq!(r1.db_after.parent_commit_ids(), Some(vec![first]));
        assert_eq!(r1.db_before.commit_id(), Some(first));
        let meta_cid = r1.tx_meta.iter().find(|(k, _)| k.as_str() == "db/commitId").map(|(_, v)| v.clone());
        assert_eq!(meta_cid, Some(datahike::Edn::Uuid(c1)), "the tx report names the commit");
        let r2 = t.transact(r#"[{:name "Bob"}]"#);
        let c2 = r2.db_after.commit_id().unwrap();
        assert_eq!(r2.db_after.parent_commit_ids(), Some(vec![c1]));
        // Unflushed commits, then flushed ones (snapshot or pack), then after reopen.
        for stage in ["log", "flushed", "reopened"] {
            match stage {
                "flushed" => t.conn.flush().unwrap(),
                "reopened" => t.reopen(),
                _ => {}
            }
            let at1 = t.conn.commit_as_db(c1).unwrap().unwrap_or_else(|| panic!("{backend:?} {stage}: c1"));
            assert_eq!(names(&at1), set(&["Alice"]), "{backend:?} {stage}");
            assert_eq!(at1.commit_id(), Some(c1));
            assert_eq!(at1.parent_commit_ids(), Some(vec![first]));
            let at2 = t.conn.commit_as_db(c2).unwrap().unwrap();
            assert_eq!(names(&at2), set(&["Alice", "Bob"]), "{backend:?} {stage}");
            let at0 = t.conn.commit_as_db(first).unwrap().unwrap();
            assert!(names(&at0).is_empty());
            assert!(t.conn.commit_as_db(uuid::Uuid::new_v4()).unwrap().is_none());
        }
        assert_eq!(t.conn.db().commit_id(), Some(c2), "{backend:?}: reopen keeps the commit id");
    }
}

#[test]
fn commits_inside_packs_are_rebuilt_after_many_flushes() {
    for backend in BACKENDS {
        let mut t = TestDb::new(backend);
        let mut commits = Vec::new();
        for i in 0..30 {
            let r = t.transact(&format!(r#"[{{:db/id "p" :name "p{i}" :i {i}}}]"#));
            commits.push(r.db_after.commit_id().unwrap());
            if i % 7 == 3 {
                t.conn.flush().unwrap();
            }
        }
        t.reopen();
        for (i, c) in commits.iter().enumerate() {
            let db = t.conn.commit_as_db(*c).unwrap().unwrap_or_else(|| panic!("{backend:?}: commit {i}"));
            assert_eq!(names(&db).len(), i + 1, "{backend:?}: commit {i}");
            assert_eq!(db.parent_commit_ids().unwrap().len(), 1);
        }
    }
}

#[test]
fn branch_diverge_merge_and_reopen() {
    for backend in BACKENDS {
        let mut t = TestDb::new(backend);
        t.transact(r#"[{:name "Alice"}]"#);
        t.conn.branch(&BranchOrCommit::Branch(kw("db")), kw("staging")).unwrap();
        assert_eq!(t.conn.branches().unwrap(), vec![kw("db"), kw("staging")], "{backend:?}");
        let err = t.conn.branch(&BranchOrCommit::Branch(kw("db")), kw("staging")).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        // The new branch starts at the same commit, sharing everything.
        let staging_db = t.conn.branch_as_db(kw("staging")).unwrap().unwrap();
        assert_eq!(staging_db.commit_id(), t.conn.db().commit_id());
        let staging = t.connect_branch("staging");
        staging.transact(&edn(r#"[{:name "Sam"}]"#)).unwrap();
        t.transact(r#"[{:name "Dora"}]"#);
        assert_eq!(names(&staging.db()), set(&["Alice", "Sam"]), "{backend:?}");
        assert_eq!(names(&t.conn.db()), set(&["Alice", "Dora"]), "{backend:?}");
        // Merge staging's change into :db: a commit with both parents.
        let staging_head = staging.db().commit_id().unwrap();
        let own_head = t.conn.db().commit_id().unwrap();
        let report =
            t.conn.merge_db(&[BranchOrCommit::Branch(kw("staging"))], &edn(r#"[{:name "Sam"}]"#), None).unwrap();
        assert_eq!(report.db_after.parent_commit_ids(), Some(vec![own_head, staging_head]), "{backend:?}");
        assert_eq!(names(&t.conn.db()), set(&["Alice", "Dora", "Sam"]));
        let merge = report.db_after.commit_id().unwrap();
        staging.release().unwrap();
        t.reopen();
        assert_eq!(t.conn.db().commit_id(), Some(merge), "{backend:?}");
        assert_eq!(names(&t.conn.db()), set(&["Alice", "Dora", "Sam"]));
        let staging = t.connect_branch("staging");
        assert_eq!(names(&staging.db()), set(&["Alice", "Sam"]), "{backend:?}");
        assert_eq!(staging.db().commit_id(), Some(staging_head));
        // A merge parent may be a commit id too.
        t.conn.merge_db(&[BranchOrCommit::Commit(staging_head)], &edn("[]"), None).unwrap();
        staging.release().unwrap();
    }
}

#[test]
fn branch_from_a_commit_and_force_branch() {
    for backend in BACKENDS {
        let mut t = TestDb::new(backend);
        let c1 = t.transact(r#"[{:name "Alice"}]"#).db_after.commit_id().unwrap();
        t.transact(r#"[{:name "Bob"}]"#);
        t.conn.branch(&BranchOrCommit::Commit(c1), kw("old")).unwrap();
        let old = t.conn.branch_as_db(kw("old")).unwrap().unwrap();
        assert_eq!(names(&old), set(&["Alice"]), "{backend:?}");
        assert_eq!(old.commit_id(), Some(c1), "branching makes no commit");
        // Reset :db to the older value; the live connection continues from it.
        let before_reset = t.conn.db().commit_id().unwrap();
        t.conn.force_branch(&old, kw("db"), &[BranchOrCommit::Commit(before_reset)]).unwrap();
        assert_eq!(names(&t.conn.db()), set(&["Alice"]), "{backend:?}");
        assert_eq!(t.conn.db().parent_commit_ids(), Some(vec![before_reset]));
        t.transact(r#"[{:name "Carl"}]"#);
        t.reopen();
        assert_eq!(names(&t.conn.db()), set(&["Alice", "Carl"]), "{backend:?}");
        // force-branch needs a parent, and refuses views.
        assert!(t.conn.force_branch(&old, kw("x"), &[]).is_err());
        let hist = t.conn.db().history().unwrap();
        assert!(t.conn.force_branch(&hist, kw("x"), &[BranchOrCommit::Branch(kw("db"))]).is_err());
        assert!(t.conn.branch(&BranchOrCommit::Branch(kw("nope")), kw("y")).is_err());
        assert!(t.conn.branch(&BranchOrCommit::Commit(uuid::Uuid::new_v4()), kw("y")).is_err());
        assert_eq!(t.conn.branches().unwrap(), vec![kw("db"), kw("old")]);
    }
}

#[test]
fn delete_branch_and_collect_reclaims_only_its_nodes() {
    for backend in BACKENDS {
        let t = TestDb::new(backend);
        t.transact(r#"[{:name "Alice"}]"#);
        t.conn.branch(&BranchOrCommit::Branch(kw("db")), kw("tmp")).unwrap();
        let tmp = t.connect_branch("tmp");
        for i in 0..20 {
            tmp.transact(&edn(&format!(r#"[{{:name "tmp-{i}" :blob "{}"}}]"#, "x".repeat(200)))).unwrap();
        }
        tmp.release().unwrap();
        // Without a cutoff every commit of a live branch is kept.
        let report = t.conn.gc_storage(None).unwrap();
        assert!(report.deleted.iter().all(|k| !k.starts_with("commits/")), "{backend:?}: {:?}", report.deleted);
        let tmp_db = t.conn.branch_as_db(kw("tmp")).unwrap().unwrap();
        assert_eq!(names(&tmp_db).len(), 21);
        let err = t.conn.delete_branch(kw("db")).unwrap_err();
        assert!(err.to_string().contains("main branch"), "{err}");
        t.conn.delete_branch(kw("tmp")).unwrap();
        assert!(t.conn.delete_branch(kw("tmp")).is_err());
        assert_eq!(t.conn.branches().unwrap(), vec![kw("db")]);
        let nodes_before = t.conn.verify_storage().unwrap();
        let report = t.conn.gc_storage(None).unwrap();
        let deleted_nodes = report.deleted.iter().filter(|k| k.starts_with("nodes/")).count();
        assert!(deleted_nodes > 0, "{backend:?}: the deleted branch's nodes go: {:?}", report.deleted);
        assert!(report.deleted.iter().any(|k| k.starts_with("commits/")));
        // What :db reaches stays, and a second collection finds nothing more.
        assert!(t.conn.verify_storage().unwrap() < nodes_before + 1);
        assert_eq!(names(&t.conn.db()), set(&["Alice"]));
        assert!(t.conn.gc_storage(None).unwrap().deleted.is_empty(), "{backend:?}");
        let fresh = TestDb { conn: datahike::connect(&t.config).unwrap(), config: t.config.clone(), dir: None };
        assert_eq!(names(&fresh.conn.db()), set(&["Alice"]));
        drop(t.dir);
    }
}

#[test]
fn gc_with_a_cutoff_drops_old_commits_and_keeps_the_heads() {
    for backend in BACKENDS {
        let mut t = TestDb::new(backend);
        let r = t.transact(r#"[{:db/id "a" :name "Alice" :age 1}]"#);
        let old = r.db_after.commit_id().unwrap();
        let alice = r.tempids.iter().find(|(k, _)| *k == datahike::Edn::Str("a".into())).unwrap().1;
        for age in 2..40 {
            t.transact(&format!(r#"[{{:db/id {alice} :age {age}}}]"#));
            if age % 10 == 0 {
                t.conn.flush().unwrap();
            }
        }
        let keep_from = t.conn.db().last_tx_instant() + 1;
        std::thread::sleep(std::time::Duration::from_millis(5));
        let recent = t.transact(r#"[{:name "Bob"}]"#).db_after.commit_id().unwrap();
        // No cutoff: every commit stays reachable.
        assert!(t.conn.gc_storage(None).unwrap().deleted.iter().all(|k| k.starts_with("nodes/")));
        assert!(t.conn.commit_as_db(old).unwrap().is_some(), "{backend:?}");
        let report = t.conn.gc_storage(Some(keep_from)).unwrap();
        assert!(report.deleted.iter().any(|k| k.starts_with("commits/")), "{backend:?}: {:?}", report.deleted);
        let gone = t.conn.commit_as_db(old).unwrap_err().to_string();
        assert!(gone.contains("was removed by gc-storage"), "{backend:?}: the old commit is gone: {gone}");
        assert!(t.conn.commit_as_db(recent).unwrap().is_some(), "{backend:?}: the head stays");
        t.conn.verify_storage().unwrap();
        t.reopen();
        assert_eq!(names(&t.conn.db()), set(&["Alice", "Bob"]));
        let age = q(&edn(r#"[:find ?a . :where [?e :name "Alice"] [?e :age ?a]]"#), &[QueryInput::Db(t.conn.db())]);
        assert_eq!(age.unwrap(), edn("39"));
        // History survives in the head's own indices.
        let ages = q(
            &edn(r#"[:find (count ?a) . :where [?e :name "Alice"] [?e :age ?a]]"#),
            &[QueryInput::Db(t.conn.db().history().unwrap())],
        );
        assert_eq!(ages.unwrap(), edn("39"), "{backend:?}");
    }
}

#[test]
fn gc_sweeps_temporaries_of_crashed_writes_only() {
    let t = TestDb::new(Backend::File);
    t.transact(r#"[{:name "Alice"}]"#);
    t.conn.flush().unwrap();
    let root = t.dir.as_ref().unwrap().path().join("db");
    let node_dir = root.join("nodepacks");
    // A temporary of a process that no longer runs, and one of this (running) process.
    let dead = node_dir.join("~tmp.4000000000.1");
    let ours = root.join("kv").join(format!("~tmp.{}.999999", std::process::id()));
    std::fs::write(&dead, b"torn").unwrap();
    std::fs::write(&ours, b"being written").unwrap();
    let report = t.conn.gc_storage(None).unwrap();
    assert!(!dead.exists(), "the crashed write's temporary is swept");
    assert!(ours.exists(), "a live process's temporary may be a write under way");
    assert!(report.deleted.iter().any(|k| k.ends_with("~tmp.4000000000.1")), "{:?}", report.deleted);
    assert_eq!(names(&t.conn.db()), set(&["Alice"]));
}
