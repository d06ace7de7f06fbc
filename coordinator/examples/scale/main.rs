//! Coordinator scale harness: a real coordinator, N simulated workers over
//! real gRPC, one run, and what the coordinator spends on it.
//!
//! ```sh
//! cargo run --release -p volley-coordinator --example scale -- --workers 1000 --seconds 20
//! ```
//!
//! Two processes, so the coordinator's CPU time is its own:
//!
//! - **coordinator** (this process, the default role): serves
//!   `WorkerSession` and `RunControl` on `127.0.0.1:0`
//!   (`volley_coordinator::service::serve`, default config), starts the
//!   other process, and samples its own utime+stime (`/proc/self/stat`) and
//!   memory (`/proc/self/status`) whenever that one reports a phase.
//! - **workers** (`--role workers`, the same binary re-executed): N workers,
//!   each with its own connection and session, speaking the worker's
//!   protocol (`worker/src/session.rs`): Hello, heartbeats at the interval
//!   the Welcome gives (none while reports flow: a report resets it), Pong for every Ping, Ready{ok} for the Assignment,
//!   and from the Start one realistic `IntervalReport` per second (the
//!   histogram bytes encoded once and reused), then Done. No request is
//!   sent anywhere: the target URL is never dialled. The same process is
//!   the client: it submits the run with `RunControl.SubmitRun` and follows
//!   its events.
//!
//! **Merge-and-publish latency** of second k: from the moment the last
//! worker handed its report of second k to its stream to the moment the
//! `interval` event of second k reached the client. Both timestamps are
//! taken in the workers' process, on one clock. **Merge latency**: from the
//! same moment to the moment the coordinator published second k, read from
//! its Prometheus counters (polled every 20 ms), which still works when the
//! event stream does not (an event above the 4 MiB message limit).
//!
//! The workers' process writes one line per phase on its stdout
//! (`connected`, `submitting`, `started`, `sent k …` when the last worker
//! handed over second k, `interval …`, `finished …`); this process reads
//! them and prints the table. `--verbose` echoes them with both processes'
//! CPU time.

mod rss;

use clap::Parser;
use rss::{print_rss_slope, RssPoint};
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use volley_coordinator::{Coordinator, CoordinatorConfig};
use volley_proto::pb::coordinator_message::Msg as In;
use volley_proto::pb::run_control_client::RunControlClient;
use volley_proto::pb::run_event::Event as Ev;
use volley_proto::pb::worker_message::Msg as Out;
use volley_proto::pb::worker_session_client::WorkerSessionClient;
use volley_proto::{clock, histogram, pb, MAX_MESSAGE_BYTES, PROTOCOL_VERSION};
use volley_worker::heartbeat::Heartbeat;
use volley_worker::outbox::Batch;

#[derive(Parser, Debug, Clone)]
#[command(about = "Coordinator scale harness: N simulated workers over real gRPC")]
struct Args {
    /// Simulated workers.
    #[arg(long, default_value_t = 1000)]
    workers: usize,
    /// Length of the run (one report per worker per second).
    #[arg(long, default_value_t = 20)]
    seconds: u32,
    /// Seconds with every worker connected and heartbeating before the run
    /// is submitted (measures the idle cost; three idle paces by default).
    #[arg(long, default_value_t = 15)]
    idle_seconds: u64,
    /// Values in each worker-second's histogram (a worker at this rate).
    #[arg(long, default_value_t = 20_000)]
    values: u64,
    /// The coordinator's `--heartbeat-timeout` (workers in a run beat every
    /// third of it when they send nothing else).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    heartbeat_timeout: Duration,
    /// The coordinator's `--idle-heartbeat-timeout` (idle workers beat every
    /// third of it); default: as `volley serve`, 5 × --heartbeat-timeout.
    #[arg(long, value_parser = humantime::parse_duration)]
    idle_heartbeat_timeout: Option<Duration>,
    /// Sessions being set up at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Pin the workers' process to this CPU (with `taskset`); the script
    /// pins the coordinator to another one.
    #[arg(long)]
    workers_cpu: Option<u32>,
    /// Give up (and say so) after this long.
    #[arg(long, default_value_t = 150)]
    limit_s: u64,
    /// Seconds of the run the simulated workers report per real second: a
    /// day-long run in minutes, for what the coordinator keeps per second
    /// (`bench/day.sh`). The coordinator is not told: it merges and
    /// publishes each second as it does in a real run, only sooner.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Every this many seconds of the run (by the published second's index),
    /// print the coordinator's RSS, and at the end its slope per hour of
    /// run (0: off).
    #[arg(long, default_value_t = 0)]
    rss_every: u32,
    /// Workers' seconds that drop nothing (by default each one drops 2
    /// requests for `max_in_flight`, so every second has drop reasons).
    #[arg(long)]
    no_drops: bool,
    /// Print only the table row, not the header.
    #[arg(long)]
    no_header: bool,
    /// Echo every line of the workers' process, with the time, on stderr.
    #[arg(long)]
    verbose: bool,
    /// Internal: `workers` for the re-executed process.
    #[arg(long, default_value = "coordinator", hide = true)]
    role: String,
    /// Internal: the coordinator's address, for `--role workers`.
    #[arg(long, hide = true)]
    coordinator: Option<String>,
}

