//! One connection of the framed-TCP echo.
//!
//! Each message is a frame: a 4-byte big-endian length, then that many
//! payload bytes. The reply is the same frame, and replies leave in the
//! order the messages arrived, so a client may pipeline.
//!
//! Without delay or capacity the echo is the received bytes themselves:
//! every complete frame at the front of the read buffer is written back
//! from that buffer in one `write`, with no copy and no allocation. With a
//! delay or a capacity each frame is copied, in order, into a holding
//! buffer and written when its due time comes; due times never decrease
//! along a connection (arrivals are ordered, the queue is FIFO and the delay
//! fixed), so replies due together still leave in one write.
//!
//! Framed TCP has no status: an injected error closes the connection instead
//! of replying, after the replies before it; the messages behind it are
//! neither answered nor counted. A frame longer than [`MAX_FRAME`] closes the
//! connection too, uncounted.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::http1::READ_CHUNK;
use super::{linger, Shared};

/// Bytes of the length prefix.
const HEADER: usize = 4;
/// Longest payload accepted.
pub(super) const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Most buffer space reserved for one read while a large frame arrives, so
/// a peer that announces 64 MiB and sends nothing does not get it allocated.
const MAX_RESERVE: usize = 1024 * 1024;
/// Replies held before the connection stops reading: bounds memory when a
/// client pipelines into a slow (delayed) server, by pushing back on TCP.
const MAX_PENDING: usize = 1024;

/// What the front of a buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// A whole frame of this many bytes, prefix included.
    Complete(usize),
    /// Part of a frame; it needs this many bytes in all (prefix included;
    /// just the prefix while that is incomplete).
    Partial(usize),
    /// A frame whose announced length is over [`MAX_FRAME`].
    Oversize,
}

fn frame(buf: &[u8]) -> Frame {
    let Some(prefix) = buf.first_chunk::<HEADER>() else {
        return Frame::Partial(HEADER);
    };
    let len = u32::from_be_bytes(*prefix);
    match usize::try_from(len) {
        Ok(len) if len <= MAX_FRAME => {
            let whole = HEADER + len;
            if buf.len() >= whole {
                Frame::Complete(whole)
            } else {
                Frame::Partial(whole)
            }
        }
        _ => Frame::Oversize,
    }
}

/// What a queued entry stands for.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// The next this many bytes of the holding buffer.
    Echo(usize),
    /// An injected error: close instead of replying.
    Error,
    /// An oversized frame: close.
    Refuse,
}

#[derive(Debug)]
struct Pending {
    /// `None`: as soon as the replies before it are written.
    due: Option<Instant>,
    reply: Reply,
}

/// Serves one accepted connection until either side closes it.
pub(super) async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    // Replies are written whole: Nagle would only add latency.
    stream.set_nodelay(true)?;
    let mut connection = Connection {
        stream,
        shared,
        buf: BytesMut::with_capacity(READ_CHUNK),
        held: BytesMut::new(),
        pending: VecDeque::new(),
        closing: false,
        eof: false,
    };
    if connection.shared.timed() {
        connection.run_timed().await
    } else {
        connection.run_immediate().await
    }
}

struct Connection {
    stream: TcpStream,
    shared: Arc<Shared>,
    /// Received bytes not yet answered.
    buf: BytesMut,
    /// Replies waiting for their due time, back to back (timed mode only).
    held: BytesMut,
    pending: VecDeque<Pending>,
    /// No more messages will be read: one of them ends the connection.
    closing: bool,
    /// The peer has shut down its side.
    eof: bool,
}

/// Why answering stopped before the end of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// At a message that needs more bytes.
    Partial,
    /// At a message whose reply is a closed connection.
    Close,
}

impl Connection {
    /// No delay, no capacity: answer everything complete at once.
    async fn run_immediate(&mut self) -> io::Result<()> {
        loop {
            let (len, stop) = self.scan();
            if len > 0 {
                self.stream.write_all(&self.buf[..len]).await?;
                self.buf.advance(len);
            }
            if stop == Stop::Close {
                return self.close().await;
            }
            if self.eof {
                // A partial frame left by a closing peer is not a message.
                return Ok(());
            }
            self.read().await?;
        }
    }

    /// Numbers the complete frames at the front of the buffer and counts
    /// them; returns the bytes to echo and where it stopped.
    fn scan(&self) -> (usize, Stop) {
        let mut len = 0;
        let (mut ok, mut errors) = (0, 0);
        let stop = loop {
            match frame(&self.buf[len..]) {
                Frame::Partial(_) => break Stop::Partial,
                Frame::Oversize => break Stop::Close,
                Frame::Complete(n) => {
                    if self.shared.errors.next_is_error() {
                        errors += 1;
                        break Stop::Close;
                    }
                    ok += 1;
                    len += n;
                }
            }
        };
        // Counted before they are sent, so a client that has its reply also
        // sees it in the stats.
        self.shared.stats.record(ok, errors);
        (len, stop)
    }

