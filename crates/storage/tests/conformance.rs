//! One conformance suite, run against every backend: the same writes must give the
//! same results, revisions and ranges whatever the storage.

// Test helpers panic on unexpected failures; that is how a test fails.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use std::sync::Mutex;

use ripplekv_core::{
    Change, ChangeOp, ChangeSink, ChangesSince, Error, Limits, Mutation, Record, Retention, Store,
    WriteOp,
};
use ripplekv_storage::{Durability, MemoryStore, PostgresStore, RedbStore};

mod support;

fn set(key: &str, value: &str) -> Mutation {
    Mutation::new(key, WriteOp::Set(value.into()))
}

fn op(key: &str, op: WriteOp) -> Mutation {
    Mutation::new(key, op)
}

async fn many_keys_are_read_together_in_order(store: Arc<dyn Store>) {
    let start = store.revision();
    store.write(set("m1", "one")).await.unwrap();
    store.write(set("m2", "two")).await.unwrap();
    let read = store
        .get_many(&["m2", "missing", "m1", "m2"])
        .await
        .unwrap();
    let shown: Vec<Option<(&str, u64)>> = read
        .iter()
        .map(|record| record.as_ref().map(|r| (r.value.as_str(), r.revision)))
        .collect();
    assert_eq!(
        shown,
        [
            Some(("two", start + 2)),
            None,
            Some(("one", start + 1)),
            Some(("two", start + 2))
        ]
    );
    assert!(store.get_many(&[]).await.unwrap().is_empty());
    // A read between two writes must not hold later reads to its view.
    store.write(set("m1", "uno")).await.unwrap();
    assert_eq!(store.get("m1").await.unwrap().unwrap().value, "uno");
    let read = store.get_many(&["m1"]).await.unwrap();
    assert_eq!(read[0].as_ref().map(|r| r.value.as_str()), Some("uno"));
    store.write(op("m1", WriteOp::Delete)).await.unwrap();
    assert_eq!(store.get("m1").await.unwrap(), None);
}

async fn revisions_increase_and_records_carry_them(store: Arc<dyn Store>) {
    let start = store.revision();
    let first = store.write(set("a", "1")).await.unwrap();
    let second = store.write(set("b", "2")).await.unwrap();
    assert_eq!(first.revision, start + 1);
    assert_eq!(second.revision, start + 2);
    assert_eq!(store.revision(), start + 2);
    let record = store.get("a").await.unwrap().unwrap();
    assert_eq!((record.value.as_str(), record.revision), ("1", start + 1));
    assert_eq!(store.get("missing").await.unwrap(), None);
}

async fn failed_writes_change_nothing(store: Arc<dyn Store>) {
    store.write(set("text", "abc")).await.unwrap();
    let before = store.revision();
    let err = store
        .write(op("text", WriteOp::Atomic(1)))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(
        store.write(op("nope", WriteOp::Delete)).await,
        Err(Error::NotFound)
    );
    assert_eq!(
        store.revision(),
        before,
        "a failed write must not take a revision"
    );
    assert_eq!(store.get("text").await.unwrap().unwrap().value, "abc");
}

