//! `socketio`: acknowledged verb-face GETs from many socket.io connections, for the
//! collections face's figure next to `rpc` on `/ws`. It speaks socket.io's wire itself
//! (engine.io v4 over WebSocket: `40` connects the namespace, `42<id>[…]` is an event
//! with an ack id, `43<id>[…]` its ack, `2`/`3` ping and pong), as socket.io-client
//! does, so the load generator is not the limit.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::report::Report;
use super::rpc::{closed_loop, gather, Socket};
use super::{parse_seconds, progress, Target};

/// The collection the benchmark reads.
const COLLECTION: &str = "bench";

#[derive(Debug, Args, Clone)]
pub(crate) struct SocketIoArgs {
    /// Connections.
    #[arg(short = 'c', long, default_value_t = 50)]
    pub connections: usize,
    /// Requests in flight per connection.
    #[arg(short = 'P', long, default_value_t = 1)]
    pub pipeline: usize,
    /// How long to measure.
    #[arg(short = 'd', long, default_value = "10", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Distinct items read.
    #[arg(long, default_value_t = 1000)]
    pub keyspace: usize,
}

/// The socket.io endpoint of a server base URL.
pub(super) fn endpoint(url: &str) -> String {
    let base = url.trim_end_matches('/').replacen("http://", "ws://", 1);
    format!("{base}/socket.io/?EIO=4&transport=websocket")
}

/// Connects the namespace `/` on an open engine.io WebSocket, with no events asked for.
pub(super) async fn handshake<S>(socket: &mut S, api_key: &str) -> Result<()>
where
    S: futures_util::Stream<Item = Result<Message, WsError>>
        + futures_util::Sink<Message, Error = WsError>
        + Unpin,
{
    let mut sent = false;
    while let Some(frame) = socket.next().await {
        let Message::Text(text) = frame? else {
            continue;
        };
        if text.starts_with("0{") && !sent {
            let auth = json!({"apiKey": api_key, "collections": []});
            socket.send(Message::text(format!("40{auth}"))).await?;
            sent = true;
        } else if text.starts_with("40") {
            return Ok(());
        } else if text.starts_with("44") {
            bail!("socket.io connect refused: {}", text.as_str());
        }
    }
    bail!("the server closed the connection during the socket.io handshake")
}

async fn open(url: &str, api_key: &str) -> Result<Socket> {
    let mut socket = super::rpc::connect(url).await?;
    handshake(&mut socket, api_key)
        .await
        .context("socket.io handshake")?;
    Ok(socket)
}

fn item(n: u64) -> String {
    format!("i{n:06}")
}

/// Reads the next ack (answering pings on the way): true when it is a success.
async fn next_ack(socket: &mut Socket) -> Result<bool> {
    while let Some(frame) = socket.next().await {
        let Message::Text(text) = frame? else {
            continue;
        };
        if text.as_str() == "2" {
            socket.send(Message::text("3")).await?;
            continue;
        }
        if let Some(rest) = text.strip_prefix("43") {
            let payload = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            return Ok(!payload.starts_with("[null"));
        }
    }
    bail!("the server closed the connection")
}

pub(super) async fn run(target: &Target, args: &SocketIoArgs) -> Result<Report> {
    let urls: Vec<String> = target
        .url
        .split(',')
        .map(|url| endpoint(url.trim()))
        .collect();
    let api_key = target.api_key();
    populate(&urls[0], &api_key, args.keyspace).await?;
    let bar = progress(target, args.duration, "socketio");
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut tasks = Vec::with_capacity(args.connections);
    for c in 0..args.connections {
        let mut socket = open(&urls[c % urls.len()], &api_key).await?;
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            let mut ack_id = 0u64;
            let request = move || {
                ack_id += 1;
                let n = (ack_id * 7919 + c as u64) % args.keyspace as u64;
                format!("42{ack_id}{}", json!(["GET", COLLECTION, item(n)]))
            };
            let outcome = closed_loop(&mut socket, args.pipeline, deadline, request, |socket| {
                Box::pin(async move {
                    if next_ack(socket).await? {
                        Ok(())
                    } else {
                        bail!("a GET failed")
                    }
                })
            })
            .await;
            let _ = socket.close(None).await;
            outcome
        }));
    }
    let (operations, latency) = gather(tasks).await?;
    bar.finish_and_clear();
    Ok(Report {
        mode: "socketio".into(),
        operations,
        seconds: started.elapsed().as_secs_f64(),
        latency: Some(latency),
        extra: json!({
            "connections": args.connections,
            "pipeline": args.pipeline,
            "keyspace": args.keyspace,
        }),
        client_cpu: None,
    })
}

/// Writes every item once (PUT with upsert, 64 in flight), so GETs find them.
async fn populate(url: &str, api_key: &str, keyspace: usize) -> Result<()> {
    let mut socket = open(url, api_key).await?;
    let mut ack_id = 0u64;
    for chunk in (0..keyspace as u64).collect::<Vec<_>>().chunks(64) {
        for n in chunk {
            ack_id += 1;
            let document = json!({"id": item(*n), "v": "x".repeat(32)});
            let event = json!(["PUT", COLLECTION, document, {"upsert": true}]);
            socket
                .feed(Message::text(format!("42{ack_id}{event}")))
                .await?;
        }
        socket.flush().await?;
        for _ in chunk {
            if !next_ack(&mut socket).await? {
                bail!("populating the collection failed");
            }
        }
    }
    let _ = socket.close(None).await;
    Ok(())
}
