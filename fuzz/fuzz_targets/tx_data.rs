//! Transaction data: transacted into a memory database with a schema; a failed transaction changes nothing.
//! The check is `datahike::fuzzing::check_tx_data`, which `crates/datahike/tests/fuzz_corpus.rs`
//! also runs over `fuzz/corpus/tx_data/`. Run from `fuzz/`: `cargo +nightly fuzz run tx_data`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| datahike::fuzzing::check_tx_data(data));
