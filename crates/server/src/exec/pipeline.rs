//! One caller's commands in flight, in order.
//!
//! [`Pipeline::push`] checks a command and, for a write with no read waiting ahead of
//! it, queues it in the store at once; [`Pipeline::next`] finishes the oldest command
//! and hands back its result. The effects are exactly those of running the commands one
//! at a time: a read runs only once everything pushed before it is done (so it sees
//! those writes), and a write pushed behind a waiting read stays out of the store until
//! that read has run (so the read cannot see it). Consecutive writes are queued
//! together, so they join the same group commit; consecutive GETs are read together,
//! from one snapshot of the store.
//!
//! Each command carries a tag of the caller's choosing (the socket face keeps the
//! request's message id and key in it), returned with its result.

use std::collections::VecDeque;

use ripplekv_core::Error;

use super::{Done, Executor, Get, Queued, Read, Step, Submitted};
use crate::exec::Command;
use crate::hub::Access;

/// Commands pushed and not yet finished, oldest first.
#[derive(Debug)]
pub(crate) struct Pipeline<'a, T> {
    executor: &'a Executor,
    access: &'a Access,
    slots: VecDeque<(T, Slot)>,
    /// Results of consecutive GETs read together, to hand back one by one.
    ready: VecDeque<(T, Result<Done, Error>)>,
}

/// Where one command stands.
#[derive(Debug)]
enum Slot {
    /// Refused before reaching the store (or by the store's queue): its error.
    Refused(Error),
    /// A read, run when it is the oldest.
    Read(Read),
    /// A write held back behind a read.
    Held(Queued),
    /// A write in the store's queue.
    Submitted(Submitted),
}

impl<'a, T> Pipeline<'a, T> {
    pub(super) fn new(executor: &'a Executor, access: &'a Access) -> Self {
        Pipeline {
            executor,
            access,
            slots: VecDeque::new(),
            ready: VecDeque::new(),
        }
    }

    /// Takes the next command. A write goes into the store's queue now (waiting only
    /// for room in it) unless a read pushed earlier has yet to run.
    pub(crate) async fn push(&mut self, tag: T, command: Command) {
        let slot = match command.check(&self.executor.limits, self.access) {
            Err(err) => Slot::Refused(err),
            Ok(()) => match command.into_step() {
                Step::Read(read) => Slot::Read(read),
                Step::Write(queued) if self.read_waiting() => Slot::Held(queued),
                Step::Write(queued) => submit(self.executor, queued).await,
            },
        };
        self.slots.push_back((tag, slot));
    }

    /// Finishes the oldest command: its tag and its result, or `None` when every
    /// pushed command is finished.
    pub(crate) async fn next(&mut self) -> Option<(T, Result<Done, Error>)> {
        if let Some(finished) = self.ready.pop_front() {
            return Some(finished);
        }
        let (tag, slot) = self.slots.pop_front()?;
        let executor = self.executor;
        let outcome = match slot {
            Slot::Refused(err) => Err(err),
            Slot::Read(Read::Get(get)) if self.front_is_get() => {
                self.read_gets(tag, get).await;
                self.release_held().await;
                return self.ready.pop_front();
            }
            Slot::Read(read) => executor.read(read, self.access).await,
            Slot::Held(queued) => match executor.submit(queued).await {
                Ok(submitted) => executor.finish(submitted).await,
                Err(err) => Err(err),
            },
            Slot::Submitted(submitted) => executor.finish(submitted).await,
        };
        self.release_held().await;
        Some((tag, outcome))
    }

    /// Whether the oldest command left is a GET, to be read with the one before it.
    fn front_is_get(&self) -> bool {
        matches!(self.slots.front(), Some((_, Slot::Read(Read::Get(_)))))
    }

    /// Reads `first` and every GET right behind it from one snapshot, queueing their
    /// results in order. Nothing behind them has reached the store yet (a write
    /// behind a read is held), so the snapshot holds exactly the effects of the
    /// commands before them.
    async fn read_gets(&mut self, tag: T, first: Get) {
        let mut gets = vec![(tag, first)];
        while self.front_is_get() {
            if let Some((tag, Slot::Read(Read::Get(get)))) = self.slots.pop_front() {
                gets.push((tag, get));
            }
        }
        let keys: Vec<&str> = gets.iter().map(|(_, get)| get.key.as_str()).collect();
        match self.executor.store().get_many(&keys).await {
            Ok(records) => {
                for ((tag, get), record) in gets.into_iter().zip(records) {
                    self.ready
                        .push_back((tag, get.found(record).map(Done::Got)));
                }
            }
            Err(err) => {
                for (tag, _) in gets {
                    self.ready.push_back((tag, Err(err.clone())));
                }
            }
        }
    }

    /// Whether a read is still to run: a write pushed now must wait for it.
    fn read_waiting(&self) -> bool {
        self.slots
            .iter()
            .any(|(_, slot)| matches!(slot, Slot::Read(_) | Slot::Held(_)))
    }

