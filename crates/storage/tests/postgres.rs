//! What only the PostgreSQL store has to show: several nodes on one database (one
//! dense revision sequence, each node's sink gap-free, exact conditional writes and
//! counters across nodes), concurrent first starts, values PostgreSQL's text type
//! cannot hold, and recovery when the database drops the node's connections.
//! Every backend's common behaviour is in `conformance.rs`.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use ripplekv_core::{
    Change, ChangeSink, ChangesSince, Error, Limits, Mutation, Previous, Store, WriteOp,
};
use ripplekv_storage::{PostgresOptions, PostgresStore};

mod support;

use support::{Connections, TestDatabase};

/// Records what a node publishes, and lets a test await a count.
#[derive(Debug)]
struct Recorder {
    changes: Mutex<Vec<Change>>,
    count: tokio::sync::watch::Sender<usize>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            changes: Mutex::default(),
            count: tokio::sync::watch::channel(0).0,
        }
    }
}

impl ChangeSink for Recorder {
    fn publish(&self, changes: &[Change]) {
        let mut recorded = self.changes.lock().unwrap();
        recorded.extend_from_slice(changes);
        self.count.send_replace(recorded.len());
    }
}

impl Recorder {
    fn revisions(&self) -> Vec<u64> {
        self.changes
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.revision)
            .collect()
    }

    /// Waits until `count` changes were published (failing after 10 s).
    async fn published(&self, count: usize) {
        let mut watched = self.count.subscribe();
        let reached = watched.wait_for(|published| *published >= count);
        tokio::time::timeout(std::time::Duration::from_secs(10), reached)
            .await
            .unwrap_or_else(|_| {
                panic!("{count} changes were not published: {:?}", self.revisions())
            })
            .unwrap();
    }
}

async fn node(database: &TestDatabase) -> (Arc<PostgresStore>, Arc<Recorder>) {
    node_on(database, None).await
}

async fn node_on(
    database: &TestDatabase,
    bus: Option<&str>,
) -> (Arc<PostgresStore>, Arc<Recorder>) {
    let options = PostgresOptions {
        bus: bus.map(str::to_owned),
        ..PostgresOptions::default()
    };
    let store = Arc::new(PostgresStore::open(&database.url, options).await.unwrap());
    let recorder = Arc::new(Recorder::default());
    store.set_change_sink(recorder.clone());
    (store, recorder)
}

