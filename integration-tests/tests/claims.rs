//! The README's claims about faults, security and watching a run, each
//! checked on real processes: the exit codes when the coordinator or every
//! worker is lost, who may connect, the message limit, a client that goes
//! away, Ctrl-C twice, weights, the `degradation` threshold, a worker lost
//! through heartbeat silence, metrics in local mode, `volley report --format
//! html`, and HTTP/1.1 against nginx.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

/// The built-in target's request count (answered requests).
fn served(url: &str) -> u64 {
    u(&target_stats(url), "requests")
}

/// Collects a process's stderr until a line contains `needle`.
fn wait_stderr(p: &mut Proc, seen: &mut String, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !seen.contains(needle) {
        seen.push_str(&p.stderr_so_far());
        if seen.contains(needle) {
            break;
        }
        let exited = p.child.try_wait().ok().flatten();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "{} never said {needle:?} (exit {exited:?}); stderr:\n{seen}",
            p.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scenario(url: &str, rate: u32, secs: u32) -> String {
    format!("[target]\nurl = \"{url}\"\n[[stages]]\nname = \"main\"\nrate = {rate}\nduration = \"{secs}s\"\n")
}

/// Exit-code table: "every worker lost" is exit 3, and the report is still
/// written, marked incomplete, with every request accounted for.
#[test]
fn every_worker_lost_exits_3_and_still_writes_the_report() {
    let _serial = serial();
    const RATE: u64 = 200;
    const SECS: u64 = 20;
    let (_target, url) = start_target(&[]);
    let (_coord, coord_url) = start_coordinator(&[]);
    let w1 = start_worker(&coord_url, &[]);
    let w2 = start_worker(&coord_url, &[]);
    let s = submission(
        &coord_url,
        "all-lost",
        &scenario(&url, RATE as u32, SECS as u32),
        &["--min-workers", "2"],
    );
    let out = s.out.clone();
    let mut run = spawn(s.cmd, "volley run");
    wait_served(&url, 3 * RATE, Duration::from_secs(30));
    w1.signal("KILL");
    w2.signal("KILL");
    let killed = Instant::now();
    let status = run
        .wait_exit(Duration::from_secs(30))
        .expect("the run ends once no worker is left");
    assert_eq!(
        status.code(),
        Some(3),
        "every worker lost: {}",
        run.stderr_so_far()
    );
    assert!(
        killed.elapsed() < Duration::from_secs(12),
        "ended {:?} after the kill, not at the schedule's end",
        killed.elapsed()
    );
    let r = read_report(&out);
    assert_eq!(r["complete"], false);
    let why = r["incomplete_reason"].as_str().unwrap_or_default();
    assert!(why.contains("no worker is left"), "{why}");
    let ws = r["workers"].as_array().unwrap();
    assert_eq!(ws.len(), 2);
    assert!(ws.iter().all(|w| !w["lost_at_s"].is_null()), "{ws:?}");
    // The whole schedule is intended; what nobody sent is dropped as
    // `worker_lost`.
    assert_eq!(u(&r, "requests.intended"), RATE * SECS);
    assert_accounted(&r["requests"], "run");
    assert_eq!(
        u(&r, "drop_reasons.worker_lost"),
        u(&r, "requests.unsent"),
        "{}",
        r["drop_reasons"]
    );
    assert!(
        u(&r, "requests.unsent") >= RATE * (SECS - 8),
        "{}",
        r["requests"]
    );
    drop(w1);
    drop(w2);
}

/// Exit-code table: "coordinator lost" is exit 3. The client tries to attach
/// again for 90 s (a coordinator restarting on its data dir comes back), then
/// gives up; the seconds it received stay in latency.hlog. There is no
/// report.json: the report lives on the coordinator (`volley fetch` once it
/// is back with its data dir).
#[test]
fn a_coordinator_lost_for_good_exits_3_after_the_reconnect_window() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let (coord, coord_url) = start_coordinator(&[]);
    // The worker stops its load soon after the coordinator is gone.
    let _w = start_worker(&coord_url, &["--max-outage", "2s"]);
    let s = submission(&coord_url, "coord-lost", &scenario(&url, 200, 60), &[]);
    let out = s.out.clone();
    let mut run = spawn(s.cmd, "volley run");
    wait_served(&url, 600, Duration::from_secs(30));
    coord.signal("KILL");
    let killed = Instant::now();
    drop(coord);
    let mut err = String::new();
    wait_stderr(
        &mut run,
        &mut err,
        "lost the coordinator during run",
        Duration::from_secs(10),
    );
    let status = run
        .wait_exit(Duration::from_secs(120))
        .expect("the client gives up");
    let took = killed.elapsed();
    err.push_str(&run.stderr_so_far());
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains("lost the coordinator for good"), "{err}");
    assert!(
        took >= Duration::from_secs(89) && took < Duration::from_secs(100),
        "gave up {took:?} after the coordinator died; the README says 90 s"
    );
    let seconds = read_hlog(&out.join("latency.hlog"));
    assert!(
        seconds.len() >= 2,
        "the seconds received before the loss are kept: {}",
        seconds.len()
    );
    assert!(!out.join("report.json").exists());
}

