//! The Rust client against a real server on 127.0.0.1: every operation, errors, and
//! subscriptions that resume across a server restart.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use futures_util::{StreamExt, TryStreamExt};
use ripplekv_client::{Auth, Client, ClientConfig, ConnectionEvent, Error, Event, WriteOptions};
use ripplekv_core::Limits;
use ripplekv_server::ServerConfig;
use ripplekv_storage::{Durability, RedbStore};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const KEY: &str = "client-test-key";

/// A server over a redb store in `dir`, on `addr` (port 0 for any).
struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(dir: &Path, addr: SocketAddr) -> Result<Server> {
    let store = RedbStore::open(dir, Durability::Sync, Limits::default())?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let config = ServerConfig::new(vec![KEY.into()], b"client-test-secret".to_vec());
    let task = tokio::spawn(ripplekv_server::run(
        config,
        Arc::new(store),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(Server { addr, stop, task })
}

impl Server {
    async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn next_change(subscription: &mut ripplekv_client::Subscription) -> ripplekv_client::Change {
    match tokio::time::timeout(Duration::from_secs(10), subscription.next()).await {
        Ok(Some(Event::Change(change))) => change,
        other => panic!("expected a change, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path(), "127.0.0.1:0".parse()?).await?;
    let client = Client::connect(&server.url(), Auth::ApiKey(KEY.into())).await?;

    let written = client.set("user:1", r#"{"name":"Ada"}"#).await?;
    let record = client.get("user:1").await?;
    assert_eq!(
        (record.value.as_str(), record.revision),
        (r#"{"name":"Ada"}"#, written.revision)
    );
    client.patch("user:1", r#"{"lang":"en"}"#).await?;
    assert_eq!(
        client.get("user:1").await?.value,
        r#"{"name":"Ada","lang":"en"}"#
    );
    assert_eq!(client.atomic("visits", 5).await?, 5);
    assert_eq!(client.atomic("visits", -2).await?, 3);
    client
        .json_patch(
            "list",
            &json!([{"op": "add", "path": "", "value": [1]}]),
            WriteOptions::default(),
        )
        .await?;
    client
        .json_patch(
            "list",
            &json!([{"op": "add", "path": "/-", "value": 2}]),
            WriteOptions::default(),
        )
        .await?;
    assert_eq!(client.get("list").await?.value, "[1,2]");
    client.delete("visits").await?;
    assert!(client.get("visits").await.unwrap_err().is_not_found());

    // Errors carry the server's code and message.
    match client.set("", "v").await {
        Err(Error::Server {
            code: 400, message, ..
        }) => assert!(message.contains("Key must not be empty")),
        other => panic!("expected a 400, got {other:?}"),
    }
    let current = client.get("user:1").await?.revision;
    let stale = WriteOptions {
        if_revision: Some(current + 7),
        ttl: None,
    };
    match client.set_with("user:1", "x", stale).await {
        Err(Error::Server {
            code: 409,
            revision,
            ..
        }) => assert_eq!(revision, Some(current)),
        other => panic!("expected a 409, got {other:?}"),
    }
    let expiring = WriteOptions {
        if_revision: Some(0),
        ttl: Some(Duration::from_secs(60)),
    };
    client.set_with("session", "s", expiring).await?;

    // Ranges: one page, and every record through paging.
    for i in 0..25 {
        client.set(&format!("item:{i:02}"), &i.to_string()).await?;
    }
    let page = client.range("item:", "item:~", Some(10)).await?;
    assert_eq!((page.records.len(), page.truncated), (10, true));
    let all: Vec<_> = client.range_all("item:", "item:~", 7).try_collect().await?;
    let keys: Vec<String> = all.iter().map(|record| record.key.clone()).collect();
    assert_eq!(
        keys,
        (0..25).map(|i| format!("item:{i:02}")).collect::<Vec<_>>()
    );

    assert_eq!(client.stats().pending_requests, 0);
    assert!(client.stats().connected);
    client.close();
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_fail_to_connect() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path(), "127.0.0.1:0".parse()?).await?;
    let err = Client::connect(&server.url(), Auth::ApiKey("wrong".into()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::Unauthorized {
            status: 401,
            message: "Invalid API key".into()
        }
    );
    let err = Client::connect(&server.url(), Auth::Token("bad".into()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::Unauthorized {
            status: 403,
            message: "Invalid or expired token".into()
        }
    );
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_misses_nothing_across_a_server_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path(), "127.0.0.1:0".parse()?).await?;
    let addr = server.addr;
    let url = server.url();
    let mut config = ClientConfig::new(Auth::ApiKey(KEY.into()));
    config.reconnect.initial_delay = Duration::from_millis(200);
    let watcher = Client::connect_with(&url, config).await?;
    let mut events = watcher.events();
    let mut changes = watcher.subscribe(["feed:*"]).await?;
    let writer = Client::connect(&url, Auth::ApiKey(KEY.into())).await?;
    writer.set("feed:1", "one").await?;
    assert_eq!(
        next_change(&mut changes).await.value.as_deref(),
        Some("one")
    );

    server.shutdown().await?;
    assert_eq!(events.recv().await?, ConnectionEvent::Disconnected);
    assert!(matches!(
        events.recv().await?,
        ConnectionEvent::Reconnecting { attempt: 1, .. }
    ));
    // Calls while disconnected fail fast instead of hanging.
    assert_eq!(
        watcher.get("feed:1").await.unwrap_err(),
        Error::Disconnected
    );

    let server = start(dir.path(), addr).await?;
    // Written as soon as the server is back, before the watcher reconnects: it must get
    // them by resuming with `since`.
    let writer = Client::connect(&url, Auth::ApiKey(KEY.into())).await?;
    for i in 2..=6 {
        writer.set(&format!("feed:{i}"), &i.to_string()).await?;
    }
    writer.delete("feed:1").await?;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let change = next_change(&mut changes).await;
        seen.push((change.key, change.op));
    }
    let expected: Vec<(String, Option<String>)> = (2..=6)
        .map(|i| (format!("feed:{i}"), Some("set".to_owned())))
        .chain([("feed:1".to_owned(), Some("delete".to_owned()))])
        .collect();
    assert_eq!(seen, expected, "every change once, in order");
    loop {
        if events.recv().await? == ConnectionEvent::Connected {
            break;
        }
    }
    assert!(watcher.stats().connects >= 2);
    assert_eq!(watcher.get("feed:3").await?.value, "3");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_gives_up_after_its_attempts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path(), "127.0.0.1:0".parse()?).await?;
    let mut config = ClientConfig::new(Auth::ApiKey(KEY.into()));
    config.reconnect.max_attempts = Some(2);
    config.reconnect.initial_delay = Duration::from_millis(10);
    let client = Client::connect_with(&server.url(), config).await?;
    let mut changes = client.subscribe(["x"]).await?;
    let mut events = client.events();
    server.shutdown().await?;
    loop {
        if events.recv().await? == ConnectionEvent::GaveUp {
            break;
        }
    }
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), changes.next()).await?,
        None,
        "the stream ends"
    );
    assert_eq!(client.get("x").await.unwrap_err(), Error::Closed);
    Ok(())
}

/// Against a server that sends HPKV's notifications (no `op`, no `revision`), the
/// client says it does not know the op instead of calling every change a `set`, and
/// delivers every notification (with no revision, none can be a repeat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_without_op_or_revision_are_reported_as_such() -> Result<()> {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await?;
        let mut ws = tokio_tungstenite::accept_async(socket).await?;
        // The subscribe: answer it by its messageId, then push two HPKV notifications.
        let Some(Ok(Message::Text(request))) = ws.next().await else {
            anyhow::bail!("no subscribe request");
        };
        let request: serde_json::Value = serde_json::from_str(request.as_str())?;
        assert_eq!(request["op"], "subscribe");
        let answer = json!({"code": 200, "messageId": request["messageId"]});
        ws.send(Message::text(answer.to_string())).await?;
        for value in [json!("one"), serde_json::Value::Null] {
            let notification =
                json!({"type": "notification", "key": "k", "value": value, "timestamp": 7});
            ws.send(Message::text(notification.to_string())).await?;
        }
        // Hold the socket open until the client has read both.
        let _ = ws.next().await;
        anyhow::Ok(())
    });
    let client = Client::connect(&url, Auth::ApiKey("any".into())).await?;
    let mut changes = client.subscribe(["k"]).await?;
    for expected in [Some("one".to_owned()), None] {
        let change = next_change(&mut changes).await;
        assert_eq!(
            (change.op, change.revision, change.value),
            (None, 0, expected)
        );
    }
    client.close();
    server.await??;
    Ok(())
}
