//! What the hub fans out: a face-neutral event (today a committed change; an
//! ephemeral message or a presence change later), and the delivery target a
//! subscriber hands it to.
//!
//! An event is shared by every subscriber it reaches. Each face renders it at most
//! once: the first of its targets to need the face's frame renders it into the event's
//! slot for that face, and the others reuse the same refcounted bytes. The hub itself
//! renders nothing.

use std::sync::{Arc, OnceLock};

use axum::extract::ws::{Message, Utf8Bytes};
use ripplekv_core::{Change, Revision};

use crate::socketio::CollectionEvent;
use crate::ws::outbox::Outbox;

/// A face-neutral event, with each face's rendering made once on first use.
#[derive(Debug)]
pub struct Event {
    change: Change,
    /// The HPKV notification frame, for `/ws`.
    hpkv: OnceLock<Utf8Bytes>,
    /// The collection events, for socket.io (none when the key is not an item's).
    collection: OnceLock<Option<CollectionEvent>>,
}

impl Event {
    /// The event of a committed change.
    pub fn of_change(change: Change) -> Arc<Event> {
        Arc::new(Event {
            change,
            hpkv: OnceLock::new(),
            collection: OnceLock::new(),
        })
    }

    /// The committed change.
    pub fn change(&self) -> &Change {
        &self.change
    }

    /// Its revision.
    pub fn revision(&self) -> Revision {
        self.change.revision
    }

    /// The key it concerns.
    pub fn key(&self) -> &str {
        &self.change.key
    }

    /// The socket.io collection events, worked out on first use.
    pub(crate) fn collection_event(&self) -> Option<&CollectionEvent> {
        self.collection
            .get_or_init(|| CollectionEvent::of(&self.change))
            .as_ref()
    }

    /// The HPKV notification frame (`/ws`), rendered on first use.
    pub(crate) fn hpkv_frame(&self) -> Utf8Bytes {
        self.hpkv
            .get_or_init(|| super::notification_frame(&self.change))
            .clone()
    }
}

/// Where a subscriber's events go: one face's connection.
pub trait Target: Send + Sync + std::fmt::Debug {
    /// Queues `event` without waiting; false when there is no room.
    fn offer(&self, event: &Arc<Event>) -> bool;
    /// The connection cannot keep up: its face closes it.
    fn mark_slow(&self);
}

/// The `/ws` face: HPKV notification frames into the session's bounded outbox.
impl Target for Outbox {
    fn offer(&self, event: &Arc<Event>) -> bool {
        self.try_push(Message::Text(event.hpkv_frame()))
    }

    fn mark_slow(&self) {
        Outbox::mark_slow(self);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ripplekv_core::{ChangeOp, Pattern, Previous};

    use super::*;
    use crate::hub::{Access, Hub, Subscriber};

    fn change(key: &str) -> Change {
        Change {
            revision: 1,
            key: key.into(),
            op: ChangeOp::Set,
            value: Some("v".into()),
            timestamp_ms: 0,
            previous: Previous::Absent,
            stored: Some("v".into()),
            expires_at_ms: None,
            removed: None,
        }
    }

    fn frame(receiver: &mut crate::ws::outbox::OutboxReceiver) -> Option<Utf8Bytes> {
        match receiver.try_recv()? {
            Message::Text(text) => Some(text),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    #[test]
    fn every_subscriber_of_a_face_gets_the_one_rendering() {
        let hub = Hub::default();
        let mut receivers = Vec::new();
        for _ in 0..3 {
            let (outbox, receiver) = Outbox::new(8, 1 << 20, Duration::from_secs(1));
            let subscriber = Arc::new(Subscriber::new(outbox, Access::All, 8));
            hub.subscribe(&subscriber, Pattern::compile("k").unwrap(), false);
            receivers.push((subscriber, receiver));
        }
        ripplekv_core::ChangeSink::publish(&hub, &[change("k")]);
        let frames: Vec<Utf8Bytes> = receivers
            .iter_mut()
            .map(|(_, receiver)| frame(receiver).unwrap())
            .collect();
        // The same bytes, not equal copies: rendered once for the face.
        assert!(frames
            .windows(2)
            .all(|pair| pair[0].as_str().as_ptr() == pair[1].as_str().as_ptr()));
    }

    #[test]
    fn the_access_check_is_the_subscribers_and_one_unchecked_match_suffices() {
        let hub = Hub::default();
        let only = Access::Pattern(Pattern::compile("allowed:*").unwrap());
        let (outbox, mut receiver) = Outbox::new(8, 1 << 20, Duration::from_secs(1));
        let subscriber = Arc::new(Subscriber::new(outbox, only, 8));
        // An in-band subscription (checked) to everything, and a token's (unchecked)
        // to one key outside the access pattern.
        hub.subscribe(&subscriber, Pattern::compile("*").unwrap(), true);
        ripplekv_core::ChangeSink::publish(&hub, &[change("secret")]);
        assert!(frame(&mut receiver).is_none(), "checked and refused");
        hub.subscribe(&subscriber, Pattern::compile("secret").unwrap(), false);
        ripplekv_core::ChangeSink::publish(&hub, &[change("secret")]);
        assert!(
            frame(&mut receiver).is_some(),
            "the token's own subscription"
        );
    }
}
