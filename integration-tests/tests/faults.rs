//! Faults across real processes: a worker killed with SIGKILL mid-run, a
//! worker frozen while idle.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

/// Kills one of three workers once a 12 s run of 900 rps (300 each, 20 ms
/// per answer: ~6 in flight per worker, so it dies with some unanswered)
/// has started and 4 s of load were served (conditions, not an assumed
/// setup time). Returns the report and the kill on the run's own clock.
fn kill_one_of_three(coordinator_args: &[&str], tag: &str) -> (Value, f64) {
    let (_target, url) = start_target(&["--delay", "20ms"]);
    let (_coord, coord_url) = start_coordinator(coordinator_args);
    let mut workers: Vec<Proc> = (0..3).map(|_| start_worker(&coord_url, &[])).collect();
    let toml = format!("[target]\nurl = \"{url}\"\ntimeout = \"2s\"\n[[stages]]\nname = \"main\"\nrate = {KILL_RATE}\nduration = \"12s\"\n");
    let Submission {
        dir: _dir,
        out,
        cmd,
    } = announced_submission(&coord_url, tag, &toml, &["--min-workers", "3"]);
    let mut run = spawn(cmd, "volley run");
    run.wait_stderr(STARTED, Duration::from_secs(30));
    wait_served(&url, 4 * KILL_RATE as u64, Duration::from_secs(30));
    let victim = workers.remove(1);
    victim.signal("KILL");
    let killed_wall = std::time::SystemTime::now();
    let status = run
        .wait_exit(Duration::from_secs(90))
        .expect("volley run ends");
    drop(victim);
    assert!(
        status.success(),
        "the survivors completed the run: {}",
        run.stderr_so_far()
    );
    let r = read_report(&out);
    // The kill on the run's own clock (t = 0 from the report).
    let killed_at = run_time_of(&r, killed_wall);
    assert!(
        (3.5..8.0).contains(&killed_at),
        "killed at {killed_at} s, after 4 s of load were served"
    );
    (r, killed_at)
}

const KILL_RATE: f64 = 900.0;

/// Every intended request ends as exactly one thing, for the run and each
/// of its 3 workers, the workers sum to the run, and nothing vanished with
/// the dead worker: the run intends the whole schedule. Returns the one
/// worker marked lost.
fn accounted_with_one_lost(r: &Value) -> &Value {
    let ws = r["workers"].as_array().unwrap();
    assert_eq!(ws.len(), 3);
    let lost: Vec<_> = ws.iter().filter(|w| !w["lost_at_s"].is_null()).collect();
    assert_eq!(lost.len(), 1, "{ws:?}");
    assert_accounted(&r["requests"], "run");
    for w in ws {
        assert_accounted(&w["requests"], "worker");
    }
    for k in ["intended", "ok", "errors", "dropped"] {
        let sum: u64 = ws.iter().map(|w| u(&w["requests"], k)).sum();
        assert_eq!(sum, u(&r["requests"], k), "workers' {k} sum to the total");
    }
    assert_eq!(u(r, "requests.intended"), (KILL_RATE * 12.0) as u64);
    lost[0]
}

/// The same kill, with the workers sending their reports 3 seconds at a
/// time (a coordinator budget of 1 message a second for 3 workers): the
/// dead worker's last batch never arrives, so what it owned after its last
/// whole batch counts as unsent, dropped because the worker was lost. Not
/// one request of the schedule goes missing from the books.
#[test]
fn a_worker_killed_mid_batch_is_accounted_to_its_last_whole_batch() {
    let _serial = serial();
    const SHARE: u64 = 300;
    let (r, killed_at) = kill_one_of_three(&["--max-reports-per-second", "1"], "kill-batched");
    let said = events(&r).join("\n");
    assert!(said.contains("3 seconds at a time"), "{said}");

    let lost = accounted_with_one_lost(&r);
    assert_eq!(u(&r, "requests.errors"), 0, "{}", r["errors_by_kind"]);

    // What the coordinator has of the dead worker is whole batches of
    // 3 seconds; the rest of what it owned is unsent, for the reason
    // `worker_lost`.
    let v = &lost["requests"];
    let unsent = u(&r, "requests.unsent");
    assert_eq!(unsent, u(v, "unsent"), "{v}");
    let reported = u(v, "intended") - unsent;
    assert_eq!(reported % (3 * SHARE), 0, "whole batches reported: {v}");
    let reported_s = (reported / SHARE) as f64;
    assert!(
        reported_s <= killed_at.ceil() && reported_s >= killed_at.floor() - 3.0,
        "{reported_s} s reported, killed at {killed_at} s"
    );
    assert_eq!(u(&r, "drop_reasons.worker_lost"), unsent);
}