async fn every_op_produces_its_change(store: Arc<dyn Store>) {
    let change = store
        .write(op("doc", WriteOp::Patch(r#"{"a":1}"#.into())))
        .await
        .unwrap();
    assert_eq!(
        (change.op, change.value.as_deref()),
        (ChangeOp::Patch, Some(r#"{"a":1}"#))
    );
    store
        .write(op("doc", WriteOp::Patch(r#"{"b":2}"#.into())))
        .await
        .unwrap();
    assert_eq!(
        store.get("doc").await.unwrap().unwrap().value,
        r#"{"a":1,"b":2}"#
    );
    let change = store.write(op("n", WriteOp::Atomic(-4))).await.unwrap();
    assert_eq!(change.atomic_result(), Some(-4));
    let change = store.write(op("doc", WriteOp::Delete)).await.unwrap();
    assert_eq!((change.op, change.value), (ChangeOp::Delete, None));
    assert_eq!(store.get("doc").await.unwrap(), None);
}

async fn ranges_are_inclusive_ordered_and_paged(store: Arc<dyn Store>) {
    for key in ["r:1", "r:2", "r:3", "r:4", "r:5", "s"] {
        store.write(set(key, key)).await.unwrap();
    }
    let page = store.range("r:1", "r:5", 3).await.unwrap();
    let keys: Vec<_> = page.records.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["r:1", "r:2", "r:3"]);
    assert!(page.truncated);
    let page = store.range("r:3\0", "r:5", 3).await.unwrap();
    let keys: Vec<_> = page.records.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["r:4", "r:5"]);
    assert!(!page.truncated);
    let page = store.range("r:1", "r:5", 5).await.unwrap();
    assert!(
        !page.truncated,
        "exactly limit records left is not truncated"
    );
    assert!(store.range("z", "a", 10).await.unwrap().records.is_empty());
}

async fn concurrent_atomic_increments_are_not_lost(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for _ in 0..25 {
                    store
                        .write(op("counter", WriteOp::Atomic(1)))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.get("counter").await.unwrap().unwrap().value, "500");
}

async fn closed_store_refuses_writes(store: Arc<dyn Store>) {
    store.write(set("k", "v")).await.unwrap();
    store.close().await.unwrap();
    assert_eq!(store.write(set("k", "w")).await, Err(Error::Unavailable));
    assert_eq!(store.get("k").await.unwrap().unwrap().value, "v");
}

async fn change_log_replays_in_order(store: Arc<dyn Store>) {
    store.write(set("a", "1")).await.unwrap();
    store
        .write(op("a", WriteOp::Patch("2".into())))
        .await
        .unwrap();
    store.write(op("a", WriteOp::Delete)).await.unwrap();
    let ChangesSince::Changes(all) = store.changes_since(0, 10).await.unwrap() else {
        panic!("a new store retains everything")
    };
    let summary: Vec<_> = all
        .iter()
        .map(|c| (c.revision, c.op, c.value.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (1, ChangeOp::Set, Some("1".to_owned())),
            (2, ChangeOp::Patch, Some("2".to_owned())),
            (3, ChangeOp::Delete, None)
        ]
    );
    assert_eq!(all[0].key, "a");
    let ChangesSince::Changes(tail) = store.changes_since(2, 10).await.unwrap() else {
        panic!()
    };
    assert_eq!(tail.len(), 1);
    let ChangesSince::Changes(page) = store.changes_since(0, 2).await.unwrap() else {
        panic!()
    };
    assert_eq!(page.len(), 2);
    let ChangesSince::Changes(none) = store.changes_since(3, 10).await.unwrap() else {
        panic!()
    };
    assert!(none.is_empty());
}

/// Records what a store publishes.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Change>>);

impl ChangeSink for Recorder {
    fn publish(&self, changes: &[Change]) {
        self.0.lock().unwrap().extend_from_slice(changes);
    }
}

async fn every_commit_is_published_in_order(store: Arc<dyn Store>) {
    let recorder = Arc::new(Recorder::default());
    store.set_change_sink(recorder.clone());
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..20 {
                    let change = store.write(set(&format!("{w}-{i}"), "v")).await.unwrap();
                    // Published no later than the writer hears back.
                    let _ = change;
                }
                let _ = store.write(op("missing", WriteOp::Delete)).await;
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let revisions: Vec<u64> = recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.revision)
        .collect();
    assert_eq!(
        revisions,
        (1..=160).collect::<Vec<_>>(),
        "failed writes are not published"
    );
}

async fn ttl_hides_then_expires_with_a_change(store: Arc<dyn Store>) {
    let recorder = Arc::new(Recorder::default());
    store.set_change_sink(recorder.clone());
    let short = Mutation {
        ttl_ms: Some(1),
        ..set("short", "v")
    };
    let long = Mutation {
        ttl_ms: Some(3_600_000),
        ..set("long", "v")
    };
    store.write(short).await.unwrap();
    store.write(long).await.unwrap();
    // Wait for the clock to pass the 1 ms TTL; there is no event to await for that.
    let deadline = ripplekv_core::now_ms() + 2;
    while ripplekv_core::now_ms() < deadline {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        store.get("short").await.unwrap(),
        None,
        "expired keys are never returned"
    );
    assert_eq!(store.range("a", "z", 10).await.unwrap().records.len(), 1);
    assert_eq!(store.expire_due().await.unwrap(), 1);
    assert_eq!(store.expire_due().await.unwrap(), 0);
    let published = recorder.0.lock().unwrap().clone();
    let last = published.last().unwrap();
    assert_eq!(
        (last.op, last.key.as_str(), last.value.clone()),
        (ChangeOp::Expire, "short", None)
    );
    assert_eq!(last.revision, store.revision());
    let ChangesSince::Changes(log) = store.changes_since(2, 10).await.unwrap() else {
        panic!()
    };
    assert_eq!(log[0].op, ChangeOp::Expire, "expiry is replayable");
    assert!(store
        .get("long")
        .await
        .unwrap()
        .unwrap()
        .expires_at_ms
        .is_some());
}

async fn conditional_writes_check_the_revision(store: Arc<dyn Store>) {
    let create = Mutation {
        if_revision: Some(0),
        ..set("c", "1")
    };
    let first = store.write(create.clone()).await.unwrap();
    assert_eq!(
        store.write(create).await,
        Err(Error::Conflict {
            current: first.revision
        })
    );
    let update = Mutation {
        if_revision: Some(first.revision),
        ..set("c", "2")
    };
    let second = store.write(update.clone()).await.unwrap();
    assert_eq!(
        store.write(update).await,
        Err(Error::Conflict {
            current: second.revision
        })
    );
    assert_eq!(store.get("c").await.unwrap().unwrap().value, "2");
}

async fn snapshots_are_consistent_and_skip_expired_keys(store: Arc<dyn Store>) {
    store.write(set("b", "2")).await.unwrap();
    store.write(set("a", "1")).await.unwrap();
    store
        .write(Mutation {
            ttl_ms: Some(1),
            ..set("gone", "x")
        })
        .await
        .unwrap();
    store.write(set("c", "3")).await.unwrap();
    store.write(op("c", WriteOp::Delete)).await.unwrap();
    // Let "gone" expire on the clock, then take the view.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.revision, 5);
    // Writes after the view was taken are not in it.
    store.write(set("a", "changed")).await.unwrap();
    store.write(set("d", "4")).await.unwrap();
    let records: Vec<(String, String, u64)> = snapshot
        .records
        .map(|entry| {
            let (key, record) = entry.unwrap();
            (key, record.value, record.revision)
        })
        .collect();
    assert_eq!(
        records,
        [("a".into(), "1".into(), 2), ("b".into(), "2".into(), 1)]
    );
}

/// A prefix scan is a consistent view of the live keys under the prefix, in byte
/// order, with the revision it is consistent with; removals say what they removed.
async fn prefix_scans_see_one_view_of_their_keys(store: Arc<dyn Store>) {
    for key in ["items/b", "items0", "item", "items/a", "other/x", "items/é"] {
        store.write(set(key, key)).await.unwrap();
    }
    store
        .write(Mutation {
            ttl_ms: Some(1),
            ..set("items/gone", "x")
        })
        .await
        .unwrap();
    let deleted = store.write(op("items/b", WriteOp::Delete)).await.unwrap();
    assert_eq!(deleted.removed.as_deref(), Some("items/b"));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let scan = store.scan("items/").await.unwrap();
    assert_eq!(scan.revision, deleted.revision);
    store.write(set("items/c", "later")).await.unwrap();
    let keys: Vec<String> = scan.records.map(|entry| entry.unwrap().0).collect();
    assert_eq!(keys, ["items/a", "items/é"]);
    let all = store.scan("").await.unwrap();
    assert_eq!(all.records.count(), 6);
    assert!(store
        .scan("nothing/")
        .await
        .unwrap()
        .records
        .next()
        .is_none());
}

/// Every change says what the key was before (absent or at a revision) and what is
/// stored after, the whole document after PATCH and ATOMIC, and the expiry; the
/// change log gives back exactly the changes the writes returned.
async fn changes_carry_the_record_before_and_after(store: Arc<dyn Store>) {
    use ripplekv_core::Previous;
    let start = store.revision();
    let created = store
        .write(Mutation {
            ttl_ms: Some(3_600_000),
            ..set("doc", r#"{"a":1}"#)
        })
        .await
        .unwrap();
    assert_eq!(created.previous, Previous::Absent, "a create");
    assert_eq!(created.stored.as_deref(), Some(r#"{"a":1}"#));
    let expiry = created.expires_at_ms.expect("the TTL is in the change");
    let patched = store
        .write(op("doc", WriteOp::Patch(r#"{"b":2}"#.into())))
        .await
        .unwrap();
    assert_eq!(patched.previous, Previous::At(created.revision));
    assert_eq!(
        patched.value.as_deref(),
        Some(r#"{"b":2}"#),
        "notified: the patch"
    );
    assert_eq!(
        patched.stored.as_deref(),
        Some(r#"{"a":1,"b":2}"#),
        "stored: the document"
    );
    assert_eq!(patched.expires_at_ms, Some(expiry), "PATCH keeps the TTL");
    let counted = store.write(op("n", WriteOp::Atomic(7))).await.unwrap();
    assert_eq!(
        (counted.previous, counted.stored.as_deref()),
        (Previous::Absent, Some("7"))
    );
    let deleted = store.write(op("doc", WriteOp::Delete)).await.unwrap();
    assert_eq!(
        (deleted.previous, deleted.stored.clone()),
        (Previous::At(patched.revision), None)
    );
    let ChangesSince::Changes(logged) = store.changes_since(start, 10).await.unwrap() else {
        panic!("the log is retained");
    };
    assert_eq!(logged, [created, patched, counted, deleted]);
}

/// Writes submitted one after another, none awaited yet, commit in submission order,
/// each seeing the ones before it; a failing one in the middle changes nothing.
async fn submitted_writes_commit_in_submission_order(store: Arc<dyn Store>) {
    let start = store.revision();
    let mut pending = Vec::new();
    for mutation in [
        op("n", WriteOp::Atomic(1)),
        Mutation {
            if_revision: Some(start + 100),
            ..set("n", "refused")
        },
        op("n", WriteOp::Atomic(10)),
        op("n", WriteOp::Patch("0".into())),
    ] {
        pending.push(store.submit(mutation).await.unwrap());
    }
    let mut outcomes = Vec::new();
    for write in pending {
        outcomes.push(
            write
                .await
                .map(|change| (change.revision - start, change.stored)),
        );
    }
    assert_eq!(outcomes[0], Ok((1, Some("1".into()))));
    assert!(
        matches!(outcomes[1], Err(Error::Conflict { .. })),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2], Ok((2, Some("11".into()))));
    assert_eq!(outcomes[3], Ok((3, Some("110".into()))));
}

macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn revisions() {
                let (_dir, store) = $make;
                revisions_increase_and_records_carry_them(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn failed_writes() {
                let (_dir, store) = $make;
                failed_writes_change_nothing(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ops() {
                let (_dir, store) = $make;
                every_op_produces_its_change(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ranges() {
                let (_dir, store) = $make;
                ranges_are_inclusive_ordered_and_paged(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_atomics() {
                let (_dir, store) = $make;
                concurrent_atomic_increments_are_not_lost(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn change_log() {
                let (_dir, store) = $make;
                change_log_replays_in_order(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn publishes() {
                let (_dir, store) = $make;
                every_commit_is_published_in_order(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ttl() {
                let (_dir, store) = $make;
                ttl_hides_then_expires_with_a_change(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn conditional() {
                let (_dir, store) = $make;
                conditional_writes_check_the_revision(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn snapshot() {
                let (_dir, store) = $make;
                snapshots_are_consistent_and_skip_expired_keys(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn prefix_scan() {
                let (_dir, store) = $make;
                prefix_scans_see_one_view_of_their_keys(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn get_many() {
                let (_keep, store) = $make;
                many_keys_are_read_together_in_order(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn before_and_after() {
                let (_dir, store) = $make;
                changes_carry_the_record_before_and_after(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn submitted_in_order() {
                let (_dir, store) = $make;
                submitted_writes_commit_in_submission_order(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn close() {
                let (_dir, store) = $make;
                closed_store_refuses_writes(store).await;
            }
        }
    };
}

async fn postgres() -> (support::TestDatabase, Arc<dyn Store>) {
    let database = support::TestDatabase::create().await;
    let store = PostgresStore::connect(&database.url, Limits::default())
        .await
        .unwrap();
    (database, Arc::new(store))
}

fn memory() -> (Option<tempfile::TempDir>, Arc<dyn Store>) {
    (None, Arc::new(MemoryStore::new(Limits::default())))
}

fn redb(durability: Durability) -> (Option<tempfile::TempDir>, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path(), durability, Limits::default()).unwrap();
    (Some(dir), Arc::new(store))
}

conformance!(memory_store, memory());
conformance!(redb_sync, redb(Durability::Sync));
conformance!(redb_relaxed, redb(Durability::Relaxed));
conformance!(postgres, postgres().await);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_keeps_data_and_revision_across_reopen() {
    for durability in [Durability::Sync, Durability::Relaxed] {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RedbStore::open(dir.path(), durability, Limits::default()).unwrap();
            store.write(set("a", "1")).await.unwrap();
            store.write(set("b", "2")).await.unwrap();
            store.write(op("b", WriteOp::Delete)).await.unwrap();
            store.close().await.unwrap();
        }
        let store = RedbStore::open(dir.path(), durability, Limits::default()).unwrap();
        assert_eq!(store.revision(), 3);
        assert_eq!(store.get("a").await.unwrap().unwrap().revision, 1);
        assert_eq!(store.get("b").await.unwrap(), None);
        assert_eq!(store.write(set("c", "3")).await.unwrap().revision, 4);
        store.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_group_commit_batches_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path(), Durability::Sync, Limits::default()).unwrap());
    let writers: Vec<_> = (0..32)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..20 {
                    store.write(set(&format!("w{w}:{i}"), "v")).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let stats = store.stats();
    let writes = stats.writes.load(std::sync::atomic::Ordering::Relaxed);
    let commits = stats.commits.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(writes, 640);
    // 32 writers each waiting on an fsync: commits must be shared, not one per write.
    assert!(commits < writes, "{commits} commits for {writes} writes");
    assert!(stats.max_batch.load(std::sync::atomic::Ordering::Relaxed) > 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_log_keeps_only_the_latest_entries() {
    let retention = Retention {
        max_entries: 5,
        max_age: std::time::Duration::from_secs(3600),
    };
    let dir = tempfile::tempdir().unwrap();
    let stores: [Arc<dyn Store>; 2] = [
        Arc::new(MemoryStore::with_retention(Limits::default(), retention)),
        Arc::new(
            RedbStore::open_with(dir.path(), Durability::Sync, Limits::default(), retention)
                .unwrap(),
        ),
    ];
    for store in stores {
        for i in 0..8 {
            store.write(set(&format!("k{i}"), "v")).await.unwrap();
        }
        assert_eq!(
            store.changes_since(2, 100).await.unwrap(),
            ChangesSince::TooOld { floor: 3 }
        );
        let ChangesSince::Changes(kept) = store.changes_since(3, 100).await.unwrap() else {
            panic!("revision 3 is the floor: everything after it is kept")
        };
        assert_eq!(
            kept.iter().map(|c| c.revision).collect::<Vec<_>>(),
            [4, 5, 6, 7, 8]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_store_has_the_snapshot_records_revisions_and_expiries() {
    let source = RedbStore::open(
        tempfile::tempdir().unwrap().path(),
        Durability::Sync,
        Limits::default(),
    )
    .unwrap();
    source.write(set("a", "1")).await.unwrap();
    source
        .write(Mutation {
            ttl_ms: Some(3_600_000),
            ..set("ttl", "t")
        })
        .await
        .unwrap();
    source.write(set("b", "2")).await.unwrap();
    source.write(set("a", "11")).await.unwrap();
    let snapshot = source.snapshot().await.unwrap();
    let expected: Vec<_> = source.snapshot().await.unwrap().records.collect();

    let dir = tempfile::tempdir().unwrap();
    let count = ripplekv_storage::restore(dir.path(), snapshot.revision, snapshot.records).unwrap();
    assert_eq!(count, 3);
    let restored = RedbStore::open(dir.path(), Durability::Sync, Limits::default()).unwrap();
    let restarted_at = 4 + ripplekv_storage::RESTORE_REVISION_GAP;
    assert_eq!(restored.revision(), restarted_at);
    let records: Vec<_> = restored.snapshot().await.unwrap().records.collect();
    assert_eq!(records, expected);
    assert!(records.iter().any(|entry| entry
        .as_ref()
        .is_ok_and(|(key, record)| key == "ttl" && record.expires_at_ms.is_some())));
    // Every revision from before the restore, even ones the source reached after the
    // snapshot, is below the floor: resuming from it asks for a resync.
    for before in [2, 4, 1_000_000] {
        assert_eq!(
            restored.changes_since(before, 10).await.unwrap(),
            ChangesSince::TooOld {
                floor: restarted_at
            }
        );
    }
    assert_eq!(
        restored.changes_since(restarted_at, 10).await.unwrap(),
        ChangesSince::Changes(vec![])
    );
    // New writes continue after the jump.
    assert_eq!(
        restored.write(set("c", "3")).await.unwrap().revision,
        restarted_at + 1
    );
    restored.close().await.unwrap();

    // A second restore into the same directory is refused, and a failed restore
    // leaves nothing behind.
    let again = ripplekv_storage::restore(dir.path(), 1, std::iter::empty());
    assert_eq!(again.unwrap_err().status(), 400);
    let bad_dir = tempfile::tempdir().unwrap();
    let future = Record::new("v", 9);
    let refused = ripplekv_storage::restore(
        bad_dir.path(),
        5,
        std::iter::once(Ok(("k".to_owned(), future))),
    );
    assert!(refused.is_err());
    assert!(!bad_dir.path().join(ripplekv_storage::DB_FILE).exists());
}