    /// With a delay or capacity: hold replies until they are due.
    async fn run_timed(&mut self) -> io::Result<()> {
        loop {
            self.queue();
            if self.flush().await? {
                return self.close().await;
            }
            let can_read = !self.closing && !self.eof && self.pending.len() < MAX_PENDING;
            match self.pending.front().map(|p| p.due) {
                None if can_read => self.read().await?,
                // Everything answered and nothing more will come.
                None => return Ok(()),
                // Written by the flush above already; loop to be sure.
                Some(None) => {}
                Some(Some(due)) if can_read => {
                    self.reserve();
                    tokio::select! {
                        read = self.stream.read_buf(&mut self.buf) => self.eof = read? == 0,
                        () = tokio::time::sleep_until(due.into()) => {}
                    }
                }
                Some(Some(due)) => tokio::time::sleep_until(due.into()).await,
            }
        }
    }

    /// Moves every complete frame of the buffer into the holding buffer,
    /// with its due time.
    fn queue(&mut self) {
        // Frames read together arrived together: one clock read.
        let mut arrival = None;
        while !self.closing && self.pending.len() < MAX_PENDING {
            match frame(&self.buf) {
                Frame::Partial(_) => break,
                Frame::Oversize => {
                    self.closing = true;
                    self.pending.push_back(Pending {
                        due: None,
                        reply: Reply::Refuse,
                    });
                }
                Frame::Complete(n) => {
                    let error = self.shared.errors.next_is_error();
                    let arrival = *arrival.get_or_insert_with(Instant::now);
                    let due = Some(self.shared.due(arrival));
                    let reply = if error {
                        self.closing = true;
                        Reply::Error
                    } else {
                        self.held.extend_from_slice(&self.buf[..n]);
                        Reply::Echo(n)
                    };
                    self.buf.advance(n);
                    self.pending.push_back(Pending { due, reply });
                }
            }
        }
    }

    /// Writes every reply that is due, in one write; `true` when the
    /// connection must now close.
    async fn flush(&mut self) -> io::Result<bool> {
        if self.pending.is_empty() {
            return Ok(false);
        }
        let now = Instant::now();
        let (mut len, mut ok, mut errors) = (0, 0, 0);
        let mut close = false;
        while let Some(next) = self.pending.front() {
            if next.due.is_some_and(|due| due > now) {
                break;
            }
            let reply = next.reply;
            self.pending.pop_front();
            match reply {
                Reply::Echo(n) => {
                    len += n;
                    ok += 1;
                }
                Reply::Error => {
                    errors += 1;
                    close = true;
                    break;
                }
                Reply::Refuse => {
                    close = true;
                    break;
                }
            }
        }
        self.shared.stats.record(ok, errors);
        if len > 0 {
            self.stream.write_all(&self.held[..len]).await?;
            self.held.advance(len);
        }
        Ok(close)
    }

    /// Makes room for the next read: at least a chunk, and more while a
    /// large frame arrives.
    fn reserve(&mut self) {
        let needed = match frame(&self.buf) {
            Frame::Partial(whole) => whole.saturating_sub(self.buf.len()),
            Frame::Complete(_) | Frame::Oversize => 0,
        };
        self.buf.reserve(needed.clamp(READ_CHUNK, MAX_RESERVE));
    }

    async fn read(&mut self) -> io::Result<()> {
        self.reserve();
        self.eof = self.stream.read_buf(&mut self.buf).await? == 0;
        Ok(())
    }

    /// Closes the connection after the replies written so far.
    async fn close(&mut self) -> io::Result<()> {
        if self.eof {
            return Ok(());
        }
        linger::close(&mut self.stream, &mut self.buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut bytes = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn frames_at_the_front_of_a_buffer() {
        assert_eq!(frame(b""), Frame::Partial(4));
        assert_eq!(frame(b"\0\0"), Frame::Partial(4));
        assert_eq!(frame(&framed(b"")), Frame::Complete(4));
        assert_eq!(frame(&framed(b"hello")), Frame::Complete(9));
        let two = [framed(b"hello"), framed(b"world!")].concat();
        assert_eq!(frame(&two), Frame::Complete(9));
        assert_eq!(frame(&two[..8]), Frame::Partial(9));
        assert_eq!(
            frame(&(64u32 << 20).to_be_bytes()),
            Frame::Partial(HEADER + MAX_FRAME)
        );
        assert_eq!(frame(&((64u32 << 20) + 1).to_be_bytes()), Frame::Oversize);
        assert_eq!(frame(&u32::MAX.to_be_bytes()), Frame::Oversize);
    }
}
