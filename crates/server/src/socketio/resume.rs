//! Resuming: a socket whose handshake carries `since: R` (its `auth` function returns
//! the last revision it saw) first gets, as events, every retained change above R it
//! would have got, in revision order, then goes live, with no gap and no duplicate.
//! It is the same gate as `/ws`'s `subscribe` with `since` (see `ws::subscribe`): the
//! socket's live events are held from before its patterns enter the hub; the change
//! log is read from R up to the revision the sequencer has delivered to the hub; the
//! held events above what was read are then released. When R is older than the
//! retained log, or is a revision this store never reached (it was restored from an
//! older backup), the socket gets `RESYNC (null, {revision})` instead and should list
//! again.

use std::sync::Arc;

use ripplekv_core::{ChangesSince, Pattern};
use serde_json::{json, Value};

use super::events::{CollectionEvent, Emitter};
use super::Face;
use crate::hub::{Access, Subscriber};

/// Changes read from the log per step of a replay.
const REPLAY_PAGE: usize = 1000;

/// What a resuming socket asked for, and what its replay needs.
pub(super) struct Resume {
    pub(super) since: u64,
    pub(super) subscriber: Arc<Subscriber>,
    pub(super) patterns: Vec<Pattern>,
    pub(super) access: Access,
    pub(super) emitter: Emitter,
}

impl Resume {
    /// Whether the socket gets the events of `key`.
    fn covers(&self, key: &str) -> bool {
        self.patterns.iter().any(|pattern| pattern.matches(key)) && self.access.allows(key)
    }
}

/// Replays, then lets the held live events through.
pub(super) async fn replay(face: &Face, resume: Resume) {
    let mut replayed_up_to = resume.since;
    replay_log(face, &resume, &mut replayed_up_to).await;
    resume
        .subscriber
        .end_replay(replayed_up_to, |key| resume.covers(key));
}

async fn replay_log(face: &Face, resume: &Resume, replayed_up_to: &mut u64) {
    let (store, sequencer) = (face.state.executor().store(), face.state.sequencer());
    let current = sequencer.latest().max(store.revision());
    if *replayed_up_to > current && *replayed_up_to > store.committed_revision().await.unwrap_or(0)
    {
        *replayed_up_to = sequencer.delivered();
        resync(resume, *replayed_up_to);
        return;
    }
    // Every change the socket saw is delivered to the hub once `since` is.
    let ceiling = sequencer.delivered_at_least(*replayed_up_to).await;
    loop {
        let changes = match store.changes_since(*replayed_up_to, REPLAY_PAGE).await {
            Ok(ChangesSince::Changes(changes)) => changes,
            Ok(ChangesSince::TooOld { .. }) => {
                *replayed_up_to = ceiling;
                resync(resume, ceiling);
                return;
            }
            Err(err) => {
                tracing::error!(error = %err, "socket.io replay read failed; sending RESYNC");
                *replayed_up_to = ceiling;
                resync(resume, ceiling);
                return;
            }
        };
        let complete = changes.len() < REPLAY_PAGE;
        for change in changes {
            if change.revision > ceiling {
                // Not delivered to the hub when the replay began: the hub brings it.
                *replayed_up_to = ceiling.max(*replayed_up_to);
                return;
            }
            if resume.covers(&change.key) {
                if let Some(events) = CollectionEvent::of(&change) {
                    if !resume.emitter.emit(&events).await {
                        return;
                    }
                }
            }
            *replayed_up_to = change.revision;
        }
        if complete {
            *replayed_up_to = ceiling.max(*replayed_up_to);
            return;
        }
    }
}

fn resync(resume: &Resume, revision: u64) {
    let payload = (Value::Null, json!({ "revision": revision }));
    if let Err(err) = resume.emitter.socket.emit("RESYNC", &payload) {
        tracing::debug!(error = %err, "RESYNC not sent");
    }
}
