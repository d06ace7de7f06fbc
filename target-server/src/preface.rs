//! Telling HTTP/1.1 from HTTP/2 with prior knowledge on one port.
//!
//! An h2c client opens with the fixed 24-byte connection preface; no HTTP/1.1
//! request starts that way (`PRI` is not a method anyone uses, and `HTTP/2.0`
//! is not a version HTTP/1.1 parsers accept). The first read of a connection
//! goes into the buffer HTTP/1.1 would have read into anyway, so deciding
//! costs HTTP/1.1 nothing: the buffer is handed on, bytes and all. HTTP/2
//! gets the bytes back through [`Rewind`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::http1::READ_CHUNK;
use super::{http1, http2, Shared};

/// What every HTTP/2 connection starts with (RFC 9113, section 3.4).
pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Http1,
    Http2,
    /// A (possibly empty) proper prefix of the preface: read on.
    Undecided,
}

fn classify(buf: &[u8]) -> Start {
    if buf.len() >= PREFACE.len() {
        if buf.starts_with(PREFACE) {
            Start::Http2
        } else {
            Start::Http1
        }
    } else if PREFACE.starts_with(buf) {
        Start::Undecided
    } else {
        Start::Http1
    }
}

/// Serves one accepted connection of the HTTP listener, in whichever
/// protocol it speaks.
pub(super) async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    // Responses are small and written whole: Nagle would only add latency.
    stream.set_nodelay(true)?;
    let mut stream = stream;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    // Almost always one read: a request line or the whole preface arrives
    // in the first segment. A client that sends a proper prefix of the
    // preface and stops is waited for, as HTTP/1.1 waits for a whole head.
    loop {
        match classify(&buf) {
            Start::Http1 => return http1::serve_connection(stream, shared, buf, false).await,
            Start::Http2 => {
                let stream = Rewind::new(buf.freeze(), stream);
                return http2::serve_connection(stream, shared).await;
            }
            Start::Undecided => {
                if stream.read_buf(&mut buf).await? == 0 {
                    // Closed before saying anything useful; HTTP/1.1 deals
                    // with whatever there is.
                    return http1::serve_connection(stream, shared, buf, true).await;
                }
            }
        }
    }
}

/// A stream whose first bytes, already read from it, are read again.
#[derive(Debug)]
pub(super) struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    pub(super) fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_the_first_bytes() {
        assert_eq!(classify(b""), Start::Undecided);
        assert_eq!(classify(b"PRI * HT"), Start::Undecided);
        assert_eq!(classify(PREFACE), Start::Http2);
        assert_eq!(classify(&[PREFACE, b"\0\0\x12\x04"].concat()), Start::Http2);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n\r\n"), Start::Http1);
        assert_eq!(classify(b"P"), Start::Undecided);
        assert_eq!(classify(b"POST"), Start::Http1);
        assert_eq!(classify(b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n"), Start::Http1);
    }

    #[tokio::test]
    async fn rewind_replays_then_reads_on() {
        let (mut a, b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, b" world")
            .await
            .unwrap();
        drop(a);
        let mut rewind = Rewind::new(Bytes::from_static(b"hello"), b);
        let mut small = [0; 3];
        rewind.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"hel");
        let mut rest = Vec::new();
        rewind.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"lo world");
    }
}
