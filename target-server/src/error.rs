//! Why a request could not be served.

use super::request::{MAX_BODY, MAX_HEAD};

/// A request the target refuses. Each is answered with a canned status and
/// the connection is closed, because after a framing error the start of the
/// next request cannot be found.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    #[error("malformed request: {0}")]
    Malformed(#[from] httparse::Error),
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    #[error("request head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("request body larger than {MAX_BODY} bytes")]
    BodyTooLarge,
}

impl RequestError {
    /// The status line the client gets.
    pub(crate) fn status(&self) -> Rejection {
        match self {
            Self::Malformed(httparse::Error::TooManyHeaders) | Self::HeadTooLarge => {
                Rejection::HeadTooLarge
            }
            Self::Malformed(_) | Self::Invalid(_) => Rejection::BadRequest,
            Self::BodyTooLarge => Rejection::BodyTooLarge,
        }
    }
}

/// The statuses of refused requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// 400
    BadRequest,
    /// 413
    BodyTooLarge,
    /// 431
    HeadTooLarge,
}
