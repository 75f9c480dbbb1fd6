//! Other nodes' commits, for a node that may not be writing itself.
//!
//! The change table is the truth and notifications are only a hint. A task per node
//! keeps a connection that `LISTEN`s on `ripplekv_changes` (every commit sends the
//! range of revisions it made); on each notification, and every [`PROBE_INTERVAL`]
//! whatever arrives, it asks the node's writer to catch up: read the log above the
//! highest revision the node knows and publish what it finds. A lost notification, a
//! dropped listener or a database restart therefore delay delivery by at most one
//! probe, never lose it. The writer is the node's only publisher, so its sink still
//! gets every change once, in revision order.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use ripplekv_core::Error;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Config, NoTls};

use super::bus::Bus;
use super::db::db_error;
use super::Job;

/// Longest a change committed elsewhere waits to be seen when notifications are lost.
pub(super) const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Wait before listening again after the listener's connection failed.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// Runs until the store is dropped (the task is aborted then): through the Redis bus
/// when there is one, else through `LISTEN`; with the probe either way.
pub(super) async fn run(config: Config, jobs: flume::Sender<Job>, bus: Option<Bus>) {
    match bus {
        Some(bus) => {
            tokio::join!(bus.run_subscriber(jobs.clone()), probe(&jobs));
        }
        None => listen(config, jobs).await,
    }
}

/// Asks for a catch-up every [`PROBE_INTERVAL`].
async fn probe(jobs: &flume::Sender<Job>) {
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    loop {
        ticks.tick().await;
        let _ = jobs.try_send(Job::CatchUp);
    }
}

/// Listens on `ripplekv_changes`, asking for a catch-up on every notification and
/// every [`PROBE_INTERVAL`], listening again whenever the connection ends.
async fn listen(config: Config, jobs: flume::Sender<Job>) {
    let wake = Arc::new(Notify::new());
    // A catch-up is only asked for when none is queued: the writer reads everything
    // new whenever it gets to one.
    let ask = || {
        let _ = jobs.try_send(Job::CatchUp);
    };
    loop {
        let (client, driver) = match listener(&config, Arc::clone(&wake)).await {
            Ok((client, driver)) => (Some(client), Some(driver)),
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for other nodes' commits; probing only");
                (None, None)
            }
        };
        // Whatever was missed while not listening is read now.
        ask();
        let mut probe = tokio::time::interval(PROBE_INTERVAL);
        probe.tick().await;
        // Listen again once the listener's connection ends (or, without one, later).
        let ended = async move {
            match driver {
                Some(driver) => drop(driver.await),
                None => tokio::time::sleep(RECONNECT_DELAY * 10).await,
            }
        };
        tokio::pin!(ended);
        loop {
            tokio::select! {
                () = wake.notified() => ask(),
                _ = probe.tick() => ask(),
                () = &mut ended => break,
            }
        }
        drop(client);
        tracing::info!("listening again for other nodes' commits");
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

type Listener = (tokio_postgres::Client, tokio::task::JoinHandle<()>);

/// A connection listening on `ripplekv_changes`; its driver wakes `wake` on every
/// notification and finishes when the connection ends.
async fn listener(config: &Config, wake: Arc<Notify>) -> Result<Listener, Error> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(db_error)?;
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => wake.notify_one(),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "the listener's connection ended");
                    return;
                }
            }
        }
    });
    client
        .batch_execute("LISTEN ripplekv_changes")
        .await
        .map_err(db_error)?;
    Ok((client, driver))
}