    /// Queues the held writes that no read is waiting ahead of any more.
    async fn release_held(&mut self) {
        let executor = self.executor;
        for (_, slot) in &mut self.slots {
            match slot {
                Slot::Read(_) => return,
                Slot::Held(_) => {
                    let held = std::mem::replace(slot, Slot::Refused(Error::Unavailable));
                    if let Slot::Held(queued) = held {
                        *slot = submit(executor, queued).await;
                    }
                }
                Slot::Refused(_) | Slot::Submitted(_) => {}
            }
        }
    }
}

async fn submit(executor: &Executor, queued: Queued) -> Slot {
    match executor.submit(queued).await {
        Ok(submitted) => Slot::Submitted(submitted),
        Err(err) => Slot::Refused(err),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ripplekv_core::{Limits, Store};
    use ripplekv_proto::WriteOptions;
    use ripplekv_storage::{Durability, MemoryStore, RedbStore};

    use super::*;
    use crate::exec::{Atomic, Edit, Get, Write};
    use crate::hub::Hub;
    use crate::sequencer::Sequencer;

    fn executor(store: Arc<dyn Store>) -> Executor {
        let sequencer = Arc::new(Sequencer::new(Arc::new(Hub::default()), 0));
        store.set_change_sink(Arc::clone(&sequencer) as _);
        Executor::new(store, Limits::default(), sequencer)
    }

    fn set(key: &str, value: &str) -> Command {
        Write::new(key.into(), Edit::Set(value.into()), WriteOptions::default()).into()
    }

    fn get(key: &str) -> Command {
        Get { key: key.into() }.into()
    }

    /// What a finished command shows: the value read, or the revision written.
    fn shown(outcome: Result<Done, Error>) -> String {
        match outcome {
            Ok(Done::Got(got)) => format!("got {}", got.record.value),
            Ok(Done::Written(written)) => format!("wrote r{}", written.change.revision),
            Ok(Done::Counted(counted)) => format!("counted r{}", counted.change.revision),
            Ok(Done::Page(page)) => format!("page of {}", page.page.records.len()),
            Err(err) => format!("error {}", err.status()),
        }
    }

    async fn run_all(executor: &Executor, commands: Vec<Command>) -> Vec<(usize, String)> {
        let access = Access::All;
        let mut pipeline = executor.pipeline(&access);
        for (index, command) in commands.into_iter().enumerate() {
            pipeline.push(index, command).await;
        }
        let mut finished = Vec::new();
        while let Some((index, outcome)) = pipeline.next().await {
            finished.push((index, shown(outcome)));
        }
        finished
    }

    /// Every command pushed before any finishes, and each sees exactly the writes
    /// pushed before it: the same results as one at a time, in push order.
    async fn pipelined_like_one_at_a_time(store: Arc<dyn Store>) {
        let executor = executor(store);
        let commands = vec![
            set("k", "1"),
            // Two GETs in a row are read together, before the write behind them.
            get("k"),
            get("k"),
            set("k", "2"),
            // Refused before the store: changes nothing, takes no revision.
            Get { key: String::new() }.into(),
            get("k"),
            Atomic {
                key: "n".into(),
                delta: 5,
            }
            .into(),
        ];
        let expected = [
            "wrote r1",
            "got 1",
            "got 1",
            "wrote r2",
            "error 400",
            "got 2",
            "counted r3",
        ];
        let finished = run_all(&executor, commands).await;
        let expected: Vec<(usize, String)> = expected
            .iter()
            .enumerate()
            .map(|(index, text)| (index, (*text).to_owned()))
            .collect();
        assert_eq!(finished, expected);
    }

    #[tokio::test]
    async fn a_store_that_commits_on_submit_keeps_the_order() {
        // The memory store commits while submitting: a write pushed behind a read
        // would be seen by it unless held back.
        pipelined_like_one_at_a_time(Arc::new(MemoryStore::new(Limits::default()))).await;
    }

    #[tokio::test]
    async fn a_store_with_a_commit_queue_keeps_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path(), Durability::Sync, Limits::default()).unwrap();
        pipelined_like_one_at_a_time(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn consecutive_writes_are_all_queued_before_the_first_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(RedbStore::open(dir.path(), Durability::Sync, Limits::default()).unwrap());
        let executor = executor(Arc::clone(&store) as _);
        let access = Access::All;
        let mut pipeline = executor.pipeline(&access);
        for value in ["a", "b", "c"] {
            pipeline.push(value, set("k", value)).await;
        }
        // All three are in the store's queue: they commit with nothing awaiting them.
        assert_eq!(executor.sequencer.delivered_at_least(3).await, 3);
        let mut finished = Vec::new();
        while let Some((value, outcome)) = pipeline.next().await {
            finished.push(format!("{value} {}", shown(outcome)));
        }
        assert_eq!(finished, ["a wrote r1", "b wrote r2", "c wrote r3"]);
        let record = store.get("k").await.unwrap().unwrap();
        assert_eq!(record.value, "c");
    }
}
