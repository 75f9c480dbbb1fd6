//! RANGE: inclusive bounds, byte order, limits, and both paging styles of A3.

use anyhow::Result;
use serde_json::{json, Value};

use crate::common::{assert_ok, TestServer, Ws};

async fn fill(ws: &mut Ws, count: usize) -> Result<Vec<String>> {
    let keys: Vec<String> = (0..count).map(|i| format!("item:{i:04}")).collect();
    for key in &keys {
        assert_ok(
            &ws.request(json!({"op": 2, "key": key, "value": format!("v-{key}")}))
                .await?,
        );
    }
    Ok(keys)
}

fn keys_of(reply: &Value) -> Vec<String> {
    reply["records"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .map(|record| record["key"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn bounds_are_inclusive_and_records_have_values() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    fill(&mut ws, 10).await?;
    let reply = ws
        .request(json!({"op": 5, "key": "item:0002", "endKey": "item:0005", "messageId": 3}))
        .await?;
    assert_ok(&reply);
    assert_eq!(
        keys_of(&reply),
        ["item:0002", "item:0003", "item:0004", "item:0005"]
    );
    assert_eq!(reply["count"], 4);
    assert_eq!(reply["truncated"], false);
    assert_eq!(reply["messageId"], 3);
    assert_eq!(reply["records"][0]["value"], "v-item:0002");
    server.stop().await
}

#[tokio::test]
async fn paging_from_last_key_inclusive_and_from_last_key_plus_nul() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    let all = fill(&mut ws, 25).await?;

    // Style 1: restart from the last key, inclusive, and drop the repeated first record.
    let mut seen = Vec::new();
    let mut start = "item:".to_owned();
    loop {
        let reply = ws
            .request(json!({"op": 5, "key": start, "endKey": "item:~", "limit": 10}))
            .await?;
        let mut keys = keys_of(&reply);
        if seen.last() == keys.first() {
            keys.remove(0);
        }
        seen.extend(keys);
        if reply["truncated"] == false {
            break;
        }
        start = seen.last().cloned().unwrap_or_default();
    }
    assert_eq!(seen, all);

    // Style 2: restart from last key + "\u0000": no repeats at all.
    let mut seen = Vec::new();
    let mut start = "item:".to_owned();
    let mut pages = 0;
    loop {
        let reply = ws
            .request(json!({"op": 5, "key": start, "endKey": "item:~", "limit": 10}))
            .await?;
        pages += 1;
        let keys = keys_of(&reply);
        seen.extend(keys);
        if reply["truncated"] == false {
            break;
        }
        start = format!("{}\u{0}", seen.last().cloned().unwrap_or_default());
    }
    assert_eq!(seen, all);
    assert_eq!(pages, 3);
    server.stop().await
}

#[tokio::test]
async fn limits_default_to_100_and_clamp_to_1000() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    fill(&mut ws, 1005).await?;
    let reply = ws
        .request(json!({"op": 5, "key": "item:", "endKey": "item:~"}))
        .await?;
    assert_eq!(reply["count"], 100);
    assert_eq!(reply["truncated"], true);
    let reply = ws
        .request(json!({"op": 5, "key": "item:", "endKey": "item:~", "limit": 5000}))
        .await?;
    assert_eq!(reply["count"], 1000);
    assert_eq!(reply["truncated"], true);
    // Beyond 64 bits is still just "larger": clamped, over WebSocket and REST.
    ws.send_text(r#"{"op":5,"key":"item:","endKey":"item:~","limit":99999999999999999999999}"#)
        .await?;
    assert_eq!(ws.recv().await?["count"], 1000);
    let rest = server
        .http(
            "GET",
            "/records?startKey=item:&endKey=item:~&limit=99999999999999999999999",
            None,
        )
        .await?;
    assert_eq!(rest.body["records"].as_array().map(Vec::len), Some(1000));
    let reply = ws
        .request(json!({"op": 5, "key": "item:1000", "endKey": "item:~", "limit": 5}))
        .await?;
    assert_eq!(reply["count"], 5);
    assert_eq!(
        reply["truncated"], false,
        "exactly the limit left is not truncated"
    );
    server.stop().await
}

#[tokio::test]
async fn inverted_range_is_empty_and_order_is_by_utf8_bytes() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    for key in ["b", "B", "ä", "a", "z", "~"] {
        assert_ok(
            &ws.request(json!({"op": 2, "key": key, "value": "v"}))
                .await?,
        );
    }
    let reply = ws
        .request(json!({"op": 5, "key": "z", "endKey": "a"}))
        .await?;
    assert_ok(&reply);
    assert_eq!(reply["count"], 0);
    assert_eq!(reply["truncated"], false);
    let reply = ws
        .request(json!({"op": 5, "key": "A", "endKey": "\u{10FFFF}"}))
        .await?;
    assert_eq!(keys_of(&reply), ["B", "a", "b", "z", "~", "ä"]);
    server.stop().await
}