/// The same window holds for a coordinator that is there but never answers
/// (SIGSTOP: the kernel still accepts connections, nothing replies). Each
/// reattach try is bounded by the window, so the client cannot hang on a
/// half-dead coordinator (a CI run on an overloaded machine once sat in a
/// reattach until the test killed it).
#[test]
fn a_frozen_coordinator_is_given_up_after_the_reconnect_window_too() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let (coord, coord_url) = start_coordinator(&[]);
    let _w = start_worker(&coord_url, &["--max-outage", "2s"]);
    let s = submission(&coord_url, "coord-frozen", &scenario(&url, 200, 60), &[]);
    let mut run = spawn(s.cmd, "volley run");
    wait_served(&url, 600, Duration::from_secs(30));
    coord.signal("STOP");
    let frozen = Instant::now();
    let mut err = String::new();
    // The stream's keep-alive (10 s interval, 10 s timeout) notices first.
    wait_stderr(
        &mut run,
        &mut err,
        "lost the coordinator during run",
        Duration::from_secs(40),
    );
    let noticed = frozen.elapsed();
    let status = run
        .wait_exit(Duration::from_secs(150))
        .expect("the client gives up on a coordinator that never answers");
    let took = frozen.elapsed();
    err.push_str(&run.stderr_so_far());
    coord.signal("CONT");
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains("lost the coordinator for good"), "{err}");
    assert!(
        took >= noticed + Duration::from_secs(89) && took < noticed + Duration::from_secs(100),
        "gave up {took:?} after the freeze, noticed after {noticed:?}: the window is 90 s"
    );
}

