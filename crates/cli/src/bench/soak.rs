//! `soak`: long mixed load while the server's memory and descriptors are sampled.
//!
//! Three kinds of load run together for `--duration`:
//! - RPC connections doing SET, GET, PATCH, DELETE and ATOMIC over a bounded key space;
//! - subscribers, each watching a prefix of that key space and draining notifications;
//! - churn: connections that open, subscribe with `since`, make a request and close,
//!   over and over, so connection setup and teardown are exercised all along.
//!
//! Every `--sample-every`, the server's resident memory (VmRSS) and open descriptors
//! are read from `/proc/PID`. After `--warmup`, neither may grow beyond the warm-up
//! peak by more than the stated bounds: memory by `--rss-slack-mib` plus
//! `--rss-slack-percent`, descriptors by `--fd-slack`. A breach fails the run. The key
//! space is bounded, so a server that does not leak reaches a steady state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use futures_util::StreamExt;
use ripplekv_client::{Auth, Client};
use serde_json::json;

use super::report::Report;
use super::{parse_seconds, Target};

#[derive(Debug, Args, Clone)]
pub(crate) struct SoakArgs {
    /// The server's process id, whose memory and descriptors are sampled.
    #[arg(long)]
    pub pid: u32,
    /// How long to run.
    #[arg(short = 'd', long, default_value = "600", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Samples taken before this are the baseline.
    #[arg(long, default_value = "60", value_parser = parse_seconds)]
    pub warmup: Duration,
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub sample_every: Duration,
    /// Connections making requests.
    #[arg(long, default_value_t = 16)]
    pub rpc_connections: usize,
    /// Subscribed connections.
    #[arg(long, default_value_t = 32)]
    pub subscribers: usize,
    /// Tasks opening and closing connections in a loop.
    #[arg(long, default_value_t = 4)]
    pub churn: usize,
    /// Distinct keys written.
    #[arg(long, default_value_t = 2000)]
    pub keyspace: usize,
    /// Memory allowed above the warm-up peak, in MiB ...
    #[arg(long, default_value_t = 16)]
    pub rss_slack_mib: u64,
    /// ... plus this share of the warm-up peak.
    #[arg(long, default_value_t = 20)]
    pub rss_slack_percent: u64,
    /// Descriptors allowed above the warm-up peak.
    #[arg(long, default_value_t = 64)]
    pub fd_slack: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    notifications: AtomicU64,
    reconnects: AtomicU64,
}

/// One reading of the server process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_seconds: f64,
    rss_kib: u64,
    fds: u64,
}

fn sample(pid: u32, started: Instant) -> Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status: is the server running?"))?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .context("no VmRSS line")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    Ok(Sample {
        at_seconds: started.elapsed().as_secs_f64(),
        rss_kib,
        fds,
    })
}

