//! Replays every file of every fuzz corpus (`fuzz/corpus/<target>/`) through the check its
//! fuzz target runs (`datahike::fuzzing`), on stable Rust: what a fuzzer once found stays
//! fixed. Run with `cargo test -p datahike --features fuzzing --test fuzz_corpus`.

use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

/// The files of corpus `target`, sorted so that a failure names the same file every run.
fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = corpus_dir().join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus {} cannot be read: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// The targets whose check is the server's (`crates/datahike-server/tests/fuzz_corpus.rs`).
const SERVER_TARGETS: &[&str] = &["request_body"];

#[test]
fn every_target_has_a_corpus_and_every_corpus_a_target() {
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .expect("fuzz/corpus")
        .map(|entry| entry.expect("a corpus").file_name().to_string_lossy().into_owned())
        .filter(|name| !SERVER_TARGETS.contains(&name.as_str()))
        .collect();
    names.sort();
    let mut targets: Vec<String> = datahike::fuzzing::CHECKS.iter().map(|(name, _)| (*name).to_string()).collect();
    targets.sort();
    assert_eq!(names, targets);
}

#[test]
fn every_corpus_file_passes_its_check() {
    let mut total = 0;
    for (target, check) in datahike::fuzzing::CHECKS {
        let files = corpus_files(target);
        assert!(!files.is_empty(), "the corpus of {target} is empty");
        for path in files {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // A panic names the file through this message.
            eprintln!("{target}: {}", path.display());
            check(&data);
            total += 1;
        }
    }
    assert!(total > 0);
}
