//! Group commit: threads transacting on one connection share log syncs, lose nothing, and a
//! record that fails to reach the log takes along exactly the transactions made after it.
//! The store is the real file store; the wrapper only counts (and, in one test, refuses one
//! append).

use datahike::edn::read_str;
use datahike::store::{AppendFailure, ByteRange, FileStore, Store, StoreError, StoreResult, WriterGuard};
use datahike::{Config, Edn, TxReport};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The file store, with the log appends counted, and optionally one append refused.
struct Watched {
    inner: FileStore,
    groups: AtomicUsize,
    records: AtomicUsize,
    /// The sequence number whose first append fails (0: none).
    refuse_seq: AtomicU64,
    refused: AtomicBool,
}

impl Watched {
    fn new(dir: &std::path::Path) -> Arc<Watched> {
        Arc::new(Watched {
            inner: FileStore::create(dir).unwrap(),
            groups: AtomicUsize::new(0),
            records: AtomicUsize::new(0),
            refuse_seq: AtomicU64::new(0),
            refused: AtomicBool::new(false),
        })
    }
}

impl Store for Watched {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        self.inner.put_batch(entries)
    }
    fn stored_sizes(&self, keys: &[String]) -> StoreResult<Vec<Option<u64>>> {
        self.inner.stored_sizes(keys)
    }
    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        self.inner.delete_batch(keys)
    }
    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        self.inner.list(prefix)
    }
    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        self.inner.compare_and_set(key, expected, new)
    }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> StoreResult<bool> {
        self.inner.put_if_absent(key, bytes)
    }
    fn get_range(&self, key: &str, range: ByteRange) -> StoreResult<Option<Vec<u8>>> {
        self.inner.get_range(key, range)
    }
    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        self.inner.get_many(keys)
    }
    fn log_append(&self, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
        self.log_append_many(log, &[(seq, record)]).map_err(|f| f.error)
    }
    fn log_append_many(&self, log: &str, records: &[(u64, &[u8])]) -> Result<(), AppendFailure> {
        let refuse = self.refuse_seq.load(Ordering::SeqCst);
        let cut = records.iter().position(|(seq, _)| *seq == refuse && !self.refused.load(Ordering::SeqCst));
        let (ok, rest) = records.split_at(cut.unwrap_or(records.len()));
        if !ok.is_empty() {
            self.groups.fetch_add(1, Ordering::SeqCst);
            self.records.fetch_add(ok.len(), Ordering::SeqCst);
            self.inner.log_append_many(log, ok)?;
        }
        if !rest.is_empty() {
            self.refused.store(true, Ordering::SeqCst);
            return Err(AppendFailure {
                appended: ok.len(),
                error: StoreError::Io {
                    path: format!("log {log}").into(),
                    source: std::io::Error::other(format!("injected failure of record {refuse}")),
                },
            });
        }
        Ok(())
    }
    fn log_read(&self, log: &str, after: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        self.inner.log_read(log, after)
    }
    fn log_discard(&self, log: &str, through: u64) -> StoreResult<()> {
        self.inner.log_discard(log, through)
    }
    fn log_discard_all(&self, log: &str, through: u64) -> StoreResult<()> {
        self.inner.log_discard_all(log, through)
    }
    fn log_delete(&self, log: &str) -> StoreResult<()> {
        self.inner.log_delete(log)
    }
    fn log_is_current(&self, log: &str, last_seq: u64) -> StoreResult<bool> {
        self.inner.log_is_current(log, last_seq)
    }
    fn sweep_temporaries(&self) -> StoreResult<Vec<String>> {
        self.inner.sweep_temporaries()
    }
    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        self.inner.lock_writer()
    }
    fn destroy(&self) -> StoreResult<()> {
        self.inner.destroy()
    }
}

const SCHEMA: &str = r#"[{:db/ident :k :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
                        {:db/ident :thread :db/valueType :db.type/long :db/cardinality :db.cardinality/one}]"#;

fn keys_in(db: &datahike::Db) -> BTreeSet<String> {
    let found = datahike::q(&read_str("[:find ?k :where [_ :k ?k]]").unwrap(), &[datahike::QueryInput::Db(db.clone())])
        .unwrap();
    found
        .as_seq()
        .unwrap()
        .iter()
        .map(|row| match row.as_seq().and_then(|r| r.first()) {
            Some(Edn::Str(k)) => k.to_string(),
            other => panic!("not a key: {other:?}"),
        })
        .collect()
}

