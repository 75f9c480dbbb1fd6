//! The client handle and its typed operations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{Stream, TryStreamExt};
use ripplekv_proto::client::Reply;
use ripplekv_proto::RequestBody;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::connection::{self, Command, Shared};
use crate::pacing::{retry_hint, Bucket};
use crate::{
    Auth, ClientConfig, ConnectionEvent, Error, Record, Stats, Subscription, WriteOptions, Written,
};

static NEXT_SUBSCRIPTION: AtomicU64 = AtomicU64::new(1);

/// A connection to a RippleKV server. Cheap to clone; all clones share the connection.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    config: Arc<ClientConfig>,
    limiter: Option<Arc<Mutex<Bucket>>>,
}

/// One page of a range read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePage {
    /// The records, in key order.
    pub records: Vec<Record>,
    /// More records exist in the range after the last one.
    pub truncated: bool,
}

/// The WebSocket URL for a base URL (`http://`, `https://`, `ws://`, `wss://`, with or
/// without the `/ws` path) and credentials.
pub(crate) fn socket_url(base: &str, auth: &Auth) -> String {
    let base = base.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        base.to_owned()
    };
    let base = if base.ends_with("/ws") {
        base
    } else {
        format!("{base}/ws")
    };
    match auth {
        Auth::ApiKey(key) => format!("{base}?apiKey={key}"),
        Auth::Token(token) => format!("{base}?token={token}"),
    }
}