/// "`volley serve` refuses to listen beyond loopback without a token unless
/// given `--insecure-no-auth`": 0.0.0.0 is refused with exit 2 without it
/// and accepted with it; a worker and a client reach it (through 127.0.0.1)
/// with no token, and a run completes.
#[test]
fn insecure_no_auth_allows_listening_beyond_loopback() {
    let _serial = serial();
    let mut refused = volley();
    refused.args(["serve", "--listen", "0.0.0.0:0"]);
    let (out, _) = run_bounded(refused, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insecure-no-auth"));

    let (_target, url) = start_target(&[]);
    let (_coord, listen_url) = start_coordinator(&["--listen", "0.0.0.0:0", "--insecure-no-auth"]);
    let port = listen_url.rsplit(':').next().unwrap();
    assert!(
        listen_url.starts_with("http://0.0.0.0:"),
        "it listens on every address: {listen_url}"
    );
    let coord_url = format!("http://127.0.0.1:{port}");
    let _w = start_worker(&coord_url, &[]);
    let (r, _dir) = run_to_report(&coord_url, "no-auth", &scenario(&url, 100, 2), &[]);
    assert_eq!(u(&r, "requests.ok"), 200, "{}", r["requests"]);
}

/// "The token is checked on every call": `volley run` with a wrong or no
/// token is refused with exit 2 and says why, and no request reaches the
/// target.
#[test]
fn volley_run_with_a_wrong_token_is_refused() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let (_coord, coord_url) = start_coordinator(&["--token", "right"]);
    let _w = start_worker(&coord_url, &["--token", "right"]);
    for (extra, says) in [
        (&["--token", "wrong"][..], "wrong token"),
        (&[][..], "a token is required"),
    ] {
        let s = submission(&coord_url, "bad-token", &scenario(&url, 100, 2), extra);
        let (out, _) = run_bounded(s.cmd, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{extra:?}: {err}");
        assert!(!s.out.join("report.json").exists());
    }
    assert_eq!(served(&url), 0, "no load from a refused client");
    // The right token runs.
    let (r, _dir) = run_to_report(
        &coord_url,
        "good-token",
        &scenario(&url, 100, 2),
        &["--token", "right"],
    );
    assert_eq!(u(&r, "requests.ok"), 200);
}

/// "What is refused: messages over 4 MiB … the coordinator keeps serving."
/// An independent gRPC client (grpcio) submits a scenario of 4 MiB + 1 KiB:
/// refused by size (OUT_OF_RANGE, naming the 4 MiB limit); 4 MiB − 1 KiB
/// passes the size check and is refused as bad input instead. A normal run
/// works afterwards.
#[test]
fn a_message_over_4_mib_is_refused_and_the_coordinator_keeps_serving() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let (mut coord, coord_url) = start_coordinator(&[]);
    let _w = start_worker(&coord_url, &[]);
    let addr = coord_url.trim_start_matches("http://");
    const MIB4: usize = 4 * 1024 * 1024;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/oversize_submit.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(addr)
        .arg((MIB4 + 1024).to_string())
        .arg((MIB4 - 1024).to_string());
    let (out, _) = run_bounded(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "the grpcio client (test.sh installs grpcio): {}",
        describe(&out)
    );
    let answers: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0]["code"], "OUT_OF_RANGE", "{}", answers[0]);
    let details = answers[0]["details"].as_str().unwrap();
    assert!(details.contains(&MIB4.to_string()), "{details}");
    assert_eq!(
        answers[1]["code"], "INVALID_ARGUMENT",
        "under the limit, the scenario itself is judged: {}",
        answers[1]
    );
    assert!(
        coord.child.try_wait().unwrap().is_none(),
        "the coordinator is still up"
    );
    let (r, _dir) = run_to_report(&coord_url, "after-big", &scenario(&url, 100, 2), &[]);
    assert_eq!(u(&r, "requests.ok"), 200);
}

