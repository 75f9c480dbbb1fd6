//! The connection task: one per client, owning the WebSocket.
//!
//! It sends requests tagged with a message id and completes each caller's future when
//! the reply with that id arrives; it routes notifications to the subscriptions whose
//! patterns match; and when the socket drops it fails the requests in flight (they may
//! or may not have been applied), reconnects with exponential backoff and jitter, and
//! resubscribes with `since` = the highest revision it has seen, so subscriptions
//! continue without a gap. Subscriptions drop changes they already yielded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use backon::BackoffBuilder;
use futures_util::{SinkExt, StreamExt};
use ripplekv_core::Pattern;
use ripplekv_proto::client::{
    encode_request, parse_server_frame, Notification, Reply, ServerFrame,
};
use ripplekv_proto::RequestBody;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{Change, ClientConfig, ConnectionEvent, Error, Event};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the client handle asks of the task.
#[derive(Debug)]
pub(crate) enum Command {
    Request {
        body: RequestBody,
        reply: oneshot::Sender<Result<Reply, Error>>,
    },
    Subscribe {
        id: u64,
        patterns: Vec<String>,
        events: mpsc::UnboundedSender<Event>,
        reply: oneshot::Sender<Result<Reply, Error>>,
    },
    Unsubscribe {
        id: u64,
    },
    Close,
}

/// State shared with the client handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) pending: AtomicUsize,
    pub(crate) reconnect_attempts: AtomicUsize,
    pub(crate) connects: AtomicU64,
    pub(crate) connected: AtomicBool,
    pub(crate) events: broadcast::Sender<ConnectionEvent>,
}

