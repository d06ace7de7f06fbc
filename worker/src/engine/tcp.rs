//! Framed TCP messages: each message is a 4-byte big-endian length and the
//! payload; the server answers each with one frame of the same form, in
//! order. Up to `pipeline` messages are in flight on one connection.
//!
//! One task per connection, no allocation per message: the frames of every
//! request definition are built once, a batch of due messages is copied into
//! one reused write buffer and written with one `write_all`, and replies are
//! parsed (and their payload skipped) from one reused read buffer. The
//! reply to the oldest outstanding message is always the next frame, so a
//! reply that does not come in time blocks those behind it: the connection
//! is then closed, the oldest message counts as `timeout` and the ones
//! behind it as `reset`.
//!
//! A templated payload (`body` with `{{`) is rendered straight into the
//! write buffer behind its length prefix. A reply payload is kept (in the
//! reader's buffer, reused) only while the message it answers has a check
//! that reads it; `max_body_bytes` alone needs only the length prefix.
//!
//! This is the template for other message protocols: [`Frames`] encodes a
//! message, [`FrameReader`] decodes one reply.

use super::check::{BodyKeeper, Failure};
use super::conn::{Client, Job, Pool};
use super::dial::Link;
use super::outcome::{is_reset, ErrorKind};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};
use volley_plan::model::CompiledRequest;
use volley_plan::template::Context;
use volley_plan::{Request, Template};

/// Largest reply frame accepted; a longer length prefix is a bad frame.
pub const MAX_FRAME: u32 = 64 * 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// The encoded frame of each request definition.
pub struct Frames(Vec<Frame>);

/// One request definition's message.
enum Frame {
    /// Length prefix and payload, built once.
    Fixed(Box<[u8]>),
    /// A payload rendered per message.
    Templated(Template),
}

impl Frames {
    /// `compiled` holds the templates of `requests`, in order (only the
    /// body matters: a frame has no path or headers).
    pub fn new(requests: &[Request], compiled: &[CompiledRequest]) -> Result<Frames, String> {
        requests
            .iter()
            .zip(compiled)
            .map(|(r, c)| {
                let payload = match &c.body {
                    Some(t) => match t.as_static() {
                        Some(b) => b.to_vec(),
                        None => return Ok(Frame::Templated(t.clone())),
                    },
                    None => r.body.to_bytes(),
                };
                let len = u32::try_from(payload.len())
                    .ok()
                    .filter(|&n| n <= MAX_FRAME)
                    .ok_or_else(|| {
                        format!("{}: a frame holds at most {MAX_FRAME} bytes", r.name)
                    })?;
                let mut frame = Vec::with_capacity(4 + payload.len());
                frame.extend_from_slice(&len.to_be_bytes());
                frame.extend_from_slice(&payload);
                Ok(Frame::Fixed(frame.into_boxed_slice()))
            })
            .collect::<Result<_, String>>()
            .map(Frames)
    }

    /// Appends the frame of `req` to `out`; `ctx` is called only for a
    /// templated payload.
    #[inline]
    pub fn write<'c>(&self, req: u16, out: &mut Vec<u8>, ctx: impl FnOnce() -> Context<'c>) {
        match &self.0[usize::from(req)] {
            Frame::Fixed(f) => out.extend_from_slice(f),
            Frame::Templated(t) => {
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                t.render(&ctx(), out);
                // A data cell is at most 256 MiB, far below what the prefix
                // holds; saturate rather than wrap regardless.
                let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
                out[at..at + 4].copy_from_slice(&len.to_be_bytes());
            }
        }
    }
}

/// Why a reply could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The peer closed or reset the connection.
    Closed,
    Io(io::Error),
    /// A length prefix above [`MAX_FRAME`].
    TooLong(u32),
}