/// "A run with no client following it for 15 s stops its load": the
/// submitting client is killed; the load goes on for about 15 s (time to
/// attach again), then stops, and the run ends with its report kept
/// (incomplete, saying why).
#[test]
fn a_client_gone_for_15_s_stops_the_load() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let (_coord, coord_url) = start_coordinator(&[]);
    let _w = start_worker(&coord_url, &[]);
    let s = submission(&coord_url, "gone", &scenario(&url, 200, 60), &[]);
    let client = spawn(s.cmd, "volley run");
    wait_served(&url, 400, Duration::from_secs(30));
    client.signal("KILL");
    let killed = Instant::now();
    drop(client);
    // The last moment the target's count grew, once it has stopped growing
    // for 2 s (or 40 s have passed).
    let mut last = served(&url);
    let mut last_growth = killed.elapsed();
    while killed.elapsed() < Duration::from_secs(40) {
        std::thread::sleep(Duration::from_millis(100));
        let now = served(&url);
        if now != last {
            last = now;
            last_growth = killed.elapsed();
        } else if killed.elapsed() > last_growth + Duration::from_secs(2) {
            break;
        }
    }
    assert!(
        last_growth >= Duration::from_secs(14) && last_growth <= Duration::from_secs(19),
        "the load stopped {last_growth:?} after the client went; the README says 15 s"
    );
    // The run ended with its report on the coordinator.
    let mut runs = volley();
    runs.args(["runs", "--output", "json", "--coordinator", &coord_url]);
    let (out, _) = run_bounded(runs, Duration::from_secs(30));
    assert!(out.status.success(), "{}", describe(&out));
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["state"], "finished", "{}", list[0]);
    assert_eq!(list[0]["verdict"], "incomplete", "{}", list[0]);
    let id = list[0]["id"].as_str().unwrap();
    let dir = TempDir::new("gone-fetch");
    let mut fetch = volley();
    fetch
        .args(["fetch", id, "--coordinator", &coord_url, "--out"])
        .arg(dir.path());
    let (out, _) = run_bounded(fetch, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let r = read_report(dir.path());
    let why = r["incomplete_reason"].as_str().unwrap_or_default();
    assert!(why.contains("client"), "{why}");
    assert_accounted(&r["requests"], "run");
    assert_eq!(u(&r, "requests.ok"), last, "the target counted every ok");
}

/// "A second signal quits at once": with answers 5 s away, one Ctrl-C
/// gives them the workers' abort grace (2 s) and writes the partial report;
/// a second quits at once (exit 3, no report: the run was abandoned).
#[test]
fn a_second_ctrl_c_quits_at_once() {
    let _serial = serial();
    let (_target, url) = start_target(&["--delay", "5s"]);
    let toml = format!(
        "[target]\nurl = \"{url}\"\ntimeout = \"10s\"\n[[stages]]\nname = \"main\"\nrate = 50\nduration = \"60s\"\n"
    );

    // One Ctrl-C: the report is written once the answers are in.
    let s = local_submission("one-ctrl-c", &toml, &["--local-workers", "1"]);
    let mut run = spawn(s.cmd, "volley run");
    wait_served(&url, 20, Duration::from_secs(30));
    run.signal("INT");
    let first = Instant::now();
    let mut err = String::new();
    wait_stderr(
        &mut run,
        &mut err,
        "press Ctrl-C again",
        Duration::from_secs(5),
    );
    let status = run.wait_exit(Duration::from_secs(30)).expect("it ends");
    let graceful = first.elapsed();
    assert_eq!(status.code(), Some(3), "{}", run.stderr_so_far());
    assert!(s.out.join("report.json").exists(), "the partial report");
    assert!(
        graceful >= Duration::from_millis(1900),
        "one Ctrl-C waits for the answers in flight: {graceful:?}"
    );

    // Two: the second quits at once.
    // Interrupted while every request sent is still waiting for its answer
    // (none comes within 5 s): the workers' drain would take its 2 s.
    let s = local_submission("two-ctrl-c", &toml, &["--local-workers", "1"]);
    let mut run = spawn(s.cmd, "volley run");
    let mut err = String::new();
    wait_stderr(&mut run, &mut err, "started with", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    run.signal("INT");
    let mut err = String::new();
    wait_stderr(
        &mut run,
        &mut err,
        "press Ctrl-C again",
        Duration::from_secs(5),
    );
    // A person reads the line first (signals within 200 ms are one: see
    // coordinator/src/signals.rs).
    std::thread::sleep(Duration::from_millis(300));
    run.signal("INT");
    let second = Instant::now();
    let status = run
        .wait_exit(Duration::from_secs(30))
        .expect("it quits at once");
    let quit = second.elapsed();
    err.push_str(&run.stderr_so_far());
    assert_eq!(status.code(), Some(3), "{err}");
    eprintln!("one Ctrl-C: {graceful:?} to exit; the second: {quit:?}");
    assert!(err.contains("abandoned"), "{err}");
    assert!(
        quit < Duration::from_millis(500),
        "the second Ctrl-C took {quit:?} (one alone took {graceful:?})"
    );
    assert!(!s.out.join("report.json").exists());
}

/// `timeout -s TERM` signals the command and then its process group: two
/// SIGTERMs microseconds apart, one action. They stop the run and keep its
/// report, as one signal does (counted as two, the second quit without it).
#[test]
fn two_signals_at_the_same_instant_are_one() {
    let _serial = serial();
    let toml =
        "[target]\nbuiltin = true\n[[stages]]\nname = \"main\"\nrate = 100\nduration = \"30s\"\n";
    let s = local_submission("same-instant", toml, &["--local-workers", "1"]);
    let mut run = spawn(s.cmd, "volley run");
    let mut err = String::new();
    wait_stderr(&mut run, &mut err, "started with", Duration::from_secs(30));
    let pid = run.pid().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid, &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = run.wait_exit(Duration::from_secs(30)).expect("it ends");
    err.push_str(&run.stderr_so_far());
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(!err.contains("abandoned"), "{err}");
    let r = read_report(&s.out);
    assert_eq!(r["complete"], false);
    assert_accounted(&r["requests"], "interrupted run");
}

/// The second Ctrl-C quits at once in cluster mode too, even when the
/// coordinator does not answer the stop the first one sent (it is frozen
/// here): the client used to wait for that answer before it listened again.
#[test]
fn a_second_ctrl_c_quits_at_once_while_the_coordinator_does_not_answer() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let (coord, coord_url) = start_coordinator(&[]);
    let _w = start_worker(&coord_url, &[]);
    let s = submission(&coord_url, "frozen-coord", &scenario(&url, 100, 60), &[]);
    let mut run = spawn(s.cmd, "volley run");
    wait_served(&url, 200, Duration::from_secs(30));
    coord.signal("STOP");
    run.signal("INT");
    let mut err = String::new();
    wait_stderr(
        &mut run,
        &mut err,
        "press Ctrl-C again",
        Duration::from_secs(5),
    );
    // The stop request is now waiting for the frozen coordinator.
    std::thread::sleep(Duration::from_millis(300));
    run.signal("INT");
    let second = Instant::now();
    let status = run.wait_exit(Duration::from_secs(20));
    let quit = second.elapsed();
    coord.signal("CONT");
    let status = status.expect("the client quits");
    err.push_str(&run.stderr_so_far());
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains("abandoned"), "{err}");
    assert!(quit < Duration::from_secs(1), "took {quit:?}: {err}");
}

