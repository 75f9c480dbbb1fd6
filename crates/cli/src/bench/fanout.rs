//! `fanout`: many subscribers on one key, writers on it; delivery latency and rate.
//!
//! Each written value starts with its send time (microseconds since the Unix epoch);
//! each subscriber computes the delivery latency on arrival. Load generator and server
//! share the machine's clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

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
    for _ in 0..args.subscribers {
        let mut socket = connect(&url).await?;
        socket
            .send(Message::text(
                json!({"op": "subscribe", "patterns": [KEY]}).to_string(),
            ))
            .await?;
        match socket.next().await {
            Some(Ok(Message::Text(ack))) if ack.as_str().contains("\"code\":200") => {}
            other => bail!("subscribe failed: {other:?}"),
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
                let frame = tokio::select! {
                    _ = stop.changed() => break,
                    frame = socket.next() => frame,
                };
                let Some(Ok(Message::Text(text))) = frame else {
                    break;
                };
                // The load generator must not be the bottleneck: read the stamp straight
                // from the frame instead of parsing 10k copies of it into JSON values.
                let Some(sent) = sent_stamp(text.as_str()) else {
                    continue;
                };
                let _ = latency.record(now_micros().saturating_sub(sent).max(1));
                delivered.fetch_add(1, Ordering::Relaxed);
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
                writer.send(Message::text(request.to_string())).await?;
                match writer.next().await {
                    Some(Ok(_)) => writes += 1,
                    _ => bail!("the writer's connection closed"),
                }
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
    // Wait for the last notifications to arrive (at most 10 s).
    let expected = writes * args.subscribers as u64;
    let drain = Instant::now();
    while delivered.load(Ordering::Relaxed) < expected && drain.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
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
    })
}
