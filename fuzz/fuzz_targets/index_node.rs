//! Index nodes and codec datom lists: what decodes encodes stably.
//! The check is `datahike::fuzzing::check_index_node`, which `crates/datahike/tests/fuzz_corpus.rs`
//! also runs over `fuzz/corpus/index_node/`. Run from `fuzz/`: `cargo +nightly fuzz run index_node`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| datahike::fuzzing::check_index_node(data));
