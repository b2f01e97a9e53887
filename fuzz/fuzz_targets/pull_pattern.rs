//! Pull patterns: parsed against a database with a schema, then pulled over every entity.
//! The check is `datahike::fuzzing::check_pull_pattern`, which `crates/datahike/tests/fuzz_corpus.rs`
//! also runs over `fuzz/corpus/pull_pattern/`. Run from `fuzz/`: `cargo +nightly fuzz run pull_pattern`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| datahike::fuzzing::check_pull_pattern(data));
