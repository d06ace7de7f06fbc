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

/// Reads a line-oriented log until it stops growing (two reads 150 ms apart
/// agree), so what a server logs after answering has landed.
fn settled_lines(path: &Path) -> Vec<String> {
    let read = || std::fs::read_to_string(path).unwrap_or_default();
    let mut last = read();
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(150));
        let now = read();
        if now == last {
            break;
        }
        last = now;
    }
    last.lines().map(str::to_string).collect()
}

/// One request as nginx logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLine {
    pub method: String,
    pub uri: String,
    pub status: u16,
    /// `HTTP/2.0` for requests that came over HTTP/2.
    pub protocol: String,
    /// The request's `content-length` header (0 when it had none).
    pub content_length: u64,
    /// The request's `x-tenant` header (`-` when it had none), to check
    /// that scenario headers are sent.
    pub tenant: String,
}

/// nginx serving HTTP/2 with prior knowledge (h2c) on a loopback port: an
/// independent HTTP/2 implementation to point the protocol tests at. Every
/// path answers `200` with a fixed body (any method); every request is
/// logged, so a test can count what nginx served. Killed (by PID) on drop.
pub struct Nginx {
    // Declared before `dir`: the process dies before its files go.
    proc: Proc,
    dir: TempDir,
    pub port: u16,
}

impl Nginx {
    /// `http://127.0.0.1:PORT` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request nginx has logged, once the log has settled.
    pub fn access_log(&self) -> Vec<AccessLine> {
        settled_lines(&self.dir.path().join("access.log"))
            .iter()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                assert_eq!(f.len(), 6, "unexpected nginx access log line {l:?}");
                AccessLine {
                    method: f[0].to_string(),
                    uri: f[1].to_string(),
                    status: f[2].parse().unwrap_or(0),
                    protocol: f[3].to_string(),
                    content_length: f[4].parse().unwrap_or(0),
                    tenant: f[5].to_string(),
                }
            })
            .collect()
    }

    /// How many requests nginx has answered (and logged).
    pub fn requests_served(&self) -> u64 {
        self.access_log().len() as u64
    }

    /// nginx's error log so far, for failure messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

/// The nginx binary: on `PATH`, or Debian's `/usr/sbin/nginx` (not on a
/// non-root user's `PATH`). test.sh installs it.
pub fn nginx_binary() -> PathBuf {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("nginx");
            if p.is_file() {
                return p;
            }
        }
    }
    let p = PathBuf::from("/usr/sbin/nginx");
    assert!(
        p.is_file(),
        "nginx is not installed (test.sh installs Debian's `nginx` package)"
    );
    p
}

/// nginx's version as (major, minor, patch), from `nginx -v`.
fn nginx_version(bin: &Path) -> (u32, u32, u32) {
    let out = Command::new(bin).arg("-v").output().expect("run nginx -v");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let v = text
        .split("nginx/")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("cannot read nginx's version from {text:?}"));
    let mut n = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (
        n.next().unwrap_or(0),
        n.next().unwrap_or(0),
        n.next().unwrap_or(0),
    )
}

/// The nginx configuration of [`start_nginx_h2`]: everything nginx writes
/// (pid, logs, temp files) stays in `dir`; one process, in the foreground,
/// so killing its PID stops it (as root too: without a master process nginx
/// never switches user).
fn nginx_config(
    dir: &Path,
    port: u16,
    body: &str,
    new_http2_syntax: bool,
    tls: Option<&Path>,
    http2: bool,
) -> String {
    let d = dir.display();
    let ssl = if tls.is_some() { " ssl" } else { "" };
    let (listen, http2_on) = if !http2 {
        (format!("listen 127.0.0.1:{port}{ssl};"), "")
    } else if new_http2_syntax {
        (format!("listen 127.0.0.1:{port}{ssl};"), "http2 on;")
    } else {
        (format!("listen 127.0.0.1:{port}{ssl} http2;"), "")
    };
    let certificates = tls.map_or(String::new(), |c| {
        format!(
            "ssl_certificate {0}/server.pem; ssl_certificate_key {0}/server.key;",
            c.display()
        )
    });
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log notice;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    log_format volley '$request_method $uri $status $server_protocol $content_length $http_x_tenant';
    access_log {d}/access.log volley;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    http2_max_concurrent_streams 1000;
    client_max_body_size 16m;
    default_type application/octet-stream;
    server {{
        {listen}
        {http2_on}
        {certificates}
        location / {{ return 200 "{body}"; }}
    }}
}}
"#
    )
}

