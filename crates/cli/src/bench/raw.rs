//! A lean WebSocket client for request/reply load: hand-written frames on a plain TCP
//! socket, so the load generator costs far less per request than the server it drives.
//!
//! A general client library masks every frame with a random key, parses every reply
//! into an owned message and flushes each send on its own; at hundreds of thousands
//! of requests a second on one core that makes the client, not the server, the limit.
//! Here a connection writes all the requests it has room for in one `write`, masks
//! them with the all-zero key (a valid mask: the payload goes out as it is), and
//! reads replies straight out of its read buffer, checking only that each succeeded.

use std::io;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// One WebSocket connection driven frame by frame.
pub(super) struct RawSocket {
    stream: TcpStream,
    /// Bytes read and not yet taken as frames.
    read: Vec<u8>,
    /// Where the unread part of `read` starts.
    start: usize,
    /// Request frames being built for the next write.
    pub(super) out: Vec<u8>,
}

impl RawSocket {
    /// Connects to a `ws://host:port/path?query` URL and completes the upgrade.
    pub(super) async fn connect(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("ws://")
            .context("the lean client speaks ws:// only")?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let shown = url.split('?').next().unwrap_or(url);
        let mut stream = TcpStream::connect(host)
            .await
            .with_context(|| format!("cannot connect to {shown}"))?;
        stream.set_nodelay(true)?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut read = Vec::with_capacity(READ_CHUNK);
        let head_end = loop {
            if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if read_more(&mut stream, &mut read).await? == 0 {
                bail!("{shown} closed the connection during the upgrade");
            }
        };
        let head = String::from_utf8_lossy(&read[..head_end]);
        if !head.starts_with("HTTP/1.1 101") {
            let status = head.lines().next().unwrap_or_default();
            bail!("{shown} refused the upgrade: {status}");
        }
        Ok(RawSocket {
            stream,
            read,
            start: head_end,
            out: Vec::with_capacity(4096),
        })
    }

    /// Appends one text frame holding `payload` to the next write.
    pub(super) fn push_text(&mut self, payload: &[u8]) {
        push_frame(&mut self.out, payload);
    }

    /// Writes every frame pushed since the last write, in one go.
    pub(super) async fn write_pushed(&mut self) -> Result<()> {
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// Waits for at least one more text frame and passes each complete one already
    /// read to `each`; returns how many there were. Pings and pongs are skipped; a
    /// close frame or the end of the stream is an error.
    pub(super) async fn texts(
        &mut self,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<usize> {
        loop {
            let mut count = 0;
            while let Some((opcode, payload, used)) = frame(&self.read[self.start..])? {
                match opcode {
                    0x1 => {
                        each(payload)?;
                        count += 1;
                    }
                    0x8 => bail!("the server closed the connection"),
                    _ => {} // ping, pong (the server pings only idle peers)
                }
                self.start += used;
            }
            if self.start == self.read.len() {
                self.read.clear();
                self.start = 0;
            }
            if count > 0 {
                return Ok(count);
            }
            if read_more(&mut self.stream, &mut self.read).await? == 0 {
                bail!("the server closed the connection");
            }
        }
    }
}

/// True if `needle` occurs in `haystack`: how replies are checked without parsing them.
pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Reads what is available onto the end of `buffer`.
async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<usize> {
    let len = buffer.len();
    buffer.resize(len + READ_CHUNK, 0);
    let read = stream.read(&mut buffer[len..]).await;
    buffer.truncate(len + *read.as_ref().unwrap_or(&0));
    read
}

/// A masked client text frame: FIN and opcode 1, the length, the zero mask key, then
/// the payload (unchanged by a zero mask).
fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
    match payload.len() {
        len @ 0..=125 => out.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(payload);
}

/// Splits one complete server frame off the front of `bytes`: its opcode, its
/// payload and the bytes it took; `None` until the whole frame has arrived.
fn frame(bytes: &[u8]) -> Result<Option<(u8, &[u8], usize)>> {
    let [first, second, ..] = *bytes else {
        return Ok(None);
    };
    if first & 0x80 == 0 {
        bail!("a fragmented frame: this client reads whole messages only");
    }
    if second & 0x80 != 0 {
        bail!("a masked frame from the server");
    }
    let (len, header) = match second & 0x7F {
        126 => match bytes.get(2..4) {
            Some(len) => (u16::from_be_bytes([len[0], len[1]]) as usize, 4),
            None => return Ok(None),
        },
        127 => match bytes.get(2..10) {
            Some(len) => (u64::from_be_bytes(len.try_into()?) as usize, 10),
            None => return Ok(None),
        },
        len => (len as usize, 2),
    };
    Ok(bytes
        .get(header..header + len)
        .map(|payload| (first & 0x0F, payload, header + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame as the server writes it: unmasked.
    fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_frame(&mut out, payload);
        out[0] = 0x80 | opcode;
        out[1] &= 0x7F;
        out.drain(out.len() - payload.len() - 4..out.len() - payload.len());
        out
    }

    #[test]
    fn frames_of_every_length_class_round_trip() {
        for len in [0, 1, 125, 126, 65_535, 65_536] {
            let payload = vec![b'x'; len];
            let bytes = server_frame(1, &payload);
            let (opcode, body, used) = frame(&bytes).unwrap().unwrap();
            assert_eq!((opcode, body.len(), used), (1, len, bytes.len()));
            // Any prefix is an incomplete frame, not an error.
            assert!(frame(&bytes[..bytes.len() - 1]).unwrap().is_none());
        }
    }

    #[test]
    fn client_frames_carry_the_zero_mask_and_the_payload_as_is() {
        let mut out = Vec::new();
        push_frame(&mut out, b"{\"op\":1}");
        assert_eq!(&out[..6], &[0x81, 0x80 | 8, 0, 0, 0, 0]);
        assert_eq!(&out[6..], b"{\"op\":1}");
    }
}
