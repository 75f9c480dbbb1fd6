//! In-band `subscribe` / `unsubscribe` (PROTOCOL.md part B), with `since` replay.
//!
//! A subscription with `since: R` first replays every retained change above R that
//! matches its patterns, then continues live, with no gap and no duplicate:
//! 1. the connection starts holding back its live notifications;
//! 2. the patterns enter the hub, so every change committed from now on is held;
//! 3. once the sequencer has delivered R to the hub (R is committed, so that is a
//!    moment away), the change log is read from R up to W, the revision the sequencer
//!    has delivered, and matching changes are sent in order;
//! 4. held notifications newer than W are released, and delivery goes live.
//!
//! A change up to W reached the hub before the log was read: if it came after step 1
//! it is held and skipped when released, and the log read sends it. A change above W
//! is not sent from the log: it is (or will be) held and released. Either way it is
//! sent exactly once, however long the store takes between commit and delivery. A log
//! read that fails after the subscribe was answered gets a `resync`, not a second
//! answer.
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

use super::connection::Connection;
use super::outbox::Closed;
use crate::hub::notification_frame;
use crate::wire;

/// Changes read from the log per step of a replay.
const REPLAY_PAGE: usize = 1000;
/// Most patterns one request may add.
const MAX_PATTERNS_PER_REQUEST: usize = 1000;

/// Answers a `subscribe` (and replays, with `since`); returns the status it answered
/// with, for the request metrics.
pub(crate) async fn subscribe(
    conn: &Connection,
    sources: Vec<String>,
    since: Option<u64>,
    id: Option<&RawValue>,
) -> (u16, Result<(), Closed>) {
    if sources.len() > MAX_PATTERNS_PER_REQUEST {
        let text = format!("At most {MAX_PATTERNS_PER_REQUEST} patterns per subscribe");
        return (400, conn.send(reply::error(400, &text, id, None)).await);
    }
    let held = conn.hub.held_after(conn.subscriber.id(), &sources);
    if held > conn.max_subscriptions {
        let text = format!(
            "Too many subscriptions: this connection would hold {held} patterns; the limit is {}",
            conn.max_subscriptions
        );
        return (400, conn.send(reply::error(400, &text, id, None)).await);
    }
    let patterns = match sources
        .iter()
        .map(|source| Pattern::compile(source))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(patterns) => patterns,
        Err(err) => {
            let answer = conn.send(wire::socket_error(&err, id, None)).await;
            return (err.status(), answer);
        }
    };
    if since.is_some() {
        conn.subscriber.begin_replay();
    }
    for pattern in &patterns {
        conn.hub
            .subscribe(&conn.subscriber, pattern.clone(), conn.filtered);
    }
    let answered = conn
        .send(reply::subscribed(&sources, current_revision(conn), id))
        .await;
    // A failed send means the session is ending: nothing more to replay to it.
    let (Ok(()), Some(since)) = (&answered, since) else {
        return (200, answered);
    };

    let mut replayed_up_to = since;
    let outcome = replay(conn, &patterns, &mut replayed_up_to).await;
    // Whatever happened, go live again, releasing only what was not replayed.
    conn.subscriber
        .end_replay(replayed_up_to, |key| covers(conn, &patterns, key));
    (200, outcome)
}

/// The current revision: the highest the sequencer was given (from any source), or one
/// the store committed and a reader may have seen a moment before it was published.
fn current_revision(conn: &Connection) -> u64 {
    conn.sequencer
        .latest()
        .max(conn.executor.store().revision())
}

/// Whether the replay of `patterns` sends changes of `key` (the access pattern
/// applies to in-band subscriptions of token connections).
fn covers(conn: &Connection, patterns: &[Pattern], key: &str) -> bool {
    patterns.iter().any(|pattern| pattern.matches(key))
        && (!conn.filtered || conn.access.allows(key))
}

/// Sends the retained changes above `*replayed_up_to` that match, up to the revision
/// the sequencer has delivered to the hub (everything later reaches the connection
/// through the hub, held back until the replay ends), advancing it.
async fn replay(
    conn: &Connection,
    patterns: &[Pattern],
    replayed_up_to: &mut u64,
) -> Result<(), Closed> {
    let store = conn.executor.store();
    // Above what this node knows, `since` may still be a commit another node made
    // (the client was there a moment ago): only one the store never made is resynced.
    if *replayed_up_to > current_revision(conn)
        && *replayed_up_to > store.committed_revision().await.unwrap_or(0)
    {
        // A revision this store never reached comes from another history (the store
        // was restored from an older backup, say): the client must re-read.
        *replayed_up_to = conn.sequencer.delivered();
        return conn.send(reply::resync(*replayed_up_to)).await;
    }
    // The client has seen `since`, which the store committed: once it is delivered to
    // the hub too, no change the client has seen can still arrive live.
    let ceiling = conn.sequencer.delivered_at_least(*replayed_up_to).await;
    loop {
        let changes = match store.changes_since(*replayed_up_to, REPLAY_PAGE).await {
            Ok(ChangesSince::Changes(changes)) => changes,
            Ok(ChangesSince::TooOld { .. }) => {
                *replayed_up_to = ceiling;
                return conn.send(reply::resync(ceiling)).await;
            }
            Err(err) => {
                // The subscribe was answered already: a second answer to the same
                // request would confuse the client, so it is told to re-read instead.
                tracing::error!(error = %err, "replay read failed; sending resync");
                *replayed_up_to = ceiling;
                return conn.send(reply::resync(ceiling)).await;
            }
        };
        let complete = changes.len() < REPLAY_PAGE;
        for change in changes {
            if change.revision > ceiling {
                // Not delivered to the hub when the replay began: the hub brings it.
                *replayed_up_to = ceiling.max(*replayed_up_to);
                return Ok(());
            }
            if covers(conn, patterns, &change.key) {
                // Held changes of other subscriptions that come before this one go first.
                let earlier = conn
                    .subscriber
                    .take_uncovered_before(change.revision, |key| covers(conn, patterns, key));
                for event in earlier {
                    conn.outbox.send(Message::Text(event.hpkv_frame())).await?;
                }
                conn.outbox
                    .send(Message::Text(notification_frame(&change)))
                    .await?;
            }
            *replayed_up_to = change.revision;
        }
        if complete {
            *replayed_up_to = ceiling.max(*replayed_up_to);
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
    reply::subscribed(&removed, current_revision(conn), id)
}
