//! A node of a cluster killed with `kill -9`: its subscriber reconnects to another node
//! and resumes with `since`, missing nothing and seeing nothing twice, while the other
//! node keeps acknowledging writes throughout. Two real `ripplekv` processes on one
//! PostgreSQL database.

// Test helpers panic on unexpected failures; that is how a test fails.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

mod common;
#[path = "../../storage/tests/support/mod.rs"]
mod support;

const KEY: &str = "failover-test-key";
/// Writes acknowledged on each node before the kill, and on the survivor after it.
const WRITES: u64 = 150;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: SocketAddr) -> Result<Socket> {
    let url = format!("ws://{addr}/ws?apiKey={KEY}");
    Ok(tokio_tungstenite::connect_async(url).await?.0)
}

/// The next JSON text frame.
async fn receive(socket: &mut Socket) -> Result<Value> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(text.as_str())?),
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(err.into()),
            None => bail!("connection closed"),
        }
    }
}

async fn node(store: &str, dir: &std::path::Path) -> Result<common::Server> {
    common::start_with(&["--api-key", KEY, "--store", store], &[], dir, "warn").await
}

/// What one writer had acknowledged, and how many, to await.
#[derive(Clone)]
struct Acked {
    revisions: Arc<Mutex<Vec<u64>>>,
    count: Arc<watch::Sender<usize>>,
}

impl Acked {
    fn new() -> Self {
        Acked {
            revisions: Arc::default(),
            count: Arc::new(watch::channel(0).0),
        }
    }

    fn push(&self, revision: u64) {
        let mut revisions = self.revisions.lock().unwrap();
        revisions.push(revision);
        self.count.send_replace(revisions.len());
    }

    async fn reached(&self, count: usize) {
        let mut counted = self.count.subscribe();
        counted.wait_for(|acked| *acked >= count).await.unwrap();
    }

    fn all(&self) -> Vec<u64> {
        self.revisions.lock().unwrap().clone()
    }
}

/// Sets `f-<name>-<i>` one at a time until `stop` or the connection breaks.
async fn writer(
    addr: SocketAddr,
    name: &str,
    acked: Acked,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut socket = connect(addr).await?;
    for i in 0.. {
        if *stop.borrow() {
            return Ok(());
        }
        let request =
            json!({"op": "set", "key": format!("f-{name}-{i}"), "value": "v", "messageId": i});
        socket.send(Message::text(request.to_string())).await?;
        let reply = receive(&mut socket).await?;
        match reply["revision"].as_u64() {
            Some(revision) => acked.push(revision),
            None => bail!("write refused: {reply}"),
        }
    }
    Ok(())
}

/// Subscribes to `f-*` (resuming after `since`, if any), says when the subscription
/// holds, and records each notified revision until `upto` is seen or the connection
/// breaks.
async fn watch_from(
    addr: SocketAddr,
    since: Option<u64>,
    seen: &mut Vec<u64>,
    upto: &watch::Receiver<u64>,
    mut holds: Option<oneshot::Sender<()>>,
) -> Result<()> {
    let mut socket = connect(addr).await?;
    let mut subscribe = json!({"op": "subscribe", "patterns": ["f-*"], "messageId": "s"});
    if let Some(since) = since {
        subscribe["since"] = json!(since);
    }
    socket.send(Message::text(subscribe.to_string())).await?;
    let mut upto = upto.clone();
    loop {
        let reached = |seen: &[u64], target: u64| {
            target > 0 && seen.last().is_some_and(|last| *last >= target)
        };
        if reached(seen, *upto.borrow()) {
            return Ok(());
        }
        let frame = tokio::select! {
            frame = receive(&mut socket) => frame?,
            // The target may be set after its revision arrived: look again.
            _ = upto.changed() => continue,
        };
        match frame["type"].as_str() {
            Some("notification") => seen.push(frame["revision"].as_u64().unwrap()),
            Some("resync") => bail!("resync: the replay could not be served: {frame}"),
            _ => {
                assert_eq!(frame["code"], 200, "{frame}");
                if let Some(holds) = holds.take() {
                    let _ = holds.send(());
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_of_a_killed_node_resumes_on_another_and_misses_nothing() -> Result<()> {
    let database = support::TestDatabase::create().await;
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let mut a = node(&database.url, dir_a.path()).await?;
    let b = node(&database.url, dir_b.path()).await?;

    // The subscriber starts on A; when A dies it moves to B with the last revision it saw.
    let (upto_tx, upto) = watch::channel(0u64);
    let (holds, subscription_holds) = oneshot::channel();
    let subscribed = {
        let (a_addr, b_addr) = (a.addr, b.addr);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let first = watch_from(a_addr, None, &mut seen, &upto, Some(holds)).await;
            assert!(first.is_err(), "the subscriber's node was killed");
            let since = seen.last().copied().unwrap_or(0);
            watch_from(b_addr, Some(since), &mut seen, &upto, None)
                .await
                .unwrap();
            seen
        })
    };
    subscription_holds.await?;

    let (acked_a, acked_b) = (Acked::new(), Acked::new());
    let (stop_tx, stop) = watch::channel(false);
    let on_a = tokio::spawn(writer(a.addr, "a", acked_a.clone(), stop.clone()));
    let on_b = tokio::spawn(writer(b.addr, "b", acked_b.clone(), stop.clone()));
    acked_a.reached(WRITES as usize).await;
    a.child.start_kill()?; // SIGKILL
    a.child.wait().await?;
    assert!(on_a.await?.is_err(), "A's writer loses its connection");
    let before = acked_b.all().len();
    acked_b.reached(before + WRITES as usize).await;
    stop_tx.send_replace(true);
    on_b.await?.expect("B acknowledged every write throughout");
    let last = *acked_b.all().last().unwrap();
    upto_tx.send_replace(last);
    let seen = tokio::time::timeout(Duration::from_secs(30), subscribed).await??;

    // Every revision up to the last is a SET of an f- key (A's last writes may have
    // committed unacknowledged): the subscriber saw each exactly once, in order.
    assert_eq!(seen, (1..=last).collect::<Vec<_>>());
    for revision in acked_a.all().iter().chain(acked_b.all().iter()) {
        assert!(
            seen.binary_search(revision).is_ok(),
            "acknowledged {revision} was seen"
        );
    }
    drop(b);
    Ok(())
}
