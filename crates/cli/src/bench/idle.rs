//! `idle`: open many WebSocket connections and hold them open.
//!
//! Source addresses are spread over 127.0.0.1, 127.0.0.2, … so more connections than one
//! address's ephemeral ports can be opened. While holding, it prints a line saying so,
//! which a script waits for before reading the server's memory.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use futures_util::StreamExt;
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};

use super::report::Report;
use super::{parse_seconds, Target};

/// Connections one source address is given (below the ephemeral port range's size).
const PER_SOURCE: usize = 25_000;
/// Connections being opened at once.
const OPENING: usize = 256;
/// Longest wait for one connection's WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Args, Clone)]
pub(crate) struct IdleArgs {
    /// Connections to open.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    pub connections: usize,
    /// How long to hold them once all are open (with --socketio, keep it under the
    /// server's 25 s ping interval: held connections do not answer pings).
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub hold: Duration,
    /// Hold socket.io connections (handshake and namespace connect) instead of `/ws`.
    #[arg(long)]
    pub socketio: bool,
}

/// Connects the `n`th connection from its share of 127.0.0.x. A source whose ports are
/// still held (in TIME_WAIT from an earlier run, say) gives "address in use": the next
/// addresses are tried in turn. 127.0.0.1 is left to other load.
async fn connect_from_spare_source(server: SocketAddr, n: usize) -> Result<TcpStream> {
    let first = n / PER_SOURCE;
    let mut last_error = None;
    for attempt in 0..8 {
        let source = Ipv4Addr::new(127, 0, 0, 2 + ((first + attempt * 29) % 250) as u8);
        let socket = TcpSocket::new_v4()?;
        let connected = match socket.bind(SocketAddr::new(IpAddr::V4(source), 0)) {
            Ok(()) => socket.connect(server).await,
            Err(err) => Err(err),
        };
        match connected {
            Ok(tcp) => return Ok(tcp),
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => last_error = Some(err),
            Err(err) => return Err(err.into()),
        }
    }
    Err(last_error.map_or_else(|| anyhow::anyhow!("no source address"), Into::into))
}

pub(super) async fn run(target: &Target, args: &IdleArgs) -> Result<Report> {
    let url = if args.socketio {
        super::socketio::endpoint(target.url.split(',').next().unwrap_or_default())
    } else {
        target.socket_url()
    };
    let (socketio, api_key) = (args.socketio, target.api_key());
    let server: SocketAddr = tokio::net::lookup_host(
        target
            .url
            .trim_start_matches("http://")
            .trim_start_matches("ws://")
            .trim_end_matches('/')
            .trim_end_matches("/ws"),
    )
    .await?
    .next()
    .context("cannot resolve the server address")?;
    let started = Instant::now();
    let opened = futures_util::stream::iter(0..args.connections)
        .map(|n| {
            let url = url.clone();
            let api_key = api_key.clone();
            let open = async move {
                let tcp = connect_from_spare_source(server, n).await?;
                let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await?;
                if socketio {
                    super::socketio::handshake(&mut ws, &api_key).await?;
                }
                anyhow::Ok(ws)
            };
            // A server out of file descriptors leaves handshakes hanging: give up on them.
            async move {
                tokio::time::timeout(HANDSHAKE_TIMEOUT, open)
                    .await
                    .unwrap_or_else(|_| {
                        Err(anyhow::anyhow!("no handshake within {HANDSHAKE_TIMEOUT:?}"))
                    })
            }
        })
        .buffer_unordered(OPENING)
        .collect::<Vec<_>>()
        .await;
    let open_seconds = started.elapsed().as_secs_f64();
    let failed = opened.iter().filter(|result| result.is_err()).count();
    let first_error = opened
        .iter()
        .find_map(|result| result.as_ref().err().map(|e| format!("{e:#}")));
    let sockets: Vec<_> = opened.into_iter().filter_map(Result::ok).collect();
    eprintln!(
        "holding {} connections for {:.0} s",
        sockets.len(),
        args.hold.as_secs_f64()
    );
    tokio::time::sleep(args.hold).await;
    let held = sockets.len();
    drop(sockets);
    Ok(Report {
        mode: "idle".into(),
        operations: held as u64,
        seconds: open_seconds,
        latency: None,
        extra: json!({"requested": args.connections, "failed": failed, "first_error": first_error}),
        client_cpu: None,
    })
}
