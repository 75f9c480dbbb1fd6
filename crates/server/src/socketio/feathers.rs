//! The Feathers face: the six service methods as the official
//! `@feathersjs/socketio-client` sends them, `emit(method, path, ...args, ack)`:
//!
//! | method | arguments after the path | result |
//! |---|---|---|
//! | `find` | `[query]` | `{total, limit, skip, data}` |
//! | `get` | `id [, query]` | the item |
//! | `create` | `data [, query]` | the created item |
//! | `update` | `id, data [, query]` | the replaced item |
//! | `patch` | `id, data [, query]` | the patched item (a shallow merge, or JSON Patch) |
//! | `remove` | `id [, query]` | the removed item |
//!
//! Success acks `(null, result)` and failure `(error)`, as Feathers' own server does.
//! The path is the collection; `$rev` in the query of `update`, `patch` and `remove`
//! makes them conditional; other query members must match the item, as in Feathers'
//! adapters.

use ripplekv_collections::{Collection, ItemId, Query, REVISION_FIELD};
use ripplekv_core::Error;
use serde_json::{json, Map, Value};

use super::errors::Failure;
use super::items::{Change, Item, Items};

/// Whether this face serves `event`.
pub(super) fn serves(event: &str) -> bool {
    matches!(
        event,
        "find" | "get" | "create" | "update" | "patch" | "remove"
    )
}

/// Runs one Feathers call: its result, or the failure to ack.
pub(super) async fn handle(
    items: &Items<'_>,
    method: &str,
    mut args: Vec<Value>,
) -> Result<Value, Failure> {
    // At most the arguments up to the params (Feathers' own rule).
    let most = match method {
        "find" => 2,
        "update" | "patch" => 4,
        _ => 3,
    };
    if args.len() > most {
        return Err(Error::invalid(format!("Too many arguments for '{method}' method")).into());
    }
    if args.is_empty() {
        return Err(Error::invalid(format!("{method} needs the service path")).into());
    }
    let path = args.remove(0);
    let collection = path
        .as_str()
        .and_then(|name| Collection::parse(name).ok())
        .ok_or_else(|| Failure::not_found(format!("Service '{}' not found", text_of(&path))))?;
    let mut args = args.into_iter();
    let mut next = || args.next().unwrap_or(Value::Null);
    let result = match method {
        "find" => {
            let query = Query::from_feathers(&query_of(next())?)?;
            let (skip, limit) = (query.skip(), query.limit());
            let listing = items.list(&collection, query).await?;
            json!({
                "total": listing.total,
                "limit": limit,
                "skip": skip,
                "data": listing.items,
            })
        }
        "get" => {
            let id = id_of(next(), method)?;
            let query = Query::from_feathers(&query_of(next())?)?;
            let item = matching(items.get(&collection, &id).await?, &id, &query)?;
            Value::Object(query.selected(item))
        }
        "create" => match next() {
            Value::Array(_) => {
                return Err(Failure::method_not_allowed(
                    "Can not create multiple entries",
                ))
            }
            data @ Value::Object(_) => Value::Object(items.create(&collection, data).await?),
            other => {
                return Err(Error::invalid(format!("create takes an object, not {other}")).into())
            }
        },
        "update" => {
            let id = match next() {
                Value::Null => {
                    return Err(Error::invalid(
                        "You can not replace multiple instances. Did you mean 'patch'?",
                    )
                    .into())
                }
                id => ItemId::from_json(&id)?,
            };
            let Value::Object(mut data) = next() else {
                return Err(Error::invalid("update takes an object").into());
            };
            let (query, if_revision) = conditional(next())?;
            check_filter(items, &collection, &id, &query).await?;
            data.shift_remove("id");
            let mut document = Map::with_capacity(data.len() + 1);
            document.insert("id".to_owned(), id.json().clone());
            document.extend(data);
            let item = items
                .replace(&collection, Value::Object(document), false, if_revision)
                .await?;
            Value::Object(query.selected(item))
        }
        "patch" => {
            let id = one_id(next(), "Can not patch multiple entries")?;
            let change = match next() {
                Value::Object(fields) => Change::Operations(shallow_merge(fields)),
                Value::Array(operations) => Change::Operations(operations),
                other => {
                    return Err(Error::invalid(format!(
                        "patch takes an object or JSON Patch operations, not {other}"
                    ))
                    .into())
                }
            };
            let (query, if_revision) = conditional(next())?;
            check_filter(items, &collection, &id, &query).await?;
            let item = items.patch(&collection, &id, change, if_revision).await?;
            Value::Object(query.selected(item))
        }
        "remove" => {
            let id = one_id(next(), "Can not remove multiple entries")?;
            let (query, if_revision) = conditional(next())?;
            check_filter(items, &collection, &id, &query).await?;
            let item = items.remove(&collection, &id, if_revision).await?;
            Value::Object(query.selected(item))
        }
        _ => return Err(Failure::unknown_event(method)),
    };
    Ok(result)
}

/// The id of a call on one item; `null` (every item) is refused with `multi`.
fn one_id(value: Value, multi: &str) -> Result<ItemId, Failure> {
    match value {
        Value::Null => Err(Failure::method_not_allowed(multi)),
        id => Ok(ItemId::from_json(&id)?),
    }
}

fn text_of(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

fn id_of(value: Value, method: &str) -> Result<ItemId, Failure> {
    match value {
        Value::Null => Err(Error::invalid(format!("{method} needs an id")).into()),
        id => Ok(ItemId::from_json(&id)?),
    }
}

fn query_of(value: Value) -> Result<Map<String, Value>, Error> {
    match value {
        Value::Null => Ok(Map::new()),
        Value::Object(query) => Ok(query),
        other => Err(Error::invalid(format!(
            "The query must be an object, not {other}"
        ))),
    }
}

/// A write's query, and its `$rev` (the revision the item must be at).
fn conditional(value: Value) -> Result<(Query, Option<u64>), Error> {
    let mut query = query_of(value)?;
    let if_revision = match query.shift_remove("$rev") {
        None | Some(Value::Null) => None,
        Some(revision) => Some(
            revision
                .as_u64()
                .ok_or_else(|| Error::invalid("$rev must be a non-negative integer"))?,
        ),
    };
    Ok((Query::from_feathers(&query)?, if_revision))
}

/// 404 unless the item passes the query's filters (Feathers' adapters answer a call
/// by id whose query does not match as if the item were not there).
fn matching(item: Item, id: &ItemId, query: &Query) -> Result<Item, Error> {
    if query.accepts(id.as_str(), &item) {
        Ok(item)
    } else {
        Err(Error::NotFound)
    }
}

async fn check_filter(
    items: &Items<'_>,
    collection: &Collection,
    id: &ItemId,
    query: &Query,
) -> Result<(), Error> {
    if query.has_filters() {
        matching(items.get(collection, id).await?, id, query)?;
    }
    Ok(())
}

/// A shallow merge (Feathers' `patch`: each top-level member set, `null` included) as
/// JSON Patch operations, so the change is recorded as a patch.
fn shallow_merge(fields: Map<String, Value>) -> Vec<Value> {
    fields
        .into_iter()
        .filter(|(name, _)| name != "id" && name != REVISION_FIELD)
        .map(|(name, value)| {
            let pointer = format!("/{}", name.replace('~', "~0").replace('/', "~1"));
            json!({ "op": "add", "path": pointer, "value": value })
        })
        .collect()
}