fn main() {
    let args = Args::parse();
    let code = match args.role.as_str() {
        "workers" => workers_main(args),
        _ => coordinator_main(args),
    };
    std::process::exit(code);
}

// ------------------------------------------------------------ measurement

/// utime + stime of a process (`self` or a pid), seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): utime is field 14, stime field 15.
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / clk_tck()
}

fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A `/proc/self/status` field in MiB (`VmRSS`, `VmHWM`).
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Both processes' CPU time and this one's memory at one instant.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    /// This process (the coordinator), seconds.
    cpu: f64,
    /// The workers' process, seconds.
    sim: f64,
    rss: f64,
}

fn sample(sim_pid: &str) -> Sample {
    Sample {
        at: Instant::now(),
        cpu: cpu_seconds("self"),
        sim: cpu_seconds(sim_pid),
        rss: status_mib("VmRSS:"),
    }
}

/// CPU use between two samples, percent of one core: the coordinator's and
/// the workers' process's.
fn pct(a: Option<Sample>, b: Option<Sample>) -> (f64, f64) {
    let (Some(a), Some(b)) = (a, b) else {
        return (f64::NAN, f64::NAN);
    };
    let wall = b.at.duration_since(a.at).as_secs_f64();
    if wall <= 0.0 {
        return (f64::NAN, f64::NAN);
    }
    (
        (b.cpu - a.cpu) / wall * 100.0,
        (b.sim - a.sim) / wall * 100.0,
    )
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

// ------------------------------------------------------------ coordinator role

/// Seconds whose timings this process keeps (merge latencies, skew): it is
/// the coordinator's process, whose memory `--rss-every` measures, so a
/// day-long run must not grow it by itself. The figures are of the first
/// seconds of longer runs.
const PER_SECOND_KEPT: usize = 10_000;

/// When each second was merged, seen from inside the coordinator: its
/// metrics count every merged second's ok requests the moment it is
/// published (before the event goes out), so this works even when the event
/// stream to the client does not. Polled every 20 ms from a thread of its
/// own; the unix nanos of each second's merge, in order.
fn watch_merges(coord: Arc<Coordinator>, ok_per_second: u64) -> Arc<std::sync::Mutex<Vec<u64>>> {
    let merged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = merged.clone();
    std::thread::spawn(move || loop {
        let ok: u64 = coord
            .metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("volley_requests_total{") && l.contains("outcome=\"ok\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        let now = clock::unix_nanos();
        let seconds = (ok / ok_per_second.max(1)) as usize;
        {
            let mut m = out.lock().unwrap_or_else(|e| e.into_inner());
            while m.len() < seconds.min(PER_SECOND_KEPT) {
                m.push(now);
            }
        }
        if Arc::strong_count(&out) == 1 {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    });
    merged
}

fn coordinator_main(args: Args) -> i32 {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        eprintln!(
            "scale: --speed: expected a number of seconds of the run per real second above 0, got {}",
            args.speed
        );
        return 2;
    }
    // Every session is a socket on each side, plus a few spare.
    let need = args.workers as u64 + 64;
    if let Some(limit) = open_files_limit() {
        if limit < need {
            eprintln!(
                "scale: {} workers need about {need} open files in each process, the limit is {limit}; \
                 raise it first (`ulimit -n {need}`, as bench/coordinator.sh does)",
                args.workers
            );
            return 2;
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let coord = Coordinator::new(CoordinatorConfig {
        heartbeat_timeout: args.heartbeat_timeout,
        idle_heartbeat_timeout: args.idle_heartbeat_timeout.unwrap_or(
            volley_coordinator::state::default_idle_heartbeat_timeout(args.heartbeat_timeout),
        ),
        ..CoordinatorConfig::default()
    });
    let merged_at = watch_merges(coord.clone(), args.workers as u64 * args.values);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(volley_coordinator::service::serve(
        coord,
        listener,
        None,
        async {
            let _ = stop_rx.await;
        },
    ));

    let exe = std::env::current_exe().expect("own path");
    let mut cmd = match args.workers_cpu {
        Some(cpu) => {
            let mut c = std::process::Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(&exe);
            c
        }
        None => std::process::Command::new(&exe),
    };
    cmd.args([
        "--role",
        "workers",
        "--coordinator",
        &format!("http://{addr}"),
        "--workers",
        &args.workers.to_string(),
        "--seconds",
        &args.seconds.to_string(),
        "--idle-seconds",
        &args.idle_seconds.to_string(),
        "--values",
        &args.values.to_string(),
        "--connect-concurrency",
        &args.connect_concurrency.to_string(),
        "--limit-s",
        &args.limit_s.to_string(),
        "--speed",
        &args.speed.to_string(),
    ])
    .args(args.no_drops.then_some("--no-drops"))
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::inherit());
    let begun = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("scale: cannot start the workers' process: {e}");
            return 1;
        }
    };
    let child_pid = child.id().to_string();
    let stdout = child.stdout.take().expect("piped stdout");
    let (line_tx, line_rx) = std::sync::mpsc::channel::<(String, Sample)>();
    let pid = child_pid.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // Sample at once: the phase just happened.
            let s = sample(&pid);
            if line_tx.send((line, s)).is_err() {
                break;
            }
        }
    });

    let mut m = Measured::default();
    let deadline = begun + Duration::from_secs(args.limit_s);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((line, s)) = line_rx.recv_timeout(left) else {
            if Instant::now() >= deadline {
                m.problem
                    .get_or_insert(format!("gave up after {} s", args.limit_s));
            }
            break;
        };
        if args.verbose {
            eprintln!(
                "scale: {:7.3} s  coordinator cpu {:6.2} s, rss {:5.0} MiB; workers cpu {:6.2} s  {line}",
                s.at.duration_since(begun).as_secs_f64(),
                s.cpu,
                s.rss,
                s.sim
            );
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some("connected") => {
                m.connected = Some(s);
                m.connect_s = begun.elapsed().as_secs_f64();
            }
            Some("submitting") => m.submitting = Some(s),
            Some("sent") => {
                let v: Vec<u64> = words.filter_map(|w| w.parse().ok()).collect();
                if let [k, t, end] = v[..] {
                    let k = k as usize;
                    if m.sent.len() <= k && k < PER_SECOND_KEPT {
                        m.sent.resize(k + 1, 0);
                    }
                    if k < PER_SECOND_KEPT {
                        m.sent[k] = t;
                        m.skew_ms.push((t as f64 - end as f64) / 1e6);
                    }
                }
            }
            Some("started") => m.started = Some(s),
            Some("interval") => {
                let v: Vec<f64> = words.filter_map(|w| w.parse().ok()).collect();
                if let [k, workers, last_sent, arrived, _end, bytes] = v[..] {
                    let ran = k as u32 + 1;
                    // Not the last second: the report is being built by then.
                    if args.rss_every > 0
                        && ran.is_multiple_of(args.rss_every)
                        && ran < args.seconds
                    {
                        let point = RssPoint {
                            run_s: ran,
                            rss: s.rss,
                            anon: status_mib("RssAnon:"),
                        };
                        eprintln!(
                            "scale: {ran} s of the run, {:.0} s in: coordinator RSS {:.1} MiB, anonymous {:.1} MiB",
                            s.at.duration_since(begun).as_secs_f64(),
                            point.rss,
                            point.anon
                        );
                        m.rss_points.push(point);
                    }
                    m.first_interval.get_or_insert(s);
                    m.last_interval = Some(s);
                    m.intervals += 1;
                    if workers as usize == args.workers {
                        m.complete += 1;
                    }
                    if (k as usize) < PER_SECOND_KEPT {
                        m.latency_ms.push((arrived - last_sent) / 1e6);
                    }
                    m.event_bytes = m.event_bytes.max(bytes);
                }
            }
            Some("finished") => {
                m.finished = Some(s);
                let rest: Vec<&str> = words.collect();
                m.outcome = rest.join(" ");
                break;
            }
            Some("error") => {
                let rest: Vec<&str> = words.collect();
                m.problem.get_or_insert(rest.join(" "));
            }
            Some("message") => {
                // The run's messages (workers lost, re-splits): the first
                // few, then only how many (all of them with --verbose).
                m.messages += 1;
                if m.messages <= 3 && !args.verbose {
                    let rest: Vec<&str> = words.collect();
                    eprintln!("scale: coordinator says: {}", rest.join(" "));
                }
            }
            _ => eprintln!("scale: {line}"),
        }
    }
    let peak_rss = status_mib("VmHWM:");
    let _ = stop_tx.send(());
    // The workers' process ends by itself once the run is over; make sure.
    let waited = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if waited.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
    }
    let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), server).await });
    rt.shutdown_timeout(Duration::from_secs(1));

    {
        let merged = merged_at.lock().unwrap_or_else(|e| e.into_inner());
        m.merge_ms = m
            .sent
            .iter()
            .zip(merged.iter())
            .filter(|(&s, _)| s > 0)
            .map(|(&s, &t)| (t as f64 - s as f64) / 1e6)
            .collect();
        m.merged = merged.len();
    }
    drop(merged_at);
    m.print(&args, peak_rss);
    if args.rss_every > 0 {
        print_rss_slope(&m.rss_points, args.rss_every);
    }
    i32::from(m.problem.is_some() || m.complete < args.seconds as usize)
}

