//! The verb face: upper-case HTTP verbs as event names, each acknowledged with one
//! value, as verb-style socket.io CRUD clients expect
//! (`socket.timeout(5000).emit('GET', 'items', 1, cb)` inside a promise):
//!
//! | event | arguments | ack |
//! |---|---|---|
//! | `GET` | `collection, id` | the item |
//! | `GET`, `LIST` | `collection [, query]` | `{data, total, page, pageSize, revision}` |
//! | `POST` | `collection, document [, options]` | the created item |
//! | `PUT` | `collection, document [, {upsert, ifRevision}]` | the stored item |
//! | `PATCH` | `collection, id, object \| operations [, options]`, or `collection, {id, …} [, options]` | the patched item |
//! | `DELETE` | `collection, id [, options]` | the deleted item |
//!
//! A failure acks `(null, error)`, so a plain promise wrapper resolves `null` and a
//! careful client reads the error second. `options` may hold `ifRevision`.

use ripplekv_collections::{Collection, ItemId, Query};
use ripplekv_core::Error;
use serde_json::{json, Map, Value};

use super::items::{Change, Items};

/// Whether this face serves `event`.
pub(super) fn serves(event: &str) -> bool {
    matches!(event, "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "LIST")
}

/// Runs one verb request: the ack's one value on success.
pub(super) async fn handle(
    items: &Items<'_>,
    event: &str,
    args: Vec<Value>,
) -> Result<Value, Error> {
    let mut args = Arguments::new(event, args);
    let collection = Collection::parse(&args.text("collection")?)?;
    let item = match event {
        "LIST" | "GET" if event == "LIST" || args.next_is_object() => {
            let query = match args.optional() {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(query)) => query,
                Some(other) => {
                    return Err(Error::invalid(format!(
                        "{event}: the query must be a JSON object, not {other}"
                    )))
                }
            };
            args.end()?;
            let (query, number) = Query::from_verb(&query)?;
            let listing = items.list(&collection, query).await?;
            return Ok(json!({
                "data": listing.items,
                "total": listing.total,
                "page": number.page,
                "pageSize": number.page_size,
                "revision": listing.revision,
            }));
        }
        "GET" => {
            let id = args.id()?;
            args.end()?;
            items.get(&collection, &id).await?
        }
        "POST" => {
            let document = args.object("document")?;
            let _ = Options::parse(args.optional(), &[])?;
            args.end()?;
            items.create(&collection, document).await?
        }
        "PUT" => {
            let document = args.object("document")?;
            let options = Options::parse(args.optional(), &["upsert", "ifRevision"])?;
            args.end()?;
            items
                .replace(&collection, document, options.upsert, options.if_revision)
                .await?
        }
        "PATCH" => {
            let (id, change) = if args.next_is_object() {
                let Value::Object(mut fields) = args.object("document")? else {
                    unreachable!("an object was checked for")
                };
                let id = fields
                    .get("id")
                    .ok_or_else(|| Error::invalid("PATCH with a document needs its id"))?;
                let id = ItemId::from_json(id)?;
                fields.shift_remove("id");
                (id, Change::Merge(fields))
            } else {
                let id = args.id()?;
                (id, args.change()?)
            };
            let options = Options::parse(args.optional(), &["ifRevision"])?;
            args.end()?;
            items
                .patch(&collection, &id, change, options.if_revision)
                .await?
        }
        "DELETE" => {
            let id = args.id()?;
            let options = Options::parse(args.optional(), &["ifRevision"])?;
            args.end()?;
            items.remove(&collection, &id, options.if_revision).await?
        }
        _ => return Err(Error::MethodNotAllowed),
    };
    Ok(Value::Object(item))
}

/// A request's arguments, taken in order, with errors that name the event.
struct Arguments {
    event: String,
    args: std::vec::IntoIter<Value>,
    peeked: Option<Value>,
}

impl Arguments {
    fn new(event: &str, args: Vec<Value>) -> Self {
        Arguments {
            event: event.to_owned(),
            args: args.into_iter(),
            peeked: None,
        }
    }

    fn next(&mut self) -> Option<Value> {
        self.peeked.take().or_else(|| self.args.next())
    }

    fn next_is_object(&mut self) -> bool {
        if self.peeked.is_none() {
            self.peeked = self.args.next();
        }
        matches!(self.peeked, Some(Value::Object(_)))
    }

    fn required(&mut self, what: &str) -> Result<Value, Error> {
        self.next()
            .ok_or_else(|| Error::invalid(format!("{} needs the {what}", self.event)))
    }

    fn text(&mut self, what: &str) -> Result<String, Error> {
        match self.required(what)? {
            Value::String(text) => Ok(text),
            other => Err(Error::invalid(format!(
                "{}: the {what} must be a string, not {other}",
                self.event
            ))),
        }
    }

    fn id(&mut self) -> Result<ItemId, Error> {
        ItemId::from_json(&self.required("id")?)
    }

    fn object(&mut self, what: &str) -> Result<Value, Error> {
        match self.required(what)? {
            object @ Value::Object(_) => Ok(object),
            other => Err(Error::invalid(format!(
                "{}: the {what} must be a JSON object, not {other}",
                self.event
            ))),
        }
    }

    /// A merge object or JSON Patch operations.
    fn change(&mut self) -> Result<Change, Error> {
        match self.required("patch")? {
            Value::Object(fields) => Ok(Change::Merge(fields)),
            Value::Array(operations) => Ok(Change::Operations(operations)),
            other => Err(Error::invalid(format!(
                "{}: the patch must be an object (a merge) or an array (JSON Patch), not {other}",
                self.event
            ))),
        }
    }

    fn optional(&mut self) -> Option<Value> {
        self.next()
    }

    /// Fails if arguments are left.
    fn end(&mut self) -> Result<(), Error> {
        match self.next() {
            None => Ok(()),
            Some(extra) => Err(Error::invalid(format!(
                "{}: too many arguments (unexpected {extra})",
                self.event
            ))),
        }
    }
}

/// A request's options object.
#[derive(Debug, Default)]
struct Options {
    upsert: bool,
    if_revision: Option<u64>,
}

impl Options {
    fn parse(value: Option<Value>, allowed: &[&str]) -> Result<Self, Error> {
        let fields: Map<String, Value> = match value {
            None | Some(Value::Null) => return Ok(Options::default()),
            Some(Value::Object(fields)) => fields,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "The options must be an object, not {other}"
                )))
            }
        };
        let mut options = Options::default();
        for (name, value) in fields {
            if !allowed.contains(&name.as_str()) {
                return Err(Error::invalid(format!("Unknown option {name:?}")));
            }
            match (name.as_str(), value) {
                ("upsert", Value::Bool(upsert)) => options.upsert = upsert,
                ("ifRevision", Value::Number(number)) if number.is_u64() => {
                    options.if_revision = number.as_u64();
                }
                (name, value) => {
                    return Err(Error::invalid(format!("Invalid {name}: {value}")));
                }
            }
        }
        Ok(options)
    }
}
