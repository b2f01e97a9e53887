//! Writes seed inputs for the fuzz targets into `<dir>/<target>/`: real heads, commit
//! records, log records, segments, node packs and nodes of a small file-backed database, a
//! legacy CBOR dump of it, and hand-written EDN for the text targets. The fuzzer grows its
//! corpus from these; `cargo fuzz cmin` then keeps what adds coverage.
//!
//! `cargo run -p datahike --features fuzzing --example fuzz_seeds -- fuzz/corpus`

use datahike::edn::read_str;
use datahike::fuzzing::{DATA, SCHEMA};
use datahike::migrate::{export_db, Compression, ExportOptions};
use datahike::Config;
use std::path::{Path, PathBuf};

const EDN_SEEDS: &[&str] = &[
    r#"{:a [1 2.5 -3N 4.0M "s\n" \c nil true] #{:k/w sym} (list) #inst "2020-01-01T00:00:00.000-00:00" #uuid "00000000-0000-0000-0000-000000000001"}"#,
    r#"#_ ignored [##Inf ##-Inf ##NaN 0x1F 1/2 #tag {:x 1}] ; comment"#,
];

const QUERY_SEEDS: &[&str] = &[
    "[:find ?e ?n :in $ ?min :where [?e :age ?a] [(>= ?a ?min)] [?e :name ?n]]",
    "{:find [(count ?e) .] :where [[?e :name _]] :limit 10 :offset 1 :timeout 100}",
    "[:find [?n ...] :in $ % :where (friends ?e ?f) [?f :name ?n] (not [?e :age 3]) (or [?e :tag :a] (and [?e :tag :b]))]",
    "[[(friends ?a ?b) [?a :friend ?b]] [(friends ?a ?b) [?a :friend ?x] (friends ?x ?b)]]",
    "[:find (pull ?e [:name {:friend [:name]}]) :where [?e :name] (not-join [?e] [?e :age]) [(str ?e) ?s] [(ground [1 2]) [?x ...]]]",
];

const PULL_SEEDS: &[&str] = &[
    "[*]",
    "[:name {:friend ...} :_friend]",
    "[:name {(:friend :limit 1) [:name {:part [*]}]} (:tag :as \"tags\") (default :age 0)]",
    "[:db/id {[:friend :limit nil] 2} [:email :default \"none\"] :pair :name+age]",
];

const TX_SEEDS: &[&str] = &[
    r#"[{:name "Eve" :age 20 :tag [:x] :friend [{:name "Fay"}]}]"#,
    r#"[[:db/add -1 :name "Gus"] [:db/add -1 :email "g@x"] {:db/id "t" :pair [2 "y"]}]"#,
    r#"[[:db/retractEntity [:name "Ann"]] [:db/cas [:name "Bob"] :age 40 41]]"#,
    r#"{:tx-data [{:name "Hal" :part [{:name "p"}]}] :tx-meta {:source "seed"}}"#,
    r#"[[:db/add -1 :name "Ann"] [:db/add -2 :email "x"] [:db/add -3 :email "x"]]"#,
    r#"[{:db/ident :new-attr :db/valueType :db.type/string :db/cardinality :db.cardinality/one}]"#,
    r#"[[:db.fn/retractAttribute 1 :name] [:db/purge 1 :age 3] [:db.purge/entity 2]]"#,
];

const CONFIG_SEEDS: &[&str] = &[
    "{:store {:backend :mem :id \"seed\"} :keep-history? true :schema-flexibility :read}",
    "{:store {:backend :file :path \"/tmp/does-not-exist/db\"} :index :datahike.index/persistent-set :index-config {:branching-factor 64} :attribute-refs? true}",
    "{:store {:backend :mem :id \"x\"} :store-cache-size 10 :search-cache-size 0 :initial-tx [{:db/ident :a}] :branch :main :name \"n\"}",
];

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let target_dir = dir.join(target);
    std::fs::create_dir_all(&target_dir).expect("creating a corpus directory");
    std::fs::write(target_dir.join(name), bytes).expect("writing a seed");
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn le_u32(bytes: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize)
}

fn le_u64(bytes: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?)).ok()
}

