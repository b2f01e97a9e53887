//! Databases move between every two backends of the build: a database with history is
//! exported from each backend and imported into each backend (itself included), and the
//! datoms of every index, current and history, are identical. Backends behind cargo
//! features and services join when their feature is on and their service's variable is set
//! (under CI a missing service is a failure, see `common::backends`).

mod common;

use common::backends::{available, fresh};
use common::history::{assert_identical, fill};
use datahike::migrate::{self, ExportOptions, ImportOptions};

#[test]
fn every_backend_exports_into_every_backend() {
    let backends = available();
    assert!(backends.len() >= 2, "at least memory and file");
    let dir = tempfile::tempdir().unwrap();
    for source in &backends {
        let (config, _keep) = fresh(source, "matrix-src");
        datahike::create_database(&config).unwrap();
        let conn = datahike::connect(&config).unwrap();
        fill(&conn);
        let dump = dir.path().join(format!("dump-{source}"));
        migrate::export_db(&conn.db(), &dump, &ExportOptions { chunk_size: 9, ..Default::default() })
            .unwrap_or_else(|e| panic!("export from {source}: {e}"));
        for target in &backends {
            let (target_config, _keep) = fresh(target, "matrix-dst");
            datahike::create_database(&target_config).unwrap();
            let into = datahike::connect(&target_config).unwrap();
            migrate::import_db(&into, &dump, &ImportOptions::default())
                .unwrap_or_else(|e| panic!("import from {source} into {target}: {e}"));
            assert_identical(&conn.db(), &into.db());
            into.release().unwrap();
            // Reopened from the target's storage, not from the importing connection's memory.
            let reopened = datahike::connect(&target_config).unwrap();
            assert_identical(&conn.db(), &reopened.db());
            reopened.release().unwrap();
            datahike::delete_database(&target_config).unwrap();
            eprintln!("{source} -> {target}: identical");
        }
        conn.release().unwrap();
        datahike::delete_database(&config).unwrap();
    }
}
