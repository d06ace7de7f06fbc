//! SIGTERM, as `timeout`, CI cancellation and Kubernetes send it, to every
//! Volley process: nothing measured is lost.
//!
//! - a worker leaves its run gracefully: its share is re-split from the next
//!   second (not after the heartbeat timeout), it sends and reports what was
//!   due until then, and the report shows it "left", not "lost";
//! - `volley serve` stops the running load, writes the partial report to its
//!   data dir and exits 0; restarted on that data dir it has the run;
//! - `volley target` closes its listeners and exits 0.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn a_worker_sent_sigterm_leaves_and_its_share_is_resplit_without_a_loss() {
    let _serial = serial();
    const RATE: u64 = 900;
    const SECONDS: u64 = 12;
    let (_target, url) = start_target(&[]);
    // A long heartbeat timeout: the re-split must not wait for it.
    let (_coord, coord_url) = start_coordinator(&["--heartbeat-timeout", "20s"]);
    // The middle worker runs under `timeout`, as in a CI job: a signal to
    // `timeout` reaches the worker twice, microseconds apart (timeout sends
    // it to the command, then to its process group). That must stay one
    // graceful leave, not a second signal that quits at once.
    let mut under_timeout = std::process::Command::new("timeout");
    under_timeout
        .args(["-s", "TERM", "600"])
        .arg(bin("volley-worker"))
        .args(["--coordinator", &coord_url]);
    let mut workers: Vec<Proc> = vec![
        start_worker(&coord_url, &[]),
        spawn(under_timeout, "worker under timeout"),
        start_worker(&coord_url, &[]),
    ];
    let toml = format!(
        "[target]\nurl = \"{url}\"\ntimeout = \"2s\"\n[[stages]]\nname = \"main\"\nrate = {RATE}\nduration = \"{SECONDS}s\"\n"
    );
    let s = submission(&coord_url, "leave", &toml, &["--min-workers", "3"]);
    let out = s.out.clone();
    let cmd = s.cmd;
    let run = std::thread::spawn(move || run_bounded(cmd, Duration::from_secs(90)));

    // About 4 s into the run, by the target's own count (uniform arrivals:
    // RATE requests a second), the middle worker is told to shut down:
    // SIGTERM to its `timeout`, which passes it on.
    let served = wait_served(&url, 4 * RATE, Duration::from_secs(30));
    let mut leaver = workers.remove(1);
    leaver.signal("TERM");
    let signalled_at_s = served as f64 / RATE as f64;
    let signalled = Instant::now();
    // It hands over at the next boundary, drains and exits by itself: 0
    // (timeout exits with its command's status when it was not the one to
    // time out).
    let status = leaver
        .wait_exit(Duration::from_secs(10))
        .expect("the worker exits by itself after SIGTERM");
    assert!(
        status.success(),
        "worker exit: {status:?}: {}",
        leaver.stderr_so_far()
    );
    assert!(
        !leaver.stderr_so_far().contains("second signal"),
        "one signal delivered twice by timeout is one: {}",
        leaver.stderr_so_far()
    );
    let exit_after = signalled.elapsed();
    assert!(
        exit_after < Duration::from_secs(6),
        "the worker took {exit_after:?} to leave"
    );

    let (output, _) = run.join().unwrap();
    // A graceful leave loses nothing: the run completes.
    assert!(output.status.success(), "{}", describe(&output));
    let r = read_report(&out);

    let ws = r["workers"].as_array().unwrap();
    assert_eq!(ws.len(), 3, "{ws:?}");
    assert!(
        ws.iter().all(|w| w["lost_at_s"].is_null()),
        "nobody lost: {ws:?}"
    );
    let left: Vec<_> = ws.iter().filter(|w| !w["left_at_s"].is_null()).collect();
    assert_eq!(left.len(), 1, "{ws:?}");
    let left_at = f(left[0], "left_at_s");
    // The next whole second at least 0.6 s after the coordinator heard it:
    // within about a second of the signal, not after the 20 s timeout.
    assert_eq!(left_at, left_at.round(), "a second boundary");
    assert!(
        left_at >= signalled_at_s + 0.5 && left_at <= signalled_at_s + 2.0,
        "left at {left_at} s, signalled at about {signalled_at_s:.2} s"
    );
    // Until then it sent its third of the schedule, all of it answered.
    let share = RATE / 3 * left_at as u64;
    assert_eq!(u(&left[0]["requests"], "intended"), share);
    assert_eq!(u(&left[0]["requests"], "ok"), share);

    // The whole schedule, every second of it, exactly once: no gap and no
    // overlap at the hand-over, nothing lost, nothing dropped.
    assert_accounted(&r["requests"], "run");
    assert_eq!(u(&r, "requests.intended"), RATE * SECONDS);
    assert_eq!(u(&r, "requests.ok"), RATE * SECONDS);
    assert_eq!(u(&r, "requests.unsent"), 0);
    assert_eq!(u(&r, "errors_by_kind.lost"), 0);
    for i in r["intervals"].as_array().unwrap() {
        if u(i, "t_s") < SECONDS {
            assert_eq!(u(i, "intended"), RATE, "second {}", u(i, "t_s"));
        }
    }
    // The target's own counter agrees.
    assert_eq!(
        target_stats(&url)["requests"].as_u64().unwrap(),
        RATE * SECONDS
    );

    let ev = events(&r);
    assert!(
        ev.iter()
            .any(|e| e.contains("left at") && e.contains("SIGTERM")),
        "{ev:?}"
    );
    assert!(ev.iter().any(|e| e.contains("re-split")), "{ev:?}");
    assert!(!ev.iter().any(|e| e.contains("lost")), "{ev:?}");
}

