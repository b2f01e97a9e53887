//! For `crate::fuzzing`: the connection's byte formats (heads and snapshot commit records, log
//! records, commit packs) decoded from arbitrary bytes and encoded again.

use super::records::{decode_log_record, decode_pack, encode_log_record, Head};
use crate::error::Result;

/// Decodes `bytes` as the head (or commit record) stored under `key` and encodes it again.
pub(crate) fn reencode_head(key: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    Ok(Head::decode(key, bytes)?.encode())
}

/// Decodes `bytes` as a log record and encodes it again.
pub(crate) fn reencode_log_record(bytes: &[u8]) -> Result<Vec<u8>> {
    Ok(encode_log_record(&decode_log_record(bytes)?))
}

/// Decodes `bytes` as the commit pack stored under `key`: each record, encoded again.
pub(crate) fn reencode_pack(key: &str, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let (_base, records) = decode_pack(key, bytes)?;
    Ok(records.iter().map(encode_log_record).collect())
}
