//! Lingering close: a socket the server is done with is half-closed and drained for a
//! moment before it is really closed.
//!
//! Closing a TCP socket that still has unread bytes makes the kernel send a reset,
//! and a reset makes the peer's kernel throw away what it had received but not yet
//! read. So a client still sending a large frame or body when the server refuses it
//! (WebSocket close 1009, HTTP 413) would lose the very answer that explains why and
//! see only "connection reset". Instead, when the last owner of the socket lets go,
//! [`LingeringStream`] sends FIN (the answer is already written), then reads and
//! discards what the peer still sends until it closes its side, for at most
//! [`LINGER_TIME`] and [`LINGER_BYTES`], like a web server's lingering close. A peer
//! that has already closed costs one read that returns end-of-file.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Longest a closed socket is drained.
pub(crate) const LINGER_TIME: Duration = Duration::from_secs(2);
/// Most bytes discarded from a closed socket (beyond the largest frame a client may
/// be in the middle of sending when it is refused).
pub(crate) const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// A TCP stream that lingers when dropped (see the module documentation).
#[derive(Debug)]
pub(crate) struct LingeringStream {
    // `None` only once dropped.
    inner: Option<TcpStream>,
}

impl LingeringStream {
    pub(crate) fn new(stream: TcpStream) -> Self {
        LingeringStream {
            inner: Some(stream),
        }
    }

    fn stream(&mut self) -> Pin<&mut TcpStream> {
        match self.inner.as_mut() {
            Some(stream) => Pin::new(stream),
            None => unreachable!("the stream is only taken when dropped"),
        }
    }
}

impl Drop for LingeringStream {
    fn drop(&mut self) {
        let Some(stream) = self.inner.take() else {
            return;
        };
        // Outside a runtime (never the case in the server) the socket just closes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream));
        }
    }
}

async fn linger(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut discarded = 0;
        let mut buffer = [0u8; 8 * 1024];
        while discarded < LINGER_BYTES {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => discarded += read,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

impl AsyncRead for LingeringStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}