#[derive(Default)]
struct Measured {
    connect_s: f64,
    connected: Option<Sample>,
    submitting: Option<Sample>,
    started: Option<Sample>,
    first_interval: Option<Sample>,
    last_interval: Option<Sample>,
    finished: Option<Sample>,
    intervals: usize,
    complete: usize,
    /// Seconds merged, as the coordinator's metrics saw them.
    merged: usize,
    /// Messages of the run (warnings and errors).
    messages: usize,
    latency_ms: Vec<f64>,
    /// When the last worker handed over each second (unix nanos).
    sent: Vec<u64>,
    /// Sent to merged (from the coordinator's metrics), ms.
    merge_ms: Vec<f64>,
    skew_ms: Vec<f64>,
    event_bytes: f64,
    outcome: String,
    problem: Option<String>,
    /// The coordinator's memory every `--rss-every` seconds of the run.
    rss_points: Vec<RssPoint>,
}

impl Measured {
    fn print(&mut self, args: &Args, peak_rss: f64) {
        let f = |x: f64, prec: usize| {
            if x.is_finite() {
                format!("{x:.prec$}")
            } else {
                "-".into()
            }
        };
        let (idle, sim_idle) = pct(self.connected, self.submitting);
        // The run: from the first merged second to the last one, every
        // report of the seconds in between was received, merged and
        // published. When no second got through, from the start to the end
        // of the workers' reports instead (marked `*`).
        let whole = self.intervals < 2;
        let (run, sim_run) = if whole {
            pct(self.started, self.finished)
        } else {
            pct(self.first_interval, self.last_interval)
        };
        let setup_s = match (self.submitting, self.started) {
            (Some(a), Some(b)) => b.at.duration_since(a.at).as_secs_f64(),
            _ => f64::NAN,
        };
        let rss_run = self
            .last_interval
            .or(self.finished)
            .map_or(f64::NAN, |s| s.rss);
        self.latency_ms.sort_by(f64::total_cmp);
        self.merge_ms.sort_by(f64::total_cmp);
        self.skew_ms.sort_by(f64::total_cmp);
        let q = |v: &[f64]| format!("{} / {}", f(quantile(v, 0.5), 0), f(quantile(v, 1.0), 0));
        if !args.no_header {
            println!(
                "| workers | seconds | connect s | submit→start s | coord CPU % idle | coord CPU % run | \
                 merged s / events (complete) | merge p50 / max ms | merge+publish p50 / max ms | \
                 last report late p50 / max ms | event MiB | coord RSS run / peak MiB | sim CPU % idle / run | outcome |"
            );
            println!(
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
            );
        }
        let mut outcome = match &self.problem {
            Some(p) => format!("{} ({p})", self.outcome),
            None => self.outcome.clone(),
        };
        if self.messages > 0 {
            outcome = format!("{}; {} run message(s)", outcome.trim(), self.messages);
        }
        let star = if whole { "*" } else { "" };
        println!(
            "| {} | {} | {} | {} | {} | {}{star} | {} / {} ({}) | {} | {} | {} | {} | {} / {} | {} / {}{star} | {} |",
            args.workers,
            args.seconds,
            f(self.connect_s, 1),
            f(setup_s, 1),
            f(idle, 1),
            f(run, 1),
            self.merged,
            self.intervals,
            self.complete,
            q(&self.merge_ms),
            q(&self.latency_ms),
            q(&self.skew_ms),
            f(self.event_bytes / 1048576.0, 2),
            f(rss_run, 0),
            f(peak_rss, 0),
            f(sim_idle, 0),
            f(sim_run, 0),
            outcome.trim(),
        );
    }
}