#[test]
fn a_killed_worker_is_reported_and_its_share_goes_to_the_survivors() {
    let _serial = serial();
    const RATE: f64 = KILL_RATE;
    const SHARE: u64 = 300;
    let (r, killed_at) = kill_one_of_three(&["--heartbeat-timeout", "3s"], "kill");

    // The lost worker is marked within a second of the kill: SIGKILL closes
    // its connection, and the coordinator does not wait for the heartbeat
    // timeout to notice.
    let lost = accounted_with_one_lost(&r);
    let lost_at = f(lost, "lost_at_s");
    assert!(
        lost_at >= killed_at - 0.05 && lost_at <= killed_at + 1.0,
        "lost at {lost_at} s, killed at {killed_at} s"
    );

    // A worker reports a second only once every request of it has ended,
    // so nothing of a reported second is outstanding: what the dead worker
    // had in flight lies in seconds it never reported, which count as
    // unsent below. No request of it ends as an error of kind `lost`, and
    // the run has no errors at all (the target never fails).
    let victim_requests = &lost["requests"];
    let lost_errors = u(&r, "errors_by_kind.lost");
    assert_eq!(lost_errors, 0, "{}", r["errors_by_kind"]);
    assert_eq!(u(&r, "requests.errors"), 0, "{}", r["errors_by_kind"]);
    // What it owned and never reported is `unsent`: the rest of its share
    // up to the re-split. It reported whole seconds of 300 before the kill
    // and owned at most up to the second after it was lost (the re-split
    // applies from the next boundary at least 0.6 s on).
    let unsent = u(&r, "requests.unsent");
    assert_eq!(unsent, u(victim_requests, "unsent"), "{victim_requests}");
    assert_eq!(unsent, u(victim_requests, "dropped"), "{victim_requests}");
    let reported = u(victim_requests, "intended") - unsent;
    assert_eq!(
        reported % SHARE,
        0,
        "whole seconds reported: {victim_requests}"
    );
    let reported_s = (reported / SHARE) as f64;
    assert!(
        reported_s <= killed_at.ceil() && reported_s >= killed_at.floor() - 1.0,
        "{reported_s} s reported, killed at {killed_at} s"
    );
    let owned_until = reported_s + unsent as f64 / SHARE as f64;
    eprintln!(
        "killed at {killed_at:.2} s, lost at {lost_at:.2} s, {reported_s} s reported, \
         {unsent} unsent (owned until {owned_until:.2} s), {lost_errors} lost"
    );
    assert!(
        owned_until > killed_at && owned_until <= (lost_at + 0.6).ceil() + 1e-9,
        "the dead worker owned its share until {owned_until} s (killed at {killed_at}, lost at {lost_at})"
    );
    // Every drop has a reason; what the dead worker never sent is its own.
    let reasons = r["drop_reasons"].as_object().unwrap();
    let told: u64 = reasons.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(told, u(&r, "requests.dropped"), "{reasons:?}");
    assert_eq!(u(&r, "drop_reasons.worker_lost"), unsent, "{reasons:?}");

    // After the re-split every second reaches 95 % of the target rate.
    let resplit_from = (lost_at + 0.6).ceil();
    for i in r["intervals"].as_array().unwrap() {
        let t = u(i, "t_s") as f64;
        if t >= resplit_from && t < 12.0 {
            let achieved = f(i, "achieved_rps");
            assert!(achieved >= 0.95 * RATE, "second {t}: {achieved} of {RATE}");
        }
    }
    let events: Vec<String> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect();
    assert!(events.iter().any(|e| e.contains("re-split")), "{events:?}");
}

