//! The check of the `request_body` fuzz target in `fuzz/`, public behind the cargo feature
//! `fuzzing` so that the target and `tests/fuzz_corpus.rs` run the same code. Not a stable
//! API.

use crate::format::Format;
use datahike::api::json_tx;
use datahike::edn::pr_str;
use datahike::Edn;

/// A request body: the first byte picks the `Content-Type` (EDN, JSON, transit+json, CBOR),
/// the rest is the body. Decoding answers with a value or an error; a value decoded goes
/// through what the server does to JSON arguments and transaction data, and its encoding in
/// transit+json and CBOR (result formats) decodes again; a value read from EDN prints as EDN
/// that reads back as the same value.
pub fn check_request_body(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else { return };
    let Some(&format) = Format::ALL.get(usize::from(selector) % Format::ALL.len()) else { return };
    let Ok(value) = format.decode(body) else { return };
    let _ = json_tx::args(vec![value.clone()]);
    let _ = json_tx::tx_data(datahike::fuzzing::sample_db(), &value);
    let printed = pr_str(&value);
    for result_format in Format::ALL {
        // Decoded values are at most as deep as the readers allow, within the writers' limit.
        let Ok(bytes) = result_format.encode(&value) else {
            assert!(value.nests_deeper_than(datahike::Edn::WRITE_DEPTH_MAX), "{value} did not encode");
            continue;
        };
        if result_format == Format::Json {
            // Tagged JSON cannot say everything EDN can (Datahike's convention); it is never read
            // back by the server that wrote it.
            continue;
        }
        if result_format == Format::Transit && has_short_tag(&value) {
            // An EDN tagged literal with a one-letter tag (`#u "x"`) is written as transit's
            // `["~#u", "x"]`, which transit reads as its own uuid (or instant, ...) tag.
            continue;
        }
        if result_format == Format::Edn && format != Format::Edn {
            // Transit, JSON and CBOR carry keyword and symbol names as any string (`~$a,[b`),
            // as Clojure's readers of them do; EDN cannot print every such name readably
            // (nor can Clojure's `pr-str`). Values read from EDN always print readably.
            continue;
        }
        let again = result_format
            .decode(&bytes)
            .unwrap_or_else(|e| panic!("{printed} encoded as {result_format:?} does not decode: {e}"));
        if result_format == Format::Edn && !printed.contains("NaN") {
            assert_eq!(pr_str(&again), printed, "{printed} does not round-trip through EDN");
        }
    }
}

/// Whether `value` holds a tagged literal whose tag is one character (transit's own tags).
fn has_short_tag(value: &Edn) -> bool {
    match value {
        Edn::Tagged(tag, inner) => tag.as_str().chars().count() <= 1 || has_short_tag(inner),
        Edn::List(xs) | Edn::Vector(xs) | Edn::Set(xs) => xs.iter().any(has_short_tag),
        Edn::Map(entries) => entries.iter().any(|(k, v)| has_short_tag(k) || has_short_tag(v)),
        _ => false,
    }
}