/// The nodes of a pack, read from its index (see `store/pack.rs`).
fn pack_nodes(pack: &[u8]) -> Vec<Vec<u8>> {
    let footer = pack.len() - 24;
    let (Some(index_offset), Some(count)) = (le_u64(pack, footer), le_u32(pack, footer + 8)) else { return vec![] };
    (0..count)
        .filter_map(|i| {
            let entry = index_offset + i * 32;
            let (offset, len) = (le_u64(pack, entry + 16)?, le_u32(pack, entry + 24)?);
            pack.get(offset..offset + len).map(<[u8]>::to_vec)
        })
        .collect()
}

/// The frames of a segment up to its trailing zeros, and each frame's payload.
fn segment_frames(segment: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut payloads = Vec::new();
    let mut offset = 0;
    while let Some(len) = le_u32(segment, offset).filter(|len| *len > 0) {
        let Some(payload) = segment.get(offset + 16..offset + 16 + len) else { break };
        payloads.push(payload.to_vec());
        offset += 16 + len;
    }
    (segment[..offset].to_vec(), payloads)
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).expect("usage: fuzz_seeds <corpus dir>"));
    for (target, seeds) in [
        ("edn_reader", EDN_SEEDS),
        ("query_parser", QUERY_SEEDS),
        ("pull_pattern", PULL_SEEDS),
        ("tx_data", TX_SEEDS),
        ("config", CONFIG_SEEDS),
    ] {
        for (i, seed) in seeds.iter().enumerate() {
            write(&out, target, &format!("seed-{i}"), seed.as_bytes());
        }
    }
    for seed in [SCHEMA, DATA] {
        write(&out, "tx_data", &format!("seed-{}", seed.len()), seed.as_bytes());
        write(&out, "edn_reader", &format!("seed-{}", seed.len()), seed.as_bytes());
    }

    let scratch = tempfile::tempdir().expect("a scratch directory");
    let db_dir = scratch.path().join("db");
    let config = Config::parse(&format!(
        "{{:store {{:backend :file :path {:?}}} :keep-history? true}}",
        db_dir.display().to_string()
    ))
    .expect("the config parses");
    datahike::create_database(&config).expect("creating the seed database");
    let conn = datahike::connect(&config).expect("connecting");
    for tx in [SCHEMA, DATA, TX_SEEDS[0], TX_SEEDS[1], TX_SEEDS[5]] {
        conn.transact(&read_str(tx).expect("a seed reads")).expect("a seed transacts");
    }
    // Once released, the indices are flushed: a head, a node pack and commit records exist.
    conn.release().expect("releasing");
    let conn = datahike::connect(&config).expect("connecting again");
    conn.transact(&read_str(TX_SEEDS[2]).expect("a seed reads")).expect("a seed transacts");
    for path in files_under(&db_dir) {
        let bytes = std::fs::read(&path).expect("reading a store file");
        let relative = path.strip_prefix(&db_dir).expect("under the store").to_string_lossy().replace('/', "_");
        if relative.starts_with("heads_") || relative.starts_with("kv_commits") {
            write(&out, "head", &relative, &bytes);
        } else if relative.starts_with("kv_packs") {
            write(&out, "log_record", &relative, &bytes);
        } else if relative.ends_with(".pack") {
            write(&out, "node_pack", "pack", &bytes);
            for (i, node) in pack_nodes(&bytes).iter().enumerate() {
                write(&out, "index_node", &format!("node-{i}"), node);
            }
        } else if relative.ends_with(".seg") {
            let (frames, payloads) = segment_frames(&bytes);
            write(&out, "log_segment", &relative, &frames);
            for (i, payload) in payloads.iter().enumerate() {
                write(&out, "log_record", &format!("record-{i}"), payload);
            }
        }
    }
    let dump = scratch.path().join("dump");
    let opts = ExportOptions { compression: Compression::None, ..ExportOptions::default() };
    export_db(&conn.db(), &dump, &opts).expect("exporting");
    for path in files_under(&dump) {
        if path.extension().is_some_and(|e| e == "cbor") {
            write(&out, "cbor_import", "dump", &std::fs::read(&path).expect("reading the dump"));
        }
    }
    conn.release().expect("releasing");
}
