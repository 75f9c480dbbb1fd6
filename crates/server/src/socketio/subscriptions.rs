//! In-band narrowing of a socket's events: `SUBSCRIBE collection` and
//! `UNSUBSCRIBE collection` (verb face, `"*"` for every collection), and `subscribe` /
//! `unsubscribe` with the Feathers acks. Each acks the collections the socket now
//! gets events of, and the current revision: `{collections, revision}`. The handshake's
//! `auth.collections` sets where a socket starts (every collection by default).

use std::sync::Arc;

use ripplekv_collections::Collection;
use ripplekv_core::{Error, Pattern};
use serde_json::{json, Value};

use crate::hub::{Hub, Subscriber};
use crate::state::AppState;

/// Whether this module serves `event`.
pub(super) fn serves(event: &str) -> bool {
    matches!(
        event,
        "SUBSCRIBE" | "UNSUBSCRIBE" | "subscribe" | "unsubscribe"
    )
}

/// Whether `event` is the Feathers spelling, acked `(null, result)` / `(error)`.
pub(super) fn feathers_style(event: &str) -> bool {
    matches!(event, "subscribe" | "unsubscribe")
}

/// A socket's subscriptions: its hub subscriber and the patterns it holds.
#[derive(Debug)]
pub(super) struct Subscriptions {
    pub(super) hub: Arc<Hub>,
    pub(super) subscriber: Arc<Subscriber>,
    /// Sources of the patterns held: `*/*`, or `<collection>/*`.
    pub(super) sources: Vec<String>,
}

impl Subscriptions {
    /// Runs a (un)subscribe request: the ack's value.
    pub(super) fn handle(
        &mut self,
        state: &AppState,
        event: &str,
        args: Vec<Value>,
    ) -> Result<Value, Error> {
        let [name] = <[Value; 1]>::try_from(args).map_err(|args| {
            Error::invalid(format!(
                "{event} takes one collection name (or \"*\"), not {} arguments",
                args.len()
            ))
        })?;
        let source = match name.as_str() {
            Some("*") => "*/*".to_owned(),
            Some(name) => format!("{}/*", Collection::parse(name)?.as_str()),
            None => return Err(Error::invalid(format!("{event} takes a collection name"))),
        };
        if event.eq_ignore_ascii_case("subscribe") {
            if !self.sources.contains(&source) {
                self.hub
                    .subscribe(&self.subscriber, Pattern::compile(&source)?, true);
                self.sources.push(source);
            }
        } else {
            self.hub.unsubscribe(self.subscriber.id(), &source);
            self.sources.retain(|held| *held != source);
        }
        let collections: Vec<&str> = self
            .sources
            .iter()
            .map(|source| match source.as_str() {
                "*/*" => "*",
                other => other.trim_end_matches("/*"),
            })
            .collect();
        let revision = state
            .sequencer()
            .latest()
            .max(state.executor().store().revision());
        Ok(json!({ "collections": collections, "revision": revision }))
    }
}
