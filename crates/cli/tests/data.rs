//! `backup`, `restore`, `export` and `import` with the real binary and real servers, on
//! the embedded store and on PostgreSQL.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "../../storage/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Output;

use anyhow::Result;
use serde_json::Value;
use tokio::process::Command;

const KEY: &str = "data-test-key";

async fn ripplekv(args: &[&str], url: Option<&str>) -> Result<Output> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ripplekv"));
    command.args(args);
    if let Some(url) = url {
        command.args(["--url", url, "--api-key", KEY]);
    }
    Ok(command.output().await?)
}

/// Runs and expects success; returns stdout.
async fn ok(args: &[&str], url: Option<&str>) -> Result<String> {
    let output = ripplekv(args, url).await?;
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// Runs and expects failure; returns stderr.
async fn fails(args: &[&str], url: Option<&str>) -> Result<String> {
    let output = ripplekv(args, url).await?;
    assert!(!output.status.success(), "{args:?} succeeded");
    Ok(String::from_utf8(output.stderr)?)
}

async fn get(url: &str, key: &str) -> Result<Value> {
    Ok(serde_json::from_str(
        &ok(&["get", key, "--json"], Some(url)).await?,
    )?)
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_the_same_records_revisions_and_ttls() -> Result<()> {
    let work = tempfile::tempdir()?;
    let source_dir = work.path().join("source");
    let mut source = common::start(&source_dir).await?;
    let url = format!("http://{}", source.addr);
    for (key, value) in [
        ("a", "1"),
        ("b", "two\nlines \u{e9}"),
        ("c", "3"),
        ("a", "one"),
    ] {
        ok(&["set", key, value], Some(&url)).await?;
    }
    ok(&["del", "c"], Some(&url)).await?;
    ok(&["set", "session", "s", "--ttl", "3600"], Some(&url)).await?;
    let backup = path(work.path(), "backup.jsonl");
    let printed = ok(&["backup", &backup], Some(&url)).await?;
    assert_eq!(
        printed,
        format!("backed up 3 records at revision 6 to {backup}\n")
    );
    assert!(!Path::new(&format!("{backup}.partial")).exists());
    let before = [
        get(&url, "a").await?,
        get(&url, "b").await?,
        get(&url, "session").await?,
    ];
    source.child.kill().await?;

    let restored_dir = path(work.path(), "restored");
    let printed = ok(&["restore", &backup, "--data-dir", &restored_dir], None).await?;
    let restarted_at = 6 + ripplekv_storage::RESTORE_REVISION_GAP;
    assert_eq!(
        printed,
        format!(
            "restored 3 records from revision 6 into {restored_dir}; new writes start after revision {restarted_at}\n"
        )
    );
    let mut restored = common::start(Path::new(&restored_dir)).await?;
    let url = format!("http://{}", restored.addr);
    let after = [
        get(&url, "a").await?,
        get(&url, "b").await?,
        get(&url, "session").await?,
    ];
    assert_eq!(after, before, "values and revisions survive");
    assert!(fails(&["get", "c"], Some(&url))
        .await?
        .contains("Record not found"));
    let next: Value = serde_json::from_str(&ok(&["set", "d", "4", "--json"], Some(&url)).await?)?;
    assert_eq!(
        next["revision"],
        restarted_at + 1,
        "revisions jump past anything the source could have reached"
    );
    // The TTL came along: the snapshot of the restored server still has an expiry.
    let again = path(work.path(), "again.jsonl");
    ok(&["backup", &again], Some(&url)).await?;
    let text = std::fs::read_to_string(&again)?;
    assert!(text
        .lines()
        .any(|line| line.contains("\"key\":\"session\"") && line.contains("expiresAtMs")));
    restored.child.kill().await?;

    // Restoring over an existing store is refused.
    let refused = fails(&["restore", &backup, "--data-dir", &restored_dir], None).await?;
    assert!(refused.contains("already exists"), "{refused}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_or_foreign_backups_are_refused_and_leave_nothing() -> Result<()> {
    let work = tempfile::tempdir()?;
    let full = "{\"format\":\"ripplekv-snapshot\",\"version\":1,\"revision\":2,\"createdAtMs\":1,\"keys\":2}\n\
                {\"key\":\"a\",\"value\":\"1\",\"revision\":1}\n\
                {\"key\":\"b\",\"value\":\"2\",\"revision\":2}\n\
                {\"end\":true,\"records\":2}\n";
    let cases = [
        (
            "no trailer",
            full.rsplit_once("{\"end\"").unwrap().0.to_owned(),
            "no trailer",
        ),
        (
            "wrong count",
            full.replace("\"records\":2", "\"records\":3"),
            "counts 3 records",
        ),
        (
            "foreign format",
            full.replace("ripplekv-snapshot", "other"),
            "not a RippleKV snapshot",
        ),
        (
            "bad line",
            full.replace("{\"key\":\"b\"", "{\"kee\":\"b\""),
            "line 3",
        ),
        (
            "no header",
            full.lines().skip(1).collect::<Vec<_>>().join("\n"),
            "does not start with a",
        ),
    ];
    for (name, text, expected) in cases {
        let file = path(work.path(), "bad.jsonl");
        std::fs::write(&file, text)?;
        let dir = work.path().join(name.replace(' ', "-"));
        let stderr = fails(
            &["restore", &file, "--data-dir", dir.to_str().unwrap()],
            None,
        )
        .await?;
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(
            !dir.join(ripplekv_storage::DB_FILE).exists(),
            "{name}: a store was left behind"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_imports_into_another_server() -> Result<()> {
    let work = tempfile::tempdir()?;
    let mut source = common::start(&work.path().join("source")).await?;
    let source_url = format!("http://{}", source.addr);
    for i in 0..300 {
        ok(
            &["set", &format!("key:{i:03}"), &format!("value {i}")],
            Some(&source_url),
        )
        .await?;
    }
    ok(&["set", "tmp", "t", "--ttl", "3600"], Some(&source_url)).await?;
    let export = path(work.path(), "export.jsonl");
    assert_eq!(
        ok(&["export", &export], Some(&source_url)).await?,
        format!("exported 301 records at revision 301 to {export}\n")
    );
    let text = std::fs::read_to_string(&export)?;
    assert_eq!(
        text.lines().next(),
        Some(r#"{"key":"key:000","value":"value 0"}"#)
    );
    assert_eq!(text.lines().count(), 301);
    // A backup is accepted by import too; a wrong key is refused and writes no file.
    let wrong_key = ripplekv(
        &[
            "backup",
            &path(work.path(), "x.jsonl"),
            "--url",
            &source_url,
            "--api-key",
            "wrong",
        ],
        None,
    )
    .await?;
    assert_eq!(wrong_key.status.code(), Some(4), "refused credentials");
    assert!(String::from_utf8(wrong_key.stderr)?
        .contains("authentication refused (401): Invalid API key"));
    for leftover in ["x.jsonl", "x.jsonl.partial"] {
        assert!(
            !work.path().join(leftover).exists(),
            "{leftover} was left behind"
        );
    }
    source.child.kill().await?;

    let mut target = common::start(&work.path().join("target")).await?;
    let target_url = format!("http://{}", target.addr);
    assert_eq!(
        ok(&["import", &export], Some(&target_url)).await?,
        format!("imported 301 records from {export} (0 already expired, skipped)\n")
    );
    assert_eq!(get(&target_url, "key:299").await?["value"], "value 299");
    assert_eq!(get(&target_url, "tmp").await?["value"], "t");
    let range: Value =
        serde_json::from_str(&ok(&["range", "key:", "key:~", "--json"], Some(&target_url)).await?)?;
    assert_eq!(range.as_array().unwrap().len(), 300);
    // A malformed line stops the import with its line number.
    let bad = path(work.path(), "bad.jsonl");
    std::fs::write(&bad, "{\"key\":\"x\",\"value\":\"1\"}\nnot json\n")?;
    let stderr = fails(&["import", &bad], Some(&target_url)).await?;
    assert!(stderr.contains("line 2"), "{stderr}");
    target.child.kill().await?;
    Ok(())
}

/// A PostgreSQL store backs up and exports like the embedded one; its backup restores
/// into an embedded data directory and imports into another cluster's database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_store_backs_up_exports_and_imports() -> Result<()> {
    let work = tempfile::tempdir()?;
    let source_db = support::TestDatabase::create().await;
    let node = |database: &str, dir: &str| {
        let flags = ["--api-key", KEY, "--store", database].map(str::to_owned);
        let dir = work.path().join(dir);
        async move {
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            common::start_with(&flags, &[], &dir, "warn").await
        }
    };
    let mut source = node(&source_db.url, "source").await?;
    let url = format!("http://{}", source.addr);
    for i in 0..300 {
        ok(
            &["set", &format!("key:{i:03}"), &format!("v{i}")],
            Some(&url),
        )
        .await?;
    }
    ok(&["set", "session", "s", "--ttl", "3600"], Some(&url)).await?;
    let backup = path(work.path(), "backup.jsonl");
    assert_eq!(
        ok(&["backup", &backup], Some(&url)).await?,
        format!("backed up 301 records at revision 301 to {backup}\n")
    );
    let export = path(work.path(), "export.jsonl");
    assert_eq!(
        ok(&["export", &export], Some(&url)).await?,
        format!("exported 301 records at revision 301 to {export}\n")
    );
    let before = get(&url, "key:123").await?;
    source.child.kill().await?;

    // Into an embedded data directory, offline.
    let restored_dir = path(work.path(), "restored");
    ok(&["restore", &backup, "--data-dir", &restored_dir], None).await?;
    let mut restored = common::start(Path::new(&restored_dir)).await?;
    let restored_url = format!("http://{}", restored.addr);
    assert_eq!(
        get(&restored_url, "key:123").await?,
        before,
        "value and revision"
    );
    restored.child.kill().await?;

    // Into another cluster's database, through its REST API.
    let target_db = support::TestDatabase::create().await;
    let mut target = node(&target_db.url, "target").await?;
    let target_url = format!("http://{}", target.addr);
    assert_eq!(
        ok(&["import", &backup], Some(&target_url)).await?,
        format!("imported 301 records from {backup} (0 already expired, skipped)\n")
    );
    assert_eq!(get(&target_url, "key:299").await?["value"], "v299");
    assert_eq!(get(&target_url, "session").await?["value"], "s");
    target.child.kill().await?;
    Ok(())
}