/// Transacts `per_thread` one-entity transactions from each of `threads` threads; the keys
/// acknowledged and the number of failures.
fn hammer(conn: &datahike::Conn, threads: usize, per_thread: usize) -> (BTreeSet<String>, usize) {
    let acked = Mutex::new(BTreeSet::new());
    let failed = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (conn, acked, failed) = (conn.clone(), &acked, &failed);
            scope.spawn(move || {
                for i in 0..per_thread {
                    let key = format!("t{t}-{i}");
                    match conn.transact(&read_str(&format!(r#"[{{:k "{key}" :thread {t}}}]"#)).unwrap()) {
                        Ok(report) => {
                            assert_eq!(
                                report.db_after.max_tx(),
                                report.tx_data[0].signed_tx,
                                "the report's value is its own"
                            );
                            acked.lock().unwrap().insert(key);
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            });
        }
    });
    (acked.into_inner().unwrap(), failed.into_inner())
}

/// A database with the schema on a watched file store in a new directory.
fn fresh() -> (tempfile::TempDir, Arc<Watched>, datahike::Conn) {
    let dir = tempfile::tempdir().unwrap();
    let store = Watched::new(dir.path());
    let config = Config::with_store(store.clone());
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    conn.transact(&read_str(SCHEMA).unwrap()).unwrap();
    (dir, store, conn)
}

#[test]
fn threads_share_syncs_and_lose_nothing() {
    let (dir, store, conn) = fresh();
    let seen: Arc<Mutex<Vec<i64>>> = Arc::default();
    let sink = seen.clone();
    conn.listen("order", move |report: &TxReport| sink.lock().unwrap().push(report.db_after.max_tx()));
    let (records_before, groups_before) = (store.records.load(Ordering::SeqCst), store.groups.load(Ordering::SeqCst));

    let (acked, failed) = hammer(&conn, 8, 60);
    assert_eq!(failed, 0);
    assert_eq!(acked.len(), 480);
    assert_eq!(keys_in(&conn.db()), acked, "every acknowledged transaction is in the value");

    let records = store.records.load(Ordering::SeqCst) - records_before;
    let groups = store.groups.load(Ordering::SeqCst) - groups_before;
    assert_eq!(records, 480, "one log record per transaction");
    assert!(groups < records, "concurrent transactions shared syncs: {groups} appends for {records} records");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 480, "the listener saw every transaction");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in commit order");

    // The connection's own account agrees with what the store saw.
    let stats = conn.stats();
    assert_eq!((stats.transactions, stats.failed_transactions), (481, 0), "{stats:?}");
    assert_eq!(stats.log_records as usize, store.records.load(Ordering::SeqCst), "{stats:?}");
    assert_eq!(stats.log_groups as usize, store.groups.load(Ordering::SeqCst), "{stats:?}");
    assert!(stats.commit_micros > 0);
    conn.flush().unwrap();
    assert_eq!(conn.stats().flushes, stats.flushes + 1);

    conn.release().unwrap();
    let reopened = datahike::connect(&Config::with_store(Arc::new(FileStore::open(dir.path()).unwrap()))).unwrap();
    assert_eq!(keys_in(&reopened.db()), acked, "and on disk");
    let cache = reopened.stats().cache;
    assert!(cache.loads > 0 && cache.lookups >= cache.loads && cache.nodes > 0, "{cache:?}");
    reopened.release().unwrap();
}

/// The periodic index flush runs without listeners too: a connection nobody listens to
/// (a server without subscribers) must not let its log grow until `release`.
#[test]
fn the_periodic_flush_runs_without_listeners() {
    let (_dir, _store, conn) = fresh();
    let (acked, failed) = hammer(&conn, 4, datahike::FLUSH_EVERY_TXS / 4 + 10);
    assert_eq!((acked.len(), failed), (4 * (datahike::FLUSH_EVERY_TXS / 4 + 10), 0));
    // The flush runs in the background; it has started once the threshold was crossed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while conn.stats().flushes == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(conn.stats().flushes >= 1, "no index flush after {} transactions: {:?}", acked.len(), conn.stats());
    conn.release().unwrap();
}

/// A record that fails to reach the log fails its transaction and every transaction made
/// from a value that includes it; the others are acknowledged, and exactly the acknowledged
/// ones are in the value and on disk.
#[test]
fn a_failed_append_takes_along_only_what_was_made_after_it() {
    let (dir, store, conn) = fresh();
    let next = u64::try_from(conn.db().max_tx()).unwrap() + 1;
    store.refuse_seq.store(next + 40, Ordering::SeqCst);

    let (acked, failed) = hammer(&conn, 6, 40);
    assert!(store.refused.load(Ordering::SeqCst), "the failure was injected");
    assert!(failed >= 1, "the refused transaction failed");
    assert_eq!(acked.len() + failed, 240);
    let stats = conn.stats();
    assert_eq!((stats.transactions as usize, stats.failed_transactions as usize), (acked.len() + 1, failed));
    assert_eq!(keys_in(&conn.db()), acked, "exactly the acknowledged transactions are in the value");

    // The connection goes on after the failure.
    conn.transact(&read_str(r#"[{:k "after" :thread 99}]"#).unwrap()).unwrap();
    let mut expected = acked.clone();
    expected.insert("after".into());
    assert_eq!(keys_in(&conn.db()), expected);

    conn.release().unwrap();
    let reopened = datahike::connect(&Config::with_store(Arc::new(FileStore::open(dir.path()).unwrap()))).unwrap();
    assert_eq!(keys_in(&reopened.db()), expected, "and exactly those on disk");
    reopened.release().unwrap();
}
