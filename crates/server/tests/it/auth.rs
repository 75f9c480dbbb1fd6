//! Authentication at the WebSocket upgrade: 401 for missing or bad API keys, 403 for
//! bad tokens, and the `x-api-key` header as an alternative to the query string.

use anyhow::{bail, Result};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::common::{assert_ok, TestServer, KEY};

async fn upgrade_status(url: &str) -> Result<u16> {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => bail!("upgrade to {url} unexpectedly succeeded"),
        Err(WsError::Http(response)) => Ok(response.status().as_u16()),
        Err(other) => bail!("unexpected error {other}"),
    }
}

#[tokio::test]
async fn bad_credentials_are_refused_before_upgrading() -> Result<()> {
    let server = TestServer::start().await?;
    let base = format!("ws://{}/ws", server.addr);
    assert_eq!(upgrade_status(&base).await?, 401);
    assert_eq!(upgrade_status(&format!("{base}?apiKey=wrong")).await?, 401);
    assert_eq!(upgrade_status(&format!("{base}?apiKey={KEY}x")).await?, 401);
    assert_eq!(
        upgrade_status(&format!("{base}?token=not-a-valid-token")).await?,
        403
    );
    server.stop().await
}

#[tokio::test]
async fn api_key_header_is_accepted_on_the_upgrade() -> Result<()> {
    let server = TestServer::start().await?;
    let mut request = format!("ws://{}/ws", server.addr).into_client_request()?;
    request.headers_mut().insert("x-api-key", KEY.parse()?);
    // Browsers send an Origin; it is never a reason to refuse.
    request
        .headers_mut()
        .insert("origin", "https://elsewhere.example".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    use futures_util::{SinkExt, StreamExt};
    socket
        .send(
            json!({"op": 2, "key": "k", "value": "v"})
                .to_string()
                .into(),
        )
        .await?;
    let reply = socket.next().await.expect("a reply")?;
    assert_ok(&serde_json::from_str(reply.to_text()?)?);
    server.stop().await
}
