//! The socket.io face at `/socket.io/` (socket.io v4, namespace `/`, polling and
//! WebSocket), on the server's own port: collections of JSON documents stored as
//! ordinary keys `<collection>/<id>`, so the same data, revisions and tokens serve HPKV
//! clients and socket.io clients at once.
//!
//! A socket authenticates in its handshake (`auth: {apiKey}` or `auth: {token}`, or
//! `?apiKey=` / `?token=` in the URL); anything else is refused with `connect_error`
//! and a message saying why. Its requests are queued and served one at a time, in the
//! order sent (`requests`), by the verb face (`verbs`) over the wire-neutral item
//! operations (`items`), which go through the same executor as `/ws` and REST.
//! Errors are Feathers' error JSON (`errors`). Every committed change of an item the
//! socket may read reaches it as events (`events`), through the hub like HPKV
//! notifications; `auth.collections` narrows them to some collections and
//! `auth.events` (`"verbs"` or `"feathers"`) to one style.

use std::sync::{Arc, Mutex, PoisonError};

use ripplekv_collections::{Collection, IdGenerator};
use ripplekv_core::{now_ms, Error, Pattern};
use serde_json::Value;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::SocketIo;
use tokio::sync::{mpsc, oneshot};

use crate::auth::{self, Principal};
use crate::hub::Subscriber;
use crate::state::AppState;

mod errors;
mod events;
mod feathers;
mod items;
mod requests;
mod resume;
mod subscriptions;
mod verbs;

pub(crate) use events::CollectionEvent;
use events::{Emitter, SocketTarget, Styles};
use resume::Resume;

use requests::{Enqueued, Queue, QUEUE_CAPACITY};

/// Packets (acks and events) one socket may have waiting to be sent. A socket whose
/// buffer fills is not reading and is disconnected (see `events`); so this many
/// packets, each at most about one value, is all a socket can hold of the server's
/// memory. As many as its request queue, so a burst of queued requests' acks fits.
const SEND_BUFFER: usize = QUEUE_CAPACITY;

/// What every socket of the face shares.
#[derive(Debug)]
struct Face {
    state: AppState,
    /// Ids for items created without one.
    ids: IdGenerator,
}

/// The layer that serves `/socket.io/` (everything else passes through). Its sockets
/// are disconnected when the server shuts down.
pub(crate) fn layer(state: &AppState) -> SocketIoLayer {
    let largest = state.config().max_message_bytes();
    let (layer, io) = SocketIo::builder()
        .max_buffer_size(SEND_BUFFER)
        .ws_max_message_size(largest)
        .max_payload(u64::try_from(largest).unwrap_or(u64::MAX))
        .build_layer();
    let face = Arc::new(Face {
        state: state.clone(),
        ids: IdGenerator::new(),
    });
    let admit = move |socket: SocketRef, TryData(auth): TryData<Value>| {
        let face = Arc::clone(&face);
        async move { admit(face, &socket, auth.ok()) }
    };
    io.ns("/", on_connect.with(admit));
    let shutdown = state.shutdown().clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        io.close().await;
    });
    layer
}

/// The connect middleware: checks the credentials, then gives the socket its queue and
/// the task that serves it, before the socket is connected (so its first request
/// already finds them).
fn admit(face: Arc<Face>, socket: &SocketRef, auth: Option<Value>) -> Result<(), Refused> {
    let principal = credentials(&face.state, socket, auth.as_ref()).map_err(Refused)?;
    let interest = Interest::parse(auth.as_ref()).map_err(Refused)?;
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    socket.extensions.insert(Queue(sender));
    socket.on_fallback(async |_: Enqueued| {});
    let emitter = Emitter {
        socket: socket.clone(),
        styles: interest.styles,
    };
    let access = principal.access();
    // During a replay, at most a send buffer's worth of live events is held back.
    let subscriber = Arc::new(Subscriber::new(
        SocketTarget::new(emitter.clone()),
        access.clone(),
        SEND_BUFFER,
    ));
    if interest.since.is_some() {
        // Held from before the patterns enter the hub, so nothing slips between.
        subscriber.begin_replay();
    }
    let hub = Arc::clone(face.state.hub());
    for pattern in &interest.patterns {
        hub.subscribe(&subscriber, pattern.clone(), true);
    }
    let subscriptions = subscriptions::Subscriptions {
        hub: Arc::clone(&hub),
        subscriber: Arc::clone(&subscriber),
        sources: interest.sources,
    };
    let resume = interest.since.map(|since| Resume {
        since,
        subscriber: Arc::clone(&subscriber),
        patterns: interest.patterns,
        access,
        emitter,
    });
    // The socket is connected once every middleware passed: its handler says so to
    // the serving task, which replays (nothing can be emitted before) and then serves.
    let (connected, on_connected) = oneshot::channel();
    socket
        .extensions
        .insert(Connected(Arc::new(Mutex::new(Some(connected)))));
    socket.on_disconnect(async move |socket: SocketRef| {
        hub.remove_subscriber(subscriber.id());
        // Ends the serving task once the requests already queued are answered.
        socket.extensions.remove::<Queue>();
    });
    tokio::spawn(async move {
        if on_connected.await.is_err() {
            return;
        }
        if let Some(resume) = resume {
            resume::replay(&face, resume).await;
        }
        requests::serve(face, principal, subscriptions, receiver).await;
    });
    Ok(())
}

