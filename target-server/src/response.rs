//! Response bytes, built once per server.
//!
//! On the fast path a response is a copy of prebuilt bytes into the
//! connection's write buffer: no formatting, no allocation per request.

use bytes::Bytes;

use super::error::Rejection;
use super::TargetStats;

/// A complete response, head and body, in one buffer.
#[derive(Debug, Clone)]
pub(crate) struct Canned {
    bytes: Bytes,
    head_len: usize,
}

impl Canned {
    fn new(status: &str, content_type: &str, body: &[u8], close: bool) -> Self {
        let mut bytes = head(status, content_type, body.len(), close);
        let head_len = bytes.len();
        bytes.extend_from_slice(body);
        Self {
            bytes: Bytes::from(bytes),
            head_len,
        }
    }

    /// The body alone, shared rather than copied (HTTP/2 frames it itself).
    pub(crate) fn body(&self) -> Bytes {
        self.bytes.slice(self.head_len..)
    }

    /// The bytes to send; a `HEAD` request gets the head alone.
    pub(crate) fn wire(&self, head_only: bool) -> &[u8] {
        if head_only {
            &self.bytes[..self.head_len]
        } else {
            &self.bytes
        }
    }
}

/// The head of a response. HTTP/1.0 clients only keep a connection open when
/// the response says `keep-alive`, so it is always said.
fn head(status: &str, content_type: &str, len: usize, close: bool) -> Vec<u8> {
    let connection = if close { "close" } else { "keep-alive" };
    format!(
        "HTTP/1.1 {status}\r\nServer: volley\r\nContent-Type: {content_type}\r\n\
         Content-Length: {len}\r\nConnection: {connection}\r\n\r\n"
    )
    .into_bytes()
}

/// Content type of `200` responses.
pub(crate) const OK_CONTENT_TYPE: &str = "application/octet-stream";
/// Content type and body of injected `500` responses.
pub(crate) const ERROR_CONTENT_TYPE: &str = "text/plain";
pub(crate) const ERROR_BODY: &[u8] = b"volley target: injected error\n";

/// The success and injected-error responses, in keep-alive and closing
/// variants.
#[derive(Debug)]
pub(crate) struct Responses {
    /// Indexed by `[error as usize][close as usize]`.
    canned: [[Canned; 2]; 2],
}

impl Responses {
    /// `body_size` bytes of body for 200s (a printable filler, so a human
    /// using curl sees something sensible).
    pub(crate) fn new(body_size: usize) -> Self {
        let body = vec![b'x'; body_size];
        let ok = |close| Canned::new("200 OK", OK_CONTENT_TYPE, &body, close);
        let error = |close| {
            Canned::new(
                "500 Internal Server Error",
                ERROR_CONTENT_TYPE,
                ERROR_BODY,
                close,
            )
        };
        Self {
            canned: [[ok(false), ok(true)], [error(false), error(true)]],
        }
    }

    pub(crate) fn get(&self, error: bool, close: bool) -> &Canned {
        &self.canned[usize::from(error)][usize::from(close)]
    }
}

/// The interim response that lets a client send its body.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The response to a refused request. It always closes the connection.
pub(crate) fn rejection(rejection: Rejection) -> &'static [u8] {
    // `concat!` cannot compute lengths, so they are spelled out and checked
    // by a test.
    match rejection {
        Rejection::BadRequest => concat!(
            "HTTP/1.1 400 Bad Request\r\nServer: volley\r\nContent-Type: text/plain\r\n",
            "Content-Length: 12\r\nConnection: close\r\n\r\nbad request\n"
        )
        .as_bytes(),
        Rejection::BodyTooLarge => concat!(
            "HTTP/1.1 413 Content Too Large\r\nServer: volley\r\nContent-Type: text/plain\r\n",
            "Content-Length: 15\r\nConnection: close\r\n\r\nbody too large\n"
        )
        .as_bytes(),
        Rejection::HeadTooLarge => concat!(
            "HTTP/1.1 431 Request Header Fields Too Large\r\nServer: volley\r\n",
            "Content-Type: text/plain\r\nContent-Length: 15\r\nConnection: close\r\n\r\n",
            "head too large\n"
        )
        .as_bytes(),
    }
}

/// Appends the statistics response: a JSON object, written by hand because
/// four integers do not justify a serializer dependency.
pub(crate) fn write_stats(out: &mut Vec<u8>, stats: &TargetStats, head_only: bool, close: bool) {
    let body = stats_json(stats);
    out.extend_from_slice(&head("200 OK", "application/json", body.len(), close));
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
}

/// The statistics as the JSON body of the stats endpoint.
pub(crate) fn stats_json(stats: &TargetStats) -> String {
    format!(
        "{{\"requests\":{},\"ok\":{},\"errors\":{},\"connections\":{}}}",
        stats.requests(),
        stats.ok(),
        stats.errors(),
        stats.connections()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a response into head and body, checking Content-Length.
    fn check(wire: &[u8]) -> (u16, Vec<u8>) {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(len) = response.parse(wire).unwrap() else {
            panic!("incomplete response");
        };
        let content_length: usize = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
            .unwrap();
        assert_eq!(
            wire.len() - len,
            content_length,
            "{}",
            String::from_utf8_lossy(wire)
        );
        (response.code.unwrap(), wire[len..].to_vec())
    }

    #[test]
    fn rejections_are_well_formed() {
        assert_eq!(check(rejection(Rejection::BadRequest)).0, 400);
        assert_eq!(check(rejection(Rejection::BodyTooLarge)).0, 413);
        assert_eq!(check(rejection(Rejection::HeadTooLarge)).0, 431);
    }

    #[test]
    fn canned_responses() {
        let responses = Responses::new(10);
        assert_eq!(
            check(responses.get(false, false).wire(false)),
            (200, vec![b'x'; 10])
        );
        assert_eq!(check(responses.get(true, true).wire(false)).0, 500);
        let head = responses.get(false, false).wire(true);
        assert!(head.ends_with(b"Content-Length: 10\r\nConnection: keep-alive\r\n\r\n"));
        assert!(responses
            .get(true, true)
            .wire(true)
            .ends_with(b"Connection: close\r\n\r\n"));
    }

    #[test]
    fn stats_json() {
        let stats = TargetStats::default();
        stats.record(3, 1);
        let mut out = Vec::new();
        write_stats(&mut out, &stats, false, false);
        let (code, body) = check(&out);
        assert_eq!(code, 200);
        assert_eq!(body, br#"{"requests":4,"ok":3,"errors":1,"connections":0}"#);
    }
}
