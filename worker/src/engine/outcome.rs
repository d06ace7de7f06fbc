//! How a request ended. Every intended request ends as exactly one of ok,
//! one error kind, or dropped.

/// Why a request failed. The set is closed so counters are a fixed array on
/// the hot path; the names are the report's `errors_by_kind` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No connection could be established (refused, unreachable, DNS, or the
    /// connect did not finish within the timeout).
    Connect,
    /// No complete response within the timeout, counted from the send.
    Timeout,
    /// A complete response with a failing status (HTTP >= 400).
    Status,
    /// The peer broke the protocol: a malformed or oversized reply (bad
    /// HTTP, a bad frame, a gRPC reply without grpc-status).
    Protocol,
    /// The peer reset or closed the connection while the request was
    /// outstanding (for HTTP/2 also RST_STREAM and GOAWAY).
    Reset,
}

impl ErrorKind {
    pub const COUNT: usize = 5;
    pub const ALL: [ErrorKind; ErrorKind::COUNT] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Status,
        ErrorKind::Protocol,
        ErrorKind::Reset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Status => "status",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Reset => "reset",
        }
    }

    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}
