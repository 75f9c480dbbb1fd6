//! Crash safety of the real binary: with `--durability sync`, every write the server
//! acknowledged survives `kill -9`, cycle after cycle, while writes are in flight:
//! acknowledged SETs are there with their values, acknowledged DELETEs stay deleted,
//! and counters hold at least their last acknowledged value.
//!
//! The test command runs 5 cycles; `bench/crash-loop.sh` runs 20 (set
//! `RIPPLEKV_CRASH_CYCLES`).

// Test helpers panic on unexpected failures; that is how a test fails.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

mod common;

use common::start;

const KEY: &str = "crash-test-key";
/// Kill cycles unless `RIPPLEKV_CRASH_CYCLES` says otherwise.
const DEFAULT_CYCLES: usize = 5;
const WRITERS: usize = 4;
/// Acknowledged writes per cycle before the kill; writers keep going meanwhile.
const ACKS_BEFORE_KILL: usize = 1000;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: SocketAddr) -> Result<Socket> {
    Ok(
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws?apiKey={KEY}"))
            .await?
            .0,
    )
}

async fn request(socket: &mut Socket, body: Value) -> Result<Value> {
    socket.send(Message::text(body.to_string())).await?;
    receive(socket).await
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

/// What writers had acknowledged: SET keys, DELETEd keys, and per counter the
/// highest value seen. A key whose DELETE was sent but not acknowledged is in neither
/// list: after a crash it may or may not exist.
#[derive(Default, Clone)]
struct Acked {
    keys: Vec<String>,
    deleted: Vec<String>,
    counters: Vec<(String, i64)>,
}

/// Writes until the connection breaks; records every acknowledged write.
async fn writer(
    addr: SocketAddr,
    name: String,
    acked: Arc<Mutex<Acked>>,
    count: Arc<AtomicUsize>,
    enough: Arc<Notify>,
) {
    let Ok(mut socket) = connect(addr).await else {
        return;
    };
    let counter = format!("{name}-counter");
    for i in 0.. {
        let key = format!("{name}-{i}");
        let Ok(reply) = request(
            &mut socket,
            json!({"op": 2, "key": key, "value": format!("value-{i}")}),
        )
        .await
        else {
            return;
        };
        assert_eq!(reply["code"], 200, "{reply}");
        acked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys
            .push(key);
        // Every third round deletes the key written just before.
        if i % 3 == 2 {
            let victim = format!("{name}-{}", i - 1);
            acked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys
                .retain(|key| *key != victim);
            let Ok(reply) = request(&mut socket, json!({"op": 4, "key": victim})).await else {
                return;
            };
            assert_eq!(reply["code"], 200, "{reply}");
            acked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .deleted
                .push(victim);
        }
        let Ok(reply) = request(&mut socket, json!({"op": 6, "key": counter, "value": 1})).await
        else {
            return;
        };
        let value = reply["newValue"].as_i64().unwrap_or_default();
        acked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counters
            .push((counter.clone(), value));
        if count.fetch_add(2, Ordering::SeqCst) + 2 >= ACKS_BEFORE_KILL {
            enough.notify_one();
        }
    }
}

async fn verify(addr: SocketAddr, acked: &Acked) -> Result<()> {
    let mut socket = connect(addr).await?;
    for key in &acked.keys {
        let reply = request(&mut socket, json!({"op": 1, "key": key})).await?;
        assert_eq!(
            reply["code"], 200,
            "acknowledged write {key} was lost: {reply}"
        );
        let suffix = key.rsplit('-').next().unwrap_or_default();
        assert_eq!(reply["value"], format!("value-{suffix}"));
    }
    for key in &acked.deleted {
        let reply = request(&mut socket, json!({"op": 1, "key": key})).await?;
        assert_eq!(
            reply["code"], 404,
            "acknowledged delete of {key} was undone: {reply}"
        );
    }
    for (counter, value) in &acked.counters {
        let reply = request(&mut socket, json!({"op": 1, "key": counter})).await?;
        let stored: i64 = reply["value"].as_str().unwrap_or("0").parse()?;
        assert!(
            stored >= *value,
            "{counter} acknowledged {value} but holds {stored}"
        );
    }
    Ok(())
}

/// True if the server said, while starting, that it applied its write-ahead log.
fn applied_the_log(startup: &[String]) -> bool {
    startup
        .iter()
        .any(|line| line.contains("applied the write-ahead log"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() -> Result<()> {
    let cycles = std::env::var("RIPPLEKV_CRASH_CYCLES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_CYCLES);
    let dir = tempfile::tempdir()?;
    let acked = Arc::new(Mutex::new(Acked::default()));
    // Starts that applied changes a kill had left only in the write-ahead log.
    let mut replays = 0;
    for cycle in 0..cycles {
        let mut server = start(dir.path()).await?;
        replays += usize::from(applied_the_log(&server.startup));
        let snapshot = acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
        verify(server.addr, &snapshot).await?;
        let count = Arc::new(AtomicUsize::new(0));
        let enough = Arc::new(Notify::new());
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                tokio::spawn(writer(
                    server.addr,
                    format!("c{cycle}-w{w}"),
                    Arc::clone(&acked),
                    Arc::clone(&count),
                    Arc::clone(&enough),
                ))
            })
            .collect();
        tokio::time::timeout(Duration::from_secs(60), enough.notified())
            .await
            .context("writers made no progress")?;
        // SIGKILL while the writers are still sending.
        server.child.kill().await?;
        for writer in writers {
            writer.await?;
        }
    }
    let mut server = start(dir.path()).await?;
    replays += usize::from(applied_the_log(&server.startup));
    // Checkpoints come every second; a kill within a second of the last one leaves
    // acknowledged writes only in the log, which is the path under test.
    assert!(
        replays > 0,
        "no start after a kill applied the write-ahead log, so its replay went untested"
    );
    let acked = acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
    verify(server.addr, &acked).await?;
    println!(
        "checked {} acknowledged SETs, {} acknowledged DELETEs and {} acknowledged ATOMICs across {cycles} kill -9 cycles",
        acked.keys.len(),
        acked.deleted.len(),
        acked.counters.len()
    );
    assert!(acked.keys.len() >= cycles * ACKS_BEFORE_KILL / 3);
    assert!(!acked.deleted.is_empty());

    // A clean SIGTERM stop logs the group-commit figures of a concurrent burst.
    let burst: Vec<_> = (0..16)
        .map(|w| {
            let addr = server.addr;
            tokio::spawn(async move {
                let mut socket = connect(addr).await?;
                for i in 0..50 {
                    request(
                        &mut socket,
                        json!({"op": 2, "key": format!("burst-{w}-{i}"), "value": "v"}),
                    )
                    .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in burst {
        task.await??;
    }
    let pid = server.child.id().context("no pid")?;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), server.child.wait()).await??;
    assert!(exit.success(), "clean shutdown must exit 0, got {exit}");
    let mut closed = None;
    while let Some(line) = server.log.recv().await {
        if line.contains("store closed") {
            closed = Some(line);
        }
    }
    let closed = closed.context("no 'store closed' line after SIGTERM")?;
    println!("group commit during an 800-write burst from 16 connections: {closed}");
    Ok(())
}

/// `--durability relaxed` may lose the last acknowledged writes to `kill -9` (they
/// were not fsynced yet), but never their revisions: after the restart no write gets a
/// revision that was handed out before, and a client resuming from one is told to
/// resync. A clean stop keeps revisions dense.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaxed_mode_never_reuses_a_revision_after_kill_9() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let relaxed = ["--api-key", KEY, "--durability", "relaxed"];
    let mut highest = 0;
    for cycle in 0..3 {
        let mut server = common::start_with(&relaxed, &[], dir.path(), "info").await?;
        let mut socket = connect(server.addr).await?;
        if cycle > 0 {
            // Resuming from the last revision handed out before the kill: resync.
            let reply = request(
                &mut socket,
                json!({"op": "subscribe", "patterns": ["elsewhere:*"], "since": highest}),
            )
            .await?;
            assert_eq!(reply["code"], 200, "{reply}");
            let notice = receive(&mut socket).await?;
            assert_eq!(notice["type"], "resync", "{notice}");
            assert!(notice["revision"].as_u64().unwrap() > highest, "{notice}");
        }
        // A burst, then SIGKILL at once: its last commits are not fsynced yet.
        for i in 0..500 {
            let reply = request(
                &mut socket,
                json!({"op": 2, "key": format!("k{i}"), "value": format!("{cycle}")}),
            )
            .await?;
            let revision = reply["revision"].as_u64().context("no revision")?;
            assert!(
                revision > highest,
                "cycle {cycle}: revision {revision} handed out again (had reached {highest})"
            );
            highest = revision;
        }
        server.child.kill().await?;
        server.child.wait().await?;
    }
    // A clean stop and start: nothing reserved is left, so revisions go on from the
    // last one.
    let mut server = common::start_with(&relaxed, &[], dir.path(), "info").await?;
    let mut socket = connect(server.addr).await?;
    let before = request(&mut socket, json!({"op": 2, "key": "clean", "value": "v"})).await?;
    let before = before["revision"].as_u64().context("no revision")?;
    assert!(before > highest);
    let pid = server.child.id().context("no pid")?;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    server.child.wait().await?;
    let server = common::start_with(&relaxed, &[], dir.path(), "info").await?;
    let mut socket = connect(server.addr).await?;
    let after = request(&mut socket, json!({"op": 2, "key": "clean", "value": "w"})).await?;
    assert_eq!(after["revision"], before + 1, "{after}");
    Ok(())
}
