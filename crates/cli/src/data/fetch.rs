//! Streaming a snapshot from a running server: `GET /admin/snapshot`, line by line.
//!
//! A minimal HTTP/1.1 client over hyper: one request, the body consumed as it
//! arrives, so a snapshot of any size passes through in constant memory. Every line is
//! parsed and checked: the first must be a header this build understands, the last a
//! trailer whose count matches the records seen. A stream that ends without the
//! trailer (the server failed or the connection dropped) is an error, never a short
//! backup that looks complete.

use anyhow::{anyhow, bail, Context};
use axum::body::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use ripplekv_proto::snapshot::{Entry, Header, Line};
use tokio::net::TcpStream;

/// Receives a snapshot as it is checked.
pub(super) trait SnapshotSink {
    fn header(&mut self, header: &Header) -> anyhow::Result<()>;
    fn entry(&mut self, entry: Entry) -> anyhow::Result<()>;
}

/// Fetches the snapshot from `base_url` and feeds it to `sink`; returns the header and
/// the number of records.
pub(super) async fn fetch_snapshot(
    base_url: &str,
    api_key: &str,
    sink: &mut dyn SnapshotSink,
) -> anyhow::Result<(Header, u64)> {
    let authority = base_url
        .trim_end_matches('/')
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("the server URL must start with http:// (got {base_url})"))?;
    let socket = TcpStream::connect(authority).await.map_err(|err| {
        ripplekv_client::Error::Connect(format!("cannot connect to {authority}: {err}"))
    })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(socket))
        .await
        .context("HTTP handshake failed")?;
    tokio::spawn(connection);
    let request = Request::get("/admin/snapshot")
        .header(hyper::header::HOST, authority)
        .header("x-api-key", api_key)
        .body(Empty::<Bytes>::new())?;
    let mut response = sender.send_request(request).await?;
    let status = response.status();
    if !status.is_success() {
        let body = response.into_body().collect().await?.to_bytes();
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|value| value["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        if matches!(status.as_u16(), 401 | 403) {
            return Err(ripplekv_client::Error::Unauthorized {
                status: status.as_u16(),
                message,
            }
            .into());
        }
        bail!(
            "server refused the snapshot: {message} ({})",
            status.as_u16()
        );
    }
    let mut reader = LineReader::default();
    let body = response.body_mut();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("the snapshot stream broke off")?;
        if let Some(data) = frame.data_ref() {
            reader.push(data, sink)?;
        }
    }
    reader.finish()
}

/// Splits the byte stream into lines and hands them to a [`Checker`].
#[derive(Default)]
struct LineReader {
    partial: Vec<u8>,
    checker: Checker,
}

impl LineReader {
    fn push(&mut self, data: &[u8], sink: &mut dyn SnapshotSink) -> anyhow::Result<()> {
        self.partial.extend_from_slice(data);
        // Lines are read in place; the consumed part is removed once per chunk.
        let mut start = 0;
        while let Some(length) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let line = &self.partial[start..start + length];
            start += length + 1;
            let text = std::str::from_utf8(line).context("snapshot line is not UTF-8")?;
            match self.checker.accept(text)? {
                Accepted::Header(header) => sink.header(&header)?,
                Accepted::Entry(entry) => sink.entry(entry)?,
                Accepted::Trailer => {}
            }
        }
        self.partial.drain(..start);
        Ok(())
    }

    fn finish(self) -> anyhow::Result<(Header, u64)> {
        if !self.partial.is_empty() {
            bail!("the snapshot ended in the middle of a line: it is incomplete");
        }
        self.checker.finish()
    }
}

/// What one checked line was.
pub(super) enum Accepted {
    Header(Header),
    Entry(Entry),
    Trailer,
}

/// Checks the order of a snapshot's lines: header, records, trailer with their count.
#[derive(Debug, Default)]
pub(super) struct Checker {
    header: Option<Header>,
    records: u64,
    ended: bool,
}

impl Checker {
    pub(super) fn accept(&mut self, text: &str) -> anyhow::Result<Accepted> {
        if self.ended {
            bail!("data after the snapshot's trailer");
        }
        match (Line::parse(text).map_err(anyhow::Error::msg)?, &self.header) {
            (Line::Header(header), None) => {
                header.check().map_err(anyhow::Error::msg)?;
                self.header = Some(header.clone());
                Ok(Accepted::Header(header))
            }
            (Line::Entry(entry), Some(_)) => {
                self.records += 1;
                Ok(Accepted::Entry(entry))
            }
            (Line::Trailer(trailer), Some(_)) => {
                if trailer.records != self.records {
                    bail!(
                        "snapshot trailer counts {} records but {} came before it",
                        trailer.records,
                        self.records
                    );
                }
                self.ended = true;
                Ok(Accepted::Trailer)
            }
            (_, None) => bail!("the snapshot does not start with a header line"),
            (Line::Header(_), Some(_)) => bail!("a second header in the snapshot"),
        }
    }

    /// The header and record count of a complete snapshot.
    pub(super) fn finish(self) -> anyhow::Result<(Header, u64)> {
        match (self.header, self.ended) {
            (Some(header), true) => Ok((header, self.records)),
            _ => bail!("the snapshot has no trailer line: it is incomplete"),
        }
    }
}
