//! How records and change-log entries are laid out in bytes.
//!
//! A record is a format byte, its revision, then (format 2) its expiry or 0, then the
//! value; format 1 records, written before TTLs existed, are still read. A change-log
//! entry is op, timestamp, key length, key, then the value if any.

use ripplekv_core::{Change, ChangeOp, Error, Record, Revision};

/// Format tag of an encoded record: 1 is revision + value, 2 adds the expiry.
const RECORD_FORMAT: u8 = 2;

pub(super) fn encode(record: &Record) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(17 + record.value.len());
    bytes.push(RECORD_FORMAT);
    bytes.extend_from_slice(&record.revision.to_le_bytes());
    bytes.extend_from_slice(&record.expires_at_ms.unwrap_or(0).to_le_bytes());
    bytes.extend_from_slice(record.value.as_bytes());
    bytes
}

/// A change-log entry: op, timestamp, key length, key, then the value if any.
pub(super) fn encode_change(change: &Change) -> Vec<u8> {
    let value = change.value.as_deref();
    let mut bytes = Vec::with_capacity(14 + change.key.len() + value.map_or(0, str::len));
    bytes.push(change.op.code());
    bytes.extend_from_slice(&change.timestamp_ms.to_le_bytes());
    bytes.extend_from_slice(
        &u32::try_from(change.key.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    bytes.extend_from_slice(change.key.as_bytes());
    if let Some(value) = value {
        bytes.push(1);
        bytes.extend_from_slice(value.as_bytes());
    } else {
        bytes.push(0);
    }
    bytes
}

pub(super) fn decode_change(revision: Revision, bytes: &[u8]) -> Result<Change, Error> {
    let corrupt = || Error::internal(format!("corrupt change-log entry {revision}"));
    let op = ChangeOp::from_code(*bytes.first().ok_or_else(corrupt)?).ok_or_else(corrupt)?;
    let number = |range: std::ops::Range<usize>| bytes.get(range).ok_or_else(corrupt);
    let timestamp_ms = u64::from_le_bytes(number(1..9)?.try_into().map_err(|_| corrupt())?);
    let key_len = u32::from_le_bytes(number(9..13)?.try_into().map_err(|_| corrupt())?) as usize;
    let key = number(13..13 + key_len)?;
    let key = std::str::from_utf8(key).map_err(|_| corrupt())?.to_owned();
    let rest = bytes.get(13 + key_len..).ok_or_else(corrupt)?;
    let value = match rest.split_first() {
        Some((1, value)) => Some(
            std::str::from_utf8(value)
                .map_err(|_| corrupt())?
                .to_owned(),
        ),
        Some((0, [])) => None,
        _ => return Err(corrupt()),
    };
    Ok(Change {
        revision,
        key,
        op,
        value,
        timestamp_ms,
    })
}

pub(super) fn decode(bytes: &[u8]) -> Result<Record, Error> {
    let corrupt = || Error::internal("corrupt record in kv table");
    let (&format, rest) = bytes.split_first().ok_or_else(corrupt)?;
    let number = |at: usize| -> Result<u64, Error> {
        let field = rest.get(at..at + 8).ok_or_else(corrupt)?;
        Ok(u64::from_le_bytes(field.try_into().map_err(|_| corrupt())?))
    };
    let (expires_at_ms, value) = match format {
        1 => (None, rest.get(8..)),
        2 => (Some(number(8)?).filter(|&at| at != 0), rest.get(16..)),
        _ => return Err(corrupt()),
    };
    let value = std::str::from_utf8(value.ok_or_else(corrupt)?).map_err(|_| corrupt())?;
    Ok(Record {
        value: value.to_owned(),
        revision: number(0)?,
        expires_at_ms,
    })
}
