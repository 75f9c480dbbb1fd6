//! How records and change-log entries are laid out in bytes.
//!
//! A record is a format byte, its revision, then (format 2) its expiry or 0, then the
//! value; format 1 records, written before TTLs existed, are still read. Change-log
//! entries are format 3 (see `encode_change`: the previous revision, the stored value,
//! the value a delete or expiry removed, and the expiry too). Format 2 entries (without
//! the removed value) and format 1 entries (op, timestamp, key, notified value),
//! written before, are still read; format 1 with `Previous::Unknown`.

use ripplekv_core::{Change, ChangeOp, Error, Previous, Record, Revision};

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

/// Tag opening a change-log entry of format 2. Format 1 entries open with their op
/// code (1 to 6), so the first byte tells the two apart.
const CHANGE_FORMAT_2: u8 = 0xF2;
/// Tag opening a change-log entry of format 3: format 2 with the removed value.
const CHANGE_FORMAT_3: u8 = 0xF3;

/// How a format-2 entry stores the notified value.
const NOTIFIED_NONE: u8 = 0;
/// The notified value is the stored value (SET, ATOMIC, JSON Patch): kept once.
const NOTIFIED_IS_STORED: u8 = 1;
/// The notified value differs (PATCH: the patch as sent) and follows.
const NOTIFIED_OWN: u8 = 2;

/// A change-log entry, format 3: the tag, op, timestamp, key length and key, the
/// previous revision (0: the key was absent), the expiry (0: none), the stored value
/// (a presence byte, then length and bytes), the removed value (the same way), then
/// the notified value (`NOTIFIED_*`, and its bytes when it is its own). Format 2 is
/// format 3 without the removed value.
pub(super) fn encode_change(change: &Change) -> Vec<u8> {
    let stored = change.stored.as_deref();
    let notified = change.value.as_deref();
    let size = 40 + change.key.len() + stored.map_or(0, str::len);
    let mut bytes = Vec::with_capacity(size);
    bytes.push(CHANGE_FORMAT_3);
    bytes.push(change.op.code());
    bytes.extend_from_slice(&change.timestamp_ms.to_le_bytes());
    push_text(&mut bytes, &change.key);
    let previous = match change.previous {
        Previous::At(revision) => revision,
        // Written by this version, a change always knows; `Unknown` only comes from
        // reading format 1, which is never written back.
        Previous::Absent | Previous::Unknown => 0,
    };
    bytes.extend_from_slice(&previous.to_le_bytes());
    bytes.extend_from_slice(&change.expires_at_ms.unwrap_or(0).to_le_bytes());
    for text in [stored, change.removed.as_deref()] {
        match text {
            Some(text) => {
                bytes.push(1);
                push_text(&mut bytes, text);
            }
            None => bytes.push(0),
        }
    }
    match notified {
        None => bytes.push(NOTIFIED_NONE),
        Some(value) if Some(value) == stored => bytes.push(NOTIFIED_IS_STORED),
        Some(value) => {
            bytes.push(NOTIFIED_OWN);
            bytes.extend_from_slice(value.as_bytes());
        }
    }
    bytes
}

fn push_text(bytes: &mut Vec<u8>, text: &str) {
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(text.as_bytes());
}