// ------------------------------------------------------------ workers role

/// What every simulated worker shares.
struct Sim {
    args: Args,
    /// Per second k: the latest wall-clock instant (unix nanos) at which a
    /// worker handed its report of k to its stream.
    last_sent: Vec<AtomicU64>,
    /// Per second k: how many workers have handed it over.
    sent_count: Vec<AtomicUsize>,
    welcomed: AtomicUsize,
    /// t = 0 of the run as the client heard it (`started`) and as the
    /// workers were told it (`Start`).
    started: AtomicU64,
    t0: AtomicU64,
    /// Report templates (the histogram bytes are encoded once), each with
    /// its latency deflated above 512 bytes (`[0]`) and plain (`[1]`), as
    /// the assignment's `plain_histograms` asks.
    templates: Vec<[pb::IntervalReport; 2]>,
    failed: AtomicUsize,
}

/// Distinct worker-seconds spread over the workers.
const VARIANTS: u64 = 8;

/// A second of one worker, as a worker encodes it (see
/// [`histogram::synthetic_report`]).
fn templates(values: u64, no_drops: bool) -> Vec<[pb::IntervalReport; 2]> {
    (0..VARIANTS)
        .map(|v| {
            [false, true].map(|plain| {
                let mut r = histogram::synthetic_report(v + 1, values, plain);
                if no_drops {
                    r.intended = r.sent;
                    r.dropped = 0;
                    r.drops = Some(pb::DropCounts::default());
                }
                r
            })
        })
        .collect()
}

