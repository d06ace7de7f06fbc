//! Parsing a request head into what the target needs to answer it.
//!
//! The target ignores the method, path and headers except for the few that
//! decide framing (where the body ends) and connection reuse, so parsing
//! copies out a handful of flags and never allocates.

use super::error::RequestError;

/// Largest request head accepted. Bounds the read buffer: a client that
/// never ends its head gets 431, not an ever-growing buffer.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted (bodies are skipped, never buffered, so
/// this only stops a peer from occupying a connection forever).
pub(crate) const MAX_BODY: u64 = 64 * 1024 * 1024;
/// Headers per request; more is answered 431.
const MAX_HEADERS: usize = 64;
/// Path of the statistics endpoint.
pub(crate) const STATS_PATH: &str = "/__volley/stats";

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// This many bytes follow the head (0 for no body).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// The parts of a request head the target acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    /// Bytes of the head, including the blank line.
    pub(crate) len: usize,
    pub(crate) framing: Framing,
    /// Whether the connection stays open after the response.
    pub(crate) keep_alive: bool,
    /// `HEAD` requests get the headers of the response but no body.
    pub(crate) head_only: bool,
    /// `GET /__volley/stats`.
    pub(crate) stats: bool,
    /// The client waits for `100 Continue` before sending its body (curl
    /// does for bodies over 1 KiB, and would otherwise stall a second).
    pub(crate) expect_continue: bool,
}

/// Parses the head at the start of `buf`; `Ok(None)` means more bytes are
/// needed.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<Head>, RequestError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf)? {
        httparse::Status::Complete(len) if len <= MAX_HEAD => len,
        httparse::Status::Partial if buf.len() <= MAX_HEAD => return Ok(None),
        _ => return Err(RequestError::HeadTooLarge),
    };
    let http11 = req.version == Some(1);
    let (mut close, mut keep_alive) = (false, false);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut expect_continue = false;
    for header in req.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let value = parse_length(header.value)?;
            if length.is_some_and(|seen| seen != value) {
                return Err(RequestError::Invalid("conflicting Content-Length"));
            }
            length = Some(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding frames the body; others (gzip…) do not
            // matter to a server that discards the body.
            let last = header
                .value
                .rsplit(|&b| b == b',')
                .next()
                .unwrap_or_default();
            if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(RequestError::Invalid("Transfer-Encoding without chunked"));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = header
                .value
                .trim_ascii()
                .eq_ignore_ascii_case(b"100-continue");
        }
    }
    let framing = match (chunked, length) {
        // Both framings at once is the classic request-smuggling shape.
        (true, Some(_)) => {
            return Err(RequestError::Invalid(
                "Content-Length with Transfer-Encoding",
            ))
        }
        (true, None) => Framing::Chunked,
        (false, Some(n)) if n > MAX_BODY => return Err(RequestError::BodyTooLarge),
        (false, n) => Framing::Length(n.unwrap_or(0)),
    };
    let method = req.method.unwrap_or_default();
    let head_only = method == "HEAD";
    let path = req.path.unwrap_or_default();
    let path = path.split_once('?').map_or(path, |(path, _query)| path);
    Ok(Some(Head {
        len,
        framing,
        keep_alive: !close && (http11 || keep_alive),
        head_only,
        stats: (method == "GET" || head_only) && path == STATS_PATH,
        expect_continue: expect_continue && http11 && framing != Framing::Length(0),
    }))
}

fn parse_length(value: &[u8]) -> Result<u64, RequestError> {
    const BAD: RequestError = RequestError::Invalid("bad Content-Length");
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(BAD);
    }
    // All digits: the only possible failure is overflow, i.e. far too large.
    std::str::from_utf8(digits)
        .map_err(|_| BAD)?
        .parse()
        .map_err(|_| RequestError::BodyTooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Head {
        parse_head(raw.as_bytes()).unwrap().unwrap()
    }

    fn error(raw: &str) -> RequestError {
        parse_head(raw.as_bytes()).unwrap_err()
    }

    #[test]
    fn plain_get() {
        let raw = "GET /x HTTP/1.1\r\nHost: a\r\n\r\nGET";
        let h = head(raw);
        assert_eq!(h.len, raw.len() - 3);
        assert_eq!(h.framing, Framing::Length(0));
        assert!(h.keep_alive && !h.head_only && !h.stats);
    }

    #[test]
    fn partial_head_needs_more() {
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n")
            .unwrap()
            .is_none());
        assert!(parse_head(b"").unwrap().is_none());
    }

    #[test]
    fn connection_reuse() {
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nconnection: Upgrade, CLOSE\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn framing() {
        let h = head("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(12));
        let h = head("POST / HTTP/1.1\r\nContent-Length: 12\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(12));
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
    }

    #[test]
    fn bad_framing_is_refused() {
        use RequestError::*;
        assert!(matches!(
            error("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Invalid(_)
        ));
        assert!(matches!(
            error("POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n"),
            Invalid(_)
        ));
        assert!(matches!(
            error("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Invalid(_)
        ));
        assert!(matches!(
            error("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Invalid(_)
        ));
        assert!(matches!(
            error("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Invalid(_)
        ));
        assert!(matches!(
            error("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            BodyTooLarge
        ));
        assert!(matches!(
            error("POST / HTTP/1.1\r\nContent-Length: 67108865\r\n\r\n"),
            BodyTooLarge
        ));
        assert!(matches!(
            error("GET / HTTP/1.1\r\nbad header\r\n\r\n"),
            Malformed(_)
        ));
    }

    #[test]
    fn oversized_heads_are_refused() {
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert!(matches!(error(&long), RequestError::HeadTooLarge));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let err = error(&format!("GET / HTTP/1.1\r\n{many}\r\n"));
        assert_eq!(err.status(), super::super::error::Rejection::HeadTooLarge);
    }

    #[test]
    fn stats_and_head() {
        assert!(head("GET /__volley/stats HTTP/1.1\r\n\r\n").stats);
        assert!(head("GET /__volley/stats?x=1 HTTP/1.1\r\n\r\n").stats);
        assert!(!head("POST /__volley/stats HTTP/1.1\r\n\r\n").stats);
        assert!(!head("GET /__volley/statsx HTTP/1.1\r\n\r\n").stats);
        let h = head("HEAD / HTTP/1.1\r\n\r\n");
        assert!(h.head_only && !h.stats);
    }

    #[test]
    fn expect_continue_only_with_a_body() {
        let expect = "Expect: 100-Continue\r\n";
        assert!(
            head(&format!(
                "POST / HTTP/1.1\r\n{expect}Content-Length: 5\r\n\r\n"
            ))
            .expect_continue
        );
        assert!(
            head(&format!(
                "POST / HTTP/1.1\r\n{expect}Transfer-Encoding: chunked\r\n\r\n"
            ))
            .expect_continue
        );
        assert!(!head(&format!("POST / HTTP/1.1\r\n{expect}\r\n")).expect_continue);
        assert!(
            !head(&format!(
                "POST / HTTP/1.0\r\n{expect}Content-Length: 5\r\n\r\n"
            ))
            .expect_continue
        );
    }
}
