//! `:index` dispatches to registered index implementations, and the index conformance check
//! (`datahike::index::conformance`) holds for the built-in one and a registered one.

use datahike::edn::read_str;
use datahike::index::conformance::{check, PersistentSetFactory};
use datahike::index::{register_index, DatomIndex, IndexFactory, IndexResult, IndexRoot, NodeCache};
use datahike::store::Store;
use datahike::{q, Config, Edn, IndexOrder, QueryInput};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn the_persistent_index_conforms() {
    for seed in [1, 2026] {
        check(&PersistentSetFactory, seed, 15);
    }
}

/// A user's index implementation: here the persistent one, counting how often it is opened.
struct Counting(AtomicUsize);

impl IndexFactory for Counting {
    fn open(
        &self,
        order: IndexOrder,
        temporal: bool,
        root: Option<&IndexRoot>,
        cache: &Arc<NodeCache>,
        branching: usize,
    ) -> IndexResult<Arc<dyn DatomIndex>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        PersistentSetFactory.open(order, temporal, root, cache, branching)
    }

    fn mark_reachable(
        &self,
        root: &IndexRoot,
        store: &dyn Store,
        marked: &mut std::collections::HashSet<String>,
    ) -> IndexResult<()> {
        PersistentSetFactory.mark_reachable(root, store, marked)
    }
}

#[test]
fn a_registered_index_is_selected_by_the_config() {
    let counting = Arc::new(Counting(AtomicUsize::new(0)));
    register_index("test.index/counting", counting.clone());
    check(counting.as_ref(), 7, 6);
    let opened_by_check = counting.0.load(Ordering::SeqCst);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db").display().to_string();
    let config = Config::parse(&format!(
        "{{:store {{:backend :file :path {path:?}}} :schema-flexibility :read :index :test.index/counting}}"
    ))
    .unwrap();
    assert_eq!(config.to_edn().get_kw("index"), Some(&Edn::kw("test.index/counting")));
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    for i in 0..50 {
        conn.transact(&read_str(&format!("[{{:n {i}}}]")).unwrap()).unwrap();
    }
    conn.gc_storage(None).unwrap();
    conn.verify_storage().unwrap();
    conn.release().unwrap();
    assert!(counting.0.load(Ordering::SeqCst) > opened_by_check, "the registered index was not used");

    // The stored config names the index: a config without `:index` opens the database with it.
    let before = counting.0.load(Ordering::SeqCst);
    let plain = Config::parse(&format!("{{:store {{:backend :file :path {path:?}}}}}")).unwrap();
    let conn = datahike::connect(&plain).unwrap();
    let n = q(&read_str("[:find (count ?e) . :where [?e :n]]").unwrap(), &[QueryInput::from(conn.db())]).unwrap();
    assert_eq!(n, Edn::Int(50));
    assert!(counting.0.load(Ordering::SeqCst) > before);
    assert_eq!(conn.db().config().index.name(), "test.index/counting");
    conn.release().unwrap();

    let err = Config::parse("{:index :nope/missing}").unwrap_err().to_string();
    assert!(err.contains(":nope/missing") && err.contains("register_index"), "{err}");
}
