//! `ripplekv bench`: a load generator for RippleKV, like `redis-benchmark`.
//!
//! Modes:
//! - `rpc`: connections each keep `--pipeline` requests in flight, a GET/SET mix over a
//!   key space; reports throughput and latency percentiles (HDR histogram).
//! - `durable`: `rpc` with SETs only, for a server running `--durability sync`.
//! - `fanout`: subscribers on one key and writers on it; measures delivery latency from
//!   the write to each subscriber, and notifications delivered per second.
//! - `idle`: opens N connections (source addresses spread over 127.0.0.x, past the
//!   ephemeral port range) and holds them, so the server's memory per connection can be
//!   read from outside.
//! - `soak`: minutes of mixed load while sampling the server's memory and descriptors.
//! - `socketio`: acknowledged verb-face GETs over socket.io (`idle --socketio` holds
//!   socket.io connections).
//!
//! It speaks raw WebSocket frames rather than going through the client library, so
//! what is measured is the server. `--json` prints one JSON object.

mod fanout;
mod idle;
mod raw;
mod report;
mod rpc;
mod soak;
mod socketio;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

/// Flags shared by every mode.
#[derive(Debug, Args, Clone)]
pub(crate) struct Target {
    /// Server base URL (any WebSocket server speaking the protocol, or the echo server).
    /// Several, comma-separated (the nodes of a cluster): connections are spread over
    /// them in turn.
    #[arg(
        long,
        env = "RIPPLEKV_URL",
        default_value = "http://127.0.0.1:3000",
        global = true
    )]
    pub url: String,
    /// API key [default: $RIPPLEKV_API_KEYS's first key, else the generated key in
    /// ./data/api-key, as for every client subcommand; none for the echo floor].
    #[arg(long, env = "RIPPLEKV_API_KEY", global = true, hide_env_values = true)]
    api_key: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Hide the progress bar.
    #[arg(long, global = true)]
    pub quiet: bool,
}

impl Target {
    /// The WebSocket URL with credentials (of the first server, when several are given).
    pub(crate) fn socket_url(&self) -> String {
        self.socket_urls().swap_remove(0)
    }

    /// The WebSocket URL with credentials of every server given, in order.
    pub(crate) fn socket_urls(&self) -> Vec<String> {
        self.url
            .split(',')
            .map(|url| self.socket_url_of(url.trim()))
            .collect()
    }

    /// The WebSocket URL with credentials of the server at `url`.
    pub(crate) fn socket_url_of(&self, url: &str) -> String {
        let base = url.trim_end_matches('/').replacen("http://", "ws://", 1);
        let base = if base.ends_with("/ws") {
            base
        } else {
            format!("{base}/ws")
        };
        format!("{base}?apiKey={}", self.api_key())
    }

    /// The key to authenticate with, found as every client subcommand finds it; empty
    /// when there is none, which the bare floors accept and RippleKV refuses with 401.
    pub(crate) fn api_key(&self) -> String {
        crate::commands::resolve_api_key(self.api_key.as_deref()).unwrap_or_default()
    }
}

/// The load shape of `rpc` and `durable`.
#[derive(Debug, Args, Clone)]
pub(crate) struct RpcArgs {
    /// Connections.
    #[arg(short = 'c', long, default_value_t = 50)]
    pub connections: usize,
    /// Requests in flight per connection.
    #[arg(short = 'P', long, default_value_t = 1)]
    pub pipeline: usize,
    /// How long to measure.
    #[arg(short = 'd', long, default_value = "10", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Distinct keys touched.
    #[arg(long, default_value_t = 10_000)]
    pub keyspace: usize,
    /// Bytes per value written.
    #[arg(long, default_value_t = 32)]
    pub value_size: usize,
    /// Share of GETs in the mix (the rest are SETs).
    #[arg(long, default_value_t = 1.0)]
    pub get_ratio: f64,
    /// Skip writing the key space before measuring.
    #[arg(long)]
    pub no_populate: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Mode {
    /// GET/SET requests from many connections.
    Rpc(RpcArgs),
    /// SETs only; run the server with --durability sync.
    Durable(RpcArgs),
    /// Writers on one key, many subscribers: notification latency and rate.
    Fanout(fanout::FanoutArgs),
    /// Open many connections and hold them.
    Idle(idle::IdleArgs),
    /// Long mixed load (RPC, subscriptions, reconnect churn) while the server's memory
    /// and descriptors are sampled; fails if either grows past a bound after warm-up.
    Soak(soak::SoakArgs),
    /// Acknowledged GETs of collection items over socket.io, from many connections.
    Socketio(socketio::SocketIoArgs),
}

/// `ripplekv bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    mode: Mode,
    #[command(flatten)]
    target: Target,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.trim_end_matches('s')
        .parse::<f64>()
        .map(Duration::from_secs_f64)
        .map_err(|_| format!("expected seconds, got {text:?}"))
}

pub(crate) fn main(args: BenchArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let target = args.target;
    let cpu_before = report::cpu_seconds();
    let wall = std::time::Instant::now();
    let outcome = runtime.block_on(async {
        match args.mode {
            Mode::Rpc(rpc) => rpc::run(&target, &rpc, "rpc").await,
            Mode::Durable(mut rpc) => {
                rpc.get_ratio = 0.0;
                rpc.no_populate = true;
                rpc::run(&target, &rpc, "durable").await
            }
            Mode::Fanout(fanout) => fanout::run(&target, &fanout).await,
            Mode::Idle(idle) => idle::run(&target, &idle).await,
            Mode::Soak(soak) => soak::run(&target, &soak).await,
            Mode::Socketio(socketio) => socketio::run(&target, &socketio).await,
        }
    });
    match outcome {
        Ok(mut report) => {
            // Over the whole run, setup included: a rough figure, but one that shows a
            // load generator using its whole core.
            report.client_cpu = cpu_before
                .zip(report::cpu_seconds())
                .map(|(before, after)| (after - before) / wall.elapsed().as_secs_f64());
            report.print(target.json);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A progress bar over `duration`, unless quiet.
pub(crate) fn progress(target: &Target, duration: Duration, label: &str) -> indicatif::ProgressBar {
    if target.quiet || target.json {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>10} [{bar:40}] {elapsed}/{duration}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(label.to_owned());
    bar
}