/// README cluster example: weights 1, 1 and 2. Each worker owns a share of
/// the one schedule proportional to its weight: with uniform arrivals the
/// intended counts are exactly 1 : 1 : 2, and the target served them all.
#[test]
fn weight_2_gets_twice_the_share_end_to_end() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let (_coord, coord_url) = start_coordinator(&[]);
    let _workers: Vec<Proc> = ["1", "1", "2"]
        .iter()
        .map(|w| start_worker(&coord_url, &["--weight", w]))
        .collect();
    let (r, _dir) = run_to_report(
        &coord_url,
        "weights",
        &scenario(&url, 400, 5),
        &["--min-workers", "3"],
    );
    let mut by_weight: Vec<(u64, f64, u64, u64)> = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                u(w, "weight"),
                f(w, "share"),
                u(w, "requests.intended"),
                u(w, "requests.ok"),
            )
        })
        .collect();
    by_weight.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(
        by_weight,
        vec![
            (1, 0.25, 500, 500),
            (1, 0.25, 500, 500),
            (2, 0.5, 1000, 1000)
        ],
        "(weight, share, intended, ok) per worker"
    );
    assert_eq!(u(&r, "requests.ok"), 2000);
    assert_eq!(served(&url), 2000, "the target served each one");
}

/// `volley-worker --threads 2`: one worker of two engine threads, weighted
/// 2 by default, beside a one-thread worker (weight 1). The coordinator
/// sees two workers; the two-thread one sends exactly two thirds of the
/// uniform schedule, its threads' seconds reported as one, and the target
/// served every request once.
#[test]
fn a_worker_of_two_threads_is_one_worker_of_weight_two() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let (_coord, coord_url) = start_coordinator(&[]);
    let _two = start_worker(&coord_url, &["--threads", "2"]);
    let _one = start_worker(&coord_url, &["--threads", "1"]);
    let (r, _dir) = run_to_report(
        &coord_url,
        "threads",
        &scenario(&url, 300, 5),
        &["--min-workers", "2"],
    );
    let mut by_weight: Vec<(u64, u64, u64, u64, u64)> = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                u(w, "weight"),
                u(w, "threads"),
                u(w, "requests.intended"),
                u(w, "requests.sent"),
                u(w, "requests.ok"),
            )
        })
        .collect();
    by_weight.sort_unstable();
    assert_eq!(
        by_weight,
        vec![(1, 1, 500, 500, 500), (2, 2, 1000, 1000, 1000)],
        "(weight, threads, intended, sent, ok) per worker"
    );
    assert_eq!(u(&r, "requests.ok"), 1500);
    let achieved = f(&r, "achieved_rps");
    assert!((achieved - 300.0).abs() < 3.0, "achieved {achieved} rps");
    assert_eq!(served(&url), 1500, "the target served each one");
}

