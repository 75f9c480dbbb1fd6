//! Collection items on the store, through the executor, so limits, access patterns,
//! rate of commits and the hub are those of every face: read, create, replace, patch
//! and remove one item. Wire-neutral: each face turns its arguments into these calls.
//!
//! Replace, patch and remove must find the item, and patch and remove answer with
//! documents the store does not return, so they read the item and write on condition
//! that it is still at the revision read (`ifRevision`); if another write got in
//! between, they read again. A client's own `ifRevision` is checked against the same
//! read and never retried.

use ripplekv_collections::{
    item_from_stored, stored_document, Collection, IdGenerator, ItemId, Listed, Query,
    REVISION_FIELD,
};
use ripplekv_core::{Error, Record};
use ripplekv_proto::WriteOptions;
use serde_json::{Map, Value};

use crate::exec::{Command, Done, Edit, Executor, Get, Write};
use crate::hub::Access;

/// Attempts of a read-then-conditional-write before giving up on an item that keeps
/// changing.
const ATTEMPTS: usize = 8;
/// The most items a list reads from one collection: beyond that it is refused (422)
/// rather than let one request hold a core and the memory of them all.
pub(super) const MAX_SCAN: usize = 200_000;

/// A list's answer: the total of matches, the page, and the revision of the view.
#[derive(Debug)]
pub(super) struct Listing {
    pub(super) total: usize,
    pub(super) items: Vec<Item>,
    pub(super) revision: u64,
}

/// An item as read: its document with `id` and `_rev`.
pub(super) type Item = Map<String, Value>;

/// How a patch changes a document.
#[derive(Debug)]
pub(super) enum Change {
    /// RFC 7396 merge of this object.
    Merge(Map<String, Value>),
    /// RFC 6902 operations, all or nothing.
    Operations(Vec<Value>),
}

/// One caller's view of the collections.
#[derive(Debug)]
pub(super) struct Items<'a> {
    pub(super) executor: &'a Executor,
    pub(super) access: &'a Access,
    pub(super) ids: &'a IdGenerator,
}

impl Items<'_> {
    /// The item, or 404.
    pub(super) async fn get(&self, collection: &Collection, id: &ItemId) -> Result<Item, Error> {
        let key = collection.key(id);
        let record = self.read(&key).await?.ok_or(Error::NotFound)?;
        item_from_stored(&key, &record.value, id, record.revision)
    }

    /// The items of the collection that `query` selects, from one read view (so the
    /// answer's revision is at least every `_rev` in it, and a client that applies only
    /// later events misses nothing). Items outside the caller's access pattern, and
    /// values that are not JSON objects, are left out.
    pub(super) async fn list(
        &self,
        collection: &Collection,
        query: Query,
    ) -> Result<Listing, Error> {
        let prefix = format!("{}/", collection.as_str());
        let view = self.executor.store().scan(&prefix).await?;
        let revision = view.revision;
        let access = self.access.clone();
        let key_of = collection.clone();
        let (total, items) = tokio::task::spawn_blocking(move || {
            let mut listed: Vec<Listed> = Vec::new();
            for (scanned, entry) in view.records.enumerate() {
                if scanned == MAX_SCAN {
                    return Err(Error::Unprocessable(format!(
                        "The collection holds more than {MAX_SCAN} items: lists read at \
                         most that many"
                    )));
                }
                let (key, record) = entry?;
                if !access.allows(&key) {
                    continue;
                }
                let Ok(id) = ItemId::from_text(&key[prefix.len()..]) else {
                    continue;
                };
                let stored =
                    item_from_stored(&key_of.key(&id), &record.value, &id, record.revision);
                if let Ok(item) = stored {
                    listed.push((id.as_str().to_owned(), item));
                }
            }
            Ok(query.run(listed))
        })
        .await
        .map_err(Error::internal)??;
        Ok(Listing {
            total,
            items,
            revision,
        })
    }

    /// Creates the item, with a new id when the document has none. A document with the
    /// id of an existing item is Conflict, unless it is that item's document exactly:
    /// then the item is returned unchanged (a retried create).
    pub(super) async fn create(
        &self,
        collection: &Collection,
        document: Value,
    ) -> Result<Item, Error> {
        let id = match document.get("id") {
            Some(given) => ItemId::from_json(given)?,
            None => self.ids.next_id()?,
        };
        let stored = stored_document(document, &id)?;
        let key = collection.key(&id);
        match self.write(&key, Edit::Set(text(&stored)?), Some(0)).await {
            Ok(revision) => Ok(with_revision(stored, revision)),
            Err(Error::Conflict { current }) => match self.read(&key).await? {
                Some(record) if same_document(&record.value, &stored) => {
                    item_from_stored(&key, &record.value, &id, record.revision)
                }
                Some(record) => Err(Error::Conflict {
                    current: record.revision,
                }),
                None => Err(Error::Conflict { current }),
            },
            Err(err) => Err(err),
        }
    }

    /// Replaces the document of the item its `id` names: 404 if it does not exist,
    /// unless `upsert`.
    pub(super) async fn replace(
        &self,
        collection: &Collection,
        document: Value,
        upsert: bool,
        if_revision: Option<u64>,
    ) -> Result<Item, Error> {
        let id = ItemId::from_json(
            document
                .get("id")
                .ok_or_else(|| Error::invalid("The document to put needs its id"))?,
        )?;
        let stored = stored_document(document, &id)?;
        let key = collection.key(&id);
        let value = text(&stored)?;
        let revision = if upsert && matches!(if_revision, None | Some(0)) {
            // Unconditional, or on condition that the item does not exist yet.
            self.write(&key, Edit::Set(value), if_revision).await?
        } else {
            let edit = |_: &Item| Ok(Edit::Set(value.clone()));
            self.on_current(collection, &id, if_revision, edit).await?.1
        };
        Ok(with_revision(stored, revision))
    }

    /// Patches the item: 404 if it does not exist. A patch may not change the id, and
    /// a JSON Patch must leave a JSON object.
    pub(super) async fn patch(
        &self,
        collection: &Collection,
        id: &ItemId,
        change: Change,
        if_revision: Option<u64>,
    ) -> Result<Item, Error> {
        let patched = |current: &Item| {
            let mut document = current.clone();
            document.shift_remove(REVISION_FIELD);
            patched_document(document, &change, id)
        };
        let edit = |current: &Item| patched(current).map(|(_, edit)| edit);
        let (current, revision) = self.on_current(collection, id, if_revision, edit).await?;
        // The same change of the same document as the one committed.
        let (document, _) = patched(&current)?;
        Ok(with_revision(document, revision))
    }

    /// Removes the item, answering with its last document: 404 if it does not exist.
    pub(super) async fn remove(
        &self,
        collection: &Collection,
        id: &ItemId,
        if_revision: Option<u64>,
    ) -> Result<Item, Error> {
        let edit = |_: &Item| Ok(Edit::Delete);
        Ok(self.on_current(collection, id, if_revision, edit).await?.0)
    }

    /// Reads the item and writes `edit(item)` on condition that it is still at the
    /// revision read, reading again when another write got in between (unless the
    /// caller gave `if_revision`). The item as read, and the write's revision.
    async fn on_current(
        &self,
        collection: &Collection,
        id: &ItemId,
        if_revision: Option<u64>,
        edit: impl Fn(&Item) -> Result<Edit, Error>,
    ) -> Result<(Item, u64), Error> {
        let key = collection.key(id);
        let mut seen = 0;
        for _ in 0..ATTEMPTS {
            let record = self.read(&key).await?.ok_or(Error::NotFound)?;
            seen = record.revision;
            if if_revision.is_some_and(|expected| expected != record.revision) {
                return Err(Error::Conflict {
                    current: record.revision,
                });
            }
            let current = item_from_stored(&key, &record.value, id, record.revision)?;
            match self
                .write(&key, edit(&current)?, Some(record.revision))
                .await
            {
                Ok(revision) => return Ok((current, revision)),
                Err(Error::Conflict { .. }) if if_revision.is_none() => continue,
                Err(err) => return Err(err),
            }
        }
        Err(Error::Conflict { current: seen })
    }

    async fn read(&self, key: &str) -> Result<Option<Record>, Error> {
        let get = Get {
            key: key.to_owned(),
        };
        match self.executor.run(self.access, Command::Get(get)).await {
            Ok(Done::Got(got)) => Ok(Some(got.record)),
            Err(Error::NotFound) => Ok(None),
            Ok(_) => Err(Error::internal("a GET gave another kind of result")),
            Err(err) => Err(err),
        }
    }

    /// Writes and returns the change's revision.
    async fn write(&self, key: &str, edit: Edit, if_revision: Option<u64>) -> Result<u64, Error> {
        let options = WriteOptions {
            if_revision,
            ttl_ms: None,
        };
        let write = Write::new(key.to_owned(), edit, options);
        match self
            .executor
            .run(self.access, Command::Write(write))
            .await?
        {
            Done::Written(written) => Ok(written.change.revision),
            _ => Err(Error::internal("a write gave another kind of result")),
        }
    }
}

