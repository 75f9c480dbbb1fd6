//! The snapshot format: what `GET /admin/snapshot` streams and `ripplekv backup` keeps.
//!
//! JSON lines, so a snapshot can be streamed, inspected with ordinary tools and
//! imported anywhere:
//! 1. a header: `{"format":"ripplekv-snapshot","version":1,"revision":R,"createdAtMs":T,"keys":N}`
//!    (`keys` counts live records when the snapshot began, for progress bars);
//! 2. one line per record, in key order:
//!    `{"key":K,"value":V,"revision":r}` plus `"expiresAtMs":T` for keys with a TTL;
//! 3. a trailer: `{"end":true,"records":M}`.
//!
//! The trailer is what tells a complete snapshot from one cut short by a dropped
//! connection or a full disk: a file without it, or whose count disagrees, is refused.

use serde::{Deserialize, Serialize};

/// The `format` of a snapshot header.
pub const FORMAT: &str = "ripplekv-snapshot";
/// The snapshot format version this build writes and reads.
pub const VERSION: u32 = 1;

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// Always `ripplekv-snapshot`.
    pub format: String,
    /// The format version.
    pub version: u32,
    /// The store revision the snapshot is consistent with.
    pub revision: u64,
    /// When the snapshot was taken, in ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Records expected (live keys when the snapshot began).
    pub keys: u64,
}

/// One record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// The revision of the record's last write. Absent in plain exports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// When it expires, in ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

/// The last line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trailer {
    /// Always true: marks the last line.
    pub end: bool,
    /// How many records came before it.
    pub records: u64,
}

/// Any line of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// The first line.
    Header(Header),
    /// One record.
    Entry(Entry),
    /// The last line.
    Trailer(Trailer),
}

impl Line {
    /// Parses one line, saying which kind it failed to be.
    pub fn parse(text: &str) -> Result<Line, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|err| format!("not JSON: {err}"))?;
        let kind = if value.get("format").is_some() {
            "header"
        } else if value.get("end").is_some() {
            "trailer"
        } else {
            "record"
        };
        let parsed = match kind {
            "header" => serde_json::from_value(value).map(Line::Header),
            "trailer" => serde_json::from_value(value).map(Line::Trailer),
            _ => serde_json::from_value(value).map(Line::Entry),
        };
        parsed.map_err(|err| format!("invalid {kind} line: {err}"))
    }

    /// The line as JSON, without the newline.
    pub fn to_json(&self) -> String {
        let text = match self {
            Line::Header(header) => serde_json::to_string(header),
            Line::Entry(entry) => serde_json::to_string(entry),
            Line::Trailer(trailer) => serde_json::to_string(trailer),
        };
        // Plain structs of strings and numbers always serialize.
        text.unwrap_or_default()
    }
}

impl Header {
    /// The header of this format and version.
    pub fn new(revision: u64, created_at_ms: u64, keys: u64) -> Self {
        Header {
            format: FORMAT.to_owned(),
            version: VERSION,
            revision,
            created_at_ms,
            keys,
        }
    }

    /// Refuses headers of another format or of a version other than this build's (there
    /// is only one so far).
    pub fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "not a RippleKV snapshot (format {:?})",
                self.format
            ));
        }
        if self.version != VERSION {
            return Err(format!(
                "snapshot format version {} is not supported (this build reads {VERSION})",
                self.version
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let lines = [
            Line::Header(Header::new(42, 1_700_000_000_000, 2)),
            Line::Entry(Entry {
                key: "a\n\"b\"".into(),
                value: "{\"x\":1}".into(),
                revision: Some(7),
                expires_at_ms: Some(9),
            }),
            Line::Entry(Entry {
                key: "c".into(),
                value: "v".into(),
                revision: None,
                expires_at_ms: None,
            }),
            Line::Trailer(Trailer {
                end: true,
                records: 2,
            }),
        ];
        for line in lines {
            let text = line.to_json();
            assert!(!text.contains('\n'), "{text}");
            assert_eq!(Line::parse(&text).unwrap(), line);
        }
        assert_eq!(
            Line::Entry(Entry {
                key: "c".into(),
                value: "v".into(),
                revision: None,
                expires_at_ms: None
            })
            .to_json(),
            r#"{"key":"c","value":"v"}"#
        );
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert!(Line::parse("{").unwrap_err().contains("not JSON"));
        assert!(Line::parse(r#"{"key":"k"}"#)
            .unwrap_err()
            .contains("invalid record line"));
        assert!(Line::parse(r#"{"key":"k","value":1}"#).is_err());
        assert!(Line::parse(r#"{"format":"x"}"#)
            .unwrap_err()
            .contains("invalid header line"));
        let header = Header {
            format: "other".into(),
            ..Header::new(1, 1, 1)
        };
        assert!(header.check().is_err());
        let future = Header {
            version: 2,
            ..Header::new(1, 1, 1)
        };
        assert!(future.check().unwrap_err().contains("version 2"));
    }
}
