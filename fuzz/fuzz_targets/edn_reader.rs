//! EDN text: reads, prints and reads back the same (never panics nor overflows the stack).
//! The check is `datahike::fuzzing::check_edn_reader`, which `crates/datahike/tests/fuzz_corpus.rs`
//! also runs over `fuzz/corpus/edn_reader/`. Run from `fuzz/`: `cargo +nightly fuzz run edn_reader`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| datahike::fuzzing::check_edn_reader(data));
