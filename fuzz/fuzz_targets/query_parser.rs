//! Query text: the query and rules parsers answer with a value or an error.
//! The check is `datahike::fuzzing::check_query_parser`, which `crates/datahike/tests/fuzz_corpus.rs`
//! also runs over `fuzz/corpus/query_parser/`. Run from `fuzz/`: `cargo +nightly fuzz run query_parser`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| datahike::fuzzing::check_query_parser(data));
