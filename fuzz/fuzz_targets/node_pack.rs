//! Node packs (`store/pack.rs`): listing and reading nodes answer with bytes or an error.
//! The check is `datahike::fuzzing::check_node_pack`, which `crates/datahike/tests/fuzz_corpus.rs`
//! also runs over `fuzz/corpus/node_pack/`. Run from `fuzz/`: `cargo +nightly fuzz run node_pack`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| datahike::fuzzing::check_node_pack(data));
