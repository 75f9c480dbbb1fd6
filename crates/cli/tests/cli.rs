//! The client subcommands of the real binary against a real server: output, `--json`,
//! and exit codes.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;

use anyhow::Result;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const KEY: &str = "cli-test-key";

struct Cli {
    url: String,
}

impl Cli {
    async fn run(&self, args: &[&str]) -> Result<Output> {
        Ok(Command::new(env!("CARGO_BIN_EXE_ripplekv"))
            .args(args)
            .args(["--url", &self.url, "--api-key", KEY])
            .output()
            .await?)
    }

    /// Runs and expects success; returns stdout.
    async fn ok(&self, args: &[&str]) -> Result<String> {
        let output = self.run(args).await?;
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8(output.stdout)?)
    }

    async fn json(&self, args: &[&str]) -> Result<Value> {
        let mut args = args.to_vec();
        args.push("--json");
        Ok(serde_json::from_str(&self.ok(&args).await?)?)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_subcommand_prints_and_exits_as_documented() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = common::start(dir.path()).await?;
    let cli = Cli {
        url: format!("http://{}", server.addr),
    };

    assert_eq!(
        cli.ok(&["set", "greeting", "hello"]).await?,
        "OK (revision 1)\n"
    );
    assert_eq!(cli.ok(&["get", "greeting"]).await?, "hello\n");
    assert_eq!(
        cli.json(&["get", "greeting"]).await?,
        json!({"key": "greeting", "value": "hello", "revision": 1})
    );
    assert_eq!(
        cli.ok(&["patch", "greeting", ", world"]).await?,
        "OK (revision 2)\n"
    );
    assert_eq!(cli.ok(&["get", "greeting"]).await?, "hello, world\n");
    assert_eq!(cli.ok(&["incr", "visits"]).await?, "1\n");
    assert_eq!(
        cli.json(&["incr", "visits", "-5"]).await?,
        json!({"key": "visits", "value": -4})
    );
    assert_eq!(
        cli.ok(&["range", "a", "z"]).await?,
        "greeting\thello, world\nvisits\t-4\n"
    );
    let records = cli.json(&["range", "a", "z", "--limit", "1"]).await?;
    assert_eq!(records.as_array().unwrap().len(), 1);
    assert_eq!(
        cli.json(&["set", "temp", "x", "--ttl", "60", "--if-revision", "0"])
            .await?["revision"],
        5
    );
    assert_eq!(cli.ok(&["del", "temp"]).await?, "OK (revision 6)\n");

    // The server's errors: exit code 1 and its message on stderr.
    for (args, text) in [
        (vec!["get", "temp"], "Record not found (404)"),
        (
            vec!["set", "greeting", "x", "--if-revision", "1"],
            "Revision mismatch: key is at revision 2 (409)",
        ),
        (vec!["incr", "greeting"], "not a 64-bit integer"),
    ] {
        let output = cli.run(&args).await?;
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(text),
            "{args:?}"
        );
    }
    // An unreachable server: exit code 3.
    let nowhere = Cli {
        url: "http://127.0.0.1:9".into(),
    };
    assert_eq!(nowhere.run(&["get", "x"]).await?.status.code(), Some(3));
    // Bad usage: exit code 2 (from clap).
    assert_eq!(cli.run(&["incr"]).await?.status.code(), Some(2));

    // A token from `token` works for a WebSocket connection.
    let token = cli
        .ok(&["token", "--subscribe", "todos-*", "--access", "^todos-*$"])
        .await?;
    let url = format!("ws://{}/ws?token={}", server.addr, token.trim());
    assert!(tokio_tungstenite::connect_async(url).await.is_ok());

    server.child.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_changes_as_they_happen() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = common::start(dir.path()).await?;
    let cli = Cli {
        url: format!("http://{}", server.addr),
    };
    let mut watch = Command::new(env!("CARGO_BIN_EXE_ripplekv"))
        .args([
            "watch",
            "w:*",
            "--json",
            "--url",
            &cli.url,
            "--api-key",
            KEY,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    // It says on stderr once it is subscribed; only then is it safe to write.
    let mut stderr = BufReader::new(watch.stderr.take().unwrap()).lines();
    assert!(stderr
        .next_line()
        .await?
        .unwrap()
        .starts_with("watching w:*"));
    cli.ok(&["set", "w:1", "one"]).await?;
    cli.ok(&["set", "other", "ignored"]).await?;
    cli.ok(&["del", "w:1"]).await?;
    let mut stdout = BufReader::new(watch.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&stdout.next_line().await?.unwrap())?;
    assert_eq!(
        (
            first["op"].clone(),
            first["key"].clone(),
            first["value"].clone()
        ),
        (json!("set"), json!("w:1"), json!("one"))
    );
    let second: Value = serde_json::from_str(&stdout.next_line().await?.unwrap())?;
    assert_eq!(
        (second["op"].clone(), second["value"].clone()),
        (json!("delete"), Value::Null)
    );
    watch.kill().await?;
    server.child.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_modes_report_what_they_measured() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = common::start(dir.path()).await?;
    let cli = Cli {
        url: format!("http://{}", server.addr),
    };
    let rpc = cli
        .json(&[
            "bench",
            "rpc",
            "-c",
            "2",
            "-P",
            "4",
            "-d",
            "0.3",
            "--keyspace",
            "50",
            "--get-ratio",
            "0.5",
        ])
        .await?;
    assert_eq!(rpc["mode"], "rpc");
    assert!(rpc["operations"].as_u64().unwrap() > 0);
    let latency = &rpc["latency"];
    assert!(latency["p50_us"].as_u64().unwrap() <= latency["p99_us"].as_u64().unwrap());
    assert!(latency["p99_us"].as_u64().unwrap() <= latency["max_us"].as_u64().unwrap());
    let durable = cli
        .json(&["bench", "durable", "-c", "2", "-d", "0.3"])
        .await?;
    assert!(durable["operations"].as_u64().unwrap() > 0);
    let fanout = cli
        .json(&["bench", "fanout", "-s", "5", "-r", "50", "-d", "0.3"])
        .await?;
    let writes = fanout["extra"]["writes"].as_u64().unwrap();
    assert!(writes > 0);
    assert_eq!(
        fanout["operations"].as_u64().unwrap(),
        writes * 5,
        "every subscriber got every write"
    );
    let idle = cli
        .json(&["bench", "idle", "-n", "20", "--hold", "0.1"])
        .await?;
    assert_eq!(idle["operations"], 20);
    server.child.kill().await?;
    Ok(())
}
