//! Collection names and item ids, and the store key `<collection>/<id>` they make.

use ripplekv_core::Error;
use serde_json::Value;

/// The longest collection name, in bytes (spelled out in the error text too).
const MAX_NAME_BYTES: usize = 64;
/// The longest item id, in bytes (spelled out in the error text too).
const MAX_ID_BYTES: usize = 128;

/// A valid collection name: `^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection(String);

impl Collection {
    /// The name if it is valid, else 400 saying why.
    pub fn parse(name: &str) -> Result<Self, Error> {
        let mut bytes = name.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if first_ok && rest_ok && name.len() <= MAX_NAME_BYTES {
            Ok(Collection(name.to_owned()))
        } else {
            // The limit is spelled out so the text matches docs/collections.md.
            Err(Error::invalid(format!(
                "Invalid collection name {name:?}: 1 to 64 characters of \
                 A-Z a-z 0-9 _ . -, not starting with . or -"
            )))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The store key of item `id`.
    pub fn key(&self, id: &ItemId) -> String {
        format!("{}/{}", self.0, id.text)
    }
}

/// An item id: a string, or an integer (the same key as its decimal string, and kept
/// a number in the document).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemId {
    /// The id as it appears in the key.
    text: String,
    /// The id as it appears in the document.
    json: Value,
}

impl ItemId {
    /// The id a client sent (a JSON string or integer), else 400.
    pub fn from_json(value: &Value) -> Result<Self, Error> {
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) if number.is_i64() || number.is_u64() => number.to_string(),
            _ => return Err(Error::invalid("An id must be a string or an integer")),
        };
        Self::checked(text, value.clone())
    }

    /// A string id (read from a key, or made by the server), else 400.
    pub fn from_text(text: &str) -> Result<Self, Error> {
        Self::checked(text.to_owned(), Value::String(text.to_owned()))
    }

    fn checked(text: String, json: Value) -> Result<Self, Error> {
        if text.is_empty() || text.len() > MAX_ID_BYTES {
            return Err(Error::invalid("An id must be 1 to 128 bytes long"));
        }
        if text.contains('/') || text.chars().any(char::is_control) {
            return Err(Error::invalid(
                "An id may not contain '/' or control characters",
            ));
        }
        Ok(ItemId { text, json })
    }

    /// The id as in the key.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The id as in the document.
    pub fn json(&self) -> &Value {
        &self.json
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn collection_names() {
        for good in ["items", "a", "_x", "v1.todo-list", &"n".repeat(64)] {
            assert!(Collection::parse(good).is_ok(), "{good}");
        }
        for bad in ["", ".x", "-x", "a/b", "a b", "é", &"n".repeat(65)] {
            assert!(Collection::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_make_keys() {
        let items = Collection::parse("items").unwrap();
        let numeric = ItemId::from_json(&json!(1)).unwrap();
        let text = ItemId::from_json(&json!("1")).unwrap();
        assert_eq!(items.key(&numeric), "items/1");
        assert_eq!(items.key(&numeric), items.key(&text));
        assert_eq!(numeric.json(), &json!(1));
        assert_eq!(text.json(), &json!("1"));
        assert_eq!(ItemId::from_json(&json!(-7)).unwrap().as_str(), "-7");
        for bad in [json!(1.5), json!(null), json!(true), json!({}), json!("")] {
            assert!(ItemId::from_json(&bad).is_err(), "{bad}");
        }
        for bad in ["a/b", "a\nb", &"x".repeat(129)] {
            assert!(ItemId::from_text(bad).is_err(), "{bad:?}");
        }
        assert!(
            ItemId::from_text(&"é".repeat(64)).is_ok(),
            "128 bytes of UTF-8"
        );
    }
}
