//! File-log segments (`store/file.rs`): the frame scan answers with ordered frames or an error.
//! The check is `datahike::fuzzing::check_log_segment`, which `crates/datahike/tests/fuzz_corpus.rs`
//! also runs over `fuzz/corpus/log_segment/`. Run from `fuzz/`: `cargo +nightly fuzz run log_segment`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| datahike::fuzzing::check_log_segment(data));
