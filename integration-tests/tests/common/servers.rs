//! The servers the cross-process tests point Volley at besides its own
//! built-in target: nginx (HTTP/1.1, h2c, TLS), a gRPC echo, a recording
//! HTTP server, and the test certificates.

use super::*;

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
