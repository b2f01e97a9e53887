//! Replays every file of the `request_body` fuzz corpus (`fuzz/corpus/request_body/`) through
//! the check the fuzz target runs, on stable Rust. Run with
//! `cargo test -p datahike-server --features fuzzing --test fuzz_corpus`.

use std::path::{Path, PathBuf};

#[test]
fn every_request_body_in_the_corpus_passes_its_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/request_body");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus {} cannot be read: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus {} is empty", dir.display());
    for path in files {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // A panic names the file through this line.
        eprintln!("{}", path.display());
        datahike_server::fuzzing::check_request_body(&data);
    }
}