fn set(key: &str, value: &str) -> Mutation {
    Mutation::new(key, WriteOp::Set(value.into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_starting_at_once_on_an_empty_database_both_come_up() {
    let database = TestDatabase::create().await;
    let (a, b) = tokio::join!(
        PostgresStore::connect(&database.url, Limits::default()),
        PostgresStore::connect(&database.url, Limits::default()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    a.write(set("k", "1")).await.unwrap();
    assert_eq!(b.get("k").await.unwrap().unwrap().value, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_schema_version_1_is_migrated_on_start_and_keeps_its_data() {
    let database = TestDatabase::create().await;
    let (store, _) = node(&database).await;
    let written = store.write(set("k", "1")).await.unwrap();
    store.close().await.unwrap();
    // Version 1 is version 3 without the batch function and the removed values.
    let (client, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "DROP FUNCTION ripplekv.commit_batch; ALTER TABLE ripplekv.changes DROP COLUMN removed; \
             UPDATE ripplekv.meta SET schema_version = 1",
        )
        .await
        .unwrap();
    let (store, _) = node(&database).await;
    let version: i32 = client
        .query_one("SELECT schema_version FROM ripplekv.meta", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 3);
    assert_eq!(
        store.get("k").await.unwrap().unwrap().revision,
        written.revision
    );
    let next = store.write(set("k", "2")).await.unwrap();
    assert_eq!(next.revision, written.revision + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_one_dense_revision_sequence_and_each_sink_sees_all_of_it() {
    let database = TestDatabase::create().await;
    let (a, seen_by_a) = node(&database).await;
    let (b, seen_by_b) = node(&database).await;
    let writers: Vec<_> = [&a, &b]
        .into_iter()
        .enumerate()
        .map(|(n, store)| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                for i in 0..50 {
                    let key = format!("{n}-{i}");
                    revisions.push(store.write(set(&key, "v")).await.unwrap().revision);
                }
                revisions
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    acknowledged.sort_unstable();
    assert_eq!(
        acknowledged,
        (1..=100).collect::<Vec<_>>(),
        "dense, none shared"
    );
    // One more write on each node: each publishes whatever the other committed since.
    a.write(set("last-a", "v")).await.unwrap();
    b.write(set("last-b", "v")).await.unwrap();
    assert_eq!(seen_by_b.revisions(), (1..=102).collect::<Vec<_>>());
    let seen = seen_by_a.revisions();
    assert_eq!(
        seen,
        (1..=seen.len() as u64).collect::<Vec<_>>(),
        "gap-free"
    );
    assert!(seen.len() >= 101);
    let ChangesSince::Changes(log) = b.changes_since(0, 1000).await.unwrap() else {
        panic!("everything is retained")
    };
    assert_eq!(log.len(), 102);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_writes_nothing_publishes_every_other_nodes_commit_in_order() {
    let database = TestDatabase::create().await;
    let (a, _) = node(&database).await;
    let (idle, seen) = node(&database).await;
    for i in 0..30 {
        a.write(set(&format!("k{i}"), "v")).await.unwrap();
    }
    a.write(Mutation::new("k0", WriteOp::Delete)).await.unwrap();
    seen.published(31).await;
    assert_eq!(
        seen.revisions(),
        (1..=31).collect::<Vec<_>>(),
        "once each, in order"
    );
    assert_eq!(idle.revision(), 31);

    // The listeners' connections killed, the node still catches up (the probe, then a
    // new listener).
    assert_eq!(
        database.kill(Connections::Listeners).await,
        2,
        "both nodes' listeners"
    );
    a.write(set("after", "v")).await.unwrap();
    seen.published(32).await;
    assert_eq!(seen.revisions().last(), Some(&32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_writes_and_counters_are_exact_across_nodes() {
    let database = TestDatabase::create().await;
    let (a, _) = node(&database).await;
    let (b, _) = node(&database).await;
    let created = a.write(set("doc", "v0")).await.unwrap();
    let conditional = |store: &Arc<PostgresStore>, value: &str| {
        let store = Arc::clone(store);
        let mutation = Mutation {
            if_revision: Some(created.revision),
            ..set("doc", value)
        };
        tokio::spawn(async move { store.write(mutation).await })
    };
    let (from_a, from_b) = (conditional(&a, "a"), conditional(&b, "b"));
    let outcomes = [from_a.await.unwrap(), from_b.await.unwrap()];
    let winners: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    let loser = outcomes.iter().find_map(|o| o.as_ref().err()).unwrap();
    assert_eq!(
        loser,
        &Error::Conflict {
            current: winners[0].revision
        },
        "the 409 names the winning write's revision"
    );

    let counters: Vec<_> = (0..4)
        .map(|n| {
            let store = Arc::clone(if n % 2 == 0 { &a } else { &b });
            tokio::spawn(async move {
                for _ in 0..25 {
                    store
                        .write(Mutation::new("n", WriteOp::Atomic(1)))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for counter in counters {
        counter.await.unwrap();
    }
    assert_eq!(a.get("n").await.unwrap().unwrap().value, "100");
}

/// A connection of the test's own holding the clock row's lock, as a long batch of
/// another node would, until it commits.
async fn hold_clock(database: &TestDatabase) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("BEGIN; SELECT revision FROM ripplekv.clock FOR UPDATE")
        .await
        .unwrap();
    client
}

/// Returns once `count` sessions of the database wait for a lock (failing after 10 s).
async fn lock_waiters(client: &tokio_postgres::Client, count: i64) {
    let waiting = async {
        loop {
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap();
            if row.get::<_, i64>(0) >= count {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .unwrap_or_else(|_| panic!("{count} sessions never waited for the clock"));
}

fn replanned(store: &PostgresStore) -> u64 {
    let mut metrics = String::new();
    store.render_metrics(&mut metrics);
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("ripplekv_store_batches_replanned_total "))
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_planned_on_a_snapshot_follow_the_head_and_replan_when_their_rows_changed() {
    let database = TestDatabase::create().await;
    let (a, seen_by_a) = node(&database).await;
    let (b, seen_by_b) = node(&database).await;
    let base = a.write(set("start", "v")).await.unwrap().revision;
    let write = |store: &Arc<PostgresStore>, mutation: Mutation| {
        let store = Arc::clone(store);
        tokio::spawn(async move { store.write(mutation).await.unwrap() })
    };

    // Both nodes plan on the same snapshot while the clock is held: the second to get
    // it follows the first's revision, with nothing to plan again (other keys).
    let holder = hold_clock(&database).await;
    let (x, y) = (write(&a, set("x", "1")), write(&b, set("y", "1")));
    lock_waiters(&holder, 2).await;
    holder.batch_execute("COMMIT").await.unwrap();
    let mut revisions = [x.await.unwrap().revision, y.await.unwrap().revision];
    revisions.sort_unstable();
    assert_eq!(revisions, [base + 1, base + 2]);
    assert_eq!(replanned(&a) + replanned(&b), 0);

    // The same key from both: the second finds the row changed and plans again under
    // the lock, so the counter counts both increments.
    let holder = hold_clock(&database).await;
    let increment = || Mutation::new("n", WriteOp::Atomic(1));
    let (from_a, from_b) = (write(&a, increment()), write(&b, increment()));
    lock_waiters(&holder, 2).await;
    holder.batch_execute("COMMIT").await.unwrap();
    let mut changes = [from_a.await.unwrap(), from_b.await.unwrap()];
    changes.sort_by_key(|change| change.revision);
    let [first, second] = &changes;
    assert_eq!((first.revision, second.revision), (base + 3, base + 4));
    assert_eq!(first.value.as_deref(), Some("1"));
    assert_eq!(second.value.as_deref(), Some("2"));
    assert_eq!(second.previous, Previous::At(first.revision));
    assert_eq!(replanned(&a) + replanned(&b), 1);
    assert_eq!(a.get("n").await.unwrap().unwrap().revision, base + 4);

    for seen in [&seen_by_a, &seen_by_b] {
        seen.published(5).await;
        assert_eq!(seen.revisions(), (base..=base + 4).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_may_hold_u0000_and_range_bounds_may_too() {
    let database = TestDatabase::create().await;
    let (store, _) = node(&database).await;
    store.write(set("a", "x\0y")).await.unwrap();
    store.write(set("ab", "2")).await.unwrap();
    store.write(set("b", "3")).await.unwrap();
    assert_eq!(store.get("a").await.unwrap().unwrap().value, "x\0y");
    // "after a" paging: a start bound of "a\0" excludes "a" itself.
    let page = store.range("a\0", "b", 10).await.unwrap();
    let keys: Vec<_> = page.records.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, ["ab", "b"]);
    // An end bound of "a\0" includes "a" and nothing after it.
    let page = store.range("", "a\0", 10).await.unwrap();
    assert_eq!(page.records.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_connections_are_killed_answers_503_or_truly_and_recovers() {
    let database = TestDatabase::create().await;
    let (store, _) = node(&database).await;
    store.write(set("before", "v")).await.unwrap();
    let killed = database.kill(Connections::All).await;
    assert!(killed >= 1, "the node's connections were killed");
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for i in 0..20 {
        let key = format!("after-{i}");
        match store.write(set(&key, "v")).await {
            Ok(_) => acknowledged.push(key),
            Err(Error::Unavailable) => refused += 1,
            Err(other) => panic!("a lost connection is 503, not {other:?}"),
        }
    }
    assert!(
        acknowledged.len() >= 18,
        "the node reconnects by itself ({refused} refused)"
    );
    for key in &acknowledged {
        let mut read = store.get(key).await;
        if read == Err(Error::Unavailable) {
            read = store.get(key).await; // a pooled read connection was killed too
        }
        assert!(
            read.unwrap().is_some(),
            "{key} was acknowledged: it is stored"
        );
    }
}

/// A private Redis on a port of its own, so a test can kill and restart it.
struct TestRedis {
    child: tokio::process::Child,
    port: u16,
}

impl TestRedis {
    async fn start(port: u16) -> TestRedis {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (bash scripts/test.sh installs it)");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("Ready to accept connections") {
                    return;
                }
            }
            panic!("redis-server exited before it was ready");
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), ready)
            .await
            .unwrap();
        // Keep reading its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        TestRedis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sets `count` keys from number `first` on; returns `count`.
async fn write_keys(writer: &PostgresStore, first: usize, count: usize) -> usize {
    for i in first..first + count {
        writer.write(set(&format!("k{i}"), "v")).await.unwrap();
    }
    count
}

/// A counter from the store's `/metrics` text.
fn metric(store: &PostgresStore, name: &str) -> u64 {
    let mut out = String::new();
    store.render_metrics(&mut out);
    out.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not in the metrics:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_bus_changes_arrive_through_it_and_keep_arriving_while_it_restarts() {
    let database = TestDatabase::create().await;
    let port = free_port();
    let mut redis = TestRedis::start(port).await;
    let (writer, _) = node_on(&database, Some(&redis.url())).await;
    let (idle, seen) = node_on(&database, Some(&redis.url())).await;
    let mut written = 0;
    written += write_keys(&writer, written, 20).await;
    seen.published(20).await;
    assert!(
        metric(&idle, "ripplekv_bus_received_total") > 0,
        "delivered through Redis"
    );
    assert!(metric(&writer, "ripplekv_bus_published_total") > 0);

    // Redis down: writes are still acknowledged, and delivery goes on from the log.
    redis.child.kill().await.unwrap();
    written += write_keys(&writer, written, 10).await;
    seen.published(30).await;

    // Redis back on the same port: the node subscribes again by itself, and batches
    // flow through Redis again.
    redis = TestRedis::start(port).await;
    let received = metric(&idle, "ripplekv_bus_received_total");
    let mut through_redis_again = false;
    for _ in 0..100 {
        written += write_keys(&writer, written, 1).await;
        if metric(&idle, "ripplekv_bus_received_total") > received {
            through_redis_again = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(through_redis_again, "the node never heard from Redis again");
    seen.published(written).await;
    assert_eq!(
        seen.revisions(),
        (1..=written as u64).collect::<Vec<_>>(),
        "once each, in order"
    );
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_expiry_is_committed_once_whichever_node_sweeps() {
    use ripplekv_core::ChangeOp;
    let database = TestDatabase::create().await;
    let (a, _) = node(&database).await;
    let (b, _) = node(&database).await;
    for i in 0..20 {
        let mutation = Mutation {
            ttl_ms: Some(1),
            ..set(&format!("t{i}"), "v")
        };
        a.write(mutation).await.unwrap();
    }
    // The TTLs are one millisecond: let them run out.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (by_a, by_b) = tokio::join!(a.expire_due(), b.expire_due());
    assert_eq!(
        by_a.unwrap() + by_b.unwrap(),
        20,
        "every key expired once, by one node"
    );
    let ChangesSince::Changes(log) = b.changes_since(20, 100).await.unwrap() else {
        panic!("everything is retained")
    };
    let mut expired: Vec<&str> = log
        .iter()
        .filter(|change| change.op == ChangeOp::Expire)
        .map(|change| change.key.as_str())
        .collect();
    expired.sort_unstable();
    expired.dedup();
    assert_eq!((log.len(), expired.len()), (20, 20));
    assert_eq!(a.get("t0").await.unwrap(), None);
}
