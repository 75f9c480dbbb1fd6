//! Live collection events: every committed change of an item, whatever made it (this
//! face, HPKV `/ws`, REST, an expiry, another node), reaches the sockets that may read
//! it as a verb event `ADDED | MODIFIED | DELETED (collection, item, {revision, op})`
//! and a Feathers event `"<collection> created | updated | patched | removed" (item)`.
//!
//! Each socket is a hub subscriber whose [`Target`] emits on the socket. The events of
//! a change are worked out once, on first use, into the change's hub event
//! ([`Event::collection_event`]), and shared by every socket it reaches. A socket that
//! cannot take an event (its send buffer is full: it stopped reading) gets no event
//! after it, so it never sees a gap, and is disconnected: at once if the buffer has
//! room for the disconnect packet, else as soon as it has (a socket that reads nothing
//! at all is closed by the heartbeat, which finds no room for its ping).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ripplekv_collections::{item_from_stored, Collection, ItemId, REVISION_FIELD};
use ripplekv_core::{Change, ChangeOp, Previous};
use serde_json::{json, Value};
use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError};

use crate::hub::{Event, Target};

/// The events one change of an item raises.
#[derive(Debug)]
pub(crate) struct CollectionEvent {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    verb: &'static str,
    /// `"<collection> created"` and so on.
    feathers: String,
    collection: String,
    /// The item after the change (before it, for a removal), with `_rev` the change's.
    item: Value,
    /// `{revision, op}`.
    meta: Value,
}

impl CollectionEvent {
    /// The events of `change`, or none when its key is not an item's or its value is
    /// not a JSON object.
    pub(crate) fn of(change: &Change) -> Option<Self> {
        let (collection, id) = change.key.split_once('/')?;
        let collection = Collection::parse(collection).ok()?;
        let id = ItemId::from_text(id).ok()?;
        let created = matches!(change.previous, Previous::Absent);
        let (document, verb, action) = match change.op {
            ChangeOp::Delete | ChangeOp::Expire => {
                (change.removed.as_deref(), "DELETED", "removed")
            }
            _ if created => (change.stored.as_deref(), "ADDED", "created"),
            ChangeOp::Set => (change.stored.as_deref(), "MODIFIED", "updated"),
            ChangeOp::Patch | ChangeOp::JsonPatch | ChangeOp::Atomic => {
                (change.stored.as_deref(), "MODIFIED", "patched")
            }
        };
        let item = match document {
            Some(document) => item_from_stored(&change.key, document, &id, change.revision).ok()?,
            // A removal logged before removed values were kept: the id is all there is.
            None if verb == "DELETED" => {
                let mut item = serde_json::Map::new();
                item.insert("id".to_owned(), id.json().clone());
                item.insert(REVISION_FIELD.to_owned(), Value::from(change.revision));
                item
            }
            None => return None,
        };
        Some(CollectionEvent {
            verb,
            feathers: format!("{} {action}", collection.as_str()),
            collection: collection.as_str().to_owned(),
            item: Value::Object(item),
            meta: json!({ "revision": change.revision, "op": change.op.name() }),
        })
    }
}

/// Which styles of event a socket gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Styles {
    Both,
    Verbs,
    Feathers,
}

/// How often a slow socket's disconnect is tried again while its buffer is full.
const DISCONNECT_RETRY: Duration = Duration::from_millis(50);

/// Emits a change's events on one socket, in the styles it asked for.
#[derive(Debug, Clone)]
pub(super) struct Emitter {
    pub(super) socket: SocketRef,
    pub(super) styles: Styles,
}

impl Emitter {
    /// The styles' events of one change, in order: no allocation, as this runs for
    /// every socket a change reaches.
    fn parts(&self) -> &'static [Style] {
        match self.styles {
            Styles::Both => &[Style::Verb, Style::Feathers],
            Styles::Verbs => &[Style::Verb],
            Styles::Feathers => &[Style::Feathers],
        }
    }

    fn emit_part(&self, part: Style, events: &CollectionEvent) -> Result<(), SendError> {
        match part {
            Style::Verb => {
                let args = (&events.collection, &events.item, &events.meta);
                self.socket.emit(events.verb, &args)
            }
            Style::Feathers => self.socket.emit(&events.feathers, &events.item),
        }
    }

    /// Emits without waiting; fails when the socket's send buffer is full.
    fn try_emit(&self, events: &CollectionEvent) -> Result<(), SendError> {
        self.parts()
            .iter()
            .try_for_each(|part| self.emit_part(*part, events))
    }

    /// Emits, waiting while the send buffer is full (replays, which run in a task of
    /// their own); false once the socket is gone.
    pub(super) async fn emit(&self, events: &CollectionEvent) -> bool {
        for part in self.parts() {
            loop {
                match self.emit_part(*part, events) {
                    Ok(()) => break,
                    Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                        tokio::time::sleep(REPLAY_BACKOFF).await;
                    }
                    Err(_) => return false,
                }
            }
        }
        true
    }
}