#[test]
fn sigterm_to_serve_stops_the_run_keeps_its_report_and_a_restart_has_it() {
    let _serial = serial();
    const RATE: u64 = 400;
    let (_target, url) = start_target(&[]);
    let data = TempDir::new("serve-term");
    let data_dir = data.path().to_str().unwrap().to_string();
    let (mut coord, coord_url) = start_coordinator(&["--data-dir", &data_dir]);
    let mut workers: Vec<Proc> = (0..2).map(|_| start_worker(&coord_url, &[])).collect();
    let toml = format!(
        "name = \"term\"\n[target]\nurl = \"{url}\"\ntimeout = \"2s\"\n[[stages]]\nrate = {RATE}\nduration = \"20s\"\n"
    );
    let s = submission(&coord_url, "serve-term", &toml, &["--min-workers", "2"]);
    let out = s.out.clone();
    let mut client = spawn(s.cmd, "volley run");
    // About 3 s into the run by the target's own count.
    wait_served(&url, 3 * RATE, Duration::from_secs(30));
    coord.signal("TERM");
    let signalled = Instant::now();
    let served_at_signal = target_stats(&url)["requests"].as_u64().unwrap();

    // The coordinator stops the load, hands the partial report over and
    // exits 0 on its own, well within a Kubernetes grace period.
    let status = coord
        .wait_exit(Duration::from_secs(30))
        .expect("volley serve exits after SIGTERM");
    assert!(status.success(), "serve exit: {status:?}");
    let took = signalled.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "serve took {took:?} to stop"
    );
    // The load stopped within about a second of the signal.
    let served = target_stats(&url)["requests"].as_u64().unwrap();
    assert!(
        served - served_at_signal <= 2 * RATE,
        "{served_at_signal} -> {served} after the signal"
    );
    // The submitting client got the partial report: exit 3, incomplete.
    let status = client
        .wait_exit(Duration::from_secs(20))
        .expect("the client ends with the run");
    assert_eq!(status.code(), Some(3), "a run cut short is incomplete");
    let r = read_report(&out);
    assert_eq!(r["complete"], false);
    let why = r["incomplete_reason"].as_str().unwrap();
    assert!(why.contains("coordinator was shut down"), "{why}");
    assert_accounted(&r["requests"], "stopped run");
    assert!(u(&r, "requests.ok") >= 3 * RATE, "{}", r["requests"]);
    // Every request the target answered is in the report.
    assert_eq!(u(&r, "requests.ok"), served);

    // The data dir holds the same report, marked finished, so the run is
    // not resumed by the next coordinator but kept.
    let run_id = r["run_id"].as_str().unwrap().to_string();
    let run_dir = data.path().join("runs").join(&run_id);
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(stored, r, "the data dir's report is the client's");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(meta["status"], "finished", "{meta}");

    // Workers are not lost with it: they wait and connect to the next one.
    for w in workers.iter_mut() {
        assert!(
            w.child.try_wait().unwrap().is_none(),
            "a worker exited with the coordinator"
        );
    }
    let addr = coord_url.trim_start_matches("http://").to_string();
    let (_coord2, coord2_url) = start_coordinator(&["--data-dir", &data_dir, "--listen", &addr]);
    let again = format!(
        "name = \"after\"\n[target]\nurl = \"{url}\"\n[[stages]]\nrate = 100\nduration = \"2s\"\n"
    );
    let (r2, _dir2) = run_to_report(&coord2_url, "serve-term-2", &again, &["--min-workers", "2"]);
    assert_eq!(u(&r2, "requests.ok"), 200);
    // The stopped run was not resumed: its stored report is untouched.
    let stored_again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(stored_again, stored);
    // And the new coordinator hands it out: `volley fetch` writes the run
    // directory the client wrote, every second of it.
    let fetched = data.path().join("fetched");
    let mut cmd = volley();
    cmd.args(["fetch", &run_id, "--coordinator", &coord2_url])
        .args(["--out", fetched.to_str().unwrap()]);
    let (output, _) = run_bounded(cmd, Duration::from_secs(60));
    assert_eq!(
        output.status.code(),
        Some(3),
        "an incomplete run: {}",
        describe(&output)
    );
    for file in ["report.json", "latency.hlog"] {
        assert_eq!(
            std::fs::read(fetched.join(file)).unwrap(),
            std::fs::read(out.join(file)).unwrap(),
            "{file}: fetched after the restart vs what the client wrote"
        );
    }
}

#[test]
fn sigterm_to_the_target_closes_its_listeners_and_exits_0() {
    let (mut target, url) = start_target(&[]);
    assert_eq!(target_stats(&url)["requests"].as_u64(), Some(0));
    target.signal("TERM");
    let status = target
        .wait_exit(Duration::from_secs(10))
        .expect("volley target exits after SIGTERM");
    assert!(status.success(), "target exit: {status:?}");
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the listener is closed"
    );
}
