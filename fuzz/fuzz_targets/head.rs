//! Branch heads and snapshot commit records: what decodes encodes stably.
//! The check is `datahike::fuzzing::check_head`, which `crates/datahike/tests/fuzz_corpus.rs`
//! also runs over `fuzz/corpus/head/`. Run from `fuzz/`: `cargo +nightly fuzz run head`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| datahike::fuzzing::check_head(data));