fn say(line: String) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn workers_main(args: Args) -> i32 {
    let Some(url) = args.coordinator.clone() else {
        eprintln!("scale: --role workers needs --coordinator");
        return 2;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let sim = Arc::new(Sim {
        last_sent: (0..args.seconds).map(|_| AtomicU64::new(0)).collect(),
        sent_count: (0..args.seconds).map(|_| AtomicUsize::new(0)).collect(),
        welcomed: AtomicUsize::new(0),
        started: AtomicU64::new(0),
        t0: AtomicU64::new(0),
        templates: templates(args.values, args.no_drops),
        failed: AtomicUsize::new(0),
        args: args.clone(),
    });
    let limit = Duration::from_secs(args.limit_s);
    let code = rt.block_on(async move {
        match tokio::time::timeout(limit, simulate(url, sim)).await {
            Ok(code) => code,
            Err(_) => {
                say(format!(
                    "error the workers' process gave up after {} s",
                    limit.as_secs()
                ));
                1
            }
        }
    });
    rt.shutdown_timeout(Duration::from_millis(500));
    code
}

async fn simulate(url: String, sim: Arc<Sim>) -> i32 {
    let endpoint = match volley_proto::channel::endpoint(&url, None) {
        Ok(e) => e,
        Err(e) => {
            say(format!("error {e}"));
            return 2;
        }
    };
    let n = sim.args.workers;
    let gate = Arc::new(Semaphore::new(sim.args.connect_concurrency.max(1)));
    for i in 0..n {
        let (endpoint, sim, gate) = (endpoint.clone(), sim.clone(), gate.clone());
        tokio::spawn(async move {
            if let Err(e) = worker(i, endpoint, sim.clone(), gate).await {
                if sim.failed.fetch_add(1, Ordering::Relaxed) < 5 {
                    say(format!("error worker {i}: {e}"));
                }
            }
        });
    }
    // Every session welcomed, or give up.
    let connect_by = Instant::now() + Duration::from_secs(60);
    while sim.welcomed.load(Ordering::Relaxed) < n {
        if Instant::now() > connect_by || sim.failed.load(Ordering::Relaxed) > 0 {
            say(format!(
                "error only {} of {n} workers connected ({} failed)",
                sim.welcomed.load(Ordering::Relaxed),
                sim.failed.load(Ordering::Relaxed)
            ));
            return 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    say("connected".into());
    tokio::time::sleep(Duration::from_secs(sim.args.idle_seconds)).await;
    say("submitting".into());
    client(url, sim).await
}

/// Submits the run and follows it to its end.
async fn client(url: String, sim: Arc<Sim>) -> i32 {
    let endpoint = volley_proto::channel::endpoint(&url, None).expect("checked above");
    let channel = match endpoint.connect().await {
        Ok(c) => c,
        Err(e) => {
            say(format!("error client: {e}"));
            return 1;
        }
    };
    let mut rc = RunControlClient::new(channel)
        .max_decoding_message_size(1 << 30)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let n = sim.args.workers;
    let rate = (n as u64 * 1000).min(10_000_000);
    let scenario = format!(
        "name = \"scale\"\n\
         [target]\n\
         url = \"http://127.0.0.1:9/\"\n\
         timeout = \"1s\"\n\
         [load]\n\
         arrival = \"uniform\"\n\
         [[stages]]\n\
         name = \"steady\"\n\
         rate = {rate}\n\
         duration = \"{}s\"\n",
        sim.args.seconds
    );
    let req = pb::SubmitRunRequest {
        scenario_toml: scenario,
        scenario_name: "scale.toml".into(),
        min_workers: n as u32,
        wait_nanos: 30_000_000_000,
        builtin_target_url: String::new(),
        files: Vec::new(),
        ..Default::default()
    };
    let mut events = match rc.submit_run(req).await {
        Ok(r) => r.into_inner(),
        Err(s) => {
            say(format!("error submit: {}", s.message()));
            return 1;
        }
    };
    loop {
        match events.message().await {
            Ok(Some(ev)) => {
                let arrived = clock::unix_nanos();
                let bytes = prost::Message::encoded_len(&ev);
                match ev.event {
                    Some(Ev::Started(s)) => {
                        sim.started.store(s.start_at_unix_nanos, Ordering::Relaxed);
                        // How long after t = 0 the client heard of it
                        // (negative: before), a sign of a lagging process.
                        let late_ms = (arrived as f64 - s.start_at_unix_nanos as f64) / 1e6;
                        say(format!("started {} {late_ms:.0}", s.workers));
                    }
                    Some(Ev::Interval(i)) => {
                        let k = i.t_s as usize;
                        let last = sim
                            .last_sent
                            .get(k)
                            .map_or(0, |a| a.load(Ordering::Relaxed));
                        let end = second_end(
                            sim.started.load(Ordering::Relaxed),
                            k as u64 + 1,
                            sim.args.speed,
                        );
                        if last > 0 {
                            say(format!(
                                "interval {k} {} {last} {arrived} {end} {bytes}",
                                i.workers
                            ));
                        } else {
                            say(format!("extra interval {k} ({} workers)", i.workers));
                        }
                    }
                    Some(Ev::Message(m)) => say(format!("message {}: {}", m.level, m.text)),
                    Some(Ev::Finished(f)) => {
                        let error = if f.error.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", f.error)
                        };
                        say(format!(
                            "finished {}{error} (report {} KiB)",
                            f.outcome,
                            f.report_json.len() / 1024
                        ));
                        return i32::from(f.outcome != "completed");
                    }
                    Some(Ev::Accepted(_)) | None => {}
                }
            }
            Ok(None) => {
                say("error the event stream ended without `finished`".into());
                return broken(&sim).await;
            }
            Err(s) => {
                let t =
                    (clock::unix_nanos() as f64 - sim.started.load(Ordering::Relaxed) as f64) / 1e9;
                say(format!(
                    "error event stream broke at t = {t:.1} s: {:?}: {}",
                    s.code(),
                    s.message()
                ));
                return broken(&sim).await;
            }
        }
    }
}

/// The client lost the run's events: the workers still report until the
/// end of the run (or until the coordinator stops it), and the coordinator's
/// CPU is still measured over that span.
async fn broken(sim: &Sim) -> i32 {
    let start = sim.started.load(Ordering::Relaxed);
    if start > 0 {
        let end = second_end(start, u64::from(sim.args.seconds) + 1, sim.args.speed);
        let left = end.saturating_sub(clock::unix_nanos());
        tokio::time::sleep(Duration::from_nanos(left)).await;
    }
    say("finished broken".into());
    1
}

fn msg(m: Out) -> pb::WorkerMessage {
    pb::WorkerMessage { msg: Some(m) }
}

/// One simulated worker: its own connection and session, for the life of the
/// process.
async fn worker(
    i: usize,
    endpoint: tonic::transport::Endpoint,
    sim: Arc<Sim>,
    gate: Arc<Semaphore>,
) -> Result<(), String> {
    let permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
    let mut tries = 0;
    let channel = loop {
        match endpoint.connect().await {
            Ok(c) => break c,
            Err(e) if tries >= 3 => return Err(format!("connect: {e}")),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let mut client = WorkerSessionClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let (tx, rx) = mpsc::channel::<pb::WorkerMessage>(64);
    let id = uuid::Uuid::new_v4();
    let hello = pb::Hello {
        worker_id: id.to_string(),
        protocol_version: PROTOCOL_VERSION,
        weight: 1,
        version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: format!("sim-{i}"),
        threads: 1,
    };
    let send = |m: Out| {
        let tx = tx.clone();
        async move {
            tx.send(msg(m))
                .await
                .map_err(|_| "stream closed".to_string())
        }
    };
    send(Out::Hello(hello)).await?;
    let mut inbound = client
        .session(tonic::Request::new(ReceiverStream::new(rx)))
        .await
        .map_err(|s| format!("session: {}", s.message()))?
        .into_inner();
    let mut permit = Some(permit);
    let template = &sim.templates[i % sim.templates.len()];
    let seconds = sim.args.seconds;
    // The real worker's pacing: the idle pace, the run's from the
    // assignment until Done.
    let mut heartbeat = Heartbeat::default();
    let mut run_id = String::new();
    let mut plain = false;
    // t = 0 of the run and the next second to report (seconds: then Done).
    let mut schedule: Option<(tokio::time::Instant, u32)> = None;
    let mut cpu_nanos = 1_000_000_000u64 + i as u64;
    // The real worker's batching, as the assignment asks.
    let mut batch = Batch::new(1);
    loop {
        let due = schedule
            .filter(|&(_, k)| k <= seconds)
            .map(|(t0, k)| t0 + Duration::from_secs_f64(f64::from(k + 1) / sim.args.speed));
        tokio::select! {
            m = inbound.message() => {
                let m = match m {
                    Ok(Some(m)) => m,
                    Ok(None) => return Ok(()),
                    Err(s) if s.message().contains("shutdown") => return Ok(()),
                    Err(s) => return Err(format!("stream: {}", s.message())),
                };
                match m.msg {
                    Some(In::Welcome(w)) => {
                        heartbeat.welcome(&w);
                        if permit.take().is_some() {
                            sim.welcomed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(In::Ping(p)) => {
                        let recv = clock::unix_nanos();
                        send(Out::Pong(pb::Pong {
                            coordinator_send_nanos: p.coordinator_send_nanos,
                            worker_recv_nanos: recv,
                            worker_send_nanos: clock::unix_nanos(),
                        })).await?;
                    }
                    Some(In::Assignment(a)) => {
                        run_id = a.run_id.clone();
                        plain = a.plain_histograms;
                        batch = Batch::new(a.report_every_s);
                        heartbeat.in_run(true);
                        heartbeat.batch(batch.every());
                        send(Out::Ready(pb::Ready { run_id: a.run_id, ok: true, error: String::new() })).await?;
                    }
                    Some(In::Start(s)) if s.run_id == run_id => {
                        let t0 = tokio::time::Instant::from_std(clock::instant_at(s.start_at_unix_nanos));
                        schedule = Some((t0, 0));
                        sim.t0.store(s.start_at_unix_nanos, Ordering::SeqCst);
                    }
                    Some(In::Stop(s)) if s.run_id == run_id => {
                        // As a real worker does: the engine stops, then Done.
                        if let Some((_, k)) = schedule.take().filter(|&(_, k)| k < seconds) {
                            let done = Out::Done(pb::Done {
                                run_id: run_id.clone(),
                                intervals: k,
                                error: String::new(),
                            });
                            hand_over(&sim, batch.push(None, done), &send).await?;
                            heartbeat.in_run(false);
                        }
                    }
                    _ => {}
                }
            }
            _ = heartbeat.due() => {
                send(Out::Heartbeat(pb::Heartbeat { unix_nanos: clock::unix_nanos() })).await?;
            }
            _ = sleep_until_opt(due) => {
                let Some((t0, k)) = schedule else { continue };
                if k == seconds {
                    let done = Out::Done(pb::Done { run_id: run_id.clone(), intervals: seconds, error: String::new() });
                    hand_over(&sim, batch.push(None, done), &send).await?;
                    heartbeat.in_run(false);
                } else {
                    let mut r = template[usize::from(plain)].clone();
                    r.run_id = run_id.clone();
                    r.index = k;
                    cpu_nanos += 50_000_000;
                    r.cpu_nanos = cpu_nanos;
                    let due = batch.push(Some(k), Out::Interval(r));
                    if !due.is_empty() {
                        hand_over(&sim, due, &send).await?;
                        // As a real worker does: a report stands for a heartbeat.
                        heartbeat.reset();
                    }
                }
                schedule = Some((t0, k + 1));
            }
        }
    }
}

/// Sends what a batch made due, each second's report stamped with when it
/// was handed over; the last worker to hand over second k says when.
async fn hand_over<F, Fut>(sim: &Sim, due: Vec<Out>, send: &F) -> Result<(), String>
where
    F: Fn(Out) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    for m in due {
        let Out::Interval(r) = &m else {
            send(m).await?;
            continue;
        };
        // Stamped before the hand-off, so it is in place before the
        // coordinator can possibly publish the second.
        let k = r.index as usize;
        sim.last_sent[k].fetch_max(clock::unix_nanos(), Ordering::SeqCst);
        send(m).await?;
        if sim.sent_count[k].fetch_add(1, Ordering::SeqCst) + 1 == sim.args.workers {
            let end = second_end(sim.t0.load(Ordering::SeqCst), k as u64 + 1, sim.args.speed);
            say(format!(
                "sent {k} {} {end}",
                sim.last_sent[k].load(Ordering::SeqCst)
            ));
        }
    }
    Ok(())
}

/// When `seconds` seconds of the run, simulated at `speed`, end after t = 0
/// (unix nanos).
fn second_end(t0: u64, seconds: u64, speed: f64) -> u64 {
    t0 + (seconds as f64 * 1e9 / speed) as u64
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