/// Opens the socket for `url` (already carrying the credentials).
pub(crate) async fn open(url: &str) -> Result<Socket, Error> {
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => {
            if let MaybeTlsStream::Plain(tcp) = socket.get_ref() {
                let _ = tcp.set_nodelay(true);
            }
            Ok(socket)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            // The refusal's body is `{"error": "..."}`; its text says which credential failed.
            let message = response
                .body()
                .as_deref()
                .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
                .and_then(|body| body["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("the server refused the connection with HTTP {status}"));
            Err(match status {
                401 | 403 => Error::Unauthorized { status, message },
                _ => Error::Connect(format!("{message} (HTTP {status})")),
            })
        }
        Err(err) => Err(Error::Connect(err.to_string())),
    }
}

struct Sub {
    patterns: Vec<Pattern>,
    sources: Vec<String>,
    events: mpsc::UnboundedSender<Event>,
    /// Highest revision yielded, so replays after a reconnect repeat nothing.
    last: u64,
}

enum Waiter {
    Request(oneshot::Sender<Result<Reply, Error>>),
    Subscribe(oneshot::Sender<Result<Reply, Error>>),
}

/// The task's state across connections.
struct Task {
    url: String,
    config: ClientConfig,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    waiters: HashMap<u64, Waiter>,
    subs: HashMap<u64, Sub>,
    /// Highest revision seen in notifications and subscribe replies.
    last_revision: u64,
    next_message_id: u64,
}

pub(crate) fn spawn(
    url: String,
    config: ClientConfig,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    socket: Socket,
) {
    let task = Task {
        url,
        config,
        shared,
        commands,
        waiters: HashMap::new(),
        subs: HashMap::new(),
        last_revision: 0,
        next_message_id: 1,
    };
    tokio::spawn(task.run(socket));
}

enum Outcome {
    Dropped,
    Closed,
}

impl Task {
    async fn run(mut self, mut socket: Socket) {
        loop {
            // The first connection was made before `connect` returned; only reconnects
            // are events, so what a listener sees does not depend on when it subscribed.
            if self.shared.connects.fetch_add(1, Ordering::Relaxed) > 0 {
                let _ = self.shared.events.send(ConnectionEvent::Connected);
            }
            self.shared.connected.store(true, Ordering::Relaxed);
            self.shared.reconnect_attempts.store(0, Ordering::Relaxed);
            let outcome = self.serve(&mut socket).await;
            self.shared.connected.store(false, Ordering::Relaxed);
            self.fail_waiters(Error::Disconnected);
            if let Outcome::Closed = outcome {
                let _ = socket.close(None).await;
                break;
            }
            let _ = self.shared.events.send(ConnectionEvent::Disconnected);
            match self.reconnect().await {
                Some(fresh) => socket = fresh,
                None => break,
            }
        }
        self.fail_waiters(Error::Closed);
        self.subs.clear(); // ends every subscription stream
    }

    /// Runs one connection until it drops or the client closes.
    async fn serve(&mut self, socket: &mut Socket) -> Outcome {
        if !self.subs.is_empty() && self.resubscribe(socket).await.is_err() {
            return Outcome::Dropped;
        }
        loop {
            tokio::select! {
                command = self.commands.recv() => {
                    let Some(command) = command else { return Outcome::Closed };
                    match self.command(command, socket).await {
                        Ok(true) => {}
                        Ok(false) => return Outcome::Closed,
                        Err(()) => return Outcome::Dropped,
                    }
                }
                frame = socket.next() => match frame {
                    Some(Ok(Message::Text(text))) => self.receive(text.as_str()),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Outcome::Dropped,
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    /// Handles one command; `Ok(false)` means close, `Err` a failed send.
    async fn command(&mut self, command: Command, socket: &mut Socket) -> Result<bool, ()> {
        match command {
            Command::Request { body, reply } => {
                self.send(socket, body, Waiter::Request(reply)).await?
            }
            Command::Subscribe {
                id,
                patterns,
                events,
                reply,
            } => {
                let compiled = patterns
                    .iter()
                    .filter_map(|p| Pattern::compile(p).ok())
                    .collect();
                self.subs.insert(
                    id,
                    Sub {
                        patterns: compiled,
                        sources: patterns.clone(),
                        events,
                        last: 0,
                    },
                );
                let body = RequestBody::Subscribe {
                    patterns,
                    since: None,
                };
                self.send(socket, body, Waiter::Subscribe(reply)).await?;
            }
            Command::Unsubscribe { id } => {
                if let Some(sub) = self.subs.remove(&id) {
                    let still_used =
                        |source: &String| self.subs.values().any(|s| s.sources.contains(source));
                    let unused: Vec<String> = sub
                        .sources
                        .iter()
                        .filter(|s| !still_used(s))
                        .cloned()
                        .collect();
                    if !unused.is_empty() {
                        let body = RequestBody::Unsubscribe { patterns: unused };
                        socket
                            .send(Message::text(encode_request(&body, None)))
                            .await
                            .map_err(drop)?;
                    }
                }
            }
            Command::Close => return Ok(false),
        }
        Ok(true)
    }

    async fn send(
        &mut self,
        socket: &mut Socket,
        body: RequestBody,
        waiter: Waiter,
    ) -> Result<(), ()> {
        let id = self.next_message_id;
        self.next_message_id += 1;
        self.waiters.insert(id, waiter);
        self.shared
            .pending
            .store(self.waiters.len(), Ordering::Relaxed);
        socket
            .send(Message::text(encode_request(&body, Some(id))))
            .await
            .map_err(drop)
    }

    /// After a reconnect: one subscribe for every pattern in use, resuming from the last
    /// revision seen. Its reply needs no waiter.
    async fn resubscribe(&mut self, socket: &mut Socket) -> Result<(), ()> {
        let mut patterns: Vec<String> = self
            .subs
            .values()
            .flat_map(|sub| sub.sources.iter().cloned())
            .collect();
        patterns.sort();
        patterns.dedup();
        let since = Some(self.last_revision).filter(|&revision| revision > 0);
        let body = RequestBody::Subscribe { patterns, since };
        socket
            .send(Message::text(encode_request(&body, None)))
            .await
            .map_err(drop)
    }

    fn receive(&mut self, text: &str) {
        let reply = match parse_server_frame(text) {
            Ok(ServerFrame::Reply(reply)) => reply,
            Ok(ServerFrame::Notification(notification)) => return self.notify(notification),
            Ok(ServerFrame::Resync { revision }) => {
                self.last_revision = self.last_revision.max(revision);
                for sub in self.subs.values_mut() {
                    sub.last = sub.last.max(revision);
                    let _ = sub.events.send(Event::Resync { revision });
                }
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, "ignoring a frame this client does not understand");
                return;
            }
        };
        let Some(waiter) = reply.message_id.and_then(|id| self.waiters.remove(&id)) else {
            return; // a reply nobody waits for (a resubscribe, or a timed-out request)
        };
        self.shared
            .pending
            .store(self.waiters.len(), Ordering::Relaxed);
        let result = if reply.code == 200 {
            Ok(reply)
        } else {
            Err(Error::Server {
                code: reply.code,
                message: reply.error.unwrap_or_else(|| "unknown error".to_owned()),
                revision: reply.revision,
            })
        };
        match waiter {
            Waiter::Request(answer) => drop(answer.send(result)),
            Waiter::Subscribe(answer) => {
                if let Ok(ack) = &result {
                    // Resuming from here after a drop replays nothing older.
                    self.last_revision = self.last_revision.max(ack.revision.unwrap_or(0));
                }
                let _ = answer.send(result);
            }
        }
    }

    fn notify(&mut self, notification: Notification) {
        let change = Change {
            key: notification.key,
            value: notification.value,
            op: notification.op,
            revision: notification.revision.unwrap_or(0),
            timestamp: notification.timestamp,
        };
        self.last_revision = self.last_revision.max(change.revision);
        for sub in self.subs.values_mut() {
            // Without revisions (an HPKV server) nothing can repeat, so nothing is dropped.
            let new = change.revision == 0 || change.revision > sub.last;
            if new && sub.patterns.iter().any(|p| p.matches(&change.key)) {
                sub.last = sub.last.max(change.revision);
                let _ = sub.events.send(Event::Change(change.clone()));
            }
        }
    }

    fn fail_waiters(&mut self, error: Error) {
        for (_, waiter) in self.waiters.drain() {
            let (Waiter::Request(reply) | Waiter::Subscribe(reply)) = waiter;
            let _ = reply.send(Err(error.clone()));
        }
        self.shared.pending.store(0, Ordering::Relaxed);
    }

    /// Tries to reconnect per the policy, answering commands meanwhile. `None`: gave up
    /// or closed.
    async fn reconnect(&mut self) -> Option<Socket> {
        let policy = &self.config.reconnect;
        let mut builder = backon::ExponentialBuilder::default()
            .with_min_delay(policy.initial_delay)
            .with_max_delay(policy.max_delay)
            .with_jitter();
        builder = match policy.max_attempts {
            Some(attempts) => builder.with_max_times(attempts),
            None => builder.without_max_times(),
        };
        let delays = builder.build();
        for (attempt, delay) in delays.enumerate() {
            self.shared
                .reconnect_attempts
                .store(attempt + 1, Ordering::Relaxed);
            let _ = self.shared.events.send(ConnectionEvent::Reconnecting {
                attempt: attempt + 1,
                delay,
            });
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    command = self.commands.recv() => match command {
                        None | Some(Command::Close) => return None,
                        Some(Command::Request { reply, .. }) => drop(reply.send(Err(Error::Disconnected))),
                        Some(Command::Subscribe { id, patterns, events, reply }) => {
                            // Registered now, subscribed on the server after reconnecting.
                            let compiled = patterns.iter().filter_map(|p| Pattern::compile(p).ok()).collect();
                            self.subs.insert(id, Sub { patterns: compiled, sources: patterns, events, last: 0 });
                            let _ = reply.send(Ok(Reply { code: 200, ..Reply::default() }));
                        }
                        Some(Command::Unsubscribe { id }) => drop(self.subs.remove(&id)),
                    },
                }
            }
            match open(&self.url).await {
                Ok(socket) => return Some(socket),
                Err(err) => tracing::debug!(error = %err, attempt, "reconnect failed"),
            }
        }
        let _ = self.shared.events.send(ConnectionEvent::GaveUp);
        None
    }
}