impl Client {
    /// Connects with default settings.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), ripplekv_client::Error> {
    /// use ripplekv_client::{Auth, Client};
    /// let client = Client::connect("http://127.0.0.1:3000", Auth::ApiKey("rk_…".into())).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str, auth: Auth) -> Result<Client, Error> {
        Self::connect_with(url, ClientConfig::new(auth)).await
    }

    /// Connects with the given settings. Fails if the first connection fails (later drops
    /// are retried by the reconnect policy).
    pub async fn connect_with(url: &str, config: ClientConfig) -> Result<Client, Error> {
        let url = socket_url(url, &config.auth);
        let socket = connection::open(&url).await?;
        let (commands, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            pending: Default::default(),
            reconnect_attempts: Default::default(),
            connects: Default::default(),
            connected: Default::default(),
            events: broadcast::channel(64).0,
        });
        shared.connected.store(true, Ordering::Relaxed);
        let limiter = config
            .rate_limit
            .map(|rate| Arc::new(Mutex::new(Bucket::new(rate))));
        connection::spawn(url, config.clone(), Arc::clone(&shared), receiver, socket);
        Ok(Client {
            commands,
            shared,
            config: Arc::new(config),
            limiter,
        })
    }

    /// Sends a request and waits for its reply, within the request timeout. Waits for the
    /// client-side rate limit, and retries on 429 after the hinted delay.
    async fn call(&self, body: RequestBody) -> Result<Reply, Error> {
        let mut rate_limited = 0;
        loop {
            if let Some(limiter) = &self.limiter {
                let wait = limiter
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            let (reply, answer) = oneshot::channel();
            self.commands
                .send(Command::Request {
                    body: body.clone(),
                    reply,
                })
                .map_err(|_| Error::Closed)?;
            let timeout = self.config.request_timeout;
            let result = tokio::time::timeout(timeout, answer)
                .await
                .map_err(|_| Error::Timeout(timeout))?
                .map_err(|_| Error::Closed)?;
            match result {
                Err(Error::Server {
                    code: 429, message, ..
                }) if rate_limited < self.config.max_rate_limit_retries => {
                    rate_limited += 1;
                    tokio::time::sleep(retry_hint(&message)).await;
                }
                other => return other,
            }
        }
    }

    /// Reads one key; [`Error::is_not_found`] when it does not exist.
    ///
    /// ```no_run
    /// # async fn demo(client: ripplekv_client::Client) -> Result<(), ripplekv_client::Error> {
    /// match client.get("user:1").await {
    ///     Ok(record) => println!("{} at revision {}", record.value, record.revision),
    ///     Err(err) if err.is_not_found() => println!("no such user"),
    ///     Err(err) => return Err(err),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, key: &str) -> Result<Record, Error> {
        let reply = self.call(RequestBody::Get { key: key.into() }).await?;
        match (reply.key, reply.value) {
            (Some(key), Some(value)) => Ok(Record {
                key,
                value,
                revision: reply.revision.unwrap_or(0),
            }),
            _ => Err(Error::Protocol("a GET reply without key and value".into())),
        }
    }

    /// Creates or replaces a key.
    pub async fn set(&self, key: &str, value: &str) -> Result<Written, Error> {
        self.set_with(key, value, WriteOptions::default()).await
    }

    /// SET with a condition and/or a TTL.
    ///
    /// ```no_run
    /// # async fn demo(client: ripplekv_client::Client) -> Result<(), ripplekv_client::Error> {
    /// use std::time::Duration;
    /// use ripplekv_client::WriteOptions;
    /// // Create only if absent, expiring in a minute.
    /// let options = WriteOptions { if_revision: Some(0), ttl: Some(Duration::from_secs(60)) };
    /// client.set_with("lock:report", "worker-7", options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_with(
        &self,
        key: &str,
        value: &str,
        options: WriteOptions,
    ) -> Result<Written, Error> {
        let options = wire_options(options);
        self.write(RequestBody::Set {
            key: key.into(),
            value: value.into(),
            options,
        })
        .await
    }

    /// JSON-merges into the stored object, or appends to the stored string.
    pub async fn patch(&self, key: &str, value: &str) -> Result<Written, Error> {
        self.patch_with(key, value, WriteOptions::default()).await
    }

    /// PATCH with a condition and/or a TTL.
    pub async fn patch_with(
        &self,
        key: &str,
        value: &str,
        options: WriteOptions,
    ) -> Result<Written, Error> {
        let options = wire_options(options);
        self.write(RequestBody::Patch {
            key: key.into(),
            value: value.into(),
            options,
        })
        .await
    }

    /// Removes a key; [`Error::is_not_found`] when it does not exist.
    pub async fn delete(&self, key: &str) -> Result<Written, Error> {
        self.delete_with(key, WriteOptions::default()).await
    }

    /// DELETE with a condition.
    pub async fn delete_with(&self, key: &str, options: WriteOptions) -> Result<Written, Error> {
        let options = wire_options(options);
        self.write(RequestBody::Delete {
            key: key.into(),
            options,
        })
        .await
    }

    /// Applies RFC 6902 operations to the stored JSON document, all or nothing.
    ///
    /// ```no_run
    /// # async fn demo(client: ripplekv_client::Client) -> Result<(), ripplekv_client::Error> {
    /// use serde_json::json;
    /// let add = json!([{"op": "add", "path": "/-", "value": {"id": 7, "text": "Ship it"}}]);
    /// client.json_patch("todos", &add, Default::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn json_patch(
        &self,
        key: &str,
        operations: &Value,
        options: WriteOptions,
    ) -> Result<Written, Error> {
        self.write(RequestBody::JsonPatch {
            key: key.into(),
            value: operations.to_string(),
            options: wire_options(options),
        })
        .await
    }

    /// Adds `delta` to a stored 64-bit integer (missing counts as 0); returns the result.
    ///
    /// ```no_run
    /// # async fn demo(client: ripplekv_client::Client) -> Result<(), ripplekv_client::Error> {
    /// let visits = client.atomic("visits", 1).await?;
    /// # Ok(()) }
    /// ```
    pub async fn atomic(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let body = RequestBody::Atomic {
            key: key.into(),
            delta,
        };
        self.call(body)
            .await?
            .new_value
            .ok_or_else(|| Error::Protocol("an ATOMIC reply without newValue".into()))
    }

    /// One page of `start..=end` (byte order), at most `limit` records (server default
    /// 100, maximum 1000).
    pub async fn range(
        &self,
        start: &str,
        end: &str,
        limit: Option<usize>,
    ) -> Result<RangePage, Error> {
        let body = RequestBody::Range {
            key: start.into(),
            end_key: end.into(),
            limit: limit.map(|limit| i64::try_from(limit).unwrap_or(i64::MAX)),
        };
        let reply = self.call(body).await?;
        let records = reply
            .records
            .ok_or_else(|| Error::Protocol("a RANGE reply without records".into()))?
            .into_iter()
            .map(|record| Record {
                key: record.key,
                value: record.value,
                revision: record.revision.unwrap_or(0),
            })
            .collect();
        Ok(RangePage {
            records,
            truncated: reply.truncated.unwrap_or(false),
        })
    }

    /// Every record of `start..=end`, fetched page by page as the stream is read.
    ///
    /// ```no_run
    /// # async fn demo(client: ripplekv_client::Client) -> Result<(), ripplekv_client::Error> {
    /// use futures_util::TryStreamExt;
    /// let users: Vec<_> = client.range_all("user:", "user:\u{10FFFF}", 500).try_collect().await?;
    /// # Ok(()) }
    /// ```
    pub fn range_all(
        &self,
        start: &str,
        end: &str,
        page_size: usize,
    ) -> impl Stream<Item = Result<Record, Error>> + '_ {
        let end = end.to_owned();
        futures_util::stream::try_unfold(Some(start.to_owned()), move |next| {
            let end = end.clone();
            async move {
                let Some(from) = next else { return Ok(None) };
                let page = self.range(&from, &end, Some(page_size)).await?;
                // Restart after the last key: the same key plus U+0000 sorts right after it.
                let next = match (page.truncated, page.records.last()) {
                    (true, Some(last)) => Some(format!("{}\u{0}", last.key)),
                    _ => None,
                };
                Ok(Some((
                    futures_util::stream::iter(page.records.into_iter().map(Ok)),
                    next,
                )))
            }
        })
        .try_flatten()
    }

    /// Subscribes to changes of keys matching any of `patterns`.
    pub async fn subscribe<I, S>(&self, patterns: I) -> Result<Subscription, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let id = NEXT_SUBSCRIPTION.fetch_add(1, Ordering::Relaxed);
        let (events, receiver) = mpsc::unbounded_channel();
        let (reply, answer) = oneshot::channel();
        let patterns = patterns.into_iter().map(Into::into).collect();
        self.commands
            .send(Command::Subscribe {
                id,
                patterns,
                events,
                reply,
            })
            .map_err(|_| Error::Closed)?;
        let subscription = Subscription {
            id,
            events: receiver,
            commands: self.commands.clone(),
        };
        let timeout = self.config.request_timeout;
        tokio::time::timeout(timeout, answer)
            .await
            .map_err(|_| Error::Timeout(timeout))?
            .map_err(|_| Error::Closed)??;
        Ok(subscription)
    }

    /// Connection events from now on: disconnected, reconnecting, connected again, gave
    /// up. (The first connection is not an event: `connect` returns once it is made.)
    pub fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.shared.events.subscribe()
    }

    /// Pending requests, reconnect attempts and connection state.
    pub fn stats(&self) -> Stats {
        Stats {
            pending_requests: self.shared.pending.load(Ordering::Relaxed),
            reconnect_attempts: self.shared.reconnect_attempts.load(Ordering::Relaxed),
            connects: self.shared.connects.load(Ordering::Relaxed),
            connected: self.shared.connected.load(Ordering::Relaxed),
        }
    }

    /// Closes the connection; pending and later calls fail with [`Error::Closed`].
    pub fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }

    async fn write(&self, body: RequestBody) -> Result<Written, Error> {
        let revision = self
            .call(body)
            .await?
            .revision
            .ok_or_else(|| Error::Protocol("a write reply without a revision".into()))?;
        Ok(Written { revision })
    }
}

/// The wire's form of a write's conditions (the TTL in milliseconds).
fn wire_options(options: WriteOptions) -> ripplekv_proto::WriteOptions {
    ripplekv_proto::WriteOptions {
        if_revision: options.if_revision,
        ttl_ms: options
            .ttl
            .map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_urls() {
        let key = Auth::ApiKey("k".into());
        assert_eq!(socket_url("http://h:1", &key), "ws://h:1/ws?apiKey=k");
        assert_eq!(socket_url("https://h/", &key), "wss://h/ws?apiKey=k");
        assert_eq!(
            socket_url("ws://h:1/ws", &Auth::Token("t".into())),
            "ws://h:1/ws?token=t"
        );
    }
}
