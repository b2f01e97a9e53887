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

/// The sum of `report`'s kinds is every deleted entry, and each kind is the count of its key
/// prefix.
fn assert_kinds(report: &datahike::GcReport, what: &str) {
    let count = |prefix: &str| report.deleted.iter().filter(|k| k.starts_with(prefix)).count();
    assert_eq!(report.deleted_nodes, count("nodes/"), "{what}: nodes");
    assert_eq!(report.deleted_values, count("values/"), "{what}: values");
    assert_eq!(report.deleted_commits, count("commits/"), "{what}: commit records");
    assert_eq!(report.deleted_packs, count("packs/"), "{what}: commit packs");
    let kinds = report.deleted_nodes
        + report.deleted_values
        + report.deleted_commits
        + report.deleted_packs
        + report.deleted_temporaries;
    assert_eq!(kinds, report.deleted.len(), "{what}: every deleted entry has a kind: {report:?}");
}

/// A branch with flushed commits, an out-of-line value and nodes of its own, then deleted:
/// garbage of every kind for the next collection.
fn make_garbage(t: &TestDb) {
    t.transact(r#"[{:name "Alice"}]"#);
    t.conn.branch(&BranchOrCommit::Branch(kw("db")), kw("tmp")).unwrap();
    let tmp = t.connect_branch("tmp");
    for i in 0..30 {
        // 5,000 bytes: stored out of line (`values/<hash>`), one value per transaction.
        let long: String = std::iter::repeat_n(char::from(b'a' + (i % 26) as u8), 5_000).collect();
        tmp.transact(&edn(&format!(r#"[{{:name "tmp-{i}" :blob "{long}{i}"}}]"#))).unwrap();
        if i % 10 == 9 {
            tmp.flush().unwrap();
        }
    }
    tmp.release().unwrap();
    t.conn.delete_branch(kw("tmp")).unwrap();
    t.conn.flush().unwrap();
}

#[test]
fn gc_reports_what_it_deleted_by_kind_and_the_bytes_it_freed() {
    for backend in BACKENDS {
        let t = TestDb::new(backend);
        make_garbage(&t);
        let report = t.conn.gc_storage(None).unwrap();
        let what = format!("{backend:?}");
        assert_kinds(&report, &what);
        assert!(
            report.deleted_nodes > 0 && report.deleted_commits > 0 && report.deleted_packs > 0,
            "{what}: {report:?}"
        );
        assert_eq!(report.deleted_values, 30, "{what}: the branch's long values go");
        assert_eq!(report.deleted_temporaries, 0, "{what}");
        // Memory and file know every size: at least the 30 values of 5,001 or 5,002 bytes.
        let freed = report.freed_bytes.unwrap_or_else(|| panic!("{what}: bytes freed unknown"));
        assert!(freed > 30 * 5_000, "{what}: {freed} bytes freed");
        assert_eq!(names(&t.conn.db()), set(&["Alice"]), "{what}");
        // Nothing left to collect frees nothing.
        let again = t.conn.gc_storage(None).unwrap();
        assert!(again.deleted.is_empty(), "{what}: {again:?}");
        assert_eq!(again.freed_bytes, Some(0), "{what}");
        assert_kinds(&again, &what);
    }
}

/// Bytes of the files of a file store that a collection's deleted keys can account for (not
/// the log, which a collection also discards, nor the `gc/` records it writes), and the
/// number of node packs.
fn store_bytes(root: &std::path::Path) -> (u64, usize) {
    let mut bytes = 0;
    let mut packs = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = entry.file_name().into_string().unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                if !(dir == root && name == "log") {
                    dirs.push(path);
                }
            } else if kind.is_file() && !name.starts_with("gc%2F") {
                bytes += entry.metadata().unwrap().len();
                packs += usize::from(name.ends_with(".pack"));
            }
        }
    }
    (bytes, packs)
}

/// On the file store the bytes a collection reports freed are what leaves the disk: every
/// deleted key's file (out-of-line values, commit records, commit packs) and, for each node,
/// its bytes and its 32-byte entry in its pack's index, which the pack's rewrite without it
/// drops. Two things leave the disk beyond that, both accounted for here: a pack left with
/// no node is removed whole, its 32 bytes of header and footer charged to no key; and a
/// temporary file of a crashed write is swept but is no key (its bytes are not counted).
#[test]
fn gc_freed_bytes_are_what_leaves_the_disk() {
    let t = TestDb::new(Backend::File);
    make_garbage(&t);
    let root = t.dir.as_ref().unwrap().path().join("db");
    let temporary = root.join("kv").join("~tmp.4000000000.7");
    std::fs::write(&temporary, vec![0u8; 1234]).unwrap();
    let (bytes_before, packs_before) = store_bytes(&root);
    let report = t.conn.gc_storage(None).unwrap();
    let (bytes_after, packs_after) = store_bytes(&root);
    assert_kinds(&report, "file");
    assert_eq!(report.deleted_temporaries, 1, "{report:?}");
    assert!(report.deleted.last().is_some_and(|k| k.ends_with("~tmp.4000000000.7")), "{report:?}");
    assert!(report.deleted_nodes > 0 && report.deleted_values == 30 && report.deleted_commits > 0);
    let freed = report.freed_bytes.expect("the file store knows every size");
    // A pack that keeps a node is replaced by one new pack; one that keeps none is removed.
    let packs_removed = u64::try_from(packs_before - packs_after).unwrap();
    assert_eq!(
        bytes_before - bytes_after,
        freed + 32 * packs_removed + 1234,
        "{freed} bytes freed, {packs_removed} of {packs_before} packs removed, a 1,234-byte temporary swept"
    );
    t.conn.verify_storage().unwrap();
    assert_eq!(names(&t.conn.db()), set(&["Alice"]));
}