#[test]
fn a_worker_that_connects_mid_run_takes_a_share() {
    let _serial = serial();
    const RATE: u64 = 400;
    const SECS: u64 = 8;
    let (_target, url) = start_target(&[]);
    let (_coord, coord_url) = start_coordinator(&[]);
    let _first = start_worker(&coord_url, &[]);
    let toml =
        format!("[target]\nurl = \"{url}\"\n[[stages]]\nrate = {RATE}\nduration = \"{SECS}s\"\n");
    let Submission {
        dir: _dir,
        out,
        cmd,
    } = announced_submission(&coord_url, "join", &toml, &[]);
    let mut run = spawn(cmd, "volley run");
    run.wait_stderr(STARTED, Duration::from_secs(30));
    wait_served(&url, 2 * RATE, Duration::from_secs(30));
    let _second = start_worker(&coord_url, &[]);
    let joiner_started = std::time::SystemTime::now();
    let status = run
        .wait_exit(Duration::from_secs(60))
        .expect("volley run ends");
    assert!(status.success(), "{}", run.stderr_so_far());
    let r = read_report(&out);
    let ws = r["workers"].as_array().unwrap();
    assert_eq!(ws.len(), 2, "{ws:?}");
    let joiner = ws
        .iter()
        .find(|w| !w["joined_at_s"].is_null())
        .expect("a joiner");
    let first = ws
        .iter()
        .find(|w| w["joined_at_s"].is_null())
        .expect("the first worker");
    // It joins at a whole second after it was started (connect, clock
    // pings, setup and the 0.6 s re-split lead), before the run ends.
    let started_at = run_time_of(&r, joiner_started);
    let joined_at = f(joiner, "joined_at_s");
    assert_eq!(joined_at.fract(), 0.0, "a second boundary: {joined_at}");
    assert!(
        joined_at >= started_at + 0.6 && joined_at < SECS as f64,
        "joined at {joined_at} s, started at {started_at} s"
    );
    // From that second on the two split the rate evenly: the joiner intends
    // exactly half of every later second, the first worker all of the
    // earlier ones and half of the later ones.
    let after = ((SECS as f64 - joined_at) as u64) * RATE / 2;
    eprintln!("joiner started at {started_at:.2} s, joined at {joined_at} s");
    assert_eq!(u(&joiner["requests"], "intended"), after, "{joiner}");
    assert_eq!(
        u(&first["requests"], "intended"),
        RATE * SECS - after,
        "{first}"
    );
    assert_eq!(u(&joiner["requests"], "ok"), after, "{joiner}");
    assert_accounted(&r["requests"], "run");
    assert_eq!(
        u(&r, "requests.intended"),
        RATE * SECS,
        "the schedule is unchanged by the join"
    );
    assert_eq!(u(&r, "requests.ok"), RATE * SECS);
}

