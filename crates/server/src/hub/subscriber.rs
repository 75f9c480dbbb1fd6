//! One connection as the hub sees it: the delivery target its events go to (its
//! face's connection), what its access pattern allows, and whether it is replaying
//! history. The access check is made here, on the connection's own credentials, not in
//! the hub's index.
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

use std::sync::Arc;

use ripplekv_core::{Pattern, Revision};

use super::event::{Event, Target};

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
    /// Events held back while a replay runs, in revision order.
    Replaying(Vec<Arc<Event>>),
}

/// A connection that can receive notifications.
#[derive(Debug)]
pub struct Subscriber {
    id: u64,
    target: Box<dyn Target>,
    access: Access,
    gate: Mutex<Gate>,
    /// Most notifications held back during one replay.
    replay_buffer_limit: usize,
}

impl Subscriber {
    /// A subscriber delivering into `target` (its face's connection: the `/ws`
    /// session's outbox, say); at most `replay_buffer_limit` events are held during a
    /// replay.
    pub fn new(target: impl Target + 'static, access: Access, replay_buffer_limit: usize) -> Self {
        Subscriber {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            target: Box::new(target),
            access,
            gate: Mutex::new(Gate::Live),
            replay_buffer_limit,
        }
    }

    /// Unique within the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Hands `event` to the target, or holds it back during a replay; true if it was
    /// taken. With `check_access` (every subscription that matched asked for it), a key
    /// the connection's access pattern does not allow is skipped. A connection that
    /// cannot take the event is marked slow and will be closed.
    pub(crate) fn deliver(&self, event: &Arc<Event>, check_access: bool) -> bool {
        if check_access && !self.access.allows(event.key()) {
            return false;
        }
        let mut gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        let accepted = match &mut *gate {
            Gate::Live => self.target.offer(event),
            Gate::Replaying(held) if held.len() < self.replay_buffer_limit => {
                held.push(Arc::clone(event));
                true
            }
            Gate::Replaying(_) => false,
        };
        if !accepted {
            self.target.mark_slow();
        }
        accepted
    }

    /// Starts holding back live events.
    pub(crate) fn begin_replay(&self) {
        *self.gate.lock().unwrap_or_else(PoisonError::into_inner) = Gate::Replaying(Vec::new());
    }

    /// Takes the held events older than `revision` that the replay does not cover
    /// (`covered` says which keys it replays), in order, for the replay to send before
    /// its change at `revision`.
    pub(crate) fn take_uncovered_before(
        &self,
        revision: Revision,
        covered: impl Fn(&str) -> bool,
    ) -> Vec<Arc<Event>> {
        let mut gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        let Gate::Replaying(held) = &mut *gate else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        held.retain(|event| {
            let take = event.revision() < revision && !covered(event.key());
            if take {
                taken.push(Arc::clone(event));
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
            for event in held {
                let replayed = event.revision() <= replayed_up_to && covered(event.key());
                if !replayed && !self.target.offer(&event) {
                    self.target.mark_slow();
                    return;
                }
            }
        }
    }
}
