//! The framed-TCP echo.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::client::PATIENCE;
use super::{Server, TargetConfig};
use crate::serve_tcp;

/// A client that speaks length-prefixed frames.
pub(super) struct Framed {
    stream: TcpStream,
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

impl Framed {
    pub(super) async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
        }
    }

    /// Sends the frames in one write.
    pub(super) async fn send(&mut self, payloads: &[&[u8]]) {
        let bytes: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
        self.stream.write_all(&bytes).await.unwrap();
    }

    async fn raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The payload of the next reply.
    pub(super) async fn reply(&mut self) -> Vec<u8> {
        self.try_reply()
            .await
            .expect("a reply, not a closed connection")
    }

    /// The payload of the next reply, or `None` when the server closed the
    /// connection instead.
    async fn try_reply(&mut self) -> Option<Vec<u8>> {
        let read = async {
            let mut prefix = [0; 4];
            match self.stream.read_exact(&mut prefix).await {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    return None
                }
                Err(e) => panic!("{e}"),
            }
            let mut payload = vec![0; u32::from_be_bytes(prefix) as usize];
            self.stream.read_exact(&mut payload).await.unwrap();
            Some(payload)
        };
        timeout(PATIENCE, read).await.unwrap()
    }
}

async fn start(config: TargetConfig) -> Server {
    super::start_with(config, |l, c, s, stop| {
        tokio::spawn(serve_tcp(l, c, s, stop))
    })
    .await
}

fn payloads() -> Vec<Vec<u8>> {
    (0..50)
        .map(|i: usize| (0..i * 37).map(|b| (b % 251) as u8).collect())
        .chain([vec![], vec![9; 1024 * 1024], vec![1]])
        .collect()
}

#[tokio::test]
async fn pipelined_frames_are_echoed_in_order() {
    let server = start(TargetConfig::default()).await;
    let mut client = Framed::connect(server.addr).await;
    let payloads = payloads();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    client.send(&refs).await;
    for payload in &payloads {
        assert_eq!(&client.reply().await, payload);
    }
    // A frame trickling in byte by byte is answered once whole.
    let bytes = frame(b"slowly");
    for byte in &bytes {
        client.raw(std::slice::from_ref(byte)).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(client.reply().await, b"slowly");
    let answered = payloads.len() as u64 + 1;
    assert_eq!((server.stats.ok(), server.stats.errors()), (answered, 0));
    assert_eq!(server.stats.connections(), 1);
}

#[tokio::test]
async fn delayed_frames_keep_their_order() {
    let delay = Duration::from_millis(50);
    let server = start(TargetConfig {
        delay,
        ..TargetConfig::default()
    })
    .await;
    let mut client = Framed::connect(server.addr).await;
    let payloads = payloads();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let sent = Instant::now();
    client.send(&refs).await;
    assert_eq!(client.reply().await, payloads[0]);
    assert!(sent.elapsed() >= delay, "{:?}", sent.elapsed());
    for payload in &payloads[1..] {
        assert_eq!(&client.reply().await, payload);
    }
    // Sent later, answered a delay later.
    let sent = Instant::now();
    client.send(&[b"again"]).await;
    assert_eq!(client.reply().await, b"again");
    assert!(sent.elapsed() >= delay, "{:?}", sent.elapsed());
    assert_eq!(server.stats.ok(), payloads.len() as u64 + 1);
}

#[tokio::test]
async fn capacity_spaces_the_replies() {
    // 100 messages/s: 20 pipelined messages leave 10 ms apart.
    let server = start(TargetConfig {
        capacity: Some(100.0),
        ..TargetConfig::default()
    })
    .await;
    let mut client = Framed::connect(server.addr).await;
    let sent = Instant::now();
    client.send(&[&b"m"[..]; 20]).await;
    for _ in 0..20 {
        assert_eq!(client.reply().await, b"m");
    }
    let elapsed = sent.elapsed();
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
}

/// With rate 0.25 message n (counted across connections) fails iff n % 4 == 3.
async fn check_injected_errors(config: TargetConfig) {
    let server = start(config).await;
    let mut client = Framed::connect(server.addr).await;
    client
        .send(&[b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7"])
        .await;
    for expected in [b"0", b"1", b"2"] {
        assert_eq!(client.reply().await, expected);
    }
    // Message 3 fails: the connection closes instead, and 4..7 go unanswered.
    assert_eq!(client.try_reply().await, None);
    assert_eq!((server.stats.ok(), server.stats.errors()), (3, 1));
    // Numbering goes on across connections: 4, 5, 6 pass, 7 fails.
    let mut client = Framed::connect(server.addr).await;
    client.send(&[b"a", b"b", b"c", b"d", b"e"]).await;
    for expected in [b"a", b"b", b"c"] {
        assert_eq!(client.reply().await, expected);
    }
    assert_eq!(client.try_reply().await, None);
    assert_eq!((server.stats.ok(), server.stats.errors()), (6, 2));
    assert_eq!(server.stats.connections(), 2);
}

#[tokio::test]
async fn injected_error_closes_the_connection() {
    check_injected_errors(TargetConfig {
        error_rate: 0.25,
        ..TargetConfig::default()
    })
    .await;
}

#[tokio::test]
async fn injected_error_closes_the_connection_after_the_delay() {
    let delay = Duration::from_millis(30);
    let sent = Instant::now();
    check_injected_errors(TargetConfig {
        error_rate: 0.25,
        delay,
        ..TargetConfig::default()
    })
    .await;
    assert!(sent.elapsed() >= delay * 2, "{:?}", sent.elapsed());
}

#[tokio::test]
async fn oversized_frame_closes_the_connection() {
    for delay in [Duration::ZERO, Duration::from_millis(20)] {
        let server = start(TargetConfig {
            delay,
            ..TargetConfig::default()
        })
        .await;
        let mut client = Framed::connect(server.addr).await;
        client.send(&[b"before"]).await;
        // Only the prefix is needed to refuse it.
        client.raw(&(64u32 * 1024 * 1024 + 1).to_be_bytes()).await;
        assert_eq!(client.reply().await, b"before");
        assert_eq!(client.try_reply().await, None);
        assert_eq!((server.stats.ok(), server.stats.errors()), (1, 0));
    }
}

#[tokio::test]
async fn a_frame_of_64_mib_is_echoed() {
    let server = start(TargetConfig::default()).await;
    let mut client = Framed::connect(server.addr).await;
    let payload = vec![5u8; 64 * 1024 * 1024];
    let (mut read, mut write) = client.stream.split();
    let bytes = frame(&payload);
    let sending = write.write_all(&bytes);
    let receiving = async {
        let mut back = vec![0; bytes.len()];
        read.read_exact(&mut back).await.unwrap();
        back
    };
    let (sent, back) = timeout(PATIENCE, async { tokio::join!(sending, receiving) })
        .await
        .unwrap();
    sent.unwrap();
    assert!(back == bytes);
    assert_eq!(server.stats.ok(), 1);
}

#[tokio::test]
async fn shutdown_closes_listener_and_connections() {
    let server = start(TargetConfig::default()).await;
    let mut client = Framed::connect(server.addr).await;
    client.send(&[b"x"]).await;
    assert_eq!(client.reply().await, b"x");
    server.stop.send(()).unwrap();
    timeout(PATIENCE, server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(client.try_reply().await, None);
    assert!(TcpStream::connect(server.addr).await.is_err());
}
