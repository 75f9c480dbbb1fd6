//! Two servers on one PostgreSQL database, as two nodes of a cluster: a change made on
//! one reaches the other's subscribers, and a client that moves between nodes resumes
//! with `since` and gets its replay.

use std::sync::Arc;

use anyhow::Result;
use ripplekv_server::ServerConfig;
use ripplekv_storage::PostgresStore;
use serde_json::json;

use crate::common::{TestServer, KEY, SECRET};
use crate::support::{Connections, TestDatabase};

async fn node(database: &TestDatabase) -> Result<TestServer> {
    let store = PostgresStore::connect(&database.url, Default::default()).await?;
    let config = ServerConfig::new(vec![KEY.into()], SECRET.to_vec());
    TestServer::start_with(config, Some(Arc::new(store))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_node_reaches_a_subscriber_on_another() -> Result<()> {
    let database = TestDatabase::create().await;
    let (a, b) = (node(&database).await?, node(&database).await?);
    let mut watcher = b.ws().await?;
    let reply = watcher
        .request(json!({"op": "subscribe", "patterns": ["k*"], "messageId": 1}))
        .await?;
    assert_eq!(reply["code"], 200);
    let mut writer = a.ws().await?;
    for i in 1..=3 {
        let key = format!("k{i}");
        let reply = writer
            .request(json!({"op": "set", "key": key, "value": "v", "messageId": i}))
            .await?;
        assert_eq!(reply["revision"], i);
    }
    for i in 1..=3 {
        let notification = watcher.notification().await?;
        assert_eq!(
            (
                notification["key"].clone(),
                notification["revision"].clone()
            ),
            (json!(format!("k{i}")), json!(i))
        );
    }
    // The node that delivered them measured how far behind the commits it was.
    let metrics = crate::operations::reqwest_text(&b, "/metrics").await?;
    let delivered = metrics
        .lines()
        .find_map(|line| line.strip_prefix("ripplekv_delivery_lag_seconds_count "))
        .and_then(|count| count.parse::<u64>().ok());
    assert!(delivered.is_some_and(|count| count >= 3), "{metrics}");
    a.stop().await?;
    b.stop().await
}

/// The client saw revision 2 on node A and reconnects to node B at once, before B has
/// necessarily heard of it: B must replay what followed, not answer resync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resuming_on_another_node_gets_its_replay_not_a_resync() -> Result<()> {
    let database = TestDatabase::create().await;
    let (a, b) = (node(&database).await?, node(&database).await?);
    // Without listeners for a moment (they reconnect within a second), B learns of A's
    // writes late: the window this test is about.
    database.kill(Connections::Listeners).await;
    let mut on_a = a.ws().await?;
    for i in 1..=3 {
        on_a.request(json!({"op": "set", "key": "doc", "value": format!("v{i}"), "messageId": i}))
            .await?;
    }
    let mut on_b = b.ws().await?;
    let reply = on_b
        .request(json!({"op": "subscribe", "patterns": ["doc"], "since": 2, "messageId": 9}))
        .await?;
    assert_eq!(reply["code"], 200);
    let replayed = on_b.recv().await?;
    assert_eq!(
        (
            replayed["type"].clone(),
            replayed["revision"].clone(),
            replayed["value"].clone()
        ),
        (json!("notification"), json!(3), json!("v3")),
        "{replayed}"
    );
    // A `since` no node ever reached is still a resync.
    let reply = on_b
        .request(json!({"op": "subscribe", "patterns": ["x"], "since": 999, "messageId": 10}))
        .await?;
    assert_eq!(reply["code"], 200);
    assert_eq!(on_b.recv().await?["type"], "resync");
    a.stop().await?;
    b.stop().await
}
