//! Skipping a `Transfer-Encoding: chunked` request body.
//!
//! The target discards bodies, but it must find where a chunked body ends to
//! find the next request on a keep-alive connection. This is an incremental
//! decoder: it is fed whatever bytes have arrived and keeps its state between
//! reads, so no body is ever buffered. Line endings may be CRLF or bare LF.

use super::error::RequestError;
use super::request::{MAX_BODY, MAX_HEAD};

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex chunk size; `digits` seen so far.
    Size { size: u64, digits: u8 },
    /// Skipping a chunk extension up to the end of the size line.
    Extension { size: u64 },
    /// `size` bytes of chunk data left to skip.
    Data(u64),
    /// After chunk data: expecting CR or LF.
    DataEnd,
    /// After chunk data and CR: expecting LF.
    DataEndLf,
    /// In the trailer section; `line` bytes of the current line seen.
    Trailer { line: usize },
    /// The body has ended.
    Done,
}

/// An incremental chunked-body skipper.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// Chunk data skipped so far, capped at [`MAX_BODY`].
    data: u64,
    /// Size lines, extensions and trailers seen so far, capped at
    /// [`MAX_HEAD`] so a peer cannot keep the connection busy with framing.
    framing: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self {
            state: State::Size { size: 0, digits: 0 },
            data: 0,
            framing: 0,
        }
    }
}

impl ChunkedDecoder {
    /// Consumes body bytes from the front of `buf`. Returns how many bytes
    /// belong to the body and whether the body is complete; the bytes after
    /// a complete body belong to the next request.
    pub(crate) fn feed(&mut self, buf: &[u8]) -> Result<(usize, bool), RequestError> {
        let mut pos = 0;
        while pos < buf.len() && self.state != State::Done {
            if let State::Data(left) = self.state {
                let take = left.min((buf.len() - pos) as u64);
                pos += take as usize;
                self.state = if take == left {
                    State::DataEnd
                } else {
                    State::Data(left - take)
                };
                continue;
            }
            self.framing += 1;
            if self.framing > MAX_HEAD {
                return Err(RequestError::Invalid("chunked framing too long"));
            }
            self.state = self.step(buf[pos])?;
            pos += 1;
        }
        Ok((pos, self.state == State::Done))
    }

    /// Advances over one framing byte.
    fn step(&mut self, byte: u8) -> Result<State, RequestError> {
        const BAD: RequestError = RequestError::Invalid("bad chunk framing");
        Ok(match (self.state, byte) {
            (State::Size { size, digits }, _) if byte.is_ascii_hexdigit() => {
                // 15 hex digits is already far beyond MAX_BODY; this keeps
                // the shift from overflowing.
                if digits >= 15 {
                    return Err(RequestError::BodyTooLarge);
                }
                let digit = u64::from((byte as char).to_digit(16).unwrap_or(0));
                State::Size {
                    size: size << 4 | digit,
                    digits: digits + 1,
                }
            }
            (State::Size { digits: 0, .. }, _) => return Err(BAD),
            (State::Size { size, .. }, b';' | b' ' | b'\t') => State::Extension { size },
            (State::Size { size, .. } | State::Extension { size }, b'\n') => {
                self.data += size;
                if self.data > MAX_BODY {
                    return Err(RequestError::BodyTooLarge);
                }
                if size == 0 {
                    State::Trailer { line: 0 }
                } else {
                    State::Data(size)
                }
            }
            (State::Size { size, .. }, b'\r') => State::Extension { size },
            (State::Size { .. }, _) => return Err(BAD),
            (State::Extension { size }, _) => State::Extension { size },
            (State::DataEnd, b'\r') => State::DataEndLf,
            (State::DataEnd | State::DataEndLf, b'\n') => State::Size { size: 0, digits: 0 },
            (State::DataEnd | State::DataEndLf, _) => return Err(BAD),
            (State::Trailer { line: 0 }, b'\n') => State::Done,
            (State::Trailer { .. }, b'\n') => State::Trailer { line: 0 },
            (State::Trailer { line }, b'\r') => State::Trailer { line },
            (State::Trailer { line }, _) => State::Trailer { line: line + 1 },
            // `feed` neither steps in `Data` nor after `Done`.
            (State::Data(_) | State::Done, _) => return Err(BAD),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        b"5\r\nhello\r\n1;name=value\r\n!\r\nA\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n";

    fn decode_in_pieces(input: &[u8], piece: usize) -> Result<(usize, bool), RequestError> {
        let mut decoder = ChunkedDecoder::default();
        let mut used = 0;
        for chunk in input.chunks(piece) {
            let (n, done) = decoder.feed(chunk)?;
            used += n;
            if done {
                return Ok((used, true));
            }
            assert_eq!(n, chunk.len(), "an unfinished body consumes everything");
        }
        Ok((used, false))
    }

    #[test]
    fn finds_the_end_whatever_the_split() {
        let mut input = BODY.to_vec();
        input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        for piece in 1..=input.len() {
            assert_eq!(
                decode_in_pieces(&input, piece).unwrap(),
                (BODY.len(), true),
                "piece {piece}"
            );
        }
    }

    #[test]
    fn bare_lf_and_no_trailers() {
        assert_eq!(decode_in_pieces(b"3\nabc\n0\n\n", 4).unwrap(), (9, true));
        assert_eq!(decode_in_pieces(b"0\r\n\r\n", 100).unwrap(), (5, true));
    }

    #[test]
    fn incomplete_body_is_not_done() {
        assert_eq!(decode_in_pieces(b"5\r\nhel", 2).unwrap(), (6, false));
        assert_eq!(
            decode_in_pieces(b"0\r\nTrailer: x\r\n", 3).unwrap(),
            (15, false)
        );
    }

    #[test]
    fn rejects_bad_framing() {
        for bad in [&b"\r\n"[..], b"zz\r\n", b"g\r\n", b"-1\r\n", b"3\r\nabcX"] {
            let result = decode_in_pieces(bad, 1);
            assert!(
                matches!(result, Err(RequestError::Invalid(_))),
                "{bad:?}: {result:?}"
            );
        }
    }

    #[test]
    fn rejects_huge_bodies_without_reading_them() {
        let huge = format!("{:x}\r\n", MAX_BODY + 1);
        assert!(matches!(
            decode_in_pieces(huge.as_bytes(), 1),
            Err(RequestError::BodyTooLarge)
        ));
        assert!(matches!(
            decode_in_pieces(b"1000000000000000\r\n", 1),
            Err(RequestError::BodyTooLarge)
        ));
    }

    #[test]
    fn rejects_endless_trailers() {
        let endless = vec![b'x'; MAX_HEAD + 10];
        let mut decoder = ChunkedDecoder::default();
        decoder.feed(b"0\r\n").unwrap();
        assert!(matches!(
            decoder.feed(&endless),
            Err(RequestError::Invalid(_))
        ));
    }
}
