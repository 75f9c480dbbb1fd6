//! The per-node sequencer: committed changes go in, and leave into the hub strictly in
//! revision order, with no gap; it owns "delivered up to revision W".
//!
//! Today its only source is the local store, which publishes in commit order. A
//! cluster will also feed it other nodes' changes, which can arrive out of order or
//! with a gap until the missing ones are read; they wait here until the gap fills. A
//! change at or below W has been delivered already and is dropped.
//!
//! The store's publish only queues the batch: the fan-out (matching subscriptions,
//! rendering each face's frame, filling outboxes) runs in a task of its own, so the
//! storage writer thread goes back to committing at once. A writer is answered only
//! once W has reached its change (the executor waits for it), so it still hears its own
//! change before its reply, and every subscriber hears it no later.
//!
//! It also knows the highest revision it has been given ([`Sequencer::latest`]), which
//! in a cluster covers other nodes' commits too, where a local counter would not; a
//! replay's resync decision takes the higher of it and the store's own revision (a
//! store may show a commit to readers a moment before publishing it).
//!
//! W is also what `since` replays are served against: the replay reads the change log
//! up to W only, and everything above W reaches the connection through the hub (held
//! back while it replays). W moves only after a change has been handed to every
//! matching subscriber, so a replay that reads W has either seen a change in the hub or
//! will find it there later, never neither and never both.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ripplekv_core::{Change, ChangeSink, Revision};
use tokio::sync::{mpsc, watch};

use crate::hub::Hub;

/// Most changes that may wait for a gap to fill. Beyond it the gap is given up on (it
/// cannot fill: the change was lost upstream) and delivery moves on, so a lost change
/// costs subscribers that one change, not every later one.
const MAX_WAITING: usize = 10_000;

/// Longest anyone waits for a committed change to reach the hub. The fan-out is one
/// task hop away, so this only bounds a failure: a writer is answered anyway, a
/// replay goes on with the W it has.
const DELIVERY_PATIENCE: Duration = Duration::from_secs(10);

/// The handle the store publishes into, and where W is read.
#[derive(Debug)]
pub(crate) struct Sequencer {
    /// Batches for the fan-out task. Unbounded, yet bounded in practice: every writer
    /// waits for W to pass its change before it is answered, so the queue holds at
    /// most the writes in flight (and the expiry sweeps).
    batches: mpsc::UnboundedSender<Vec<Change>>,
    /// W: every change up to here was handed to the hub.
    delivered: watch::Receiver<Revision>,
    /// The highest revision published into the sequencer (or the start revision).
    latest: AtomicU64,
}

impl Sequencer {
    /// A sequencer delivering into `hub` from a task of its own (so it needs a tokio
    /// runtime), with every change up to `start` (the store's revision when the server
    /// starts) counted as delivered.
    pub(crate) fn new(hub: Arc<Hub>, start: Revision) -> Self {
        let (batches, queue) = mpsc::unbounded_channel();
        let (advance, delivered) = watch::channel(start);
        let order = Order {
            hub,
            waiting: BTreeMap::new(),
            delivered: advance,
        };
        tokio::spawn(order.run(queue));
        Sequencer {
            batches,
            delivered,
            latest: AtomicU64::new(start),
        }
    }

    /// The highest revision given to the sequencer (delivered already, or about to
    /// be), or the start revision.
    pub(crate) fn latest(&self) -> Revision {
        self.latest.load(Ordering::Acquire)
    }

    /// W: the highest revision handed to the hub, with every one below it.
    pub(crate) fn delivered(&self) -> Revision {
        *self.delivered.borrow()
    }

    /// Waits until W reaches `revision` (a revision the store committed is delivered
    /// moments later), at most [`DELIVERY_PATIENCE`]; returns W.
    pub(crate) async fn delivered_at_least(&self, revision: Revision) -> Revision {
        let mut delivered = self.delivered.clone();
        let reached = delivered.wait_for(|delivered| *delivered >= revision);
        let _ = tokio::time::timeout(DELIVERY_PATIENCE, reached).await;
        self.delivered()
    }
}

impl ChangeSink for Sequencer {
    fn publish(&self, changes: &[Change]) {
        if let Some(last) = changes.iter().map(|change| change.revision).max() {
            self.latest.fetch_max(last, Ordering::AcqRel);
            // Fails only once the fan-out task is gone, when the runtime shuts down.
            let _ = self.batches.send(changes.to_vec());
        }
    }
}

/// The fan-out task's state: what waits for a gap, and W.
struct Order {
    hub: Arc<Hub>,
    /// Changes above W + 1, waiting for the ones before them.
    waiting: BTreeMap<Revision, Change>,
    delivered: watch::Sender<Revision>,
}

