//! Graceful shutdown: sessions get a close frame, and every acknowledged write is in
//! the store when it is reopened.

use std::sync::Arc;

use anyhow::Result;
use ripplekv_core::{Limits, Store};
use ripplekv_server::ServerConfig;
use ripplekv_storage::{Durability, RedbStore};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{assert_ok, TestServer, KEY, SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_sessions_and_flushes_the_store() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for durability in [Durability::Sync, Durability::Relaxed] {
        let store = RedbStore::open(dir.path(), durability, Limits::default())?;
        let server = TestServer::start_with(
            ServerConfig::new(vec![KEY.into()], SECRET.to_vec()),
            Some(Arc::new(store)),
        )
        .await?;
        let mut ws = server.ws().await?;
        for i in 0..50 {
            assert_ok(
                &ws.request(json!({"op": 2, "key": format!("{durability:?}-{i}"), "value": "v"}))
                    .await?,
            );
        }
        let stopping = tokio::spawn(server.stop());
        match ws.next_message().await? {
            Message::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 1001);
                assert_eq!(frame.reason.as_str(), "server shutting down");
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
        stopping.await??;
        let reopened = RedbStore::open(dir.path(), durability, Limits::default())?;
        for i in 0..50 {
            let key = format!("{durability:?}-{i}");
            assert!(reopened.get(&key).await?.is_some(), "{key} lost");
        }
        reopened.close().await?;
    }
    Ok(())
}
