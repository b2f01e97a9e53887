//! What the benchmark binaries of this crate share: the workload's schema and the probe of
//! the disk's raw sync rate that durable write rates are read against.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// The schema of `../shared/bench/WORKLOAD.md` (section 2).
pub const SCHEMA: &str = r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :last-name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :sex :db/valueType :db.type/keyword :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :salary :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :email :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
 {:db/ident :follows :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]"#;

/// The disk's rate of 4 KiB append + fdatasync, in operations per second, measured in `dir`.
pub fn raw_fsync_rate(dir: &Path, n: usize) -> f64 {
    std::fs::create_dir_all(dir).expect("bench dir");
    let path = dir.join(format!("fsync-probe-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).expect("probe file");
    let block = vec![0x5au8; 4096];
    let t = Instant::now();
    for _ in 0..n {
        f.write_all(&block).expect("probe write");
        f.sync_data().expect("probe fdatasync");
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&path);
    rate
}