/// Reads a change-log entry of either format.
pub(super) fn decode_change(revision: Revision, bytes: &[u8]) -> Result<Change, Error> {
    let corrupt = || Error::internal(format!("corrupt change-log entry {revision}"));
    let mut reader = Reader { bytes, corrupt };
    let format = bytes.first().copied();
    if format == Some(CHANGE_FORMAT_2) || format == Some(CHANGE_FORMAT_3) {
        reader.take(1)?;
        let op = ChangeOp::from_code(reader.byte()?).ok_or_else(corrupt)?;
        let timestamp_ms = reader.number()?;
        let key = reader.text()?;
        let previous = match reader.number()? {
            0 => Previous::Absent,
            at => Previous::At(at),
        };
        let expires_at_ms = Some(reader.number()?).filter(|&at| at != 0);
        let mut optional_text = || match reader.byte()? {
            0 => Ok(None),
            1 => reader.text().map(Some),
            _ => Err(corrupt()),
        };
        let stored = optional_text()?;
        let removed = if format == Some(CHANGE_FORMAT_3) {
            optional_text()?
        } else {
            None
        };
        let value = match reader.byte()? {
            NOTIFIED_NONE => None,
            NOTIFIED_IS_STORED => stored.clone(),
            NOTIFIED_OWN => Some(reader.rest_text()?),
            _ => return Err(corrupt()),
        };
        return Ok(Change {
            revision,
            key,
            op,
            value,
            timestamp_ms,
            previous,
            stored,
            expires_at_ms,
            removed,
        });
    }
    // Format 1: op, timestamp, key, then a presence byte and the notified value.
    let op = ChangeOp::from_code(reader.byte()?).ok_or_else(corrupt)?;
    let timestamp_ms = reader.number()?;
    let key = reader.text()?;
    let value = match reader.byte()? {
        1 => Some(reader.rest_text()?),
        0 if reader.bytes.is_empty() => None,
        _ => return Err(corrupt()),
    };
    // The stored value is the notified one except after a PATCH (the patch as sent).
    let stored = match op {
        ChangeOp::Patch => None,
        _ => value.clone(),
    };
    Ok(Change {
        revision,
        key,
        op,
        value,
        timestamp_ms,
        previous: Previous::Unknown,
        stored,
        expires_at_ms: None,
        removed: None,
    })
}

/// Reads an entry front to back; every short read is corruption.
struct Reader<'a, F: Fn() -> Error> {
    bytes: &'a [u8],
    corrupt: F,
}

impl<F: Fn() -> Error> Reader<'_, F> {
    fn take(&mut self, count: usize) -> Result<&[u8], Error> {
        if self.bytes.len() < count {
            return Err((self.corrupt)());
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn number(&mut self) -> Result<u64, Error> {
        let bytes: [u8; 8] = self.take(8)?.try_into().map_err(|_| (self.corrupt)())?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn text(&mut self) -> Result<String, Error> {
        let len: [u8; 4] = self.take(4)?.try_into().map_err(|_| (self.corrupt)())?;
        let bytes = self.take(u32::from_le_bytes(len) as usize)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| (self.corrupt)())
    }

    fn rest_text(&mut self) -> Result<String, Error> {
        let bytes = std::mem::take(&mut self.bytes);
        String::from_utf8(bytes.to_vec()).map_err(|_| (self.corrupt)())
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn change(op: ChangeOp, stored: Option<&str>, removed: Option<&str>) -> Change {
        Change {
            revision: 5,
            key: "items/a".into(),
            op,
            value: stored.map(str::to_owned),
            timestamp_ms: 77,
            previous: Previous::At(4),
            stored: stored.map(str::to_owned),
            expires_at_ms: Some(900),
            removed: removed.map(str::to_owned),
        }
    }

    #[test]
    fn entries_round_trip_with_the_removed_value() {
        for original in [
            change(ChangeOp::Set, Some(r#"{"n":1}"#), None),
            change(ChangeOp::Delete, None, Some(r#"{"n":1}"#)),
            change(ChangeOp::Expire, None, Some("")),
        ] {
            let bytes = encode_change(&original);
            assert_eq!(bytes[0], CHANGE_FORMAT_3);
            assert_eq!(decode_change(5, &bytes).unwrap(), original);
        }
    }

    #[test]
    fn format_2_entries_read_without_a_removed_value() {
        let mut bytes = vec![CHANGE_FORMAT_2, ChangeOp::Delete.code()];
        bytes.extend_from_slice(&77u64.to_le_bytes());
        push_text(&mut bytes, "items/a");
        bytes.extend_from_slice(&4u64.to_le_bytes());
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.push(0); // no stored value
        bytes.push(NOTIFIED_NONE);
        let read = decode_change(5, &bytes).unwrap();
        assert_eq!(read.op, ChangeOp::Delete);
        assert_eq!(read.previous, Previous::At(4));
        assert_eq!(read.removed, None);
        assert_eq!(read.expires_at_ms, None);
    }
}
