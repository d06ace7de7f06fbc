//! Targets that misbehave: every request still ends as a classified error
//! within the timeout, the worker never hangs, and the counts add up.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Reads the request, then closes without a byte.
    CloseAfterRequest,
    /// Reads the request and never answers.
    Silent,
    /// Sends half a response head, then stalls.
    PartialHead,
    /// Answers something that is not HTTP.
    NotHttp,
    /// Promises a body longer than it sends, then closes.
    ShortBody,
    /// A valid response with a 4 MiB body, on every request, sent in
    /// 256 KiB pieces 20 ms apart: each response takes ~300 ms, so at 40
    /// requests a second about 12 bodies are arriving at any moment.
    HugeBody,
}

/// A deliberately broken HTTP server on an ephemeral port, for one test.
struct BadServer {
    url: String,
    stop: Arc<AtomicBool>,
}

impl BadServer {
    fn start(mode: Mode) -> BadServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        l.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        let stop3 = stop2.clone();
                        std::thread::spawn(move || serve(s, mode, stop3));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        BadServer { url, stop }
    }
}

impl Drop for BadServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn read_request(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    true
}

fn serve(mut s: TcpStream, mode: Mode, stop: Arc<AtomicBool>) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let hang = |stop: &AtomicBool| {
        for _ in 0..500 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    loop {
        if !read_request(&mut s) {
            return;
        }
        match mode {
            Mode::CloseAfterRequest => return,
            Mode::Silent => return hang(&stop),
            Mode::PartialHead => {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Len");
                return hang(&stop);
            }
            Mode::NotHttp => {
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n");
                return;
            }
            Mode::ShortBody => {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly this");
                return;
            }
            Mode::HugeBody => {
                let piece = vec![b'x'; HUGE_BODY / 16];
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {HUGE_BODY}\r\n\r\n");
                if s.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for _ in 0..16 {
                    std::thread::sleep(Duration::from_millis(20));
                    if s.write_all(&piece).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

const HUGE_BODY: usize = 4 << 20;

fn run_against(
    coord_url: &str,
    url: &str,
    timeout: &str,
    tag: &str,
) -> (serde_json::Value, Duration) {
    let toml = format!("[target]\nurl = \"{url}\"\ntimeout = \"{timeout}\"\n[load]\nconnections = 16\n[[stages]]\nrate = 40\nduration = \"2s\"\n");
    let s = submission(coord_url, tag, &toml, &[]);
    let (output, took) = run_bounded(s.cmd, Duration::from_secs(60));
    assert!(
        s.out.join("report.json").exists(),
        "{tag}: no report\n{}",
        describe(&output)
    );
    (read_report(&s.out), took)
}

#[test]
fn misbehaving_targets_give_classified_errors_within_the_timeout() {
    let _serial = serial();
    let (_coord, coord_url) = start_coordinator(&[]);
    let _w = start_worker(&coord_url, &[]);
    let cases = [
        (Mode::CloseAfterRequest, "reset"),
        (Mode::Silent, "timeout"),
        (Mode::PartialHead, "timeout"),
        (Mode::NotHttp, "protocol"),
        (Mode::ShortBody, "reset"),
    ];
    for (mode, kind) in cases {
        let server = BadServer::start(mode);
        let (r, took) = run_against(&coord_url, &server.url, "500ms", &format!("{mode:?}"));
        assert_accounted(&r["requests"], &format!("{mode:?}"));
        assert_eq!(u(&r, "requests.intended"), 80, "{mode:?}");
        assert_eq!(u(&r, "requests.ok"), 0, "{mode:?}: {}", r["requests"]);
        assert_eq!(u(&r, "requests.errors"), 80, "{mode:?}: {}", r["requests"]);
        assert_eq!(
            u(&r["errors_by_kind"], kind),
            80,
            "{mode:?}: {}",
            r["errors_by_kind"]
        );
        // 2 s of load + a 500 ms timeout + setup: never a hung worker.
        assert!(took < Duration::from_secs(15), "{mode:?} took {took:?}");
    }
    // A huge body is read through and counted as ok, not kept in memory.
    // 80 bodies of 4 MiB are 320 MiB; about 12 arrive at once (see
    // HugeBody), 48 MiB if each were buffered whole. The worker's own RSS
    // (sampled every second, the peak in the report) stays below 40 MB:
    // what it needs without the bodies (~10-20 MB) and far below either.
    let server = BadServer::start(Mode::HugeBody);
    let (r, _) = run_against(&coord_url, &server.url, "3s", "huge");
    assert_accounted(&r["requests"], "huge");
    assert_eq!(u(&r, "requests.intended"), 80, "{}", r["requests"]);
    assert_eq!(
        u(&r, "requests.ok"),
        80,
        "every huge body is read through: {}",
        r["requests"]
    );
    let worker = &r["workers"][0];
    let peak = f(worker, "rss_mb_peak");
    eprintln!(
        "huge bodies: worker RSS first {} MB, peak {peak} MB",
        worker["rss_mb_first"]
    );
    assert!(
        peak < 40.0,
        "the worker's RSS peaked at {peak} MB: are response bodies buffered? {worker}"
    );
}
