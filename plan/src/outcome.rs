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
    /// A complete reply that failed a response check (`[expect]`); counted
    /// per check in `errors_by_check`.
    Check,
}

impl ErrorKind {
    pub const COUNT: usize = 6;
    pub const ALL: [ErrorKind; ErrorKind::COUNT] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Status,
        ErrorKind::Protocol,
        ErrorKind::Reset,
        ErrorKind::Check,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Status => "status",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Reset => "reset",
            ErrorKind::Check => "check",
        }
    }

    /// The kind named `s` in a report.
    pub fn parse(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_indexes_follow_all() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
            assert_eq!(ErrorKind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(ErrorKind::parse("lost"), None);
    }
}
