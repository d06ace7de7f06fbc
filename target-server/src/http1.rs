//! One HTTP/1.1 connection of the target server.
//!
//! The loop is: parse every complete request in the read buffer, queue a
//! reply for each, write every reply that is due in one `write`, then wait
//! for more bytes or for the next reply to fall due. Replies leave in request
//! order, which keeps pipelining correct; their due times never decrease
//! along a connection (arrivals are ordered, and the capacity queue is FIFO),
//! so waiting on the first pending reply is enough.
//!
//! On the fast path (no delay, no capacity) nothing reads the clock and
//! nothing allocates: the buffers and the queue live as long as the
//! connection, and replies are copied from prebuilt bytes.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use super::chunked::ChunkedDecoder;
use super::error::{Rejection, RequestError};
use super::request::{parse_head, Framing, Head};
use super::response;
use super::{linger, Shared, TargetStats};

/// Bytes asked of each read.
pub(super) const READ_CHUNK: usize = 16 * 1024;
/// Replies queued before the connection stops reading: bounds memory when a
/// client pipelines into a slow (delayed) server, by pushing back on TCP.
const MAX_PENDING: usize = 1024;
/// The write buffer is flushed before it grows past this; larger responses
/// are written straight from their shared buffer instead of copied.
const OUT_LIMIT: usize = 64 * 1024;

/// Serves one accepted connection until either side closes it. `buf` holds
/// the bytes already read from it (when telling HTTP/1.1 from HTTP/2), and
/// `eof` says whether the peer has already shut down its side.
pub(super) async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    buf: BytesMut,
    eof: bool,
) -> io::Result<()> {
    let mut connection = Connection {
        stream,
        shared,
        buf,
        out: Vec::with_capacity(READ_CHUNK),
        pending: VecDeque::new(),
        phase: Phase::Head,
        closing: false,
        eof,
    };
    connection.run().await
}

/// What a queued reply will say.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// An interim `100 Continue`; the request's own reply follows later.
    Continue,
    Answer {
        error: bool,
    },
    Stats,
    Reject(Rejection),
}

/// A reply waiting for its turn.
#[derive(Debug)]
struct Pending {
    /// `None`: as soon as the replies before it are written.
    due: Option<Instant>,
    reply: Reply,
    head_only: bool,
    close: bool,
}

/// Where the parser is in the byte stream.
#[derive(Debug)]
enum Phase {
    /// Expecting a request head.
    Head,
    /// Skipping `left` bytes of the body of `head`.
    Body { left: u64, head: Head },
    /// Skipping the chunked body of `head`.
    Chunked { decoder: ChunkedDecoder, head: Head },
}

struct Connection {
    stream: TcpStream,
    shared: Arc<Shared>,
    /// Received bytes not yet parsed; bounded by the head limit plus one read.
    buf: BytesMut,
    /// Replies being batched into one write.
    out: Vec<u8>,
    pending: VecDeque<Pending>,
    phase: Phase,
    /// No more requests will be read: the last one asked to close, or was
    /// refused.
    closing: bool,
    /// The peer has shut down its side.
    eof: bool,
}

impl Connection {
    async fn run(&mut self) -> io::Result<()> {
        loop {
            let stalled = self.parse();
            self.flush().await?;
            let can_read = !self.closing && !self.eof && self.pending.len() < MAX_PENDING;
            if stalled && can_read {
                // Complete requests are still buffered: parse them first.
                continue;
            }
            match self.pending.front().map(|p| p.due) {
                None if can_read => self.read().await?,
                None => break,
                // Flushed already; unreachable, but harmless to loop on.
                Some(None) => {}
                Some(Some(due)) if can_read => {
                    self.buf.reserve(READ_CHUNK);
                    tokio::select! {
                        read = self.stream.read_buf(&mut self.buf) => self.eof = read? == 0,
                        () = tokio::time::sleep_until(due.into()) => {}
                    }
                }
                Some(Some(due)) => tokio::time::sleep_until(due.into()).await,
            }
        }
        self.close().await
    }

    async fn read(&mut self) -> io::Result<()> {
        // Reclaims the space of parsed bytes rather than growing.
        self.buf.reserve(READ_CHUNK);
        self.eof = self.stream.read_buf(&mut self.buf).await? == 0;
        Ok(())
    }

    /// Queues a reply for every complete request in the buffer. Returns
    /// whether it stopped because the queue is full.
    fn parse(&mut self) -> bool {
        // Requests parsed together arrived together: one clock read.
        let mut arrival = None;
        while !self.closing {
            if self.pending.len() >= MAX_PENDING {
                return true;
            }
            match self.step(&mut arrival) {
                Ok(true) => {}
                Ok(false) => break,
                Err(cause) => {
                    debug!(%cause, "target refused a request");
                    self.queue(None, Reply::Reject(cause.status()), false, true);
                }
            }
        }
        false
    }

