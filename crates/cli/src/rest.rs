//! The CLI's few REST calls (`token`, `health`) over plain HTTP/1.1: one request, one
//! JSON reply, no HTTP client library.

use ripplekv_client::Error;
use serde_json::Value;

/// `POST /token/websocket`.
pub(crate) async fn mint_token(url: &str, api_key: &str, body: &Value) -> Result<String, Error> {
    let (status, payload) = call(url, "POST", "/token/websocket", Some(api_key), body).await?;
    if status == 401 || status == 403 {
        return Err(Error::Unauthorized {
            status,
            message: payload["error"]
                .as_str()
                .unwrap_or("credentials refused")
                .to_owned(),
        });
    }
    if status != 200 {
        return Err(Error::Server {
            code: status,
            message: payload["error"]
                .as_str()
                .unwrap_or("token request failed")
                .to_owned(),
            revision: None,
        });
    }
    payload["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::Protocol(payload.to_string()))
}

/// One plain HTTP/1.1 exchange with a JSON reply: the CLI's few REST calls need no
/// HTTP client. `body` is sent unless it is `null`.
pub(crate) async fn call(
    url: &str,
    method: &str,
    path: &str,
    api_key: Option<&str>,
    body: &Value,
) -> Result<(u16, Value), Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
        .ok_or_else(|| Error::Connect(format!("the server URL must be http://, got {url}")))?
        .trim_end_matches('/')
        .trim_end_matches("/ws");
    let mut socket = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|err| Error::Connect(format!("{host}: {err}")))?;
    let key_header = api_key
        .map(|key| format!("x-api-key: {key}\r\n"))
        .unwrap_or_default();
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{key_header}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let io = |err: std::io::Error| Error::Connect(err.to_string());
    socket.write_all(request.as_bytes()).await.map_err(io)?;
    let mut response = String::new();
    socket.read_to_string(&mut response).await.map_err(io)?;
    let (head, payload) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| Error::Protocol(response.clone()))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let payload: Value =
        serde_json::from_str(payload).map_err(|_| Error::Protocol(payload.to_owned()))?;
    Ok((status, payload))
}
