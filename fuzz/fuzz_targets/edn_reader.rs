//! Fuzzes the EDN reader with arbitrary UTF-8: it must never panic nor overflow the stack,
//! and every value it reads must print as text that reads back as an equal value and prints
//! the same again.
//!
//! Run from `fuzz/`: `cargo +nightly fuzz run edn_reader` (cargo-fuzz 0.13 and a nightly
//! toolchain). `cargo +nightly build` only checks that the target compiles.

#![no_main]

use datahike::edn::{pr_str, read_all, read_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(values) = read_all(text) else {
        return;
    };
    for value in values {
        let printed = pr_str(&value);
        let reread = match read_str(&printed) {
            Ok(reread) => reread,
            Err(e) => panic!("{text:?} read as {value:?} printed as {printed:?}, which fails to read: {e}"),
        };
        assert_eq!(pr_str(&reread), printed, "printing {text:?} is not stable");
        // NaN equals nothing, itself included; the printed text was compared above.
        if !printed.contains("##NaN") {
            assert_eq!(reread, value, "{text:?} printed as {printed:?}");
        }
    }
});