/// Tells the serving task that its socket is connected.
#[derive(Clone)]
struct Connected(Arc<Mutex<Option<oneshot::Sender<()>>>>);

/// The namespace's connect handler: runs once the socket is connected.
async fn on_connect(socket: SocketRef) {
    if let Some(Connected(signal)) = socket.extensions.remove::<Connected>() {
        let sender = signal.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(sender) = sender {
            let _ = sender.send(());
        }
    }
}

/// Which events a socket asked for in its handshake.
struct Interest {
    /// Key patterns: every item (`*/*`), or `<collection>/*` per collection named.
    patterns: Vec<Pattern>,
    /// Their sources.
    sources: Vec<String>,
    styles: Styles,
    /// Replay the changes after this revision first (`auth.since`).
    since: Option<u64>,
}

impl Interest {
    fn parse(auth: Option<&Value>) -> Result<Self, Error> {
        let given = |name: &str| auth.and_then(|auth| auth.get(name));
        let sources: Vec<String> = match given("collections") {
            None | Some(Value::Null) => vec!["*/*".to_owned()],
            Some(Value::Array(names)) => names
                .iter()
                .map(|name| match name.as_str() {
                    Some("*") => Ok("*/*".to_owned()),
                    Some(name) => Ok(format!("{}/*", Collection::parse(name)?.as_str())),
                    None => Err(Error::invalid(
                        "auth.collections must hold collection names",
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(Error::invalid("auth.collections must be an array of names")),
        };
        let styles = match given("events").and_then(Value::as_str) {
            None if given("events").is_none_or(Value::is_null) => Styles::Both,
            Some("both") => Styles::Both,
            Some("verbs") => Styles::Verbs,
            Some("feathers") => Styles::Feathers,
            _ => {
                return Err(Error::invalid(
                    "auth.events must be \"verbs\", \"feathers\" or \"both\"",
                ))
            }
        };
        let patterns = sources
            .iter()
            .map(|source| Pattern::compile(source))
            .collect::<Result<_, _>>()?;
        let since = match given("since") {
            None | Some(Value::Null) => None,
            Some(since) => Some(
                since
                    .as_u64()
                    .ok_or_else(|| Error::invalid("auth.since must be a revision"))?,
            ),
        };
        Ok(Interest {
            patterns,
            sources,
            styles,
            since,
        })
    }
}

/// Who the socket is: from `auth.token` or `auth.apiKey`, else from the URL's
/// `?token=` / `?apiKey=` or the `x-api-key` header.
fn credentials(
    state: &AppState,
    socket: &SocketRef,
    auth: Option<&Value>,
) -> Result<Principal, Error> {
    let given = |name: &str| auth.and_then(|auth| auth.get(name));
    if let Some(token) = given("token") {
        return token
            .as_str()
            .and_then(|token| state.tokens().verify(token, now_ms()))
            .map(Principal::Token)
            .ok_or(Error::InvalidToken);
    }
    if let Some(key) = given("apiKey") {
        return key
            .as_str()
            .and_then(|key| state.keys().find(key))
            .map(Principal::ApiKey)
            .ok_or(Error::InvalidApiKey);
    }
    let request = socket.req_parts();
    auth::check_upgrade(
        state.keys(),
        state.tokens(),
        request.uri.query(),
        &request.headers,
    )
}

/// A refused handshake: the client's `connect_error` carries this message.
#[derive(Debug)]
struct Refused(Error);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.client_message())
    }
}