/// "`degradation < 5%` (first vs last tenth of long stages)" as a
/// threshold: a target that stalls for half a second in the last tenth of a
/// 10 s stage fails it (exit 1), with the stage's figures in the report;
/// the same target without the stall passes a generous bound (exit 0).
#[test]
fn degradation_is_judged_as_a_threshold() {
    let _serial = serial();
    const RATE: u64 = 100;
    let toml = |url: &str, bound: &str| {
        format!(
            "thresholds = [\"degradation < {bound}\"]\n[target]\nurl = \"{url}\"\n\
             [[stages]]\nname = \"soak\"\nrate = {RATE}\nduration = \"10s\"\n"
        )
    };

    // Steady: p99 stays at the target's 20 ms.
    let (_steady, url) = start_target(&["--delay", "20ms"]);
    let (_coord, coord_url) = start_coordinator(&[]);
    let _w = start_worker(&coord_url, &[]);
    let s = submission(&coord_url, "steady", &toml(&url, "100%"), &[]);
    let (out, _) = run_bounded(s.cmd, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let r = read_report(&s.out);
    let soak = &r["stages"][0]["soak"];
    assert!(soak.is_object(), "a 10 s stage has soak figures: {r}");
    let t = &r["thresholds"][0];
    assert_eq!(t["pass"], true, "{t}");
    assert!(
        (f(t, "actual") - f(soak, "degradation")).abs() < 1e-9,
        "{t} vs {soak}"
    );

    // A stall in the last tenth (second 9): its p99 rises tenfold.
    let (stalling, url) = start_target(&["--delay", "20ms"]);
    let s = submission(&coord_url, "stall", &toml(&url, "5%"), &[]);
    let run = std::thread::spawn(move || {
        let (out, _) = run_bounded(s.cmd, Duration::from_secs(60));
        (out, s.dir, s.out)
    });
    wait_served(&url, RATE * 9 + 15, Duration::from_secs(40));
    stalling.signal("STOP");
    std::thread::sleep(Duration::from_millis(500));
    stalling.signal("CONT");
    let (out, _dir, out_dir) = run.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "degradation failed: {}",
        describe(&out)
    );
    let r = read_report(&out_dir);
    let soak = &r["stages"][0]["soak"];
    assert!(
        f(soak, "last_p99_ms") > 10.0 * f(soak, "first_p99_ms"),
        "{soak}"
    );
    let t = &r["thresholds"][0];
    assert_eq!(t["pass"], false, "{t}");
    assert!(f(t, "actual") > 0.05, "{t}");
    assert!(
        (f(t, "actual") - f(soak, "degradation")).abs() < 1e-9,
        "{t} vs {soak}"
    );
}

