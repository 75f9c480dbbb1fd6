//! Documents: a stored value read as an item (with its `id` and `_rev`), and a
//! client's document made into the value to store (without `_rev`, with the item's
//! `id` first).

use ripplekv_core::Error;
use serde_json::{Map, Value};

use crate::ItemId;

/// The field every item read carries: the store revision of the key's last change.
/// Never stored; a client's `_rev` is dropped.
pub const REVISION_FIELD: &str = "_rev";

/// The item the value stored at `key` holds: its JSON object, with `id` filled in from
/// the key when the document has none (as HPKV clients may write it) and `_rev`. 422
/// when the value is not a JSON object (an HPKV counter under a collection's prefix).
pub fn item_from_stored(
    key: &str,
    value: &str,
    id: &ItemId,
    revision: u64,
) -> Result<Map<String, Value>, Error> {
    let Ok(Value::Object(mut document)) = serde_json::from_str::<Value>(value) else {
        return Err(Error::Unprocessable(format!(
            "The value of {key} is not a JSON object, so it is not an item"
        )));
    };
    if !document.contains_key("id") {
        let mut with_id = Map::with_capacity(document.len() + 2);
        with_id.insert("id".to_owned(), id.json().clone());
        with_id.extend(document);
        document = with_id;
    }
    document.insert(REVISION_FIELD.to_owned(), Value::from(revision));
    Ok(document)
}

/// A client's document as the value to store under `id`: a JSON object, its `_rev`
/// dropped and its `id` set to the item's (first). 400 when it is not an object or
/// names another id.
pub fn stored_document(document: Value, id: &ItemId) -> Result<Map<String, Value>, Error> {
    let Value::Object(mut fields) = document else {
        return Err(Error::invalid("A document must be a JSON object"));
    };
    fields.shift_remove(REVISION_FIELD);
    if let Some(given) = fields.shift_remove("id") {
        if ItemId::from_json(&given)?.as_str() != id.as_str() {
            return Err(Error::invalid(format!(
                "The document's id {given} is not the item's id {:?}",
                id.as_str()
            )));
        }
    }
    let mut stored = Map::with_capacity(fields.len() + 1);
    stored.insert("id".to_owned(), id.json().clone());
    stored.extend(fields);
    Ok(stored)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_values_read_as_items() {
        let id = ItemId::from_text("x").unwrap();
        let item = item_from_stored("items/x", r#"{"n":1}"#, &id, 7).unwrap();
        assert_eq!(
            Value::Object(item.clone()),
            json!({"id": "x", "n": 1, "_rev": 7})
        );
        assert_eq!(item.keys().next().map(String::as_str), Some("id"));
        let numeric = ItemId::from_json(&json!(5)).unwrap();
        let item = item_from_stored("items/5", r#"{"id":5,"_rev":1}"#, &numeric, 9).unwrap();
        assert_eq!(
            Value::Object(item),
            json!({"id": 5, "_rev": 9}),
            "the stored _rev is not the item's"
        );
        for value in ["3", "[1]", "\"text\"", "not json"] {
            let err = item_from_stored("items/x", value, &id, 1).unwrap_err();
            assert_eq!(err.status(), 422, "{value}");
        }
    }

    #[test]
    fn client_documents_become_stored_values() {
        let id = ItemId::from_json(&json!(3)).unwrap();
        let stored = stored_document(json!({"a": 1, "_rev": 99, "id": "3"}), &id).unwrap();
        assert_eq!(serde_json::to_string(&stored).unwrap(), r#"{"id":3,"a":1}"#);
        assert!(stored_document(json!({"id": 4}), &id).is_err());
        assert!(stored_document(json!([1]), &id).is_err());
    }
}
