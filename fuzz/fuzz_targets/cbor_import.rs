//! CBOR: items and EDN round-trip; a legacy dump imports into a memory database or changes nothing.
//! The check is `datahike::fuzzing::check_cbor_import`, which `crates/datahike/tests/fuzz_corpus.rs`
//! also runs over `fuzz/corpus/cbor_import/`. Run from `fuzz/`: `cargo +nightly fuzz run cbor_import`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| datahike::fuzzing::check_cbor_import(data));
