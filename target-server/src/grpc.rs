//! The generic gRPC echo service: what a unary call's request must look
//! like, and the statuses the target answers with.
//!
//! The target never parses the message itself (it does not know the
//! schema): a call to any method is answered with the request message, so a
//! load test can send whatever `protoc --encode` wrote.

use http::HeaderValue;

/// The content type of gRPC requests and replies; requests may add a
/// suffix (`application/grpc+proto`).
pub(super) const CONTENT_TYPE: &str = "application/grpc";
/// Bytes before the message: the compressed flag, then the big-endian
/// length.
const PREFIX: usize = 5;
/// Largest request message echoed, the usual gRPC default for received
/// messages.
pub(super) const MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// Largest request body: one prefix and one message.
pub(super) const MAX_BODY: usize = PREFIX + MAX_MESSAGE;

/// Whether a request with this `content-type` is a gRPC call.
pub(super) fn is_grpc(content_type: Option<&HeaderValue>) -> bool {
    content_type.is_some_and(|v| v.as_bytes().starts_with(CONTENT_TYPE.as_bytes()))
}

/// The gRPC status codes the target answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Code {
    Ok,
    ResourceExhausted,
    Unimplemented,
    Internal,
    Unavailable,
}

impl Code {
    /// The `grpc-status` value.
    pub(super) fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Ok => "0",
            Self::ResourceExhausted => "8",
            Self::Unimplemented => "12",
            Self::Internal => "13",
            Self::Unavailable => "14",
        })
    }
}

/// A call the target refuses, with its status and `grpc-message` (plain
/// ASCII without `%`, so it needs no percent-encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) code: Code,
    pub(super) message: &'static str,
}

/// The refusal of a request body over [`MAX_BODY`].
pub(super) const TOO_LARGE: Refusal = Refusal {
    code: Code::ResourceExhausted,
    message: "request message larger than 4194304 bytes",
};

/// The `grpc-message` of an injected error.
pub(super) const INJECTED: &str = "volley target: injected error";

/// Checks that a unary call's request body is exactly one uncompressed
/// length-prefixed message; the body is then also the reply.
pub(super) fn check_body(body: &[u8]) -> Result<(), Refusal> {
    let internal = |message| {
        Err(Refusal {
            code: Code::Internal,
            message,
        })
    };
    let Some((prefix, message)) = body.split_first_chunk::<PREFIX>() else {
        return if body.is_empty() {
            internal("no request message in a unary call")
        } else {
            internal("truncated request message")
        };
    };
    let [flag, length @ ..] = *prefix;
    match flag {
        0 => {}
        1 => {
            return Err(Refusal {
                code: Code::Unimplemented,
                message: "compressed messages are not supported",
            })
        }
        _ => return internal("invalid compressed flag"),
    }
    let length = u32::from_be_bytes(length);
    match usize::try_from(length).map_or(std::cmp::Ordering::Greater, |l| message.len().cmp(&l)) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => internal("truncated request message"),
        std::cmp::Ordering::Greater => internal("more than one request message in a unary call"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
        let mut body = vec![flag];
        body.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
        body.extend_from_slice(message);
        body
    }

    fn code(body: &[u8]) -> Code {
        check_body(body).err().map_or(Code::Ok, |r| r.code)
    }

    #[test]
    fn one_uncompressed_message_is_accepted() {
        assert_eq!(code(&frame(0, b"hello")), Code::Ok);
        assert_eq!(code(&frame(0, b"")), Code::Ok);
    }

    #[test]
    fn anything_else_is_refused() {
        assert_eq!(code(&frame(1, b"hello")), Code::Unimplemented);
        assert_eq!(code(&frame(2, b"hello")), Code::Internal);
        assert_eq!(code(b""), Code::Internal);
        assert_eq!(code(b"\0\0\0"), Code::Internal);
        let whole = frame(0, b"hello");
        assert_eq!(code(&whole[..whole.len() - 1]), Code::Internal);
        assert_eq!(code(&[whole.clone(), whole].concat()), Code::Internal);
    }

    #[test]
    fn content_types() {
        let grpc = |v: &'static str| is_grpc(Some(&HeaderValue::from_static(v)));
        assert!(grpc("application/grpc"));
        assert!(grpc("application/grpc+proto"));
        assert!(!grpc("application/json"));
        assert!(!is_grpc(None));
    }

    #[test]
    fn status_values() {
        assert_eq!(Code::Ok.header(), "0");
        assert_eq!(Code::Unavailable.header(), "14");
        assert_eq!(
            TOO_LARGE.message,
            format!("request message larger than {MAX_MESSAGE} bytes")
        );
    }
}
