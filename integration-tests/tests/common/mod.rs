//! Harness for cross-process tests: start the real binaries, learn their
//! ports from what they print, kill them by PID when the test ends.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Directory holding `volley` and `volley-worker`: `target/<profile>/`,
/// found from this test executable (`target/<profile>/deps/<test>`). Both
/// binaries are built by the same test build, because the coordinator and
/// worker packages have CLI tests of their own.
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("VOLLEY_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the binaries first (the README's test command does: `cargo build --bins && cargo nextest run`)",
        p.display()
    );
    p
}

pub fn volley() -> Command {
    Command::new(bin("volley"))
}

pub fn worker_cmd() -> Command {
    Command::new(bin("volley-worker"))
}

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// A child process killed (by its PID) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
    stderr_lines: Option<mpsc::Receiver<String>>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{sig} {}", self.pid());
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reads stderr (when captured) until a line containing `marker`, and
    /// returns everything read up to and including it. Panics, with what
    /// was read, when the process exits or `within` passes first.
    pub fn wait_stderr(&mut self, marker: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut seen = String::new();
        let rx = self.stderr_lines.as_ref().expect("stderr is captured");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if line.contains(marker) {
                        return seen;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {}
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "{} never wrote {marker:?} to stderr within {within:?} (exit: {status:?}):\n{seen}",
                        self.name
                    );
                }
            }
        }
    }

    /// Everything the process wrote to stderr so far (when captured).
    pub fn stderr_so_far(&self) -> String {
        let mut out = String::new();
        if let Some(rx) = &self.stderr_lines {
            while let Ok(l) = rx.try_recv() {
                out.push_str(&l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd`, waits for a stdout line containing `marker`, and returns
/// the process and that line. Stdout after the marker is drained in the
/// background so the child never blocks on a full pipe.
pub fn spawn_until(mut cmd: Command, name: &str, marker: &str) -> (Proc, String) {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let wanted = marker.to_string();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent && line.contains(&wanted) {
                let _ = tx.send(line);
                sent = true;
            }
        }
    });
    let (etx, erx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = etx.send(line);
        }
    });
    let mut proc = Proc {
        child,
        name: name.to_string(),
        stderr_lines: Some(erx),
    };
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) => (proc, line),
        Err(_) => {
            let status = proc.child.try_wait().ok().flatten();
            panic!(
                "{name} never printed {marker:?} (exit: {status:?}); stderr:\n{}",
                proc.stderr_so_far()
            );
        }
    }
}

/// Spawns without waiting for anything.
pub fn spawn(mut cmd: Command, name: &str) -> Proc {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let stderr = child.stderr.take().unwrap();
    let (etx, erx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = etx.send(line);
        }
    });
    Proc {
        child,
        name: name.to_string(),
        stderr_lines: Some(erx),
    }
}

fn last_word(line: &str) -> String {
    line.split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string()
}

/// `volley target` on an ephemeral port; returns its base URL.
pub fn start_target(args: &[&str]) -> (Proc, String) {
    let mut cmd = volley();
    cmd.args(["target", "--listen", "127.0.0.1:0", "--threads", "1"])
        .args(args);
    let (p, line) = spawn_until(cmd, "target", "target listening on");
    (p, last_word(&line))
}

/// `volley serve` on an ephemeral port; returns its `http://` URL.
pub fn start_coordinator(args: &[&str]) -> (Proc, String) {
    let mut cmd = volley();
    cmd.arg("serve");
    if !args.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    cmd.args(args);
    let (p, line) = spawn_until(cmd, "coordinator", "coordinator listening on");
    (p, format!("http://{}", last_word(&line)))
}

pub fn start_worker(coordinator: &str, args: &[&str]) -> Proc {
    let mut cmd = worker_cmd();
    cmd.args(["--coordinator", coordinator]).args(args);
    spawn(cmd, "worker")
}

/// A scratch directory removed at drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "volley-it-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ (std::ptr::addr_of!(tag) as usize as u128)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("VOLLEY_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs a command to completion with a hard limit, killing it past that.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> (Output, Duration) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    });
    let out = child.wait_with_output().expect("wait");
    let _ = tx.send(());
    let took = start.elapsed();
    assert!(
        took < limit,
        "command ran past its {limit:?} limit and was killed:\n{}",
        describe(&out)
    );
    (out, took)
}

pub fn describe(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The texts of a report's events (`events[].text`), in order.
pub fn events(r: &Value) -> Vec<String> {
    r["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["text"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

pub fn read_report(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("report.json"))
        .unwrap_or_else(|e| panic!("{}/report.json: {e}", dir.display()));
    serde_json::from_str(&text).expect("report.json parses")
}

pub fn u(v: &Value, path: &str) -> u64 {
    pick(v, path)
        .as_u64()
        .unwrap_or_else(|| panic!("{path} is not an integer: {}", pick(v, path)))
}

pub fn f(v: &Value, path: &str) -> f64 {
    pick(v, path)
        .as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number: {}", pick(v, path)))
}

pub fn pick<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

/// Asserts intended = ok + errors + dropped for a `requests` object.
pub fn assert_accounted(requests: &Value, what: &str) {
    let (i, o, e, d) = (
        u(requests, "intended"),
        u(requests, "ok"),
        u(requests, "errors"),
        u(requests, "dropped"),
    );
    assert_eq!(
        i,
        o + e + d,
        "{what}: intended {i} != ok {o} + errors {e} + dropped {d}"
    );
}

/// The built-in target's own counters (`GET /__volley/stats`).
pub fn target_stats(base_url: &str) -> Value {
    let addr = base_url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).expect("connect to target");
    use std::io::{Read, Write};
    s.write_all(
        format!("GET /__volley/stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let body = buf.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(body).expect("stats JSON")
}

/// Decodes every histogram line of an HdrHistogram interval log, with its
/// tag (None for untagged lines).
pub fn read_hlog(path: &Path) -> Vec<(Option<String>, f64, hdrhistogram::Histogram<u64>)> {
    use base64::Engine;
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.starts_with('"') || line.trim().is_empty() {
            continue;
        }
        let (tag, rest) = match line.strip_prefix("Tag=") {
            Some(r) => {
                let (t, rest) = r.split_once(',').unwrap();
                (Some(t.to_string()), rest)
            }
            None => (None, line),
        };
        let parts: Vec<&str> = rest.splitn(4, ',').collect();
        assert_eq!(parts.len(), 4, "bad hlog line {line}");
        let start: f64 = parts[0].parse().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(parts[3])
            .unwrap();
        let h: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut std::io::Cursor::new(bytes))
            .unwrap();
        out.push((tag, start, h));
    }
    out
}

/// Load tests measure time: within one test binary (cargo test runs tests as
/// threads) they take turns. Under nextest each test is its own process and
/// `.config/nextest.toml` puts this package in a serial group.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A scenario written to a scratch directory, and the `volley run` command
/// that submits it to `coord_url` (quiet, writing to `out`).
pub struct Submission {
    pub dir: TempDir,
    pub out: PathBuf,
    pub cmd: Command,
}

pub fn submission(coord_url: &str, tag: &str, toml: &str, extra: &[&str]) -> Submission {
    let mut s = announced_submission(coord_url, tag, toml, extra);
    s.cmd.arg("--quiet");
    s
}

/// [`submission`] without `--quiet`: the run announces itself on stderr
/// ("volley: started with N worker(s)" once the workers start), for tests
/// that act on the run once it has started (see [`STARTED`]).
pub fn announced_submission(coord_url: &str, tag: &str, toml: &str, extra: &[&str]) -> Submission {
    let dir = TempDir::new(tag);
    let file = dir.write("s.toml", toml);
    let out = dir.path().join("out");
    let mut cmd = volley();
    cmd.args(["run", file.to_str().unwrap(), "--coordinator", coord_url])
        .args(["--out", out.to_str().unwrap()])
        .args(extra);
    Submission { dir, out, cmd }
}

/// What `volley run` (without `--quiet`) writes to stderr when the
/// workers have been told when t = 0 is.
pub const STARTED: &str = "volley: started with";

/// Polls the built-in target's own request counter until it reaches `n`;
/// returns the count seen. A condition to wait on instead of a sleep: the
/// load has really flowed this far.
pub fn wait_served(url: &str, n: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let served = target_stats(url)["requests"].as_u64().unwrap();
        if served >= n {
            return served;
        }
        assert!(
            Instant::now() < deadline,
            "the target served only {served} of {n} requests in {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Seconds since the Unix epoch of an RFC 3339 UTC time as the report
/// writes `started_at` (`2026-12-04T21:25:48.123Z`).
pub fn unix_secs(rfc3339: &str) -> f64 {
    let t = rfc3339.trim_end_matches('Z');
    let (date, time) = t
        .split_once('T')
        .unwrap_or_else(|| panic!("not RFC 3339: {rfc3339}"));
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (y, m, day) = (d[0], d[1], d[2]);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let hms: Vec<f64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    days as f64 * 86_400.0 + hms[0] * 3600.0 + hms[1] * 60.0 + hms[2]
}

/// Where `at` falls on the run's clock: seconds after the report's t = 0.
pub fn run_time_of(report: &Value, at: std::time::SystemTime) -> f64 {
    let at = at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    at - unix_secs(report["started_at"].as_str().expect("started_at"))
}

/// Submits a scenario, requires exit 0, and returns its report (and the
/// directory, which holds it until dropped).
pub fn run_to_report(
    coord_url: &str,
    tag: &str,
    toml: &str,
    extra: &[&str],
) -> (serde_json::Value, TempDir) {
    let s = submission(coord_url, tag, toml, extra);
    let (output, _) = run_bounded(s.cmd, Duration::from_secs(90));
    assert!(output.status.success(), "{}", describe(&output));
    (read_report(&s.out), s.dir)
}

/// A scenario written to a scratch directory, and the local-mode `volley
/// run` that runs it (in-process coordinator and workers; quiet, writing to
/// `out`). Write any file the scenario names (`body_file`, `tls_ca`) into
/// `dir` before running `cmd`.
pub fn local_submission(tag: &str, toml: &str, extra: &[&str]) -> Submission {
    let dir = TempDir::new(tag);
    let file = dir.write("s.toml", toml);
    let out = dir.path().join("out");
    let mut cmd = volley();
    cmd.args(["run", file.to_str().unwrap(), "--quiet"])
        .args(["--out", out.to_str().unwrap()])
        .args(extra);
    Submission { dir, out, cmd }
}

/// Runs a scenario in local mode, requires exit 0, and returns its report
/// (and the directory, which holds it until dropped).
pub fn run_local_to_report(tag: &str, toml: &str, extra: &[&str]) -> (Value, TempDir) {
    let s = local_submission(tag, toml, extra);
    let (output, _) = run_bounded(s.cmd, Duration::from_secs(90));
    assert!(output.status.success(), "{tag}: {}", describe(&output));
    (read_report(&s.out), s.dir)
}

/// A loopback port that was free a moment ago (bound to port 0, then
/// released), for servers that must be told their port. Another process can
/// take it in between: callers retry when their server fails to bind.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Waits until `addr` accepts connections, or `proc` exits, or `within`
/// passes; true when it accepts.
pub fn wait_accepting(addr: &str, proc: &mut Proc, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let sock: std::net::SocketAddr = addr.parse().expect("a socket address");
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&sock, Duration::from_millis(200)).is_ok() {
            return true;
        }
        if proc.child.try_wait().ok().flatten().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

mod servers;
// Not every test binary starts one of these.
#[allow(unused_imports)]
pub use servers::*;
