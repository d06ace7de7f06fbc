//! The kernel's share of one HTTP/1.1 request on loopback: a floor under
//! any client's CPU per request (`bench/floor.sh` runs it).
//!
//! A deliberately minimal open-loop client: keep-alive connections, blocking
//! sockets, no event loop, no timers, no measurement. Every millisecond it
//! sends the requests due on free connections (one `send` each), sleeps
//! until the next millisecond, then reads each answer, which has arrived by
//! then (one `recv` each). That is the fewest system calls a non-pipelined
//! HTTP/1.1 client can make per request, with one wake-up per millisecond
//! whatever the rate. Its CPU time per request is what the kernel charges a
//! client for the send, the loopback delivery to the server, and the
//! receive, plus a few instructions; a real client pays that plus its own
//! work and wake-ups.
//!
//! Usage: floor URL [RATE] [SECONDS] [CONNECTIONS]   (defaults 20000 10 64)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn cpu_seconds() -> f64 {
    // utime + stime of this process in clock ticks (fields 14 and 15), which
    // /proc reports in USER_HZ: 100 a second on Linux whatever the kernel's
    // own tick rate.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, s)| s);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the command: state is index 0, utime 11, stime 12.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: floor http://127.0.0.1:PORT/ [RATE] [SECONDS] [CONNECTIONS]";
    let Some(url) = args.first() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let num = |i: usize, d: f64| {
        args.get(i)
            .map_or(Ok(d), |v| v.parse::<f64>())
            .unwrap_or_else(|_| {
                eprintln!("{usage}");
                std::process::exit(2)
            })
    };
    let (rate, seconds, connections) = (num(1, 20000.0), num(2, 10.0), num(3, 64.0) as usize);
    let Some(authority) = url
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .filter(|a| a.starts_with("127.0.0.1:"))
    else {
        eprintln!("floor: expected an http://127.0.0.1:PORT/ URL (loopback only), got {url:?}");
        std::process::exit(2);
    };
    let request =
        format!("GET / HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: volley-floor\r\n\r\n");
    let mut conns: Vec<TcpStream> = (0..connections)
        .map(|_| {
            let s = TcpStream::connect(authority).unwrap_or_else(|e| {
                eprintln!("floor: cannot connect to {authority}: {e}");
                std::process::exit(3)
            });
            let _ = s.set_nodelay(true);
            s
        })
        .collect();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut sent, mut ok, mut owed) = (0u64, 0u64, 0.0f64);
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut tick = t0;
    while tick < t0 + Duration::from_secs_f64(seconds) {
        owed += rate / 1000.0;
        let n = (owed as usize).min(conns.len());
        owed -= n as f64;
        for s in &mut conns[..n] {
            if s.write_all(request.as_bytes()).is_ok() {
                sent += 1;
            }
        }
        tick += Duration::from_millis(1);
        std::thread::sleep(tick.saturating_duration_since(Instant::now()));
        for s in &mut conns[..n] {
            // A small answer from a local server arrives whole.
            if matches!(s.read(&mut buf), Ok(got) if got > 12 && &buf[9..12] == b"200") {
                ok += 1;
            }
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "floor: {:.0} rps over {wall:.1} s, {sent} sent, {ok} ok, CPU {:.2} us/request",
        sent as f64 / wall,
        cpu * 1e6 / sent.max(1) as f64
    );
}