/// Reads reply frames, skipping their payloads (or keeping them, when
/// [`FrameReader::keep`] says so), from one reused buffer.
#[derive(Debug, Default)]
pub struct FrameReader {
    /// Whether the payload of the next frame is kept (set before a frame
    /// starts; it applies to the whole frame).
    pub keep: bool,
    /// The payload of the last frame taken, when kept.
    pub payload: BodyKeeper,
    keeping: bool,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Payload bytes of the current frame still to skip.
    skipping: u64,
    /// Whether the current frame's header has been read.
    in_frame: bool,
    last_len: u32,
}

impl FrameReader {
    /// Takes one complete frame from what is buffered, if there is one.
    /// Returns its length.
    pub fn try_frame(&mut self) -> Result<Option<u32>, FrameError> {
        loop {
            if self.in_frame {
                let have = (self.end - self.pos) as u64;
                let take = have.min(self.skipping);
                if self.keeping {
                    self.payload
                        .take(&self.buf[self.pos..self.pos + take as usize]);
                }
                self.pos += take as usize;
                self.skipping -= take;
                if self.skipping > 0 {
                    return Ok(None);
                }
                self.in_frame = false;
                return Ok(Some(self.last_len));
            }
            if self.end - self.pos < 4 {
                return Ok(None);
            }
            let mut len = [0u8; 4];
            len.copy_from_slice(&self.buf[self.pos..self.pos + 4]);
            let len = u32::from_be_bytes(len);
            if len > MAX_FRAME {
                return Err(FrameError::TooLong(len));
            }
            self.pos += 4;
            self.keeping = self.keep;
            if self.keeping {
                self.payload.start(true);
            }
            self.in_frame = true;
            self.skipping = u64::from(len);
            self.last_len = len;
        }
    }

    /// Reads until one complete frame is in, and takes it.
    pub async fn read_frame<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<u32, FrameError> {
        loop {
            if let Some(len) = self.try_frame()? {
                return Ok(len);
            }
            if self.pos == self.end {
                self.pos = 0;
                self.end = 0;
            } else if self.pos > 0 {
                self.buf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
            }
            if self.buf.len() < READ_CHUNK {
                self.buf.resize(READ_CHUNK, 0);
            }
            match stream.read(&mut self.buf[self.end..]).await {
                Ok(0) => return Err(FrameError::Closed),
                Ok(n) => self.end += n,
                Err(e) if is_reset(&e) => return Err(FrameError::Closed),
                Err(e) => return Err(FrameError::Io(e)),
            }
        }
    }
}

/// A message on the wire, waiting for its reply.
struct Outstanding {
    job: Job,
    sent: Instant,
}

impl Client for Frames {
    async fn connection(&self, pool: &Rc<Pool>) {
        connection(pool, self).await
    }
}