#[test]
fn a_coordinator_killed_mid_run_resumes_from_its_data_dir_and_loses_nothing() {
    let _serial = serial();
    const RATE: u64 = 300;
    const SECS: u64 = 12;
    let (_target, url) = start_target(&[]);
    let data = TempDir::new("data");
    let data_dir = data.path().to_str().unwrap().to_string();
    let (coord, coord_url) = start_coordinator(&["--token", "t", "--data-dir", &data_dir]);
    let addr = coord_url.trim_start_matches("http://").to_string();
    let _w1 = start_worker(&coord_url, &["--token", "t"]);
    let _w2 = start_worker(&coord_url, &["--token", "t"]);
    let toml =
        format!("[target]\nurl = \"{url}\"\n[[stages]]\nrate = {RATE}\nduration = \"{SECS}s\"\n");
    let Submission {
        dir: _dir,
        out,
        cmd,
    } = submission(
        &coord_url,
        "restart",
        &toml,
        &["--min-workers", "2", "--token", "t"],
    );
    let run = std::thread::spawn(move || run_bounded(cmd, Duration::from_secs(120)));
    // Kill it once 4 s of load were served (not after an assumed setup).
    wait_served(&url, 4 * RATE, Duration::from_secs(30));
    coord.signal("KILL");
    drop(coord);
    // Away for about 2 s, then back on the same address and data dir.
    std::thread::sleep(Duration::from_millis(2000));
    let (_coord2, _) =
        start_coordinator(&["--token", "t", "--data-dir", &data_dir, "--listen", &addr]);
    let (output, _) = run.join().unwrap();
    assert!(
        output.status.success(),
        "the client followed the resumed run to its end: {}",
        describe(&output)
    );
    let r = read_report(&out);
    // Every second of the run is there, and the full run's intended count.
    let seconds: Vec<u64> = r["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| u(i, "t_s"))
        .collect();
    for t in 0..SECS {
        assert!(seconds.contains(&t), "second {t} missing: {seconds:?}");
    }
    for i in r["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| u(i, "t_s") < SECS)
    {
        assert_eq!(u(i, "intended"), RATE, "second {}: {i}", u(i, "t_s"));
    }
    assert_eq!(u(&r, "requests.intended"), RATE * SECS);
    assert_accounted(&r["requests"], "run");
    assert_eq!(u(&r, "requests.ok"), RATE * SECS, "{}", r["requests"]);
    for w in r["workers"].as_array().unwrap() {
        assert_accounted(&w["requests"], "worker");
        assert!(w["lost_at_s"].is_null(), "both workers came back: {w}");
    }
    // The coordinator kept the run on disk too.
    let stored = data
        .path()
        .join("runs")
        .join(r["run_id"].as_str().unwrap())
        .join("report.json");
    assert!(stored.exists(), "{}", stored.display());
}

#[test]
fn ctrl_c_stops_the_load_and_still_writes_the_report() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let (_coord, coord_url) = start_coordinator(&[]);
    let _w = start_worker(&coord_url, &[]);
    let toml = format!("[target]\nurl = \"{url}\"\n[[stages]]\nrate = 200\nduration = \"60s\"\n");
    let Submission {
        dir: _dir,
        out,
        cmd,
    } = submission(&coord_url, "ctrlc", &toml, &[]);
    let mut run = spawn(cmd, "volley run");
    // Interrupt once 2 s of load were served.
    let before = wait_served(&url, 400, Duration::from_secs(30));
    run.signal("INT");
    let status = run
        .wait_exit(Duration::from_secs(20))
        .expect("volley run ends after Ctrl-C");
    assert_eq!(status.code(), Some(3), "an interrupted run is incomplete");
    // The load stopped within a second or two of the interrupt.
    let after = target_stats(&url)["requests"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        target_stats(&url)["requests"].as_u64().unwrap(),
        after,
        "no load after the stop"
    );
    assert!(after - before < 200 * 3, "{before} -> {after}");
    let r = read_report(&out);
    assert_eq!(r["complete"], false);
    assert!(
        r["incomplete_reason"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{r}"
    );
    assert_accounted(&r["requests"], "interrupted run");
    assert!(u(&r, "requests.intended") < 200 * 10);
}

#[test]
fn workers_stop_sending_when_the_coordinator_is_gone_too_long() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let (coord, coord_url) = start_coordinator(&[]);
    let _w = start_worker(&coord_url, &["--max-outage", "2s"]);
    let toml = format!("[target]\nurl = \"{url}\"\n[[stages]]\nrate = 200\nduration = \"60s\"\n");
    let Submission { dir: _dir, cmd, .. } = submission(&coord_url, "outage", &toml, &[]);
    let _run = spawn(cmd, "volley run");
    // Kill the coordinator once the load flows (a second of it served).
    wait_served(&url, 200, Duration::from_secs(30));
    coord.signal("KILL");
    drop(coord);
    // Still sending during the outage …
    let t0 = target_stats(&url)["requests"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        target_stats(&url)["requests"].as_u64().unwrap() > t0,
        "a short outage does not stop the load"
    );
    // … but not past --max-outage (2 s) plus a reconnect attempt (≤ 2 s) and
    // the drain of what is in flight.
    std::thread::sleep(Duration::from_millis(5000));
    let a = target_stats(&url)["requests"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let b = target_stats(&url)["requests"].as_u64().unwrap();
    assert_eq!(
        a, b,
        "the worker must stop sending once the coordinator is gone too long"
    );
}

/// A target that answers every request with HTTP 500 from the first second
/// is reachable: the run measures it to the end (a service failing its
/// warm-up is what a load test is for), rather than stopping with "target
/// unreachable" as it did when any error of the first seconds counted as
/// one. The server is not Volley's: the Python recording server.
#[test]
fn a_target_answering_only_5xx_is_measured_not_called_unreachable() {
    let _serial = serial();
    let server = start_recording_server(&["--status", "500"]);
    let toml = format!(
        "[target]\nurl = \"{}\"\n[[stages]]\nname = \"main\"\nrate = 200\nduration = \"5s\"\n",
        server.url("/")
    );
    let s = local_submission("only-5xx", &toml, &["--local-workers", "1"]);
    let (out, _) = run_bounded(s.cmd, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("unreachable"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let r = read_report(&s.out);
    assert_eq!(r["complete"], true, "{}", r["incomplete_reason"]);
    assert_eq!(u(&r, "requests.intended"), 1000);
    assert_eq!(u(&r, "requests.errors"), 1000);
    assert_eq!(r["errors_by_kind"]["status"], 1000);
    assert_eq!(r["errors_by_status"]["500"], 1000);
    assert_eq!(server.count(), 1000, "the server answered every request");
}

/// `timeout -s TERM` (also CI cancellation, `kubectl delete`, a Job's
/// deadline) is an interrupt like Ctrl-C: `volley run` in local mode stops
/// the load and writes the partial report (every finished second, report.md,
/// report.html, latency.hlog), then exits 3. It used to die with 143 and
/// write nothing.
#[test]
fn sigterm_from_timeout_stops_a_local_run_and_keeps_what_it_measured() {
    let _serial = serial();
    let toml = "name = \"term\"\n[target]\nbuiltin = true\n[[stages]]\nname = \"main\"\nrate = 200\nduration = \"20s\"\n";
    let dir = TempDir::new("sigterm");
    let file = dir.write("s.toml", toml);
    let out = dir.path().join("out");
    let mut cmd = Command::new("timeout");
    cmd.args(["--preserve-status", "-s", "TERM", "4"])
        .arg(bin("volley"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--quiet",
            "--local-workers",
            "1",
        ])
        .args(["--out", out.to_str().unwrap()]);
    let (output, took) = run_bounded(cmd, Duration::from_secs(30));
    assert_eq!(
        output.status.code(),
        Some(3),
        "an interrupted run exits 3: {}",
        describe(&output)
    );
    assert!(
        took < Duration::from_secs(9),
        "took {took:?} after a TERM at 4 s"
    );
    let r = read_report(&out);
    assert_eq!(r["complete"], false);
    assert!(
        r["incomplete_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("interrupted"),
        "{}",
        r["incomplete_reason"]
    );
    let seconds = r["intervals"].as_array().unwrap().len();
    assert!(
        (1..=5).contains(&seconds),
        "{seconds} finished seconds kept"
    );
    assert_accounted(&r["requests"], "terminated run");
    assert!(u(&r, "requests.ok") > 0);
    for f in ["report.md", "report.html", "latency.hlog"] {
        let len = std::fs::metadata(out.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{f} written");
    }
}

/// The workers `volley workers --output json` lists.
fn listed_workers(coord_url: &str) -> Vec<Value> {
    let mut cmd = volley();
    cmd.args(["workers", "--output", "json", "--coordinator", coord_url]);
    let (out, _) = run_bounded(cmd, Duration::from_secs(30));
    assert!(out.status.success(), "{}", describe(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("a JSON array");
    v.as_array().expect("a JSON array").clone()
}

/// Polls `volley workers` until `n` are listed; the instant it saw it.
fn wait_listed(coord_url: &str, n: usize, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        let ws = listed_workers(coord_url);
        if ws.len() == n {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{n} workers not listed within {within:?}: {ws:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Idle workers are watched less closely than workers in a run, so that
/// thousands of them cost the coordinator little (README, "Faults, data
/// safety and security"). A worker frozen while idle (SIGSTOP keeps its
/// connection open) is still listed well after `--heartbeat-timeout` and
/// dropped after `--idle-heartbeat-timeout`. A worker that beat at the slow
/// idle pace until its run is not declared lost when the run begins: it
/// beats at the run's pace from its assignment on, and the run timeout
/// counts from its `Ready`.
#[test]
fn an_idle_worker_is_judged_by_the_idle_timeout_and_a_worker_in_a_run_by_the_run_one() {
    let _serial = serial();
    const RATE: u64 = 200;
    const SECS: u64 = 4;
    let (_target, url) = start_target(&[]);
    // Idle workers beat every 2 s, twice the run's timeout.
    let (_coord, coord_url) = start_coordinator(&[
        "--heartbeat-timeout",
        "1s",
        "--idle-heartbeat-timeout",
        "6s",
    ]);
    let frozen = start_worker(&coord_url, &[]);
    wait_listed(&coord_url, 1, Duration::from_secs(30));
    frozen.signal("STOP");
    let froze = Instant::now();
    let gone = wait_listed(&coord_url, 0, Duration::from_secs(30)) - froze;
    // Its last beat was at most one idle pace (2 s) before it froze, and the
    // reaper looks every sixth of the run timeout.
    assert!(
        gone >= Duration::from_secs(3) && gone <= Duration::from_secs(7),
        "a worker frozen while idle was dropped {gone:?} after it froze: \
         the idle timeout is 6 s, the run timeout 1 s"
    );
    drop(frozen);

    let _worker = start_worker(&coord_url, &[]);
    wait_listed(&coord_url, 1, Duration::from_secs(30));
    // Idle for more than a pace, so that its last beat is old when the
    // run begins.
    std::thread::sleep(Duration::from_millis(2500));
    let toml = format!(
        "[target]\nurl = \"{url}\"\n[[stages]]\nname = \"main\"\nrate = {RATE}\nduration = \"{SECS}s\"\n"
    );
    let (r, _dir) = run_to_report(&coord_url, "idle-pace", &toml, &[]);
    let ws = r["workers"].as_array().unwrap();
    assert_eq!(ws.len(), 1, "{ws:?}");
    assert!(ws[0]["lost_at_s"].is_null(), "{ws:?}");
    assert_eq!(u(&r, "requests.intended"), RATE * SECS);
    assert_eq!(u(&r, "requests.ok"), RATE * SECS);
    assert_accounted(&r["requests"], "run");
    // Back to idle after the run: still listed a run timeout later.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(listed_workers(&coord_url).len(), 1);
}

/// A worker that vanished without a word while idle (here frozen with
/// SIGSTOP; a host gone from the network looks the same) is still listed
/// until its idle timeout. A run submitted meanwhile leaves it out, because it
/// answers none of the clock pings, and runs on the others with every request
/// accounted for, rather than failing when it misses the start. When too few
/// workers answer, the run says so.
#[test]
fn a_run_leaves_out_a_listed_worker_that_answers_no_clock_ping() {
    let _serial = serial();
    const RATE: u64 = 200;
    const SECS: u64 = 3;
    let (_target, url) = start_target(&[]);
    // A long idle timeout: the frozen worker stays listed through both runs.
    let (_coord, coord_url) = start_coordinator(&["--idle-heartbeat-timeout", "120s"]);
    let _alive = start_worker(&coord_url, &[]);
    let frozen = start_worker(&coord_url, &[]);
    wait_listed(&coord_url, 2, Duration::from_secs(30));
    frozen.signal("STOP");
    let toml = format!(
        "[target]\nurl = \"{url}\"\n[[stages]]\nname = \"main\"\nrate = {RATE}\nduration = \"{SECS}s\"\n"
    );
    let (r, _dir) = run_to_report(&coord_url, "silent-left-out", &toml, &[]);
    let ws = r["workers"].as_array().unwrap();
    assert_eq!(
        ws.len(),
        1,
        "only the worker that answered took part: {ws:?}"
    );
    assert!(ws[0]["lost_at_s"].is_null(), "{ws:?}");
    let said = events(&r);
    assert!(
        said.iter()
            .any(|t| t.contains("answered no clock ping") && t.contains("left out of this run")),
        "{said:?}"
    );
    assert_eq!(u(&r, "requests.intended"), RATE * SECS);
    assert_eq!(u(&r, "requests.ok"), RATE * SECS);
    assert_accounted(&r["requests"], "run");
    assert_eq!(
        listed_workers(&coord_url).len(),
        2,
        "still within its idle timeout"
    );

    // Two workers required, one answers: the run fails, and says why.
    let s = submission(&coord_url, "silent-too-few", &toml, &["--min-workers", "2"]);
    let (out, _) = run_bounded(s.cmd, Duration::from_secs(60));
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("only 1 of the 2 required workers answered the clock pings"),
        "{}",
        describe(&out)
    );
    frozen.signal("CONT");
}
