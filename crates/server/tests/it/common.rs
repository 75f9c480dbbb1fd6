//! The test harness: start a server in-process, talk to it over real sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use ripplekv_core::{Limits, Store};
use ripplekv_server::ServerConfig;
use ripplekv_storage::MemoryStore;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) const KEY: &str = "test-key";
pub(crate) const SECRET: &[u8] = b"test-token-secret";
/// Longest a test waits for any single reply before failing.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A server running in this process.
pub(crate) struct TestServer {
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// A server over an in-memory store with default limits.
    pub(crate) async fn start() -> Result<Self> {
        Self::start_with(ServerConfig::new(vec![KEY.into()], SECRET.to_vec()), None).await
    }

    /// A server with the given limits.
    pub(crate) async fn with_limits(limits: Limits) -> Result<Self> {
        let mut config = ServerConfig::new(vec![KEY.into()], SECRET.to_vec());
        config.limits = limits;
        Self::start_with(config, None).await
    }

    /// A server with `config`, over `store` (default: a new memory store).
    pub(crate) async fn start_with(
        config: ServerConfig,
        store: Option<Arc<dyn Store>>,
    ) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        Self::start_on(config, store, listener.into()).await
    }

    /// [`TestServer::start_with`] on the given listeners (`/metrics` on its own, say).
    pub(crate) async fn start_on(
        config: ServerConfig,
        store: Option<Arc<dyn Store>>,
        listeners: ripplekv_server::Listeners,
    ) -> Result<Self> {
        let store = store.unwrap_or_else(|| Arc::new(MemoryStore::new(config.limits)));
        let listener = listeners;
        let addr = listener.main.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(ripplekv_server::run(
            config,
            Arc::clone(&store),
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(TestServer {
            addr,
            store,
            stop: Some(stop),
            task,
        })
    }

    /// Opens a WebSocket with the API key in the query string.
    pub(crate) async fn ws(&self) -> Result<Ws> {
        Ws::connect(&format!("ws://{}/ws?apiKey={KEY}", self.addr)).await
    }

    /// Issues a token through `POST /token/websocket` with `grants` as the body.
    pub(crate) async fn token(&self, grants: Value) -> Result<String> {
        let reply = self
            .http("POST", "/token/websocket", Some(&grants.to_string()))
            .await?;
        if reply.status != 200 {
            bail!("token request failed: {reply:?}");
        }
        Ok(reply.body["token"].as_str().context("no token")?.to_owned())
    }

    /// Opens a WebSocket with a token.
    pub(crate) async fn ws_token(&self, token: &str) -> Result<Ws> {
        Ws::connect(&format!("ws://{}/ws?token={token}", self.addr)).await
    }

    /// Signals shutdown and waits for `run` to return.
    pub(crate) async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .context("server did not stop")???;
        Ok(())
    }

    /// An HTTP request with the API key; returns status, headers and parsed body.
    pub(crate) async fn http(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<HttpReply> {
        http(self.addr, method, path, &[("x-api-key", KEY)], body).await
    }
}

/// A WebSocket client speaking JSON text frames.
pub(crate) struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub(crate) async fn connect(url: &str) -> Result<Self> {
        let (stream, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Ws { stream })
    }

    pub(crate) async fn send_text(&mut self, text: &str) -> Result<()> {
        self.stream.send(Message::text(text)).await?;
        Ok(())
    }

    pub(crate) async fn send(&mut self, request: &Value) -> Result<()> {
        self.send_text(&request.to_string()).await
    }

    pub(crate) async fn send_raw(&mut self, message: Message) -> Result<()> {
        self.stream.send(message).await?;
        Ok(())
    }

    /// The next frame from the server, whatever it is.
    pub(crate) async fn next_message(&mut self) -> Result<Message> {
        tokio::time::timeout(REPLY_TIMEOUT, self.stream.next())
            .await
            .context("no frame from the server in time")?
            .ok_or_else(|| anyhow!("connection ended"))?
            .map_err(Into::into)
    }

    /// The next text frame, parsed, skipping protocol pings; fails on anything else.
    pub(crate) async fn recv(&mut self) -> Result<Value> {
        loop {
            match self.next_message().await? {
                Message::Text(text) => return Ok(serde_json::from_str(text.as_str())?),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => bail!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Sends a request and returns its reply.
    pub(crate) async fn request(&mut self, request: Value) -> Result<Value> {
        self.send(&request).await?;
        self.recv().await
    }

    /// The next notification, skipping nothing: fails if the next frame is not one.
    pub(crate) async fn notification(&mut self) -> Result<Value> {
        let frame = self.recv().await?;
        if frame["type"] != "notification" {
            bail!("expected a notification, got {frame}");
        }
        Ok(frame)
    }

    /// Asserts the connection is still usable by doing a round trip.
    pub(crate) async fn assert_alive(&mut self) -> Result<()> {
        let reply = self
            .request(json!({"op": "get", "key": "__alive_probe__", "messageId": 424242}))
            .await?;
        // The probe key does not exist (404), or a token may not read it (403).
        if reply["messageId"] != 424242 || !(reply["code"] == 404 || reply["code"] == 403) {
            bail!("connection answered oddly after an error: {reply}");
        }
        Ok(())
    }
}

/// Asserts a success reply: code 200 and no `error` field.
pub(crate) fn assert_ok(reply: &Value) {
    assert_eq!(reply["code"], 200, "expected success, got {reply}");
    assert!(
        reply.get("error").is_none(),
        "success reply with an error field: {reply}"
    );
}

/// Asserts an error reply with `code` whose text contains `text`.
pub(crate) fn assert_error(reply: &Value, code: u16, text: &str) {
    assert_eq!(reply["code"], code, "wrong code in {reply}");
    let error = reply["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(text),
        "error {error:?} does not contain {text:?}"
    );
}

/// What an HTTP request got back.
#[derive(Debug)]
pub(crate) struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl HttpReply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A minimal HTTP/1.1 client over a raw socket, so tests see exactly what is sent.
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<HttpReply> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let mut socket = TcpStream::connect(addr).await?;
    socket.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(REPLY_TIMEOUT, socket.read_to_end(&mut raw)).await??;
    let text = String::from_utf8(raw)?;
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .context("no status line")?
        .parse()?;
    let headers = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).with_context(|| format!("body is not JSON: {body:?}"))?
    };
    Ok(HttpReply {
        status,
        headers,
        body,
    })
}

/// A raw HTTP response: the head as text and the body as text, for non-JSON bodies.
#[derive(Debug)]
pub(crate) struct RawReply {
    pub head: String,
    pub body: String,
}

/// A GET-like request whose body is read whole, without parsing it as JSON.
/// Chunked transfer encoding is undone.
pub(crate) async fn http_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<RawReply> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut socket = TcpStream::connect(addr).await?;
    socket.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(REPLY_TIMEOUT, socket.read_to_end(&mut raw)).await??;
    let text = String::from_utf8(raw)?;
    let (head, mut rest) = text.split_once("\r\n\r\n").context("no end of headers")?;
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(RawReply {
            head: head.to_owned(),
            body: rest.to_owned(),
        });
    }
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").context("bad chunk header")?;
        let size = usize::from_str_radix(size.trim(), 16)?;
        if size == 0 {
            break;
        }
        body.push_str(after.get(..size).context("short chunk")?);
        rest = after.get(size + 2..).context("no chunk end")?;
    }
    Ok(RawReply {
        head: head.to_owned(),
        body,
    })
}
