//! The Dockerfile and the systemd unit describe a server that really starts.
//!
//! Building the image needs a Docker daemon and its base images, which a test cannot
//! count on (`scripts/test.sh` builds it where Docker is available). What can be checked
//! anywhere is checked here: the image is multi-stage, runs as a non-root user with its
//! data in a volume and a healthcheck; the command line, environment and healthcheck it
//! declares, run with this build's binary, serve and report healthy; the unit's
//! `ExecStart` flags are accepted and its paths and timeouts agree with each other.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use anyhow::{Context, Result};
use tokio::process::Command;

const KEY: &str = "packaging-test-key";

fn repository_file(name: &str) -> Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// The Dockerfile's instructions, continuation lines joined: (INSTRUCTION, arguments).
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    joined
        .into_iter()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (instruction, arguments) = line.split_once(' ').unwrap_or((&line, ""));
            (instruction.to_uppercase(), arguments.trim().to_owned())
        })
        .collect()
}

/// An exec-form array (`["a", "b"]`).
fn exec_form(arguments: &str) -> Result<Vec<String>> {
    serde_json::from_str(arguments).with_context(|| format!("not an exec form: {arguments}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_a_non_root_server_whose_healthcheck_passes() -> Result<()> {
    let all = instructions(&repository_file("Dockerfile")?);
    let stages = all.iter().filter(|(name, _)| name == "FROM").count();
    assert!(
        stages >= 2,
        "a build stage and a runtime stage, got {stages}"
    );
    // Everything below is about the runtime stage: what follows the last FROM.
    let last_from = all.iter().rposition(|(name, _)| name == "FROM").unwrap();
    let runtime = &all[last_from..];
    let one = |instruction: &str| -> Result<&str> {
        runtime
            .iter()
            .rev()
            .find(|(name, _)| name == instruction)
            .map(|(_, arguments)| arguments.as_str())
            .with_context(|| format!("no {instruction} in the runtime stage"))
    };
    let user = one("USER")?.split(':').next().unwrap_or_default();
    let uid: u32 = user.parse().context("USER should be a numeric uid")?;
    assert_ne!(uid, 0, "the server must not run as root");
    assert!(
        one("COPY")?.starts_with("--from="),
        "the binary comes from the build stage"
    );
    let env: Vec<(String, String)> = one("ENV")?
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    let env_value = |name: &str| {
        env.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .with_context(|| format!("ENV sets no {name}"))
    };
    let data_dir = env_value("RIPPLEKV_DATA_DIR")?;
    assert!(
        one("VOLUME")?
            .split_whitespace()
            .any(|volume| volume == data_dir),
        "the data directory {data_dir} is a volume"
    );
    let listen = env_value("RIPPLEKV_LISTEN")?;
    let port = listen.rsplit(':').next().unwrap();
    assert!(
        listen.starts_with("0.0.0.0:"),
        "reachable from outside the container"
    );
    assert_eq!(one("EXPOSE")?, port);

    // The container's command, with this build's binary, a temporary data directory and
    // a free port instead of the image's.
    let entrypoint = exec_form(one("ENTRYPOINT")?)?;
    let cmd = exec_form(one("CMD")?)?;
    assert_eq!(entrypoint, ["ripplekv"]);
    let dir = tempfile::tempdir()?;
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let mut server = common::start_with(
        &args[1..],
        &[
            ("RIPPLEKV_DATA_DIR", dir.path().to_str().unwrap()),
            ("RIPPLEKV_API_KEY", KEY),
        ],
        dir.path(),
        "info",
    )
    .await?;
    assert_eq!(args[0], "serve");

    // HEALTHCHECK [options] CMD ["ripplekv", "health", "--url", URL]
    let healthcheck = one("HEALTHCHECK")?;
    let (_, command) = healthcheck
        .split_once("CMD ")
        .context("HEALTHCHECK without CMD")?;
    let command = exec_form(command)?;
    assert_eq!(command[..2], ["ripplekv", "health"]);
    let image_url = format!("http://127.0.0.1:{port}");
    let url = format!("http://{}", server.addr);
    let health = |url: String| {
        let args: Vec<String> = command[1..]
            .iter()
            .map(|arg| {
                if *arg == image_url {
                    url.clone()
                } else {
                    arg.clone()
                }
            })
            .collect();
        async move {
            Command::new(env!("CARGO_BIN_EXE_ripplekv"))
                .args(&args)
                .output()
                .await
        }
    };
    let healthy = health(url.clone()).await?;
    assert!(
        healthy.status.success(),
        "{}",
        String::from_utf8_lossy(&healthy.stderr)
    );
    server.child.kill().await?;
    server.child.wait().await?;
    assert!(
        !health(url).await?.status.success(),
        "healthy with no server"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_systemd_unit_starts_the_server_it_describes() -> Result<()> {
    let unit = repository_file("deploy/ripplekv.service")?;
    let setting = |name: &str| -> Result<String> {
        unit.lines()
            .filter_map(|line| line.trim().strip_prefix(&format!("{name}=")))
            .next_back()
            .map(str::to_owned)
            .with_context(|| format!("the unit sets no {name}="))
    };
    let user = setting("User")?;
    assert!(!user.is_empty() && user != "root", "User={user}");
    let exec = setting("ExecStart")?;
    let mut words = exec.split_whitespace();
    assert!(words.next().unwrap().ends_with("/ripplekv"));
    let args: Vec<&str> = words.collect();
    let data_dir_at = args
        .iter()
        .position(|arg| *arg == "--data-dir")
        .context("ExecStart names the data directory")?;
    let data_dir = args[data_dir_at + 1];
    assert_eq!(
        data_dir,
        format!("/var/lib/{}", setting("StateDirectory")?),
        "the data directory is the state directory systemd creates"
    );
    assert!(setting("ReadWritePaths")?
        .split_whitespace()
        .any(|path| path == data_dir));
    // The server's shutdown waits up to 10 s for sessions, then flushes the store.
    let stop_timeout: u64 = setting("TimeoutStopSec")?.parse()?;
    assert!(stop_timeout > 10, "TimeoutStopSec={stop_timeout}");

    // Its flags, with a temporary data directory, start a server.
    let dir = tempfile::tempdir()?;
    let mut flags: Vec<&str> = args.clone();
    flags.drain(data_dir_at..data_dir_at + 2);
    assert_eq!(flags.first(), Some(&"serve"));
    let mut server = common::start_with(
        &flags[1..],
        &[("RIPPLEKV_API_KEY", KEY)],
        dir.path(),
        "info",
    )
    .await?;
    server.child.kill().await?;
    Ok(())
}