pub(super) async fn run(target: &Target, args: &SoakArgs) -> Result<Report> {
    let counters = Arc::new(Counters::default());
    let url = target.url.clone();
    let auth = Auth::ApiKey(target.api_key());
    let mut tasks = Vec::new();
    for worker in 0..args.rpc_connections {
        let client = Client::connect(&url, auth.clone()).await?;
        tasks.push(tokio::spawn(rpc_loop(
            client,
            worker,
            args.keyspace,
            Arc::clone(&counters),
        )));
    }
    for watcher in 0..args.subscribers {
        let client = Client::connect(&url, auth.clone()).await?;
        let prefix = format!("soak:{}", watcher % 10);
        tasks.push(tokio::spawn(subscribe_loop(
            client,
            prefix,
            Arc::clone(&counters),
        )));
    }
    for _ in 0..args.churn {
        let (url, auth) = (url.clone(), auth.clone());
        tasks.push(tokio::spawn(churn_loop(url, auth, Arc::clone(&counters))));
    }

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut ticks = tokio::time::interval(args.sample_every);
    while started.elapsed() < args.duration {
        ticks.tick().await;
        let reading = sample(args.pid, started)?;
        eprintln!(
            "t={:>5.0}s rss={:>7.1} MiB fds={:>5} requests={} notifications={} reconnects={}",
            reading.at_seconds,
            reading.rss_kib as f64 / 1024.0,
            reading.fds,
            counters.requests.load(Ordering::Relaxed),
            counters.notifications.load(Ordering::Relaxed),
            counters.reconnects.load(Ordering::Relaxed),
        );
        samples.push(reading);
    }
    for task in &tasks {
        task.abort();
    }
    let seconds = started.elapsed().as_secs_f64();
    let warm = |s: &&Sample| s.at_seconds <= args.warmup.as_secs_f64();
    let (warm_rss, warm_fds) = samples
        .iter()
        .filter(warm)
        .fold((0, 0), |(rss, fds), s| (rss.max(s.rss_kib), fds.max(s.fds)));
    let after: Vec<&Sample> = samples.iter().filter(|s| !warm(s)).collect();
    if warm_rss == 0 || after.is_empty() {
        bail!("the run is too short: it needs samples both within and after the warm-up");
    }
    let rss_bound = warm_rss + args.rss_slack_mib * 1024 + warm_rss * args.rss_slack_percent / 100;
    let fd_bound = warm_fds + args.fd_slack;
    let peak_rss = after.iter().map(|s| s.rss_kib).max().unwrap_or_default();
    let peak_fds = after.iter().map(|s| s.fds).max().unwrap_or_default();
    let last = after.last().map_or(0, |s| s.rss_kib);
    let passed = peak_rss <= rss_bound && peak_fds <= fd_bound;
    let mib = |kib: u64| (kib as f64 / 1024.0 * 10.0).round() / 10.0;
    let report = Report {
        mode: "soak".into(),
        operations: counters.requests.load(Ordering::Relaxed),
        seconds,
        latency: None,
        extra: json!({
            "passed": passed,
            "samples": samples.len(),
            "warmup_peak_rss_mib": mib(warm_rss),
            "peak_rss_mib_after_warmup": mib(peak_rss),
            "final_rss_mib": mib(last),
            "rss_bound_mib": mib(rss_bound),
            "warmup_peak_fds": warm_fds,
            "peak_fds_after_warmup": peak_fds,
            "fd_bound": fd_bound,
            "notifications": counters.notifications.load(Ordering::Relaxed),
            "reconnects": counters.reconnects.load(Ordering::Relaxed),
        }),
        client_cpu: None,
    };
    if !passed {
        report.print(target.json);
        bail!(
            "soak failed: peak RSS {} MiB (bound {}) or descriptors {peak_fds} (bound {fd_bound}) grew past the warm-up",
            mib(peak_rss),
            mib(rss_bound)
        );
    }
    Ok(report)
}

/// A mix of every operation over the key space; errors other than "not found" stop it.
async fn rpc_loop(client: Client, worker: usize, keyspace: usize, counters: Arc<Counters>) {
    let mut n = worker;
    loop {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = format!("soak:{}", (n >> 33) % keyspace);
        let outcome = match (n >> 20) % 10 {
            0..=3 => client.get(&key).await.map(drop),
            4..=6 => client.set(&key, &"v".repeat(64)).await.map(drop),
            7 => client.patch(&key, "+").await.map(drop),
            8 => client.delete(&key).await.map(drop),
            _ => client.atomic(&format!("{key}:n"), 1).await.map(drop),
        };
        match outcome {
            Ok(()) => {}
            Err(err) if err.code() == Some(404) || err.code() == Some(400) => {}
            Err(_) => return,
        }
        counters.requests.fetch_add(1, Ordering::Relaxed);
    }
}

async fn subscribe_loop(client: Client, prefix: String, counters: Arc<Counters>) {
    let Ok(mut changes) = client.subscribe([format!("{prefix}*")]).await else {
        return;
    };
    while changes.next().await.is_some() {
        counters.notifications.fetch_add(1, Ordering::Relaxed);
    }
}

async fn churn_loop(url: String, auth: Auth, counters: Arc<Counters>) {
    loop {
        let Ok(client) = Client::connect(&url, auth.clone()).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if let Ok(changes) = client.subscribe(["soak:1*"]).await {
            let _ = client.get("soak:1").await;
            drop(changes);
        }
        drop(client);
        counters.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}
