//! A data directory written by an earlier version (change-log format 1, kept as a
//! fixture in `tests/fixtures/log-format-1`) opens, serves its records, and replays
//! its change log; new changes are then logged in format 2 next to the old ones.
//!
//! The fixture holds, at revisions 1 to 11: SET user:1, PATCH user:1 (merge), SET
//! note, PATCH note (append), ATOMIC visits +5, SET todos [], SET gone, DELETE gone,
//! SET session:1 with a one-hour TTL, SET short (over REST), JSON Patch todos.

#![allow(clippy::unwrap_used)]

use ripplekv_core::{
    ChangeOp, ChangesSince, Limits, Mutation, Previous, Retention, Store, WriteOp,
};
use ripplekv_storage::{Durability, RedbStore, DB_FILE};

/// The fixture's log was written on one day and must replay on any later one: keep
/// every entry whatever its age.
fn open(dir: &std::path::Path) -> RedbStore {
    let keep_all = Retention {
        max_entries: u64::MAX,
        max_age: std::time::Duration::from_secs(u64::MAX / 4),
    };
    RedbStore::open_with(dir, Durability::Sync, Limits::default(), keep_all).unwrap()
}

fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/log-format-1/ripplekv.redb"
    );
    std::fs::copy(fixture, dir.path().join(DB_FILE)).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_log_format_1_opens_reads_and_replays() {
    let dir = fixture_copy();
    let store = open(dir.path());
    assert_eq!(store.revision(), 11);
    let read = |key: &'static str| {
        let store = &store;
        async move {
            store
                .get(key)
                .await
                .unwrap()
                .map(|record| (record.value, record.revision))
        }
    };
    assert_eq!(
        read("user:1").await,
        Some((r#"{"name":"Ada","lang":"en"}"#.into(), 2))
    );
    assert_eq!(read("note").await, Some(("hello, world".into(), 4)));
    assert_eq!(read("visits").await, Some(("5".into(), 5)));
    assert_eq!(read("gone").await, None);
    // (`session:1` was written with a one-hour TTL, so whether it is still live depends
    // on the clock; its write is checked in the log below.)

    let ChangesSince::Changes(old) = store.changes_since(0, 100).await.unwrap() else {
        panic!("the fixture's log is retained");
    };
    let summary: Vec<(u64, ChangeOp, &str, Option<&str>)> = old
        .iter()
        .map(|change| {
            (
                change.revision,
                change.op,
                change.key.as_str(),
                change.value.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, ChangeOp::Set, "user:1", Some(r#"{"name":"Ada"}"#)),
            (2, ChangeOp::Patch, "user:1", Some(r#"{"lang":"en"}"#)),
            (3, ChangeOp::Set, "note", Some("hello")),
            (4, ChangeOp::Patch, "note", Some(", world")),
            (5, ChangeOp::Atomic, "visits", Some("5")),
            (6, ChangeOp::Set, "todos", Some("[]")),
            (7, ChangeOp::Set, "gone", Some("x")),
            (8, ChangeOp::Delete, "gone", None),
            (9, ChangeOp::Set, "session:1", Some("active")),
            (10, ChangeOp::Set, "short", Some("lived")),
            (
                11,
                ChangeOp::JsonPatch,
                "todos",
                Some(r#"[{"id":1,"text":"write the fixture"}]"#)
            ),
        ]
    );
    // Format 1 did not record the key before a change, nor the document after a PATCH.
    assert!(old
        .iter()
        .all(|change| change.previous == Previous::Unknown));
    assert_eq!(old[1].stored, None);
    assert_eq!(old[0].stored.as_deref(), Some(r#"{"name":"Ada"}"#));

    // New changes go into the same log in format 2, and both read back.
    let patched = store
        .write(Mutation::new("note", WriteOp::Patch("!".into())))
        .await
        .unwrap();
    assert_eq!(patched.revision, 12);
    assert_eq!(patched.previous, Previous::At(4));
    assert_eq!(patched.stored.as_deref(), Some("hello, world!"));
    store.close().await.unwrap();
    drop(store);
    let store = open(dir.path());
    let ChangesSince::Changes(all) = store.changes_since(0, 100).await.unwrap() else {
        panic!("the log is retained");
    };
    assert_eq!(all.len(), 12);
    assert_eq!(all[..11], old[..]);
    assert_eq!(all[11], patched);
}
