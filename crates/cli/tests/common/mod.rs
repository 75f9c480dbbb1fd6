//! Shared by the binary's integration tests: start the real `ripplekv` server.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A running `ripplekv` process and the lines it has logged.
pub(crate) struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// Not every test reads the log.
    #[allow(dead_code)]
    pub log: mpsc::UnboundedReceiver<String>,
    /// What it logged up to and including the line saying where it listens.
    #[allow(dead_code)]
    pub startup: Vec<String>,
}

/// Starts the real binary on a free port with `data_dir` and `KEY` as its only API key.
// Each test binary compiles this module; not every one uses every function.
#[allow(dead_code)]
pub(crate) async fn start(data_dir: &Path) -> Result<Server> {
    start_logging(data_dir, "info").await
}

/// [`start`] with `RUST_LOG` set to `filter`.
pub(crate) async fn start_logging(data_dir: &Path, filter: &str) -> Result<Server> {
    start_with(
        &["--api-key", super::KEY, "--durability", "sync"],
        &[],
        data_dir,
        filter,
    )
    .await
}

#[allow(dead_code)]
/// Starts the real binary as a server on a free port with `data_dir`, the extra serve
/// `flags` and environment `env`, and waits until it says where it listens.
pub(crate) async fn start_with(
    flags: &[&str],
    env: &[(&str, &str)],
    data_dir: &Path,
    filter: &str,
) -> Result<Server> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ripplekv"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(flags)
        .envs(env.iter().copied())
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", filter)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (lines, mut log) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut startup = Vec::new();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = log.recv().await {
            let listening = line
                .split("listening on http://")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::parse::<SocketAddr>);
            startup.push(line);
            if listening.is_some() {
                return listening;
            }
        }
        None
    })
    .await
    .context("server did not start in time")?
    .ok_or_else(|| anyhow!("server exited before listening"))??;
    Ok(Server {
        child,
        addr,
        log,
        startup,
    })
}
