//! HTTP request bodies of the server (`crates/datahike-server/src/format.rs`, `json_tx.rs`,
//! and the library's JSON, transit and CBOR codecs): decoding answers with a value or an
//! error, and what decodes encodes again. The check is
//! `datahike_server::fuzzing::check_request_body`, which
//! `crates/datahike-server/tests/fuzz_corpus.rs` also runs over `fuzz/corpus/request_body/`.
//! Run from `fuzz/`: `cargo +nightly fuzz run request_body`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| datahike_server::fuzzing::check_request_body(data));
