//! Bodies of the REST routes (PROTOCOL.md A6), checked field by field.
//!
//! Bodies are parsed whatever the Content-Type (HPKV clients do not always send one),
//! unknown fields are ignored, and every error names the field at fault.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::fields::{describe_json_error, integer, string_error, string_field, string_list};

/// `POST /record`: `{key, value, partialUpdate?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBody {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// True for PATCH semantics; `null` or absent means SET.
    pub partial_update: bool,
}

/// `POST /record/atomic`: `{key, increment}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtomicBody {
    /// The key.
    pub key: String,
    /// The amount to add.
    pub increment: i64,
}

/// `POST /token/websocket`: `{subscribeKeys?, subscribePatterns?, accessPattern?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenBody {
    /// `subscribeKeys` and `subscribePatterns`, in that order.
    pub subscribe: Vec<String>,
    /// The keys the token may read and write.
    pub access_pattern: Option<String>,
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    key: Option<&'a RawValue>,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
    #[serde(borrow, rename = "partialUpdate")]
    partial_update: Option<&'a RawValue>,
    #[serde(borrow)]
    increment: Option<&'a RawValue>,
    #[serde(borrow, rename = "subscribeKeys")]
    subscribe_keys: Option<&'a RawValue>,
    #[serde(borrow, rename = "subscribePatterns")]
    subscribe_patterns: Option<&'a RawValue>,
    #[serde(borrow, rename = "accessPattern")]
    access_pattern: Option<&'a RawValue>,
}

fn fields(body: &str) -> Result<Fields<'_>, String> {
    serde_json::from_str(body)
        .map_err(|err| describe_json_error(body, &err).replace("Request", "Body"))
}

/// Parses the body of `POST /record`.
pub fn parse_record_body(body: &str) -> Result<RecordBody, String> {
    let fields = fields(body)?;
    let partial_update = match fields.partial_update {
        None => false,
        Some(raw) => serde_json::from_str::<Option<bool>>(raw.get())
            .map_err(|_| "Field 'partialUpdate' must be a boolean or null".to_owned())?
            .unwrap_or(false),
    };
    Ok(RecordBody {
        key: string_field("key", fields.key)?,
        value: string_field("value", fields.value)?,
        partial_update,
    })
}

/// Parses the body of `POST /record/atomic`.
pub fn parse_atomic_body(body: &str) -> Result<AtomicBody, String> {
    let fields = fields(body)?;
    let key = string_field("key", fields.key)?;
    let raw = fields.increment.ok_or("Missing field 'increment'")?;
    Ok(AtomicBody {
        key,
        increment: integer("increment", raw)?,
    })
}

/// Parses the body of `POST /token/websocket`; an empty body grants nothing.
pub fn parse_token_body(body: &str) -> Result<TokenBody, String> {
    if body.trim().is_empty() {
        return Ok(TokenBody::default());
    }
    let fields = fields(body)?;
    let mut subscribe = string_list("subscribeKeys", fields.subscribe_keys)?;
    subscribe.extend(string_list("subscribePatterns", fields.subscribe_patterns)?);
    let access_pattern = match fields.access_pattern {
        None => None,
        Some(raw) => serde_json::from_str::<Option<String>>(raw.get())
            .map_err(|_| string_error("accessPattern", raw.get()))?,
    };
    Ok(TokenBody {
        subscribe,
        access_pattern,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_bodies() {
        let body = parse_record_body(r#"{"key":"k","value":"v","partialUpdate":null}"#).unwrap();
        assert!(!body.partial_update);
        let body = parse_record_body(r#"{"key":"k","value":"v","partialUpdate":true}"#).unwrap();
        assert!(body.partial_update);
        assert_eq!(
            parse_record_body(r#"{"key":"k"}"#).unwrap_err(),
            "Missing field 'value'"
        );
        assert_eq!(
            parse_record_body(r#"{"key":"k","value":"v","partialUpdate":"yes"}"#).unwrap_err(),
            "Field 'partialUpdate' must be a boolean or null"
        );
        assert_eq!(
            parse_record_body("[]").unwrap_err(),
            "Body must be a JSON object, got an array"
        );
        assert!(parse_record_body("")
            .unwrap_err()
            .starts_with("Invalid JSON"));
    }

    #[test]
    fn token_bodies() {
        let body = parse_token_body(
            r#"{"subscribeKeys":["a"],"subscribePatterns":["b*"],"accessPattern":"^a|b*$","x":1}"#,
        )
        .unwrap();
        assert_eq!(body.subscribe, ["a", "b*"]);
        assert_eq!(body.access_pattern.as_deref(), Some("^a|b*$"));
        assert_eq!(parse_token_body("").unwrap(), TokenBody::default());
        assert_eq!(parse_token_body("{}").unwrap(), TokenBody::default());
        assert_eq!(
            parse_token_body(r#"{"subscribeKeys":"a"}"#).unwrap_err(),
            "Field 'subscribeKeys' must be an array of strings"
        );
        assert_eq!(
            parse_token_body(r#"{"accessPattern":5}"#).unwrap_err(),
            "Field 'accessPattern' must be a string, got a number"
        );
        // Lone surrogate escapes are named as such, not as the wrong type.
        assert!(parse_token_body(r#"{"accessPattern":"a\ud800"}"#)
            .unwrap_err()
            .starts_with("Field 'accessPattern' is not valid Unicode: a \\u escape is a lone"));
        assert!(parse_token_body(r#"{"subscribeKeys":["ok","\udc00"]}"#)
            .unwrap_err()
            .starts_with("Field 'subscribeKeys' is not valid Unicode"));
        assert_eq!(
            parse_token_body(r#"{"subscribeKeys":["ok",5]}"#).unwrap_err(),
            "Field 'subscribeKeys' must be an array of strings"
        );
    }

    #[test]
    fn atomic_bodies() {
        assert_eq!(
            parse_atomic_body(r#"{"key":"n","increment":-2}"#).unwrap(),
            AtomicBody {
                key: "n".into(),
                increment: -2
            }
        );
        assert_eq!(
            parse_atomic_body(r#"{"key":"n"}"#).unwrap_err(),
            "Missing field 'increment'"
        );
        assert!(parse_atomic_body(r#"{"key":"n","increment":0.5}"#)
            .unwrap_err()
            .contains("must be an integer"));
    }
}