impl Order {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Vec<Change>>) {
        while let Some(batch) = queue.recv().await {
            self.accept(batch);
        }
    }

    fn w(&self) -> Revision {
        *self.delivered.borrow()
    }

    /// Hands `changes` (consecutive, starting at W + 1) to the hub, then moves W.
    fn hand_over(&self, changes: Vec<Change>) {
        if let Some(last) = changes.last().map(|change| change.revision) {
            self.hub.fan_out(changes);
            self.delivered.send_replace(last);
        }
    }

    fn accept(&mut self, changes: Vec<Change>) {
        let in_order = changes
            .iter()
            .zip(self.w() + 1..)
            .all(|(change, expected)| change.revision == expected);
        if in_order && self.waiting.is_empty() {
            // The local store's case: one batch, in order, handed over at once.
            return self.hand_over(changes);
        }
        for change in changes {
            let next = self.w() + 1;
            if change.revision < next {
                continue; // delivered already (a feed can repeat itself)
            }
            if change.revision > next {
                self.waiting.insert(change.revision, change);
                continue;
            }
            self.hand_over(vec![change]);
            while let Some(change) = self.waiting.remove(&(self.w() + 1)) {
                self.hand_over(vec![change]);
            }
        }
        if self.waiting.len() > MAX_WAITING {
            tracing::error!(
                missing_from = self.w() + 1,
                "changes never arrived; delivering past the gap"
            );
            let waiting = std::mem::take(&mut self.waiting);
            for change in waiting.into_values() {
                self.hand_over(vec![change]);
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
            removed: None,
        }
    }

    /// A hub with one subscriber to `k`, and what that subscriber receives.
    fn hub() -> (Arc<Hub>, crate::ws::outbox::OutboxReceiver) {
        let hub = Arc::new(Hub::default());
        let (outbox, receiver) = Outbox::new(100, 1 << 20, Duration::from_secs(1));
        let subscriber = Arc::new(Subscriber::new(outbox, Access::All, 100));
        hub.subscribe(
            &subscriber,
            ripplekv_core::Pattern::compile("k").unwrap(),
            false,
        );
        (hub, receiver)
    }

    /// The fan-out task's ordering, driven directly, with W at 10.
    fn order() -> (Order, crate::ws::outbox::OutboxReceiver) {
        let (hub, receiver) = hub();
        let order = Order {
            hub,
            waiting: BTreeMap::new(),
            delivered: watch::channel(10).0,
        };
        (order, receiver)
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
        let (mut order, mut receiver) = order();
        order.accept(vec![change(12), change(14)]);
        assert_eq!(order.w(), 10, "11 is missing: nothing moves");
        assert!(revisions(&mut receiver).is_empty());
        order.accept(vec![change(11)]);
        assert_eq!(order.w(), 12);
        order.accept(vec![change(13), change(12), change(9)]);
        assert_eq!(order.w(), 14);
        assert_eq!(revisions(&mut receiver), [11, 12, 13, 14]);
    }

    #[test]
    fn a_gap_that_never_fills_is_given_up_on_after_a_bound() {
        let (mut order, _receiver) = order();
        let later: Vec<Change> = (12..12 + MAX_WAITING as u64 + 1).map(change).collect();
        order.accept(later);
        assert_eq!(order.w(), 12 + MAX_WAITING as u64);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_revision_ends_when_it_is_delivered_or_patience_runs_out() {
        let (hub, mut receiver) = hub();
        let sequencer = Sequencer::new(hub, 10);
        let sequencer = Arc::new(sequencer);
        let waiter = {
            let sequencer = Arc::clone(&sequencer);
            tokio::spawn(async move { sequencer.delivered_at_least(11).await })
        };
        tokio::task::yield_now().await;
        sequencer.publish(&[change(11)]);
        assert_eq!(waiter.await.unwrap(), 11);
        assert_eq!(
            revisions(&mut receiver),
            [11],
            "handed to the hub by the task"
        );
        let started = tokio::time::Instant::now();
        assert_eq!(sequencer.delivered_at_least(99).await, 11);
        assert!(started.elapsed() >= DELIVERY_PATIENCE);
    }

    #[tokio::test]
    async fn the_current_revision_is_the_highest_given_even_before_its_gap_fills() {
        let (hub, _receiver) = hub();
        let sequencer = Sequencer::new(hub, 10);
        assert_eq!(sequencer.latest(), 10, "the store's revision at start");
        sequencer.publish(&[change(13), change(12)]);
        assert_eq!(sequencer.latest(), 13);
        assert_eq!(sequencer.delivered(), 10, "11 is missing: W stays");
        sequencer.publish(&[change(11)]);
        assert_eq!(sequencer.delivered_at_least(13).await, 13);
        assert_eq!(sequencer.latest(), 13);
    }
}