/// "It is declared lost when its stream breaks or after
/// `--heartbeat-timeout` of silence": a worker frozen with SIGSTOP keeps its
/// connection open, so only the silence can tell. It is declared lost about
/// the timeout after it froze (not at once), its share goes to the other,
/// and every request is accounted for.
#[test]
fn a_silent_worker_is_lost_after_the_heartbeat_timeout() {
    let _serial = serial();
    const RATE: u64 = 300;
    const SECS: u64 = 12;
    let (_target, url) = start_target(&[]);
    let (_coord, coord_url) = start_coordinator(&["--heartbeat-timeout", "2s"]);
    let _alive = start_worker(&coord_url, &[]);
    let frozen = start_worker(&coord_url, &[]);
    let s = submission(
        &coord_url,
        "silent",
        &format!(
            "[target]\nurl = \"{url}\"\ntimeout = \"2s\"\n[[stages]]\nname = \"main\"\nrate = {RATE}\nduration = \"{SECS}s\"\n"
        ),
        &["--min-workers", "2"],
    );
    let run = std::thread::spawn(move || {
        let (out, _) = run_bounded(s.cmd, Duration::from_secs(90));
        (out, s.dir, s.out)
    });
    let at = wait_served(&url, RATE * 4, Duration::from_secs(30));
    frozen.signal("STOP");
    // The run's clock when it froze: the target answers at once.
    let froze_at = at as f64 / RATE as f64;
    let (out, _dir, out_dir) = run.join().unwrap();
    frozen.signal("CONT");
    drop(frozen);
    assert!(out.status.success(), "{}", describe(&out));
    let r = read_report(&out_dir);
    let ws = r["workers"].as_array().unwrap();
    let lost: Vec<&Value> = ws.iter().filter(|w| !w["lost_at_s"].is_null()).collect();
    assert_eq!(lost.len(), 1, "{ws:?}");
    let lost_at = f(lost[0], "lost_at_s");
    assert!(
        lost_at >= froze_at + 1.5 && lost_at <= froze_at + 3.0,
        "frozen at ~{froze_at:.2} s, lost at {lost_at} s: the timeout is 2 s"
    );
    let ev = events(&r);
    assert!(ev.iter().any(|e| e.contains("no heartbeat")), "{ev:?}");
    assert!(ev.iter().any(|e| e.contains("re-split")), "{ev:?}");
    assert_eq!(u(&r, "requests.intended"), RATE * SECS);
    assert_accounted(&r["requests"], "run");
    for k in ["intended", "ok", "errors", "dropped"] {
        let sum: u64 = ws.iter().map(|w| u(&w["requests"], k)).sum();
        assert_eq!(sum, u(&r, &format!("requests.{k}")), "workers' {k}");
    }
    // After the re-split the survivor carries the whole rate.
    let resplit_from = (lost_at + 0.6).ceil();
    for i in r["intervals"].as_array().unwrap() {
        let t = u(i, "t_s") as f64;
        if t >= resplit_from && t < SECS as f64 {
            assert!(
                f(i, "achieved_rps") >= 0.95 * RATE as f64,
                "second {t}: {i}"
            );
        }
    }
}

/// One sample's value from Prometheus text: the first series named `name`
/// whose labels contain every one of `labels` (`outcome="ok"`).
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name && labels.iter().all(|w| rest.contains(w))
        })
        .and_then(|(_, v)| v.parse().ok())
}