    /// Advances the parser by one head or body piece; `Ok(false)` when it
    /// needs more bytes.
    fn step(&mut self, arrival: &mut Option<Instant>) -> Result<bool, RequestError> {
        if self.buf.is_empty() {
            return Ok(false);
        }
        let head = match &mut self.phase {
            Phase::Head => {
                let Some(head) = parse_head(&self.buf)? else {
                    return Ok(false);
                };
                self.buf.advance(head.len);
                if head.expect_continue {
                    self.queue(None, Reply::Continue, false, false);
                }
                match head.framing {
                    Framing::Length(0) => head,
                    Framing::Length(left) => {
                        self.phase = Phase::Body { left, head };
                        return Ok(true);
                    }
                    Framing::Chunked => {
                        self.phase = Phase::Chunked {
                            decoder: ChunkedDecoder::default(),
                            head,
                        };
                        return Ok(true);
                    }
                }
            }
            Phase::Body { left, head } => {
                let take = (*left).min(self.buf.len() as u64);
                // `take` fits: it is at most the buffer length.
                self.buf.advance(take as usize);
                *left -= take;
                if *left > 0 {
                    return Ok(false);
                }
                *head
            }
            Phase::Chunked { decoder, head } => {
                let (used, done) = decoder.feed(&self.buf)?;
                self.buf.advance(used);
                if !done {
                    return Ok(false);
                }
                *head
            }
        };
        self.phase = Phase::Head;
        self.complete(head, arrival);
        Ok(true)
    }

    /// A whole request has arrived: decide its reply and when it is due.
    fn complete(&mut self, head: Head, arrival: &mut Option<Instant>) {
        let shared = &self.shared;
        let (reply, due) = if head.stats {
            // Observability must not queue behind the load it observes.
            (Reply::Stats, None)
        } else {
            let error = shared.errors.next_is_error();
            let due = shared
                .timed()
                .then(|| shared.due(*arrival.get_or_insert_with(Instant::now)));
            (Reply::Answer { error }, due)
        };
        self.queue(due, reply, head.head_only, !head.keep_alive);
    }

    fn queue(&mut self, due: Option<Instant>, reply: Reply, head_only: bool, close: bool) {
        self.closing |= close;
        self.pending.push_back(Pending {
            due,
            reply,
            head_only,
            close,
        });
    }

    /// Writes every reply that is due, in order, batched into as few writes
    /// as the buffer limit allows.
    async fn flush(&mut self) -> io::Result<()> {
        let Self {
            stream,
            shared,
            out,
            pending,
            ..
        } = self;
        let mut tally = Tally::default();
        let mut now = None;
        while let Some(next) = pending.front() {
            if next
                .due
                .is_some_and(|due| due > *now.get_or_insert_with(Instant::now))
            {
                break;
            }
            let Some(next) = pending.pop_front() else {
                break;
            };
            let wire = match next.reply {
                Reply::Answer { error } => {
                    tally.count(error);
                    shared.responses.get(error, next.close).wire(next.head_only)
                }
                Reply::Reject(rejection) => response::rejection(rejection),
                Reply::Continue => response::CONTINUE,
                Reply::Stats => {
                    // Include the answers batched before it.
                    tally.commit(&shared.stats);
                    response::write_stats(out, &shared.stats, next.head_only, next.close);
                    continue;
                }
            };
            if out.len() + wire.len() > OUT_LIMIT {
                tally.commit(&shared.stats);
                write_out(stream, out).await?;
            }
            if wire.len() > OUT_LIMIT {
                stream.write_all(wire).await?;
            } else {
                out.extend_from_slice(wire);
            }
        }
        // Counted before they are sent, so a client that has its response
        // also sees it in the stats.
        tally.commit(&shared.stats);
        write_out(stream, out).await
    }

    /// Ends the connection after the last reply.
    async fn close(&mut self) -> io::Result<()> {
        if self.eof {
            // The peer closed first: nothing of theirs is left unread.
            return Ok(());
        }
        linger::close(&mut self.stream, &mut self.buf).await
    }
}

async fn write_out(stream: &mut TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        stream.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

/// Answers counted locally and added to the shared stats once per write.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    errors: u64,
}

impl Tally {
    fn count(&mut self, error: bool) {
        if error {
            self.errors += 1;
        } else {
            self.ok += 1;
        }
    }

    fn commit(&mut self, stats: &TargetStats) {
        stats.record(self.ok, self.errors);
        *self = Self::default();
    }
}