/// One pipelined connection: takes up to `pipeline` queued messages, writes
/// them in one go, and completes them as replies arrive, until the pool
/// stops.
async fn connection(sh: &Pool, frames: &Frames) {
    let mut stream: Option<Link> = None;
    let mut reader = FrameReader::default();
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut flight: VecDeque<Outstanding> = VecDeque::with_capacity(sh.per_conn);
    let timer = sh.deadlines.slot();
    loop {
        // Messages before `written` are on the wire already.
        let written = flight.len();
        // Intake: wait for work only when nothing is on the wire; otherwise
        // top the pipeline up with what is already queued.
        if flight.is_empty() {
            let Some(job) = sh.next_job().await else {
                return;
            };
            let now = Instant::now();
            if sh.expired(&job, now) {
                continue;
            }
            // Nothing is on the wire: a worn connection (see the top-up
            // below) is replaced here.
            if stream.as_ref().is_some_and(|l| l.lease.worn(now)) {
                stream = None;
            }
            if stream.is_none() {
                match timeout_at(now + sh.timeout, sh.dialer.connect()).await {
                    Ok(Ok(s)) => {
                        stream = Some(s);
                        reader = FrameReader::default();
                    }
                    Ok(Err(_)) | Err(_) => {
                        sh.fail(&job, ErrorKind::Connect);
                        continue;
                    }
                }
            }
            if let Some(link) = stream.as_mut() {
                link.lease.take();
            }
            flight.push_back(Outstanding { job, sent: now });
        }
        let now = Instant::now();
        // A worn connection (`load.max_requests_per_connection`,
        // `connection_lifetime`, its address gone) takes no more messages:
        // the ones on it finish, then it is replaced above.
        while flight.len() < sh.per_conn {
            let Some(link) = stream.as_mut().filter(|l| !l.lease.worn(now)) else {
                break;
            };
            let Some(job) = sh.try_job() else { break };
            if !sh.expired(&job, now) {
                link.lease.take();
                flight.push_back(Outstanding { job, sent: now });
            }
        }
        let Some(link) = stream.as_mut() else {
            fail_all(sh, &mut flight, ErrorKind::Reset);
            continue;
        };
        if flight.len() > written {
            {
                let mut rec = sh.rec.borrow_mut();
                for o in flight.iter_mut().skip(written) {
                    o.sent = now;
                    let job = o.job;
                    frames.write(job.tag.req, &mut out, || sh.renderer.context(&job));
                    rec.sent(job.tag, now.saturating_duration_since(job.sched));
                }
            }
            let deadline = flight.front().map_or(now, |o| o.sent) + sh.timeout;
            let wrote = timer
                .run(&sh.deadlines, deadline, link.io.write_all(&out))
                .await;
            out.clear();
            match wrote {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let kind = if is_reset(&e) {
                        ErrorKind::Reset
                    } else {
                        ErrorKind::Protocol
                    };
                    stream = None;
                    fail_all(sh, &mut flight, kind);
                    continue;
                }
                Err(_elapsed) => {
                    stream = None;
                    fail_oldest_then_reset(sh, &mut flight, ErrorKind::Timeout);
                    continue;
                }
            }
        }
        // Wait for the oldest reply, then take every other one already in.
        let Some(oldest) = flight.front() else {
            continue;
        };
        let deadline = oldest.sent + sh.timeout;
        reader.keep = keeps_payload(sh, oldest);
        let failed = match timer
            .run(&sh.deadlines, deadline, reader.read_frame(&mut link.io))
            .await
        {
            Ok(Ok(len)) => {
                complete_oldest(sh, &mut flight, &reader, len);
                loop {
                    let Some(next) = flight.front() else {
                        break None;
                    };
                    reader.keep = keeps_payload(sh, next);
                    match reader.try_frame() {
                        Ok(Some(len)) => complete_oldest(sh, &mut flight, &reader, len),
                        Ok(None) => break None,
                        Err(e) => break Some(kind_of(&e)),
                    }
                }
            }
            Ok(Err(e)) => Some(kind_of(&e)),
            Err(_elapsed) => Some(ErrorKind::Timeout),
        };
        if let Some(kind) = failed {
            stream = None;
            fail_oldest_then_reset(sh, &mut flight, kind);
        }
    }
}

fn kind_of(e: &FrameError) -> ErrorKind {
    match e {
        FrameError::Closed => ErrorKind::Reset,
        FrameError::Io(_) | FrameError::TooLong(_) => ErrorKind::Protocol,
    }
}

/// Whether the reply to `o` must be kept: a check reads its payload.
#[inline]
fn keeps_payload(sh: &Pool, o: &Outstanding) -> bool {
    sh.checker(o.job.tag.req).is_some_and(|c| c.needs_body())
}

/// The oldest message got its reply, of `len` payload bytes (kept in
/// `reader.payload` when [`keeps_payload`]).
#[inline]
fn complete_oldest(sh: &Pool, flight: &mut VecDeque<Outstanding>, reader: &FrameReader, len: u32) {
    if let Some(o) = flight.pop_front() {
        let now = Instant::now();
        let verdict = match sh.checker(o.job.tag.req) {
            None => Ok(()),
            Some(c) if c.needs_body() => reader.payload.judge(c),
            Some(c) => c.body_len(u64::from(len)),
        };
        sh.complete(&o.job, verdict.map_err(Failure::Check), now, o.sent);
    }
}

