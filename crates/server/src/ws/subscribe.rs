//! In-band `subscribe` / `unsubscribe` (PROTOCOL.md part B), with `since` replay.
//!
//! A subscription with `since: R` first replays every retained change above R that
//! matches its patterns, then continues live, with no gap and no duplicate:
//! 1. the connection starts holding back its live notifications;
//! 2. the patterns enter the hub, so every change committed from now on is held;
//! 3. the change log is read from R on, and matching changes are sent in order;
//! 4. held notifications newer than the last replayed revision are released, and
//!    delivery goes live.
//!
//! A change committed during the replay is either in the log read (and skipped when
//! released) or only in the held notifications; either way it is sent exactly once.
//! Held changes owed to the connection's other subscriptions (keys the new patterns do
//! not match) are never skipped: they are sent in revision order among the replayed
//! ones, so a client resuming from the highest revision it saw misses nothing.
//! If R is older than the retained log, or newer than anything this store has
//! committed (it was restored from a backup taken before R), the client gets
//! `{"type":"resync"}` instead and should re-read what it watches.

use axum::extract::ws::Message;
use ripplekv_core::{ChangesSince, Pattern};
use ripplekv_proto::reply;
use serde_json::value::RawValue;

use super::dispatch::Connection;
use super::outbox::Closed;
use crate::hub::notification_frame;
use crate::wire;

/// Changes read from the log per step of a replay.
const REPLAY_PAGE: usize = 1000;
/// Most patterns one request may add.
const MAX_PATTERNS_PER_REQUEST: usize = 1000;

pub(crate) async fn subscribe(
    conn: &Connection,
    sources: Vec<String>,
    since: Option<u64>,
    id: Option<&RawValue>,
) -> Result<(), Closed> {
    if sources.len() > MAX_PATTERNS_PER_REQUEST {
        let text = format!("At most {MAX_PATTERNS_PER_REQUEST} patterns per subscribe");
        return conn.send(reply::error(400, &text, id, None)).await;
    }
    let held = conn.hub.held_after(conn.subscriber.id(), &sources);
    if held > conn.max_subscriptions {
        let text = format!(
            "Too many subscriptions: this connection would hold {held} patterns; the limit is {}",
            conn.max_subscriptions
        );
        return conn.send(reply::error(400, &text, id, None)).await;
    }
    let patterns = match sources
        .iter()
        .map(|source| Pattern::compile(source))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(patterns) => patterns,
        Err(err) => return conn.send(wire::socket_error(&err, id, None)).await,
    };
    if since.is_some() {
        conn.subscriber.begin_replay();
    }
    for pattern in &patterns {
        conn.hub
            .subscribe(&conn.subscriber, pattern.clone(), conn.filtered);
    }
    let store = conn.ops.store();
    conn.send(reply::subscribed(&sources, store.revision(), id))
        .await?;
    let Some(since) = since else { return Ok(()) };

    let mut replayed_up_to = since;
    let outcome = replay(conn, &patterns, id, &mut replayed_up_to).await;
    // Whatever happened, go live again, releasing only what was not replayed.
    conn.subscriber
        .end_replay(replayed_up_to, |key| covers(conn, &patterns, key));
    outcome
}

/// Whether the replay of `patterns` sends changes of `key` (the access pattern
/// applies to in-band subscriptions of token connections).
fn covers(conn: &Connection, patterns: &[Pattern], key: &str) -> bool {
    patterns.iter().any(|pattern| pattern.matches(key))
        && (!conn.filtered || conn.access.allows(key))
}

/// Sends the retained changes above `*replayed_up_to` that match, advancing it.
async fn replay(
    conn: &Connection,
    patterns: &[Pattern],
    id: Option<&RawValue>,
    replayed_up_to: &mut u64,
) -> Result<(), Closed> {
    let store = conn.ops.store();
    if *replayed_up_to > store.revision() {
        // A revision this store never reached comes from another history (the store
        // was restored from an older backup, say): the client must re-read.
        *replayed_up_to = store.revision();
        return conn.send(reply::resync(*replayed_up_to)).await;
    }
    loop {
        let changes = match store.changes_since(*replayed_up_to, REPLAY_PAGE).await {
            Ok(ChangesSince::Changes(changes)) => changes,
            Ok(ChangesSince::TooOld { .. }) => {
                *replayed_up_to = store.revision();
                return conn.send(reply::resync(*replayed_up_to)).await;
            }
            Err(err) => return conn.send(wire::socket_error(&err, id, None)).await,
        };
        let complete = changes.len() < REPLAY_PAGE;
        for change in changes {
            if covers(conn, patterns, &change.key) {
                // Held changes of other subscriptions that come before this one go first.
                let earlier = conn
                    .subscriber
                    .take_uncovered_before(change.revision, |key| covers(conn, patterns, key));
                for frame in earlier {
                    conn.outbox.send(Message::Text(frame)).await?;
                }
                conn.outbox
                    .send(Message::Text(notification_frame(&change)))
                    .await?;
            }
            *replayed_up_to = change.revision;
        }
        if complete {
            return Ok(());
        }
    }
}

pub(crate) fn unsubscribe(conn: &Connection, sources: &[String], id: Option<&RawValue>) -> String {
    let removed: Vec<String> = sources
        .iter()
        .filter(|source| conn.hub.unsubscribe(conn.subscriber.id(), source))
        .cloned()
        .collect();
    reply::subscribed(&removed, conn.ops.store().revision(), id)
}