/// One of the two events a change raises.
#[derive(Debug, Clone, Copy)]
enum Style {
    Verb,
    Feathers,
}

/// How long a replay waits for room in a full send buffer before trying again.
const REPLAY_BACKOFF: Duration = Duration::from_millis(2);

/// A socket as a hub target.
#[derive(Debug)]
pub(super) struct SocketTarget {
    emitter: Emitter,
    /// An event could not be sent: none may follow it.
    lost: AtomicBool,
    /// The disconnect is under way.
    disconnecting: AtomicBool,
    /// Where the disconnect of a slow socket runs (events are offered on the store's
    /// commit path, which may be a thread of its own).
    runtime: tokio::runtime::Handle,
}

impl SocketTarget {
    pub(super) fn new(emitter: Emitter) -> Self {
        SocketTarget {
            emitter,
            lost: AtomicBool::new(false),
            disconnecting: AtomicBool::new(false),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl Target for SocketTarget {
    fn offer(&self, event: &Arc<Event>) -> bool {
        if self.lost.load(Ordering::Acquire) {
            return false;
        }
        let Some(events) = event.collection_event() else {
            return true;
        };
        let sent = self.emitter.try_emit(events);
        if sent.is_err() {
            self.lost.store(true, Ordering::Release);
        }
        sent.is_ok()
    }

    fn mark_slow(&self) {
        self.lost.store(true, Ordering::Release);
        if self.disconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let socket = self.emitter.socket.clone();
        tracing::warn!(socket = %socket.id, "socket.io socket too slow for its events; disconnecting");
        self.runtime.spawn(async move {
            while let Err(SocketError::InternalChannelFull) = socket.clone().disconnect() {
                tokio::time::sleep(DISCONNECT_RETRY).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, op: ChangeOp, previous: Previous, stored: Option<&str>) -> Change {
        Change {
            revision: 9,
            key: key.into(),
            op,
            value: stored.map(str::to_owned),
            timestamp_ms: 0,
            previous,
            stored: stored.map(str::to_owned),
            expires_at_ms: None,
            removed: None,
        }
    }

    #[test]
    fn changes_of_items_map_to_their_events() {
        let names =
            |change: &Change| CollectionEvent::of(change).map(|event| (event.verb, event.feathers));
        let set = |previous| change("items/a", ChangeOp::Set, previous, Some(r#"{"n":1}"#));
        assert_eq!(
            names(&set(Previous::Absent)),
            Some(("ADDED", "items created".into()))
        );
        assert_eq!(
            names(&set(Previous::At(3))),
            Some(("MODIFIED", "items updated".into()))
        );
        let patch = change(
            "items/a",
            ChangeOp::Patch,
            Previous::At(3),
            Some(r#"{"n":2}"#),
        );
        assert_eq!(names(&patch), Some(("MODIFIED", "items patched".into())));
        let mut delete = change("items/a", ChangeOp::Delete, Previous::At(3), None);
        delete.removed = Some(r#"{"id":"a","n":2}"#.into());
        let event = CollectionEvent::of(&delete).unwrap();
        assert_eq!(
            (event.verb, event.feathers.as_str()),
            ("DELETED", "items removed")
        );
        assert_eq!(event.item, json!({"id": "a", "n": 2, "_rev": 9}));
        assert_eq!(event.meta, json!({"revision": 9, "op": "delete"}));
        // Not items: no slash, a bad name, a value that is not an object.
        assert!(names(&change(
            "plain",
            ChangeOp::Set,
            Previous::Absent,
            Some("{}")
        ))
        .is_none());
        assert!(names(&change(".x/a", ChangeOp::Set, Previous::Absent, Some("{}"))).is_none());
        assert!(names(&change(
            "items/c",
            ChangeOp::Atomic,
            Previous::At(1),
            Some("5")
        ))
        .is_none());
    }
}