fn try_scrape(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.starts_with("HTTP/1.1 200")
        .then(|| buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

/// "`volley run --metrics-listen ADDR` in local mode serves `/metrics`".
#[test]
fn metrics_listen_in_local_mode() {
    let _serial = serial();
    let port = free_port();
    let maddr = format!("127.0.0.1:{port}");
    let toml =
        "[target]\nbuiltin = true\n[[stages]]\nname = \"main\"\nrate = 200\nduration = \"6s\"\n";
    let s = local_submission(
        "local-metrics",
        toml,
        &["--local-workers", "2", "--metrics-listen", &maddr],
    );
    let out_dir = s.out.clone();
    let mut run = spawn(s.cmd, "volley run");
    // Scrape until a second has been counted.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        assert!(
            Instant::now() < deadline && run.child.try_wait().unwrap().is_none(),
            "no counted second on http://{maddr}/metrics: {}",
            run.stderr_so_far()
        );
        if let Some(t) = try_scrape(&maddr) {
            if sample(&t, "volley_requests_total", &["outcome=\"ok\""]).unwrap_or(0.0) > 0.0 {
                break t;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let status = run.wait_exit(Duration::from_secs(60)).expect("run ends");
    assert_eq!(status.code(), Some(0), "{}", run.stderr_so_far());
    let r = read_report(&out_dir);
    assert_eq!(sample(&text, "volley_workers", &[]), Some(2.0), "{text}");
    assert_eq!(sample(&text, "volley_runs_total", &[]), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "volley_target_rps", &[]),
        Some(200.0),
        "{text}"
    );
    let ok = sample(&text, "volley_requests_total", &["outcome=\"ok\""]).unwrap();
    assert!(
        ok <= u(&r, "requests.ok") as f64 && ok % 200.0 == 0.0,
        "{ok} ok in whole seconds of 200, at most the report's {}",
        r["requests"]
    );
    let count = sample(&text, "volley_latency_seconds_count", &[]).unwrap();
    assert_eq!(count, ok, "one latency per ok request: {text}");
}

/// "`volley report runs/<id>/report.json --format html` renders it again":
/// the page `volley run` wrote, byte for byte.
#[test]
fn volley_report_format_html_renders_the_run_s_page_again() {
    let _serial = serial();
    let toml = "name = \"html\"\nthresholds = [\"p99 < 1s\"]\n[target]\nbuiltin = true\n[[stages]]\nname = \"main\"\nrate = 100\nduration = \"3s\"\n";
    let (_r, dir) = run_local_to_report("html-again", toml, &["--local-workers", "1"]);
    let out = dir.path().join("out");
    let mut cmd = volley();
    cmd.args(["report", "--format", "html"])
        .arg(out.join("report.json"));
    let (res, _) = run_bounded(cmd, Duration::from_secs(30));
    assert_eq!(res.status.code(), Some(0), "{}", describe(&res));
    let page = String::from_utf8(res.stdout).unwrap();
    assert!(
        page.starts_with("<!doctype html>"),
        "{}",
        &page[..100.min(page.len())]
    );
    assert!(page.contains("<svg"), "charts");
    let written = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        page == written,
        "the re-rendered page differs from report.html"
    );
}

/// HTTP/1.1, the default protocol, against an independent server: nginx
/// logs exactly the requests the report counts as ok, each one HTTP/1.1.
#[test]
fn http1_against_nginx_counts_what_nginx_served() {
    let _serial = serial();
    let nginx = start_nginx_http1(256);
    let toml = format!(
        "[target]\nurl = \"{}\"\n[[stages]]\nname = \"main\"\nrate = 300\nduration = \"4s\"\n",
        nginx.url("/h1")
    );
    let (r, _dir) = run_local_to_report("nginx-h1", &toml, &["--local-workers", "2"]);
    assert_eq!(u(&r, "requests.intended"), 1200);
    assert_eq!(u(&r, "requests.ok"), 1200, "{}", r["requests"]);
    assert_eq!(r["target"]["protocol"], "http1", "{}", r["target"]);
    let log = nginx.access_log();
    assert_eq!(
        log.len() as u64,
        u(&r, "requests.ok"),
        "{}",
        nginx.error_log()
    );
    assert!(
        log.iter()
            .all(|l| l.protocol == "HTTP/1.1" && l.status == 200 && l.uri == "/h1"),
        "{:?}",
        log.iter().find(|l| l.protocol != "HTTP/1.1")
    );
}
