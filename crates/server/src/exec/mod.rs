//! The one request executor every face shares (the `/ws` session and REST today,
//! socket.io later): decode → validated [`Command`] → ordered submit to the store →
//! await → [`Done`], which the face renders for its wire.
//!
//! Each op is one file holding its command type, its checks (the limits, and the
//! caller's [`Access`]: 403 outside a token's access pattern), how it runs, and how its
//! result is rendered for each face (`get`, `range`, `write` for SET/PATCH/DELETE/JSON
//! Patch, `atomic`), the way mini-redis keeps a command's parse, apply and encode
//! together. Faces decode their own wire format (the proto crate does the field
//! typing) into commands, and render a [`Done`] or an [`Error`] (from the one error
//! table, framed by `wire`).
//!
//! Running is split in two so a connection can pipeline: a [`Pipeline`] takes commands
//! in order, queueing writes in the store at once (so consecutive writes share a
//! commit), and hands results back in the same order. A write is done only once the
//! sequencer has handed its change to the hub, so subscribers (the writer's own
//! connection among them) are told no later than the writer is answered.

use std::sync::Arc;

use ripplekv_core::{Error, Limits, Mutation, PendingWrite, Store};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::hub::Access;
use crate::sequencer::Sequencer;

mod atomic;
mod get;
mod pipeline;
mod range;
mod write;

pub(crate) use atomic::{Atomic, Counted};
pub(crate) use get::{Get, Got};
pub(crate) use pipeline::Pipeline;
pub(crate) use range::{Page, Range};
pub(crate) use write::{Edit, Write, Written};

/// A request for the store, as any face decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Get(Get),
    Range(Range),
    Write(Write),
    Atomic(Atomic),
}

impl Command {
    /// Checks the command against the limits and what the caller may touch. A refused
    /// command never reaches the store.
    fn check(&self, limits: &Limits, access: &Access) -> Result<(), Error> {
        match self {
            Command::Get(get) => get.check(limits, access),
            Command::Range(range) => range.check(limits, access),
            Command::Write(write) => write.check(limits, access),
            Command::Atomic(atomic) => atomic.check(limits, access),
        }
    }

    /// Splits the command into a read, run in its turn, or a write for the store's
    /// queue with how its change will be reported.
    fn into_step(self) -> Step {
        match self {
            Command::Get(get) => Step::Read(Read::Get(get)),
            Command::Range(range) => Step::Read(Read::Range(range)),
            Command::Write(write) => Step::Write(Queued {
                report: Report::Written(write.message()),
                mutation: write.into_mutation(),
            }),
            Command::Atomic(atomic) => Step::Write(Queued {
                report: Report::Counted,
                mutation: atomic.into_mutation(),
            }),
        }
    }
}

impl From<Get> for Command {
    fn from(get: Get) -> Self {
        Command::Get(get)
    }
}

impl From<Range> for Command {
    fn from(range: Range) -> Self {
        Command::Range(range)
    }
}

impl From<Write> for Command {
    fn from(write: Write) -> Self {
        Command::Write(write)
    }
}

impl From<Atomic> for Command {
    fn from(atomic: Atomic) -> Self {
        Command::Atomic(atomic)
    }
}

/// A command's result, for a face to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Done {
    Got(Got),
    Page(Page),
    Written(Written),
    Counted(Counted),
}

impl Done {
    /// The HPKV WebSocket reply frame, echoing `message_id`.
    pub(crate) fn socket_reply(&self, message_id: Option<&RawValue>) -> String {
        match self {
            Done::Got(got) => got.socket_reply(message_id),
            Done::Page(page) => page.socket_reply(message_id),
            Done::Written(written) => written.socket_reply(message_id),
            Done::Counted(counted) => counted.socket_reply(message_id),
        }
    }

    /// The REST response body (sent with status 200).
    pub(crate) fn rest_body(&self) -> Value {
        match self {
            Done::Got(got) => got.rest_body(),
            Done::Page(page) => page.rest_body(),
            Done::Written(written) => written.rest_body(),
            Done::Counted(counted) => counted.rest_body(),
        }
    }
}

/// What running a checked command takes.
enum Step {
    Read(Read),
    Write(Queued),
}

/// A read: run when every command before it on the connection is done, so it sees
/// their effects and none of the commands after it.
#[derive(Debug)]
enum Read {
    Get(Get),
    Range(Range),
}

/// A write not yet in the store's queue.
#[derive(Debug)]
struct Queued {
    mutation: Mutation,
    report: Report,
}

/// How a committed change is reported: which [`Done`] it becomes.
#[derive(Debug, Clone, Copy)]
enum Report {
    Written(&'static str),
    Counted,
}

/// A write in the store's queue.
#[derive(Debug)]
struct Submitted {
    pending: PendingWrite,
    report: Report,
}

/// Runs commands over one store, one set of limits and one sequencer.
#[derive(Debug, Clone)]
pub(crate) struct Executor {
    store: Arc<dyn Store>,
    limits: Limits,
    sequencer: Arc<Sequencer>,
}

impl Executor {
    pub(crate) fn new(store: Arc<dyn Store>, limits: Limits, sequencer: Arc<Sequencer>) -> Self {
        Executor {
            store,
            limits,
            sequencer,
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A pipeline for one caller's commands, checked against `access`.
    pub(crate) fn pipeline<'a, T>(&'a self, access: &'a Access) -> Pipeline<'a, T> {
        Pipeline::new(self, access)
    }

    /// Runs one command on its own: a pipeline of one.
    pub(crate) async fn run(&self, access: &Access, command: Command) -> Result<Done, Error> {
        let mut pipeline = self.pipeline(access);
        pipeline.push((), command).await;
        match pipeline.next().await {
            Some(((), outcome)) => outcome,
            None => Err(Error::internal("a pipeline lost its only command")),
        }
    }

    async fn read(&self, read: Read, access: &Access) -> Result<Done, Error> {
        match read {
            Read::Get(get) => get.read(self.store.as_ref()).await.map(Done::Got),
            Read::Range(range) => range
                .read(self.store.as_ref(), access)
                .await
                .map(Done::Page),
        }
    }

    async fn submit(&self, queued: Queued) -> Result<Submitted, Error> {
        let pending = self.store.submit(queued.mutation).await?;
        Ok(Submitted {
            pending,
            report: queued.report,
        })
    }

    /// Awaits a queued write's commit, then its delivery to the hub.
    async fn finish(&self, submitted: Submitted) -> Result<Done, Error> {
        let change = submitted.pending.await?;
        let delivered = self.sequencer.delivered_at_least(change.revision).await;
        if delivered < change.revision {
            tracing::warn!(
                revision = change.revision,
                delivered,
                "a change did not reach subscribers in time; answering the writer anyway"
            );
        }
        Ok(match submitted.report {
            Report::Written(message) => Done::Written(Written { message, change }),
            Report::Counted => Done::Counted(Counted { change }),
        })
    }
}
