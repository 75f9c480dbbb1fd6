//! A memory store with hooks that put changes into the windows a race would need:
//! a write committed while a replay reads the change log, and changes committed but
//! not yet delivered to the server (its change sink) until the test says so; and a
//! change-log read that fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use ripplekv_core::{
    Change, ChangeSink, ChangesSince, Error, Limits, Mutation, PendingWrite, RangePage, Record,
    Revision, Snapshot, Store, WriteOp,
};
use ripplekv_storage::MemoryStore;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct HookedStore {
    inner: MemoryStore,
    gate: Arc<Gate>,
    /// Keys written (SET) at the start of the next change-log read.
    during_log_read: Mutex<Vec<&'static str>>,
    /// The next change-log read fails.
    fail_log_read: AtomicBool,
}

/// Between the store and the server's sink: passes changes on, or holds them.
#[derive(Debug, Default)]
struct Gate {
    sink: Mutex<Option<Arc<dyn ChangeSink>>>,
    holding: AtomicBool,
    held: Mutex<Vec<Change>>,
    /// Woken each time a change is held back.
    arrived: tokio::sync::Notify,
}

impl ChangeSink for Gate {
    fn publish(&self, changes: &[Change]) {
        if self.holding.load(Ordering::SeqCst) {
            lock(&self.held).extend(changes.iter().cloned());
            self.arrived.notify_waiters();
            return;
        }
        if let Some(sink) = lock(&self.sink).as_ref() {
            sink.publish(changes);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for HookedStore {
    fn default() -> Self {
        let inner = MemoryStore::new(Limits::default());
        let gate = Arc::new(Gate::default());
        inner.set_change_sink(Arc::clone(&gate) as _);
        HookedStore {
            inner,
            gate,
            during_log_read: Mutex::default(),
            fail_log_read: AtomicBool::new(false),
        }
    }
}

impl HookedStore {
    /// The next change-log read first commits a SET of each of `keys`.
    pub(crate) fn write_during_next_log_read(&self, keys: &[&'static str]) {
        *lock(&self.during_log_read) = keys.to_vec();
    }

    /// The next change-log read fails as a broken disk would.
    pub(crate) fn fail_next_log_read(&self) {
        self.fail_log_read.store(true, Ordering::SeqCst);
    }

    /// From now on, committed changes are held back from the server.
    pub(crate) fn hold_deliveries(&self) {
        self.gate.holding.store(true, Ordering::SeqCst);
    }

    /// Waits until `count` changes are held back (committed, not delivered).
    pub(crate) async fn held(&self, count: usize) {
        loop {
            let arrived = self.gate.arrived.notified();
            if lock(&self.gate.held).len() >= count {
                return;
            }
            arrived.await;
        }
    }

    /// Delivers the held changes to the server and stops holding.
    pub(crate) fn release_deliveries(&self) {
        self.gate.holding.store(false, Ordering::SeqCst);
        let held = std::mem::take(&mut *lock(&self.gate.held));
        self.gate.publish(&held);
    }
}

#[async_trait]
impl Store for HookedStore {
    async fn get(&self, key: &str) -> Result<Option<Record>, Error> {
        self.inner.get(key).await
    }
    async fn range(&self, start: &str, end: &str, limit: usize) -> Result<RangePage, Error> {
        self.inner.range(start, end, limit).await
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn submit(&self, mutation: Mutation) -> Result<PendingWrite, Error> {
        self.inner.submit(mutation).await
    }
    async fn expire_due(&self) -> Result<usize, Error> {
        self.inner.expire_due().await
    }
    async fn changes_since(&self, after: Revision, limit: usize) -> Result<ChangesSince, Error> {
        if self.fail_log_read.swap(false, Ordering::SeqCst) {
            return Err(Error::internal("the log cannot be read"));
        }
        let keys = std::mem::take(&mut *lock(&self.during_log_read));
        for key in keys {
            let write = WriteOp::Set("during the replay".into());
            self.inner.write(Mutation::new(key, write)).await?;
        }
        self.inner.changes_since(after, limit).await
    }
    fn revision(&self) -> Revision {
        self.inner.revision()
    }
    async fn committed_revision(&self) -> Result<Revision, Error> {
        self.inner.committed_revision().await
    }
    async fn scan(&self, prefix: &str) -> Result<Snapshot, Error> {
        self.inner.scan(prefix).await
    }
    async fn close(&self) -> Result<(), Error> {
        self.inner.close().await
    }
    fn set_change_sink(&self, sink: Arc<dyn ChangeSink>) {
        *lock(&self.gate.sink) = Some(sink);
    }
}
