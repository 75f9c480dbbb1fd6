//! The Redis fan-out bus (`--bus redis://…`), for clusters where every node reading the
//! change log on every commit would load the database.
//!
//! Each node's writer hands every batch it committed to a publisher task, which
//! `PUBLISH`es it on the cluster's channel (`ripplekv:<cluster id>:changes`; the id is
//! kept in the database, so clusters sharing a Redis do not hear each other). Every
//! node subscribes; a batch that follows what the node knows is published to its
//! subscribers as it is, without reading the database; one that leaves a gap (a lost
//! message) makes the writer read the log instead. The bus is only ever a shortcut:
//! the writer never waits for it, a failed publish is only logged, and the node's
//! one-second probe of the log still runs, so with Redis down delivery goes on from
//! the database, a probe later.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use ripplekv_core::{Change, ChangeOp, Error, Previous};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::rows::{stored_or_notified, stored_unless_notified};
use super::Job;

/// Batches that may wait for the publisher; beyond it they are dropped (and healed).
const PUBLISH_QUEUE: usize = 1024;
/// A batch encoded larger than this is sent as its revision range only: subscribers
/// read it from the log (Redis's default limit for a subscriber's output is 8 MiB).
const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Longest a publish may take before the connection is given up and made again.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
/// Wait before subscribing again after the connection to Redis failed.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// Counters of the bus, for `/metrics`.
#[derive(Debug, Default)]
pub(super) struct BusStats {
    pub(super) published: AtomicU64,
    pub(super) received: AtomicU64,
    pub(super) connects: AtomicU64,
}

impl BusStats {
    pub(super) fn render(&self, out: &mut String) {
        use std::fmt::Write;
        for (name, help, counter) in [
            (
                "ripplekv_bus_published_total",
                "Committed batches published on the Redis bus.",
                &self.published,
            ),
            (
                "ripplekv_bus_received_total",
                "Batches received from the Redis bus.",
                &self.received,
            ),
            (
                "ripplekv_bus_connects_total",
                "Subscriptions to the Redis bus made (1 plus reconnects).",
                &self.connects,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.load(Ordering::Relaxed)
            );
        }
    }
}

/// The bus of one cluster.
#[derive(Debug, Clone)]
pub(super) struct Bus {
    client: redis::Client,
    channel: String,
    pub(super) stats: Arc<BusStats>,
}

/// A batch announced on the bus: its revision range, and its changes unless too big.
#[derive(Debug)]
pub(super) struct Delivery {
    pub(super) first: u64,
    pub(super) last: u64,
    pub(super) changes: Option<Vec<Change>>,
}

impl Bus {
    pub(super) fn new(url: &str, cluster: &str) -> Result<Self, Error> {
        let client = redis::Client::open(url)
            .map_err(|err| Error::Invalid(format!("Invalid Redis URL: {err}")))?;
        Ok(Bus {
            client,
            channel: format!("ripplekv:{cluster}:changes"),
            stats: Arc::default(),
        })
    }

    /// Starts the publisher; the writer sends each committed batch to the returned
    /// queue (never waiting: a full queue drops the batch, which the probe heals).
    pub(super) fn start_publisher(&self) -> mpsc::Sender<Vec<Change>> {
        let (batches, mut queue) = mpsc::channel::<Vec<Change>>(PUBLISH_QUEUE);
        let bus = self.clone();
        tokio::spawn(async move {
            let mut connection = None;
            while let Some(batch) = queue.recv().await {
                let payload = encode(&batch);
                if connection.is_none() {
                    connection = bus.client.get_multiplexed_async_connection().await.ok();
                }
                let Some(live) = connection.as_mut() else {
                    continue; // Redis is down: subscribers read the log instead
                };
                let sent = tokio::time::timeout(
                    PUBLISH_TIMEOUT,
                    live.publish::<_, _, ()>(&bus.channel, payload),
                )
                .await;
                if let Ok(Ok(())) = sent {
                    bus.stats.published.fetch_add(1, Ordering::Relaxed);
                } else {
                    tracing::warn!("cannot publish on the Redis bus; subscribers read the log");
                    connection = None;
                }
            }
        });
        batches
    }

