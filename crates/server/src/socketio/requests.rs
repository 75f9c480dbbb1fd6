//! One socket's requests, served in the order they were sent.
//!
//! socketioxide runs every event handler in a task of its own, so two requests of one
//! socket could be applied in either order. Its extractors, though, run one after the
//! other in packet order before that task starts: [`Enqueued`] is an extractor that
//! moves the request (event, arguments, ack) into the socket's bounded queue, and one
//! task per socket ([`serve`]) takes them from it in turn. Every request gets exactly
//! one ack: a full queue acks 429 at once, and arguments that do not parse ack 400.

use std::convert::Infallible;
use std::sync::Arc;

use ripplekv_core::Error;
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, Event, TryData};
use socketioxide::handler::{FromMessageParts, Value as PacketValue};
use socketioxide::socket::Socket;
use tokio::sync::mpsc;

use super::errors::Failure;
use super::items::Items;
use super::subscriptions::{self, Subscriptions};
use super::{feathers, verbs, Face};
use crate::auth::Principal;

/// Requests one socket may have waiting for their turn; one more is refused with 429.
/// Room for a client pipelining a few hundred writes without waiting for acks.
pub(super) const QUEUE_CAPACITY: usize = 1024;

/// A request waiting in its socket's queue.
pub(super) struct Request {
    event: Result<String, String>,
    args: Result<Vec<Value>, String>,
    ack: AckSender<LocalAdapter>,
}

/// The socket's queue, kept in its extensions.
#[derive(Clone)]
pub(super) struct Queue(pub(super) mpsc::Sender<Request>);

/// Every argument after the event name, whatever their number and JSON types
/// (deserialized as a tuple, so socketioxide hands over all of them).
struct Args(Vec<Value>);

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArgsVisitor;
        impl<'de> Visitor<'de> for ArgsVisitor {
            type Value = Args;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the event's arguments")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Args, S::Error> {
                let mut args = Vec::new();
                while let Some(arg) = seq.next_element()? {
                    args.push(arg);
                }
                Ok(Args(args))
            }
        }
        deserializer.deserialize_tuple(usize::MAX, ArgsVisitor)
    }
}

/// The extractor that queues a request (see the module documentation). The handler it
/// is given to does nothing more.
pub(super) struct Enqueued;

impl FromMessageParts<LocalAdapter> for Enqueued {
    type Error = Infallible;

    fn from_message_parts(
        socket: &Arc<Socket<LocalAdapter>>,
        value: &mut PacketValue,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let event = Event::from_message_parts(socket, value, ack_id)
            .map(|Event(event)| event)
            .map_err(|err| err.to_string());
        let Ok(TryData(args)) = TryData::<Args>::from_message_parts(socket, value, ack_id);
        let Ok(ack) = AckSender::from_message_parts(socket, value, ack_id);
        let request = Request {
            event,
            args: args.map(|Args(args)| args).map_err(|err| err.to_string()),
            ack,
        };
        let refused = match socket.extensions.get::<Queue>() {
            Some(Queue(queue)) => queue.try_send(request).err().map(|err| match err {
                mpsc::error::TrySendError::Full(request)
                | mpsc::error::TrySendError::Closed(request) => request,
            }),
            None => Some(request),
        };
        if let Some(request) = refused {
            acknowledge(request.ack, Err(Failure::queue_full(QUEUE_CAPACITY)));
        }
        Ok(Enqueued)
    }
}

/// Serves one socket's requests in order until the socket is gone.
pub(super) async fn serve(
    face: Arc<Face>,
    principal: Principal,
    mut subscriptions: Subscriptions,
    mut queue: mpsc::Receiver<Request>,
) {
    let access = principal.access();
    let subject = principal.subject();
    let items = Items {
        executor: face.state.executor(),
        access: &access,
        ids: &face.ids,
    };
    while let Some(request) = queue.recv().await {
        // Feathers' methods, and the lower-case (un)subscribe, ack the Feathers way.
        let feathers = request
            .event
            .as_deref()
            .is_ok_and(|event| feathers::serves(event) || subscriptions::feathers_style(event));
        let outcome = async {
            let event = request
                .event
                .map_err(|err| Error::invalid(format!("Bad event: {err}")))?;
            let subscribing = subscriptions::serves(&event);
            if !verbs::serves(&event) && !feathers && !subscribing {
                return Err(Failure::unknown_event(&event));
            }
            face.state.admit(&subject)?;
            let args = request
                .args
                .map_err(|err| Error::invalid(format!("{event}: bad arguments: {err}")))?;
            if subscribing {
                Ok(subscriptions.handle(&face.state, &event, args)?)
            } else if feathers {
                feathers::handle(&items, &event, args).await
            } else {
                Ok(verbs::handle(&items, &event, args).await?)
            }
        };
        let outcome = outcome.await;
        if feathers {
            acknowledge_feathers(request.ack, outcome);
        } else {
            acknowledge(request.ack, outcome);
        }
    }
}

/// Acks a Feathers call: `(null, result)`, or `(error)`.
fn acknowledge_feathers(ack: AckSender<LocalAdapter>, outcome: Result<Value, Failure>) {
    let sent = match outcome {
        Ok(value) => ack.send(&(Value::Null, value)),
        Err(failure) => ack.send(&failure.to_json()),
    };
    if let Err(err) = sent {
        tracing::debug!(error = %err, "socket.io ack not sent");
    }
}

/// Acks a verb-face request: the one value, or `(null, error)`.
fn acknowledge(ack: AckSender<LocalAdapter>, outcome: Result<Value, Failure>) {
    let sent = match outcome {
        Ok(value) => ack.send(&value),
        Err(failure) => ack.send(&(Value::Null, failure.to_json())),
    };
    if let Err(err) = sent {
        tracing::debug!(error = %err, "socket.io ack not sent");
    }
}