/// The document after `change`, and the edit that makes it in the store (a PATCH or a
/// JSON Patch, so the change is recorded as one).
fn patched_document(
    document: Map<String, Value>,
    change: &Change,
    id: &ItemId,
) -> Result<(Map<String, Value>, Edit), Error> {
    let mut result = Value::Object(document);
    let edit = match change {
        Change::Merge(fields) => {
            let mut fields = fields.clone();
            fields.shift_remove(REVISION_FIELD);
            if let Some(given) = fields.shift_remove("id") {
                if ItemId::from_json(&given)?.as_str() != id.as_str() {
                    return Err(Error::invalid("A patch may not change the item's id"));
                }
            }
            let fields = Value::Object(fields);
            json_patch::merge(&mut result, &fields);
            Edit::Patch(fields.to_string())
        }
        Change::Operations(operations) => {
            let operations = Value::Array(operations.clone());
            let patch: json_patch::Patch = serde_json::from_value(operations.clone())
                .map_err(|err| Error::invalid(format!("Invalid JSON Patch: {err}")))?;
            json_patch::patch(&mut result, &patch)
                .map_err(|err| Error::invalid(format!("JSON Patch not applied: {err}")))?;
            Edit::JsonPatch(operations.to_string())
        }
    };
    let Value::Object(result) = result else {
        return Err(Error::invalid("A JSON Patch must leave a JSON object"));
    };
    let same_id = result.get("id").is_some_and(|given| {
        ItemId::from_json(given).is_ok_and(|given| given.as_str() == id.as_str())
    });
    if !same_id {
        return Err(Error::invalid(
            "A patch may not change or remove the item's id",
        ));
    }
    if result.contains_key(REVISION_FIELD) {
        return Err(Error::invalid("_rev is not stored: a patch may not add it"));
    }
    Ok((result, edit))
}

fn with_revision(mut document: Map<String, Value>, revision: u64) -> Item {
    document.insert(REVISION_FIELD.to_owned(), Value::from(revision));
    document
}

fn text(document: &Map<String, Value>) -> Result<String, Error> {
    serde_json::to_string(document).map_err(Error::internal)
}

/// Whether a stored value is this document (member order aside).
fn same_document(value: &str, document: &Map<String, Value>) -> bool {
    serde_json::from_str::<Map<String, Value>>(value).is_ok_and(|stored| stored == *document)
}
