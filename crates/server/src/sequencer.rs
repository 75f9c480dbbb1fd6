//! The per-node sequencer: committed changes go in, and leave into the hub strictly in
//! revision order, with no gap; it owns "delivered up to revision W".
//!
//! Today its only source is the local store, which publishes in commit order. A
//! cluster will also feed it other nodes' changes, which can arrive out of order or
//! with a gap until the missing ones are read; they wait here until the gap fills. A
//! change at or below W has been delivered already and is dropped.
//!
//! W is what `since` replays are served against: the replay reads the change log up to
//! W only, and everything above W reaches the connection through the hub (held back
//! while it replays). W moves only after a change has been handed to every matching
//! subscriber, so a replay that reads W has either seen a change in the hub or will
//! find it there later, never neither and never both. Without this, a change committed
//! before a replay read the log but delivered to the hub after the replay ended went
//! to the client twice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ripplekv_core::{Change, ChangeSink, Revision};
use tokio::sync::watch;

use crate::hub::Hub;

/// Most changes that may wait for a gap to fill. Beyond it the gap is given up on (it
/// cannot fill: the change was lost upstream) and delivery moves on, so a lost change
/// costs subscribers that one change, not every later one.
const MAX_WAITING: usize = 10_000;

/// Orders committed changes into the hub and tracks how far delivery has come.
#[derive(Debug)]
pub(crate) struct Sequencer {
    hub: Arc<Hub>,
    /// Changes above W + 1, waiting for the ones before them.
    waiting: Mutex<BTreeMap<Revision, Change>>,
    /// W: every change up to here was handed to the hub.
    delivered: watch::Sender<Revision>,
}

impl Sequencer {
    /// A sequencer delivering into `hub`, with every change up to `start` (the store's
    /// revision when the server starts) counted as delivered.
    pub(crate) fn new(hub: Arc<Hub>, start: Revision) -> Self {
        Sequencer {
            hub,
            waiting: Mutex::new(BTreeMap::new()),
            delivered: watch::Sender::new(start),
        }
    }

    /// W: the highest revision handed to the hub, with every one below it.
    pub(crate) fn delivered(&self) -> Revision {
        *self.delivered.borrow()
    }

    /// Waits until W reaches `revision` (a revision the store committed is delivered
    /// moments later), at most `patience`; returns W.
    pub(crate) async fn delivered_at_least(
        &self,
        revision: Revision,
        patience: Duration,
    ) -> Revision {
        let mut delivered = self.delivered.subscribe();
        let reached = delivered.wait_for(|delivered| *delivered >= revision);
        let _ = tokio::time::timeout(patience, reached).await;
        self.delivered()
    }

    fn hand_over(&self, change: &Change) {
        self.hub.publish(std::slice::from_ref(change));
        self.delivered.send_replace(change.revision);
    }
}

impl ChangeSink for Sequencer {
    fn publish(&self, changes: &[Change]) {
        // One publisher at a time, so W and the hub advance together.
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let in_order = changes
            .iter()
            .zip(self.delivered() + 1..)
            .all(|(change, expected)| change.revision == expected);
        if in_order && waiting.is_empty() {
            // The local store's case: one batch, in order, handed over at once.
            if let Some(last) = changes.last() {
                self.hub.publish(changes);
                self.delivered.send_replace(last.revision);
            }
            return;
        }
        for change in changes {
            let next = self.delivered() + 1;
            if change.revision < next {
                continue; // delivered already (a feed can repeat itself)
            }
            if change.revision > next {
                waiting.insert(change.revision, change.clone());
                continue;
            }
            self.hand_over(change);
            while let Some(entry) = waiting.first_entry() {
                if *entry.key() != self.delivered() + 1 {
                    break;
                }
                self.hand_over(&entry.remove());
            }
        }
        if waiting.len() > MAX_WAITING {
            let gap = self.delivered() + 1;
            tracing::error!(
                missing_from = gap,
                "changes never arrived; delivering past the gap"
            );
            for (_, change) in std::mem::take(&mut *waiting) {
                self.hand_over(&change);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ripplekv_core::{Change, ChangeOp};

    use super::*;
    use crate::hub::{Access, Subscriber};
    use crate::ws::outbox::Outbox;

    fn change(revision: Revision) -> Change {
        Change {
            revision,
            key: "k".into(),
            op: ChangeOp::Set,
            value: Some(revision.to_string()),
            timestamp_ms: 0,
            previous: ripplekv_core::Previous::Absent,
            stored: Some(revision.to_string()),
            expires_at_ms: None,
        }
    }

    /// A sequencer whose hub has one subscriber to `k`; returns what it received.
    fn setup() -> (Sequencer, crate::ws::outbox::OutboxReceiver) {
        let hub = Arc::new(Hub::default());
        let (outbox, receiver) = Outbox::new(100, 1 << 20, Duration::from_secs(1));
        let subscriber = Arc::new(Subscriber::new(outbox, Access::All, 100));
        hub.subscribe(
            &subscriber,
            ripplekv_core::Pattern::compile("k").unwrap(),
            false,
        );
        (Sequencer::new(hub, 10), receiver)
    }

    fn revisions(receiver: &mut crate::ws::outbox::OutboxReceiver) -> Vec<u64> {
        let mut seen = Vec::new();
        while let Some(axum::extract::ws::Message::Text(text)) = receiver.try_recv() {
            let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            seen.push(value["revision"].as_u64().unwrap());
        }
        seen
    }

    #[test]
    fn out_of_order_changes_leave_in_order_and_repeats_are_dropped() {
        let (sequencer, mut receiver) = setup();
        sequencer.publish(&[change(12), change(14)]);
        assert_eq!(sequencer.delivered(), 10, "11 is missing: nothing moves");
        assert!(revisions(&mut receiver).is_empty());
        sequencer.publish(&[change(11)]);
        assert_eq!(sequencer.delivered(), 12);
        sequencer.publish(&[change(13), change(12), change(9)]);
        assert_eq!(sequencer.delivered(), 14);
        assert_eq!(revisions(&mut receiver), [11, 12, 13, 14]);
    }

    #[test]
    fn a_gap_that_never_fills_is_given_up_on_after_a_bound() {
        let (sequencer, _receiver) = setup();
        let later: Vec<Change> = (12..12 + MAX_WAITING as u64 + 1).map(change).collect();
        sequencer.publish(&later);
        assert_eq!(sequencer.delivered(), 12 + MAX_WAITING as u64);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_revision_ends_when_it_is_delivered_or_patience_runs_out() {
        let (sequencer, _receiver) = setup();
        let sequencer = Arc::new(sequencer);
        let waiter = {
            let sequencer = Arc::clone(&sequencer);
            tokio::spawn(async move {
                sequencer
                    .delivered_at_least(11, Duration::from_secs(5))
                    .await
            })
        };
        tokio::task::yield_now().await;
        sequencer.publish(&[change(11)]);
        assert_eq!(waiter.await.unwrap(), 11);
        let started = tokio::time::Instant::now();
        assert_eq!(
            sequencer
                .delivered_at_least(99, Duration::from_secs(5))
                .await,
            11
        );
        assert!(started.elapsed() >= Duration::from_secs(5));
    }
}
