//! Log records and commit packs (`conn/records.rs`): what decodes encodes stably.
//! The check is `datahike::fuzzing::check_log_record`, which `crates/datahike/tests/fuzz_corpus.rs`
//! also runs over `fuzz/corpus/log_record/`. Run from `fuzz/`: `cargo +nightly fuzz run log_record`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| datahike::fuzzing::check_log_record(data));