/// Starts nginx answering every request over h2c with `200` and a body of
/// `body_bytes` bytes (`a..z` repeated). Waits until it accepts
/// connections.
pub fn start_nginx_h2(body_bytes: usize) -> Nginx {
    start_nginx(body_bytes, None, true)
}

/// As [`start_nginx_h2`], speaking HTTP/1.1 only (no `http2`), as most
/// servers a user points Volley at do.
pub fn start_nginx_http1(body_bytes: usize) -> Nginx {
    start_nginx(body_bytes, None, false)
}

/// As [`start_nginx_h2`], over TLS (HTTP/2 negotiated with ALPN) with the
/// `server.pem` / `server.key` of [`certificates`] in `certs`.
pub fn start_nginx_h2_tls(body_bytes: usize, certs: &Path) -> Nginx {
    start_nginx(body_bytes, Some(certs), true)
}

fn start_nginx(body_bytes: usize, tls: Option<&Path>, http2: bool) -> Nginx {
    let bin = nginx_binary();
    // nginx 1.25.1 made `http2` a server directive (`listen … http2` is
    // deprecated there).
    let new_syntax = nginx_version(&bin) >= (1, 25, 1);
    let body: String = (0..body_bytes)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let mut last_err = String::new();
    // A free port can be taken between choosing it and nginx binding it:
    // try again with another.
    for _ in 0..3 {
        let dir = TempDir::new("nginx");
        let port = free_port();
        let conf = dir.write(
            "nginx.conf",
            &nginx_config(dir.path(), port, &body, new_syntax, tls, http2),
        );
        let mut cmd = Command::new(&bin);
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"));
        let mut proc = spawn(cmd, "nginx");
        if wait_accepting(
            &format!("127.0.0.1:{port}"),
            &mut proc,
            Duration::from_secs(10),
        ) {
            return Nginx { proc, dir, port };
        }
        let _ = proc.child.kill();
        let _ = proc.child.wait();
        last_err = format!(
            "stderr:\n{}\nerror.log:\n{}",
            proc.stderr_so_far(),
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
    }
    panic!("nginx did not start on a free loopback port; last attempt's {last_err}");
}

/// The Python `grpcio` echo server (`tests/python/grpc_echo.py`): an
/// independent gRPC implementation answering any unary method with the
/// request message; killed (by PID) on drop.
pub struct GrpcEcho {
    proc: Proc,
    dir: TempDir,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl GrpcEcho {
    /// `http://127.0.0.1:PORT` (h2c).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's counters: `calls`, `ok`, `errors`, `bytes_in`, and
    /// `methods` (calls per method path). Rewritten after every call; read
    /// once they have settled.
    pub fn stats(&self) -> Value {
        let lines = settled_lines(&self.dir.path().join("stats.json"));
        serde_json::from_str(&lines.join("\n")).unwrap_or_else(|e| {
            panic!(
                "grpc echo stats.json: {e}; stderr:\n{}",
                self.proc.stderr_so_far()
            )
        })
    }

    /// Calls answered with a reply.
    pub fn ok_count(&self) -> u64 {
        u(&self.stats(), "ok")
    }

    /// Calls failed with `UNAVAILABLE` or `--error-code` (`--error-every`).
    pub fn error_count(&self) -> u64 {
        u(&self.stats(), "errors")
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

/// Starts the grpcio echo server on an ephemeral loopback port; with
/// `error_every = Some(n)` every nth call fails with `UNAVAILABLE`.
pub fn start_grpc_echo(error_every: Option<u32>) -> GrpcEcho {
    start_grpc_echo_failing(error_every, "UNAVAILABLE")
}

/// As [`start_grpc_echo`], failing every nth call with the gRPC status
/// named `code` (`"NOT_FOUND"`, …) instead.
pub fn start_grpc_echo_failing(error_every: Option<u32>, code: &str) -> GrpcEcho {
    let dir = TempDir::new("grpc-echo");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/grpc_echo.py");
    let stats = dir.path().join("stats.json");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .args(["--listen", "127.0.0.1:0", "--stats"])
        .arg(&stats);
    if let Some(n) = error_every {
        cmd.args(["--error-every", &n.to_string()]);
    }
    cmd.args(["--error-code", code]);
    let (proc, line) = spawn_until(cmd, "grpc echo", "grpc echo listening on");
    GrpcEcho {
        proc,
        dir,
        addr: last_word(&line),
    }
}

/// `volley target` with its framed-TCP echo too; returns the process, the
/// HTTP base URL (`http://…/`, with `/__volley/stats`) and the TCP address
/// (`127.0.0.1:PORT`).
pub fn start_target_with_tcp(args: &[&str]) -> (Proc, String, String) {
    let mut last = String::new();
    for _ in 0..3 {
        let tcp = format!("127.0.0.1:{}", free_port());
        let mut cmd = volley();
        cmd.args(["target", "--listen", "127.0.0.1:0", "--threads", "1"])
            .args(["--tcp-listen", &tcp])
            .args(args);
        let (mut p, line) = spawn_until(cmd, "target", "target listening on");
        if wait_accepting(&tcp, &mut p, Duration::from_secs(10)) {
            return (p, last_word(&line), tcp);
        }
        last = p.stderr_so_far();
    }
    panic!("volley target --tcp-listen did not accept on a free port; stderr:\n{last}");
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", describe(&out));
}

/// A CA (`ca.pem`, `ca.key`) and a server certificate for localhost /
/// 127.0.0.1 signed by it (`server.pem`, `server.key`), written into `dir`
/// with openssl (installed by test.sh).
pub fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=volley-test-ca",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

/// One request as the recording server (`tests/python/recording_server.py`)
/// logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Arrival number at the server, 1-based, over all connections.
    pub n: u64,
    pub method: String,
    /// The request target as sent (path and query).
    pub path: String,
    /// Header names in lower case.
    pub headers: std::collections::BTreeMap<String, String>,
    /// The body, each byte as one character (Latin-1).
    pub body: String,
}

impl Recorded {
    /// A header's value (`name` in lower case), or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// A small Python HTTP/1.1 server (stdlib only, not Volley's) that logs
/// every request (path, headers, body) and answers `200 {"status":"ok"}`,
/// or `{"status":"error"}` to every nth request (`--error-every N`), or
/// another status (`--status CODE`). Killed (by PID) on drop.
pub struct RecordingServer {
    // Declared before `dir`: the process dies before its files go.
    proc: Proc,
    dir: TempDir,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl RecordingServer {
    /// `http://127.0.0.1:PORT` followed by `path` (which starts with `/`,
    /// or is empty).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request logged so far, in arrival order, once the log has
    /// settled.
    pub fn requests(&self) -> Vec<Recorded> {
        settled_lines(&self.dir.path().join("requests.jsonl"))
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("recording server log line {l:?}: {e}"));
                Recorded {
                    n: u(&v, "n"),
                    method: v["method"].as_str().unwrap_or_default().to_string(),
                    path: v["path"].as_str().unwrap_or_default().to_string(),
                    headers: v["headers"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().into()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    body: v["body"].as_str().unwrap_or_default().to_string(),
                }
            })
            .collect()
    }

    /// How many requests have arrived (the log, settled).
    pub fn count(&self) -> usize {
        self.requests().len()
    }

    /// The server's stderr so far, for failure messages.
    pub fn stderr(&self) -> String {
        self.proc.stderr_so_far()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

/// Starts the recording server on an ephemeral loopback port, with `args`
/// (`--error-every N`, `--status CODE`); returns once it accepts.
pub fn start_recording_server(args: &[&str]) -> RecordingServer {
    let dir = TempDir::new("recorder");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/recording_server.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .args(["--listen", "127.0.0.1:0", "--log"])
        .arg(dir.path().join("requests.jsonl"))
        .args(args);
    let (mut proc, line) = spawn_until(cmd, "recording server", "recording server listening on");
    let addr = last_word(&line);
    assert!(
        wait_accepting(&addr, &mut proc, Duration::from_secs(10)),
        "recording server does not accept on {addr}: {}",
        proc.stderr_so_far()
    );
    RecordingServer { proc, dir, addr }
}
