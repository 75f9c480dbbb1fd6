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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_exit_4_with_their_own_message() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = common::start(dir.path()).await?;
    let url = format!("http://{}", server.addr);
    let backup = dir.path().join("backup.jsonl");
    let backup = backup.to_str().unwrap();
    for args in [
        vec!["get", "k"],
        vec!["token", "--access", "k"],
        vec!["backup", backup],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_ripplekv"))
            .args(&args)
            .args(["--url", &url, "--api-key", "not-the-key"])
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(4), "{args:?}: {stderr}");
        assert!(
            stderr.contains("authentication refused (401): Invalid API key"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("cannot connect"), "{args:?}: {stderr}");
    }
    // No key anywhere: the same exit code, and the message says where it looked.
    let empty = tempfile::tempdir()?;
    let output = Command::new(env!("CARGO_BIN_EXE_ripplekv"))
        .args(["get", "k", "--url", &url])
        .current_dir(empty.path())
        .env_remove("RIPPLEKV_API_KEY")
        .env_remove("RIPPLEKV_API_KEYS")
        .env_remove("RIPPLEKV_DATA_DIR")
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("no API key found"), "{stderr}");
    assert!(!backup_exists(backup), "a refused backup left a file");
    server.child.kill().await?;
    Ok(())
}

fn backup_exists(path: &str) -> bool {
    std::path::Path::new(path).exists() || std::path::Path::new(&format!("{path}.partial")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_exits_0_when_serving_and_3_when_unreachable() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = common::start(dir.path()).await?;
    let cli = Cli {
        url: format!("http://{}", server.addr),
    };
    let health = cli.json(&["health"]).await?;
    assert_eq!(health["status"], "ok");
    assert!(cli.ok(&["health"]).await?.starts_with("ok (version "));
    server.child.kill().await?;
    server.child.wait().await?;
    assert_eq!(cli.run(&["health"]).await?.status.code(), Some(3));
    Ok(())
}

/// Every client command and the bench find the key the same way: the flag or
/// `RIPPLEKV_API_KEY`, else `RIPPLEKV_API_KEYS` (the server's variable), else the
/// generated key in `./data/api-key`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_and_bench_find_the_key_without_a_flag() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = common::start(dir.path()).await?;
    let url = format!("http://{}", server.addr);
    let cwd = tempfile::tempdir()?;
    std::fs::create_dir(cwd.path().join("data"))?;
    std::fs::write(cwd.path().join("data/api-key"), format!("{KEY}\n"))?;
    let bare = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ripplekv"));
        command
            .args(args)
            .args(["--url", &url])
            .current_dir(cwd.path())
            .env_remove("RIPPLEKV_API_KEY")
            .env_remove("RIPPLEKV_API_KEYS")
            .env_remove("RIPPLEKV_DATA_DIR");
        command
    };
    let set = bare(&["set", "found", "by-file"]).output().await?;
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let bench = bare(&["bench", "rpc", "-c", "1", "-d", "0.2", "--json", "--quiet"])
        .output()
        .await?;
    assert!(
        bench.status.success(),
        "bench ignored ./data/api-key: {}",
        String::from_utf8_lossy(&bench.stderr)
    );
    let report: Value = serde_json::from_slice(&bench.stdout)?;
    assert!(report["operations"].as_u64().unwrap() > 0);
    // The server's variable works for clients too, ahead of the file.
    std::fs::write(cwd.path().join("data/api-key"), "stale-key\n")?;
    let get = bare(&["get", "found"])
        .env("RIPPLEKV_API_KEYS", format!("{KEY},another"))
        .output()
        .await?;
    assert_eq!(String::from_utf8(get.stdout)?, "by-file\n");
    server.child.kill().await?;
    Ok(())
}

/// The server reads the clients' `RIPPLEKV_API_KEY` as well as `RIPPLEKV_API_KEYS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_accepts_keys_from_either_variable() -> Result<()> {
    for variable in ["RIPPLEKV_API_KEY", "RIPPLEKV_API_KEYS"] {
        let dir = tempfile::tempdir()?;
        let mut server = common::start_with(
            &[],
            &[(variable, "env-key-1,env-key-2")],
            dir.path(),
            "info",
        )
        .await?;
        for key in ["env-key-1", "env-key-2"] {
            let output = Command::new(env!("CARGO_BIN_EXE_ripplekv"))
                .args(["set", "k", "v", "--url", &format!("http://{}", server.addr)])
                .args(["--api-key", key])
                .output()
                .await?;
            assert!(output.status.success(), "{variable} {key}");
        }
        assert!(
            !dir.path().join("api-key").exists(),
            "{variable}: a key was generated although one was configured"
        );
        server.child.kill().await?;
    }
    Ok(())
}
