//! How a request ended: the error kinds live in [`volley_plan::outcome`],
//! the vocabulary workers and coordinator share; which kind an I/O failure
//! is, is decided here, once for every protocol.

use std::io;

pub use volley_plan::outcome::ErrorKind;

/// Whether an I/O error means the peer reset or closed the connection
/// (kind `reset`, where other I/O errors are `protocol`).
#[inline]
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_that_resets_or_closes_is_a_reset_and_nothing_else_is() {
        for k in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::UnexpectedEof,
        ] {
            assert!(is_reset(&io::Error::from(k)), "{k:?}");
        }
        for k in [
            io::ErrorKind::InvalidData,
            io::ErrorKind::TimedOut,
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::Other,
        ] {
            assert!(!is_reset(&io::Error::from(k)), "{k:?}");
        }
    }
}
