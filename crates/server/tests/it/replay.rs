//! `subscribe` with `since` across the window between a commit and its delivery to the
//! hub: a change the store has committed (in the log, its writer waiting for the
//! delivery) but not yet handed to subscribers is delivered exactly once, whichever
//! side of the replay's log read it falls on.

use std::sync::Arc;

use anyhow::Result;
use ripplekv_server::ServerConfig;
use serde_json::json;

use crate::common::{TestServer, KEY, SECRET};
use crate::hooked::HookedStore;

async fn server() -> Result<(TestServer, Arc<HookedStore>)> {
    let store = Arc::new(HookedStore::default());
    let config = ServerConfig::new(vec![KEY.into()], SECRET.to_vec());
    let server = TestServer::start_with(config, Some(Arc::clone(&store) as _)).await?;
    Ok((server, store))
}

async fn stop(server: Arc<TestServer>) -> Result<()> {
    Arc::try_unwrap(server)
        .map_err(|_| anyhow::anyhow!("the server is still shared"))?
        .stop()
        .await
}

/// SETs `k` with deliveries held back: returns once the change is committed and in the
/// log but not delivered, its writer still waiting for the delivery.
async fn write_held_back(
    server: &Arc<TestServer>,
    store: &HookedStore,
) -> tokio::task::JoinHandle<Result<u64>> {
    store.hold_deliveries();
    let writer = {
        let server = Arc::clone(server);
        tokio::spawn(async move { set(&server, "k").await })
    };
    store.held(1).await;
    writer
}

async fn set(server: &TestServer, key: &str) -> Result<u64> {
    let body = json!({"key": key, "value": "v"}).to_string();
    let reply = server.http("POST", "/record", Some(&body)).await?;
    reply.body["revision"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no revision in {reply:?}"))
}

/// Committed before the replay read the log, delivered after the replay ended: the
/// replay leaves it to the hub, which delivers it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_delivered_after_the_replay_read_it_is_sent_once() -> Result<()> {
    let (server, store) = server().await?;
    let server = Arc::new(server);
    let mut ws = server.ws().await?;
    let writer = write_held_back(&server, &store).await;
    ws.send(&json!({"op": "subscribe", "patterns": ["k"], "since": 0, "messageId": 1}))
        .await?;
    assert_eq!(ws.recv().await?["messageId"], 1);
    store.release_deliveries();
    assert_eq!(writer.await??, 1, "answered once delivered");
    let notification = ws.notification().await?;
    assert_eq!(notification["revision"], 1, "{notification}");
    // Nothing doubled: the next frame answers this GET.
    let reply = ws
        .request(json!({"op": "get", "key": "k", "messageId": 2}))
        .await?;
    assert_eq!(reply["messageId"], 2, "a second copy arrived: {reply}");
    stop(server).await
}

/// A client that has seen a committed revision R (by a GET, say) resumes with
/// `since: R` before R reached the hub: R is not sent to it again, and later changes
/// are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_since_the_hub_has_not_reached_yet_is_waited_for_not_resent() -> Result<()> {
    let (server, store) = server().await?;
    let server = Arc::new(server);
    let mut ws = server.ws().await?;
    let writer = write_held_back(&server, &store).await;
    // A GET sees the committed revision before anyone was told of it.
    let read = ws
        .request(json!({"op": "get", "key": "k", "messageId": 1}))
        .await?;
    let seen = read["revision"].as_u64().unwrap();
    ws.send(&json!({"op": "subscribe", "patterns": ["k"], "since": seen, "messageId": 2}))
        .await?;
    assert_eq!(ws.recv().await?["messageId"], 2);
    // The replay waits for `seen` to reach the hub; it gets there now.
    store.release_deliveries();
    assert_eq!(writer.await??, seen);
    let next = set(&server, "k").await?;
    let notification = ws.notification().await?;
    assert_eq!(
        notification["revision"], next,
        "revision {seen} was sent again: {notification}"
    );
    stop(server).await
}

/// The subscribe is answered before the log is read, so a failing read cannot get a
/// second answer to the same request: the client is told to re-read (resync), and the
/// subscription goes on live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_replay_read_sends_resync_not_a_second_reply() -> Result<()> {
    let (server, store) = server().await?;
    let mut ws = server.ws().await?;
    set(&server, "k").await?;
    store.fail_next_log_read();
    ws.send(&json!({"op": "subscribe", "patterns": ["k"], "since": 0, "messageId": 1}))
        .await?;
    let reply = ws.recv().await?;
    assert_eq!(
        (reply["code"].clone(), reply["messageId"].clone()),
        (json!(200), json!(1))
    );
    let after = ws.recv().await?;
    assert_eq!(after, json!({"type": "resync", "revision": 1}));
    let next = set(&server, "k").await?;
    assert_eq!(ws.notification().await?["revision"], next);
    server.stop().await
}
