//! Content negotiation: request bodies are read in the format of `Content-Type`, results are
//! written in the format of `Accept` (else the request's format, else EDN).

use datahike::edn::{pr_str, read_str};
use datahike::Edn;

/// A wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/edn`
    Edn,
    /// `application/json`, with Datahike's tagged JSON conventions.
    Json,
    /// `application/transit+json`
    Transit,
    /// `application/cbor`
    Cbor,
}

impl Format {
    /// Every format, in the order `/swagger.json` lists them.
    pub const ALL: [Format; 4] = [Format::Edn, Format::Json, Format::Transit, Format::Cbor];

    /// The format of a media type (parameters such as `; charset=utf-8` ignored).
    pub fn from_mime(mime: &str) -> Option<Format> {
        match mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase().as_str() {
            "application/edn" | "text/edn" => Some(Format::Edn),
            "application/json" => Some(Format::Json),
            "application/transit+json" => Some(Format::Transit),
            "application/cbor" => Some(Format::Cbor),
            _ => None,
        }
    }

    /// The first known format of an `Accept` header; `*/*` gives `None` (no preference).
    pub fn from_accept(accept: &str) -> Option<Format> {
        accept.split(',').find_map(Format::from_mime)
    }

    /// The media type.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Edn => "application/edn",
            Format::Json => "application/json",
            Format::Transit => "application/transit+json",
            Format::Cbor => "application/cbor",
        }
    }

    /// Reads a body; the error says what is wrong with it.
    pub fn decode(self, bytes: &[u8]) -> Result<Edn, String> {
        let text = || std::str::from_utf8(bytes).map_err(|_| format!("the {} body is not UTF-8 text", self.mime()));
        match self {
            Format::Edn => read_str(text()?).map_err(|e| format!("the body is not valid EDN: {e}")),
            Format::Json => {
                datahike::edn::json::from_tagged_json(text()?).map_err(|e| format!("the body is not valid JSON: {e}"))
            }
            Format::Transit => datahike::edn::transit::from_transit_json(text()?)
                .map_err(|e| format!("the body is not valid transit+json: {e}")),
            Format::Cbor => {
                datahike::cbor::edn_from_cbor(bytes).map_err(|e| format!("the body is not valid CBOR: {e}"))
            }
        }
    }

    /// Writes a value. EDN takes any depth; the other writers recurse once per level, so a
    /// value nested deeper than [`Edn::WRITE_DEPTH_MAX`] (a recursive pull down a long chain)
    /// is refused with a message saying so rather than risking the server's stack.
    pub fn encode(self, value: &Edn) -> Result<Vec<u8>, String> {
        if self != Format::Edn && value.nests_deeper_than(Edn::WRITE_DEPTH_MAX) {
            return Err(format!(
                "the answer nests more than {} levels deep, too deep for {}; ask for application/edn",
                Edn::WRITE_DEPTH_MAX,
                self.mime()
            ));
        }
        Ok(match self {
            Format::Edn => pr_str(value).into_bytes(),
            Format::Json => datahike::edn::json::to_tagged_json(value).into_bytes(),
            Format::Transit => datahike::edn::transit::to_transit_json(value).into_bytes(),
            Format::Cbor => datahike::cbor::edn_to_cbor(value),
        })
    }
}