/// The oldest message fails as `kind`; the ones behind it lost their
/// connection with it.
fn fail_oldest_then_reset(sh: &Pool, flight: &mut VecDeque<Outstanding>, kind: ErrorKind) {
    if let Some(o) = flight.pop_front() {
        sh.fail(&o.job, kind);
    }
    fail_all(sh, flight, ErrorKind::Reset);
}

fn fail_all(sh: &Pool, flight: &mut VecDeque<Outstanding>, kind: ErrorKind) {
    for o in flight.drain(..) {
        sh.fail(&o.job, kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::render::testing;
    use tokio::io::duplex;
    use volley_plan::Protocol;

    fn frames(requests: Vec<Request>) -> Frames {
        let plan = testing::plan(Protocol::Tcp, "tcp://h:1", requests.clone());
        Frames::new(&requests, &testing::compile(&plan)).unwrap()
    }

    fn written(f: &Frames, req: u16, seq: u64) -> Vec<u8> {
        let mut out = b"before".to_vec();
        f.write(req, &mut out, || testing::ctx(seq));
        out.split_off(6)
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn frames_are_length_prefixed() {
        let mut r = Request::get("/");
        r.body = volley_plan::Body::Bytes(b"hello".to_vec());
        let mut empty = Request::get("/");
        empty.body = volley_plan::Body::Generated(0);
        let mut templated = Request::get("/");
        templated.body = volley_plan::Body::Template("id={{seq}}".into());
        let f = frames(vec![r, empty, templated]);
        assert_eq!(written(&f, 0, 0), frame(b"hello"));
        assert_eq!(written(&f, 1, 0), [0, 0, 0, 0]);
        assert_eq!(written(&f, 2, 7), frame(b"id=7"));
        assert_eq!(written(&f, 2, 123456), frame(b"id=123456"));
    }

    #[test]
    fn payloads_are_kept_only_for_frames_that_start_while_asked() {
        let mut r = FrameReader::default();
        let mut data = frame(b"abc");
        data.extend(frame(b"de"));
        r.buf = data.clone();
        r.end = data.len();
        r.keep = true;
        assert_eq!(r.try_frame().unwrap(), Some(3));
        assert_eq!((r.payload.len(), r.payload.is_empty()), (3, false));
        r.keep = false;
        assert_eq!(r.try_frame().unwrap(), Some(2));
        assert_eq!(r.payload.len(), 3, "not kept: the last kept payload stays");
    }

    #[tokio::test]
    async fn replies_split_anywhere_are_read_in_order() {
        let mut wire = Vec::new();
        for n in [3usize, 0, 70_000, 1] {
            wire.extend(frame(&vec![7u8; n]));
        }
        // Every split point of the header and payload boundaries.
        for chunk in [1usize, 3, 5, 4096, 1 << 20] {
            let (mut a, mut b) = duplex(1 << 16);
            let data = wire.clone();
            let writer = tokio::spawn(async move {
                for c in data.chunks(chunk) {
                    a.write_all(c).await.unwrap();
                }
            });
            let mut r = FrameReader::default();
            let mut got = Vec::new();
            for _ in 0..4 {
                got.push(r.read_frame(&mut b).await.unwrap());
            }
            writer.await.unwrap();
            assert_eq!(got, vec![3, 0, 70_000, 1], "chunk {chunk}");
            assert!(matches!(
                r.read_frame(&mut b).await,
                Err(FrameError::Closed)
            ));
        }
    }

    #[tokio::test]
    async fn an_oversized_length_is_a_bad_frame() {
        let (mut a, mut b) = duplex(64);
        a.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
        let mut r = FrameReader::default();
        assert!(matches!(
            r.read_frame(&mut b).await,
            Err(FrameError::TooLong(0xffff_ffff))
        ));
    }

    #[test]
    fn try_frame_takes_only_complete_frames() {
        let mut r = FrameReader::default();
        let mut data = frame(b"abc");
        data.extend(&frame(b"de")[..3]);
        r.buf = data.clone();
        r.end = data.len();
        assert_eq!(r.try_frame().unwrap(), Some(3));
        assert_eq!(r.try_frame().unwrap(), None);
    }
}
