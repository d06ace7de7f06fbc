//! Closing a connection without destroying the replies still in flight.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a closing connection keeps draining the peer's bytes.
const LINGER: Duration = Duration::from_secs(2);
/// How much it drains at most.
const LINGER_BYTES: usize = 1024 * 1024;
/// Bytes asked of each draining read.
const CHUNK: usize = 16 * 1024;

/// Sends FIN after everything written so far, then reads and discards what
/// the peer still sends until it closes, for a bounded time and amount.
///
/// Closing a socket with unread received bytes makes the kernel send a
/// reset, which can destroy the replies still in flight (think of a refused
/// HTTP request whose body is still arriving, or of pipelined frames behind
/// one whose reply is a closed connection). `buf` is scratch space.
pub(super) async fn close(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<()> {
    stream.shutdown().await?;
    let drain = async {
        let mut drained = 0;
        loop {
            buf.clear();
            buf.reserve(CHUNK);
            let n = stream.read_buf(buf).await?;
            drained += n;
            if n == 0 || drained > LINGER_BYTES {
                return io::Result::Ok(());
            }
        }
    };
    // A peer that neither reads nor closes loses nothing by a reset.
    let _ = tokio::time::timeout(LINGER, drain).await;
    Ok(())
}