    /// Subscribes (again after every failure) and hands each batch to the writer;
    /// after each (re)subscription the writer first catches up from the log.
    pub(super) async fn run_subscriber(self, jobs: flume::Sender<Job>) {
        loop {
            match self.client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&self.channel).await {
                    Ok(()) => {
                        self.stats.connects.fetch_add(1, Ordering::Relaxed);
                        let _ = jobs.try_send(Job::CatchUp);
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            self.stats.received.fetch_add(1, Ordering::Relaxed);
                            let payload: Vec<u8> = message.get_payload().unwrap_or_default();
                            match decode(&payload) {
                                // A full queue means the writer is busy committing,
                                // which reads what others committed anyway.
                                Some(delivery) => drop(jobs.try_send(Job::Deliver(delivery))),
                                None => tracing::warn!("an unreadable message on the Redis bus"),
                            }
                        }
                        tracing::warn!("the Redis bus connection ended; subscribing again");
                    }
                    Err(err) => tracing::warn!(error = %err, "cannot subscribe to the Redis bus"),
                },
                Err(err) => tracing::warn!(error = %err, "cannot reach the Redis bus"),
            }
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    }
}

fn encode(batch: &[Change]) -> Vec<u8> {
    let (first, last) = match (batch.first(), batch.last()) {
        (Some(first), Some(last)) => (first.revision, last.revision),
        _ => (0, 0),
    };
    let changes: Vec<Value> = batch
        .iter()
        .map(|change| {
            let previous = match change.previous {
                Previous::At(revision) => json!(revision),
                Previous::Absent | Previous::Unknown => Value::Null,
            };
            let stored = json!(stored_unless_notified(change));
            json!([
                change.revision,
                change.key,
                change.op.code(),
                change.value,
                previous,
                stored,
                change.expires_at_ms,
                change.timestamp_ms,
                change.removed
            ])
        })
        .collect();
    let full = serde_json::to_vec(&json!({"first": first, "last": last, "changes": changes}))
        .unwrap_or_default();
    if full.len() <= MAX_MESSAGE_BYTES {
        return full;
    }
    serde_json::to_vec(&json!({"first": first, "last": last})).unwrap_or_default()
}

fn decode(payload: &[u8]) -> Option<Delivery> {
    let message: Value = serde_json::from_slice(payload).ok()?;
    let first = message["first"].as_u64()?;
    let last = message["last"].as_u64()?;
    let changes = match message.get("changes") {
        None => None,
        Some(changes) => Some(
            changes
                .as_array()?
                .iter()
                .map(decode_change)
                .collect::<Option<Vec<_>>>()?,
        ),
    };
    Some(Delivery {
        first,
        last,
        changes,
    })
}

fn decode_change(entry: &Value) -> Option<Change> {
    let op = ChangeOp::from_code(u8::try_from(entry[2].as_u64()?).ok()?)?;
    let value = entry[3].as_str().map(str::to_owned);
    let stored = stored_or_notified(op, &value, entry[5].as_str().map(str::to_owned));
    Some(Change {
        revision: entry[0].as_u64()?,
        key: entry[1].as_str()?.to_owned(),
        op,
        value,
        timestamp_ms: entry[7].as_u64()?,
        previous: entry[4].as_u64().map_or(Previous::Absent, Previous::At),
        stored,
        expires_at_ms: entry[6].as_u64(),
        removed: entry[8].as_str().map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_big_ones_go_as_ranges() {
        let change = |revision, op, value: Option<&str>, stored: Option<&str>| Change {
            revision,
            key: format!("k{revision}"),
            op,
            value: value.map(str::to_owned),
            timestamp_ms: 7,
            previous: if revision == 1 {
                Previous::Absent
            } else {
                Previous::At(revision - 1)
            },
            stored: stored.map(str::to_owned),
            expires_at_ms: (revision == 2).then_some(99),
            removed: (op == ChangeOp::Delete).then(|| "gone".to_owned()),
        };
        let batch = vec![
            change(1, ChangeOp::Set, Some("a\0b"), Some("a\0b")),
            change(
                2,
                ChangeOp::Patch,
                Some(r#"{"b":2}"#),
                Some(r#"{"a":1,"b":2}"#),
            ),
            change(3, ChangeOp::Delete, None, None),
        ];
        let delivery = decode(&encode(&batch)).unwrap();
        assert_eq!((delivery.first, delivery.last), (1, 3));
        assert_eq!(delivery.changes.unwrap(), batch);
        let big = "x".repeat(MAX_MESSAGE_BYTES);
        let delivery =
            decode(&encode(&[change(4, ChangeOp::Set, Some(&big), Some(&big))])).unwrap();
        assert_eq!(
            (delivery.first, delivery.last, delivery.changes),
            (4, 4, None)
        );
    }
}
