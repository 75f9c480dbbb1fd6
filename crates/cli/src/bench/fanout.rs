//! `fanout`: many subscribers on one key, writers on it; delivery latency and rate.
//!
//! Each written value starts with its send time (microseconds since the Unix epoch);
//! each subscriber computes the delivery latency on arrival. Load generator and server
//! share the machine's clock. Subscribers read on the lean client ([`super::raw`]).
//! With `--broadcast` the same load drives the bare broadcast floor
//! (`ripplekv-broadcast`), which sends every frame it gets to every connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::raw::{self, RawSocket};
use super::report::{histogram, Report};
use super::rpc::connect;
use super::{parse_seconds, progress, Target};

const KEY: &str = "bench:fanout";

#[derive(Debug, Args, Clone)]
pub(crate) struct FanoutArgs {
    /// Subscribers on the key.
    #[arg(short = 's', long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Writes per second, in total.
    #[arg(short = 'r', long, default_value_t = 100)]
    pub rate: u64,
    /// Connections writing, each at its share of the rate with one write in flight
    /// (more keep the rate when a write takes longer than the interval).
    #[arg(short = 'w', long, default_value_t = 1)]
    pub writers: usize,
    /// How long to write.
    #[arg(short = 'd', long, default_value = "10", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Bytes per value (at least the timestamp).
    #[arg(long, default_value_t = 32)]
    pub value_size: usize,
    /// Write through this server instead (another node of a cluster): the latency is
    /// then from a commit on one node to the notification from another [default: --url].
    #[arg(long, value_name = "URL")]
    pub write_url: Option<String>,
    /// The server is the bare broadcast floor (`ripplekv-broadcast`): subscribers do
    /// not subscribe, and a write is answered by its own frame coming back.
    #[arg(long)]
    pub broadcast: bool,
}

/// The send time at the start of a notification's value: `"value":"<micros>:…"`.
fn sent_stamp(frame: &str) -> Option<u64> {
    let start = frame.find("\"value\":\"")? + 9;
    let digits = &frame[start..];
    let end = digits.find(':')?;
    digits[..end].parse().ok()
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

pub(super) async fn run(target: &Target, args: &FanoutArgs) -> Result<Report> {
    let url = target.socket_url();
    let delivered = Arc::new(AtomicU64::new(0));
    let mut subscribers = Vec::with_capacity(args.subscribers);
    let subscribe = json!({"op": "subscribe", "patterns": [KEY]}).to_string();
    for _ in 0..args.subscribers {
        let mut socket = RawSocket::connect(&url).await?;
        if !args.broadcast {
            socket.push_text(subscribe.as_bytes());
            socket.write_pushed().await?;
            socket
                .texts(|ack| {
                    if raw::contains(ack, b"\"code\":200") {
                        Ok(())
                    } else {
                        bail!("subscribe failed: {}", String::from_utf8_lossy(ack))
                    }
                })
                .await?;
        }
        subscribers.push(socket);
    }
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    for mut socket in subscribers {
        let delivered = Arc::clone(&delivered);
        let mut stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let mut latency = histogram();
            loop {
                // The load generator must not be the bottleneck: every frame already
                // read is taken at once, and the stamp read straight from its bytes
                // instead of parsing 10k copies of it into JSON values.
                let read = socket.texts(|frame| {
                    if let Some(sent) = std::str::from_utf8(frame).ok().and_then(sent_stamp) {
                        let _ = latency.record(now_micros().saturating_sub(sent).max(1));
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                });
                tokio::select! {
                    _ = stop.changed() => break,
                    read = read => if read.is_err() { break },
                }
            }
            latency
        }));
    }
    let bar = progress(target, args.duration, "fanout");
    let write_url = args
        .write_url
        .as_deref()
        .map_or_else(|| url.clone(), |base| target.socket_url_of(base));
    let writers = args.writers.max(1);
    let started = Instant::now();
    let mut writing = Vec::with_capacity(writers);
    for _ in 0..writers {
        let mut writer = connect(&write_url).await?;
        let args = args.clone();
        let broadcast = args.broadcast;
        writing.push(tokio::spawn(async move {
            let interval = Duration::from_secs_f64(writers as f64 / args.rate.max(1) as f64);
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut writes = 0u64;
            while started.elapsed() < args.duration {
                ticks.tick().await;
                let stamp = now_micros().to_string();
                let padding = "x".repeat(args.value_size.saturating_sub(stamp.len() + 1));
                let request = json!({"op": 2, "key": KEY, "value": format!("{stamp}:{padding}")});
                let request = request.to_string();
                writer.send(Message::text(request.clone())).await?;
                // RippleKV answers the write; the broadcast floor sends every writer's
                // frames to every connection, and a writer's answer is its own frame
                // coming back, so each writer keeps one write in flight either way.
                loop {
                    match writer.next().await {
                        Some(Ok(Message::Text(text))) if !broadcast || text.as_str() == request => {
                            break
                        }
                        Some(Ok(_)) => {}
                        _ => bail!("the writer's connection closed"),
                    }
                }
                writes += 1;
            }
            anyhow::Ok(writes)
        }));
    }
    while started.elapsed() < args.duration {
        bar.set_position(started.elapsed().as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut writes = 0u64;
    for writer in writing {
        writes += writer.await??;
    }
    let writing_seconds = started.elapsed().as_secs_f64();
    // Wait for the last notifications to arrive: until all are in, or none has come
    // for a second (a floor that drops frames under overload never gets them all),
    // or 10 s have passed. The rate runs to the last arrival.
    let expected = writes * args.subscribers as u64;
    let drain = Instant::now();
    let (mut seen, mut last_arrival) = (delivered.load(Ordering::Relaxed), Instant::now());
    while seen < expected
        && last_arrival.elapsed() < Duration::from_secs(1)
        && drain.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = delivered.load(Ordering::Relaxed);
        if now != seen {
            (seen, last_arrival) = (now, Instant::now());
        }
    }
    let seconds = last_arrival.duration_since(started).as_secs_f64();
    let _ = stop_tx.send(true);
    let mut latency = histogram();
    for reader in readers {
        latency.add(reader.await?)?;
    }
    bar.finish_and_clear();
    let operations = delivered.load(Ordering::Relaxed);
    Ok(Report {
        mode: "fanout".into(),
        operations,
        seconds,
        latency: Some(latency),
        extra: json!({
            "subscribers": args.subscribers,
            "cross_node": args.write_url.is_some(),
            "writers": writers,
            "writes_per_second": writes as f64 / writing_seconds,
            "writes": writes,
            "expected_deliveries": expected,
            "lost": expected.saturating_sub(operations),
        }),
        client_cpu: None,
    })
}
