//! Ordering: one connection's requests are applied and answered in arrival order,
//! and concurrent connections do not lose each other's writes.

use anyhow::Result;
use serde_json::json;

use crate::common::{assert_ok, TestServer};

#[tokio::test]
async fn pipelined_requests_are_applied_and_answered_in_order() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    // Send everything before reading anything.
    for i in 0..200 {
        ws.send(&json!({"op": 2, "key": "k", "value": format!("v{i}"), "messageId": 2 * i + 1}))
            .await?;
        ws.send(&json!({"op": 1, "key": "k", "messageId": 2 * i + 2}))
            .await?;
    }
    for i in 0..200 {
        let set = ws.recv().await?;
        assert_eq!(set["messageId"], 2 * i + 1);
        assert_ok(&set);
        let get = ws.recv().await?;
        assert_eq!(get["messageId"], 2 * i + 2);
        assert_eq!(
            get["value"],
            format!("v{i}"),
            "GET must see the SET sent before it"
        );
    }
    server.stop().await
}

#[tokio::test]
async fn concurrent_connections_lose_no_increments() -> Result<()> {
    let server = TestServer::start().await?;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut ws = server.ws().await?;
        tasks.push(tokio::spawn(async move {
            let mut last = i64::MIN;
            for _ in 0..50 {
                let reply = ws
                    .request(json!({"op": 6, "key": "counter", "value": 1}))
                    .await?;
                let value = reply["newValue"].as_i64().unwrap_or_default();
                assert!(
                    value > last,
                    "this connection's increments must be seen in order"
                );
                last = value;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let mut ws = server.ws().await?;
    assert_eq!(
        ws.request(json!({"op": 1, "key": "counter"})).await?["value"],
        "400"
    );
    server.stop().await
}
