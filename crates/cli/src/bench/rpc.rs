//! `rpc` and `durable`: request/reply load from many connections.
//!
//! A connection's replies come back in the order of its requests, so each connection
//! keeps a queue of send times: a reply's latency is now minus the oldest send time.
//! That also works against the echo server, which answers frames in order too. The
//! load runs on the lean client ([`super::raw`]), so the client is not the limit.

use std::collections::VecDeque;
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::raw::{self, RawSocket};
use super::report::{histogram, Report};
use super::{progress, RpcArgs, Target};

pub(super) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(super) async fn connect(url: &str) -> Result<Socket> {
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .with_context(|| format!("cannot connect to {}", url.split('?').next().unwrap_or(url)))?;
    if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = socket.get_ref() {
        tcp.set_nodelay(true)?;
    }
    Ok(socket)
}

/// A small fast generator for keys and the GET/SET choice (xorshift64*).
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn key(n: u64) -> String {
    format!("bench:{n:08}")
}

pub(super) async fn run(target: &Target, args: &RpcArgs, mode: &str) -> Result<Report> {
    let urls = target.socket_urls();
    if !args.no_populate && args.get_ratio > 0.0 {
        populate(&urls[0], args).await?;
    }
    let bar = progress(target, args.duration, mode);
    let started = Instant::now();
    let deadline = started + args.duration;
    let value = "x".repeat(args.value_size);
    let mut tasks = Vec::with_capacity(args.connections);
    for c in 0..args.connections {
        let socket = RawSocket::connect(&urls[c % urls.len()]).await?;
        let value = value.clone();
        let args = args.clone();
        tasks.push(tokio::spawn(lean_loop(socket, c, args, value, deadline)));
    }
    let ticker = tokio::spawn({
        let bar = bar.clone();
        async move {
            while Instant::now() < deadline {
                bar.set_position(started.elapsed().as_millis() as u64);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let (operations, latency) = gather(tasks).await?;
    let seconds = started.elapsed().as_secs_f64();
    ticker.abort();
    bar.finish_and_clear();
    Ok(Report {
        mode: mode.to_owned(),
        operations,
        seconds,
        latency: Some(latency),
        extra: json!({
            "connections": args.connections,
            "pipeline": args.pipeline,
            "keyspace": args.keyspace,
            "value_size": args.value_size,
            "get_ratio": args.get_ratio,
        }),
        client_cpu: None,
    })
}

/// One connection's closed loop on the lean client: `pipeline` requests in flight
/// until `deadline`, each batch of new requests written as the replies that made room
/// for them are read, with one write. Replies come in request order, so a reply's
/// latency is from the send time at the front of the queue.
async fn lean_loop(
    mut socket: RawSocket,
    connection: usize,
    args: RpcArgs,
    value: String,
    deadline: Instant,
) -> Result<Measured> {
    let mut random = Random(0x9E37_79B9_7F4A_7C15 ^ (connection as u64 + 1));
    let mut latency = histogram();
    let mut sent: VecDeque<Instant> = VecDeque::with_capacity(args.pipeline);
    let mut completed = 0u64;
    let mut request = Vec::with_capacity(64 + value.len());
    let mut push = |socket: &mut RawSocket, count: usize, sent: &mut VecDeque<Instant>| {
        let now = Instant::now();
        for _ in 0..count {
            request.clear();
            let n = random.next() % args.keyspace as u64;
            if random.unit() < args.get_ratio {
                let _ = write!(request, r#"{{"op":1,"key":"bench:{n:08}"}}"#);
            } else {
                let _ = write!(
                    request,
                    r#"{{"op":2,"key":"bench:{n:08}","value":"{value}"}}"#
                );
            }
            socket.push_text(&request);
            sent.push_back(now);
        }
    };
    push(&mut socket, args.pipeline, &mut sent);
    socket.write_pushed().await?;
    while !sent.is_empty() {
        let answered = socket.texts(check_reply).await?;
        let now = Instant::now();
        for started in sent.drain(..answered.min(sent.len())) {
            let _ = latency.record(now.duration_since(started).as_micros().max(1) as u64);
        }
        completed += answered as u64;
        if now < deadline {
            push(&mut socket, answered, &mut sent);
            socket.write_pushed().await?;
        }
    }
    Ok((completed, latency))
}

/// Fails on anything but a success reply (or, from the echo server, the request
/// itself).
fn check_reply(reply: &[u8]) -> Result<()> {
    if raw::contains(reply, b"\"code\":200") || raw::contains(reply, b"\"op\"") {
        return Ok(());
    }
    bail!("request failed: {}", String::from_utf8_lossy(reply))
}

/// Keeps `pipeline` requests in flight on one connection until `deadline`: each is
/// timed from its send to its answer, which `answered` reads (answers come in request
/// order). The requests answered, and their latencies.
pub(super) async fn closed_loop(
    socket: &mut Socket,
    pipeline: usize,
    deadline: Instant,
    mut request: impl FnMut() -> String,
    answered: impl for<'a> Fn(&'a mut Socket) -> BoxFuture<'a, Result<()>>,
) -> Result<Measured> {
    let mut latency = histogram();
    let mut sent: VecDeque<Instant> = VecDeque::with_capacity(pipeline);
    let mut completed = 0u64;
    for _ in 0..pipeline {
        sent.push_back(Instant::now());
        socket.send(Message::text(request())).await?;
    }
    while let Some(started) = sent.pop_front() {
        answered(socket).await?;
        let _ = latency.record(started.elapsed().as_micros().max(1) as u64);
        completed += 1;
        if Instant::now() < deadline {
            sent.push_back(Instant::now());
            socket.send(Message::text(request())).await?;
        }
    }
    Ok((completed, latency))
}

/// What one connection measured: requests answered, and their latencies.
pub(super) type Measured = (u64, Histogram<u64>);

/// The connections' counts and latencies, together.
pub(super) async fn gather(tasks: Vec<JoinHandle<Result<Measured>>>) -> Result<Measured> {
    let mut operations = 0;
    let mut latency = histogram();
    for task in tasks {
        let (completed, histogram) = task.await??;
        operations += completed;
        latency.add(histogram)?;
    }
    Ok((operations, latency))
}

/// Writes every key of the key space once, so GETs find values.
async fn populate(url: &str, args: &RpcArgs) -> Result<()> {
    let writers = args.connections.clamp(1, 16);
    let value = "x".repeat(args.value_size);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut socket = connect(url).await?;
        let keys: Vec<u64> = (0..args.keyspace as u64)
            .filter(|n| *n as usize % writers == w)
            .collect();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            for chunk in keys.chunks(64) {
                for n in chunk {
                    socket
                        .feed(Message::text(
                            json!({"op": 2, "key": key(*n), "value": value}).to_string(),
                        ))
                        .await?;
                }
                socket.flush().await?;
                for _ in chunk {
                    match socket.next().await {
                        Some(Ok(_)) => {}
                        _ => bail!("the server closed the connection while populating"),
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}
