//! One connection as the hub sees it: where its notifications go, what its access
//! pattern allows, and whether it is replaying history.
//!
//! While a `subscribe` with `since` replays the change log, live notifications for
//! the connection are held back in a buffer. A held change the replay covers (its key
//! matches the replayed patterns) is sent by the replay if it is in the log read, and
//! released afterwards if it is newer. A held change owed to another of the
//! connection's subscriptions is released by the replay just before the next replayed
//! change of a higher revision, or at its end. So a client sees every change once and
//! in revision order across the replay/live boundary.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use axum::extract::ws::{Message, Utf8Bytes};
use ripplekv_core::{Pattern, Revision};

use crate::ws::outbox::Outbox;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Which keys a connection may touch and hear about.
#[derive(Debug, Clone)]
pub enum Access {
    /// An API-key connection: everything.
    All,
    /// A token connection with an access pattern.
    Pattern(Pattern),
    /// A token without an access pattern: nothing.
    Nothing,
}

impl Access {
    /// Whether the connection may touch `key`.
    pub fn allows(&self, key: &str) -> bool {
        match self {
            Access::All => true,
            Access::Pattern(pattern) => pattern.matches(key),
            Access::Nothing => false,
        }
    }
}

#[derive(Debug)]
enum Gate {
    Live,
    Replaying(Vec<Held>),
}

/// A notification held back during a replay.
#[derive(Debug)]
struct Held {
    revision: Revision,
    key: Box<str>,
    frame: Utf8Bytes,
}

/// A connection that can receive notifications.
#[derive(Debug)]
pub struct Subscriber {
    id: u64,
    outbox: Outbox,
    access: Access,
    gate: Mutex<Gate>,
    /// Most notifications held back during one replay.
    replay_buffer_limit: usize,
}

impl Subscriber {
    /// A subscriber delivering into `outbox`; at most `replay_buffer_limit` notifications are held during a replay.
    pub fn new(outbox: Outbox, access: Access, replay_buffer_limit: usize) -> Self {
        Subscriber {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            outbox,
            access,
            gate: Mutex::new(Gate::Live),
            replay_buffer_limit,
        }
    }

    /// Unique within the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn access(&self) -> &Access {
        &self.access
    }

    /// Queues a notification, or holds it back during a replay; true if it was taken.
    /// A connection that cannot take it is marked slow and will be closed.
    pub(crate) fn deliver(&self, revision: Revision, key: &str, frame: &Utf8Bytes) -> bool {
        let mut gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        let accepted = match &mut *gate {
            Gate::Live => self.outbox.try_push(Message::Text(frame.clone())),
            Gate::Replaying(held) if held.len() < self.replay_buffer_limit => {
                held.push(Held {
                    revision,
                    key: key.into(),
                    frame: frame.clone(),
                });
                true
            }
            Gate::Replaying(_) => false,
        };
        if !accepted {
            self.outbox.mark_slow();
        }
        accepted
    }

    /// Starts holding back live notifications.
    pub(crate) fn begin_replay(&self) {
        *self.gate.lock().unwrap_or_else(PoisonError::into_inner) = Gate::Replaying(Vec::new());
    }

    /// Takes the held notifications older than `revision` that the replay does not
    /// cover (`covered` says which keys it replays), in order, for the replay to send
    /// before its change at `revision`.
    pub(crate) fn take_uncovered_before(
        &self,
        revision: Revision,
        covered: impl Fn(&str) -> bool,
    ) -> Vec<Utf8Bytes> {
        let mut gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        let Gate::Replaying(held) = &mut *gate else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        held.retain(|entry| {
            let take = entry.revision < revision && !covered(&entry.key);
            if take {
                taken.push(entry.frame.clone());
            }
            !take
        });
        taken
    }

    /// Releases what is still held, in order, except the changes the replay covered
    /// up to `replayed_up_to` (it sent them, or told the client to resync), then goes
    /// live.
    pub(crate) fn end_replay(&self, replayed_up_to: Revision, covered: impl Fn(&str) -> bool) {
        let mut gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        if let Gate::Replaying(held) = std::mem::replace(&mut *gate, Gate::Live) {
            for entry in held {
                let replayed = entry.revision <= replayed_up_to && covered(&entry.key);
                if !replayed && !self.outbox.try_push(Message::Text(entry.frame)) {
                    self.outbox.mark_slow();
                    return;
                }
            }
        }
    }
}
