//! Config text: `Config::parse` answers; an accepted config prints as text it accepts again.
//! The check is `datahike::fuzzing::check_config`, which `crates/datahike/tests/fuzz_corpus.rs`
//! also runs over `fuzz/corpus/config/`. Run from `fuzz/`: `cargo +nightly fuzz run config`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| datahike::fuzzing::check_config(data));
