//! Operating a running cluster from other terminals, with real processes:
//! `volley workers` and `volley runs` during a run, `volley stop` from a
//! second client, `volley attach` from a third, `volley fetch` after the
//! submitting client was killed and after the coordinator restarted on its
//! data dir, and the token checked by every command.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

const TOKEN: &str = "op-secret";

/// `volley ARGS --coordinator URL` (plus `--token TOKEN` unless the args
/// carry one), run to completion.
fn volley_op(coord: &str, args: &[&str], token: Option<&str>) -> Output {
    let mut cmd = volley();
    cmd.args(args).args(["--coordinator", coord]);
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    run_bounded(cmd, Duration::from_secs(90)).0
}

/// `volley runs|workers --output json`, parsed; exit 0 required.
fn list(coord: &str, what: &str, token: Option<&str>) -> Vec<Value> {
    let out = volley_op(coord, &[what, "--output", "json"], token);
    assert!(out.status.success(), "{}", describe(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`volley {what} --output json` is JSON: {e}\n{}",
            describe(&out)
        )
    });
    v.as_array().expect("a JSON array").clone()
}

/// Polls `volley runs` until `pred` holds for some run, and returns it.
fn wait_for_run(coord: &str, token: Option<&str>, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let runs = list(coord, "runs", token);
        if let Some(r) = runs.iter().find(|r| pred(r)) {
            return r.clone();
        }
        assert!(Instant::now() < deadline, "no such run; runs: {runs:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn scenario(name: &str, url: &str, rate: u32, secs: u32) -> String {
    format!(
        "name = \"{name}\"\nthresholds = [\"success_rate > 0.99\"]\n[target]\nurl = \"{url}\"\n\
         [[stages]]\nname = \"main\"\nrate = {rate}\nduration = \"{secs}s\"\n"
    )
}

const RUN_FILES: [&str; 5] = [
    "report.json",
    "report.md",
    "report.html",
    "latency.hlog",
    "workers.hlog",
];

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
}

fn assert_same_files(a: &Path, b: &Path, files: &[&str]) {
    for f in files {
        let (x, y) = (read(a, f), read(b, f));
        if x != y {
            let (x, y) = (String::from_utf8_lossy(&x), String::from_utf8_lossy(&y));
            let at = x.lines().zip(y.lines()).position(|(l, m)| l != m);
            panic!(
                "{f} differs between {} and {} (line {at:?}: {:?} vs {:?})",
                a.display(),
                b.display(),
                at.and_then(|i| x.lines().nth(i)),
                at.and_then(|i| y.lines().nth(i)),
            );
        }
    }
}

#[test]
fn workers_and_runs_during_a_run_and_fetch_writes_what_run_wrote() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let data = TempDir::new("op-data");
    let data_dir = data.path().to_str().unwrap().to_string();
    let (_coord, coord) = start_coordinator(&["--token", TOKEN, "--data-dir", &data_dir]);
    let _w1 = start_worker(&coord, &["--token", TOKEN, "--weight", "1"]);
    let _w3 = start_worker(&coord, &["--token", TOKEN, "--weight", "3"]);
    let run = submission(
        &coord,
        "op-core",
        &scenario("operate-core", &url, 200, 5),
        &["--min-workers", "2", "--token", TOKEN],
    );
    let out = run.out.clone();
    let client = std::thread::spawn(move || run_bounded(run.cmd, Duration::from_secs(60)).0);

    // During the run: the run under its scenario's name, and both workers
    // in it.
    let r = wait_for_run(&coord, Some(TOKEN), |r| r["state"] == "running");
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(r["scenario"], "operate-core", "the name, not s.toml: {r}");
    assert_eq!(r["duration_s"], 5.0);
    assert!(r["started_at"].as_str().unwrap().ends_with('Z'), "{r}");
    assert!(r["verdict"].is_null(), "{r}");
    let elapsed = f(&r, "elapsed_s");
    assert!((0.0..=5.0).contains(&elapsed), "{r}");

    let workers = list(&coord, "workers", Some(TOKEN));
    assert_eq!(workers.len(), 2, "{workers:?}");
    for w in &workers {
        assert_eq!(w["run"], id.as_str(), "{w}");
        assert_eq!(w["version"], env!("CARGO_PKG_VERSION"), "{w}");
        assert!(w["host"].is_string(), "{w}");
        // Same machine: the clocks agree to well under a second.
        assert!(f(w, "clock_offset_ms").abs() < 500.0, "{w}");
        // A report every second (heartbeats only while silent).
        assert!(u(w, "last_heartbeat_ago_ms") < 2000, "{w}");
        // No --threads: a thread per core the worker may use, which is
        // what this test process may use too.
        let cores = std::thread::available_parallelism().unwrap().get() as u64;
        assert_eq!(u(w, "threads"), cores.min(1024), "{w}");
    }

    // The table says the same, aligned, for people.
    let table = volley_op(&coord, &["runs"], Some(TOKEN));
    let text = String::from_utf8_lossy(&table.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("ID "), "{text}");
    let row = lines
        .iter()
        .find(|l| l.starts_with(&id))
        .expect("the run's row");
    assert!(
        row.contains("operate-core") && row.contains("running"),
        "{text}"
    );
    assert_eq!(
        row.find("operate-core"),
        lines[0].find("SCENARIO"),
        "columns line up: {text}"
    );

    let client = client.join().unwrap();
    assert!(client.status.success(), "{}", describe(&client));
    let report = read_report(&out);
    assert_eq!(report["run_id"], id.as_str());

    // The workers listed are the ones of the report, with their weights.
    let mut listed: Vec<(String, u64)> = workers
        .iter()
        .map(|w| (w["id"].as_str().unwrap().to_string(), u(w, "weight")))
        .collect();
    let mut reported: Vec<(String, u64)> = report["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["id"].as_str().unwrap().to_string(), u(w, "weight")))
        .collect();
    listed.sort();
    reported.sort();
    assert_eq!(listed, reported);
    let mut weights: Vec<u64> = listed.iter().map(|(_, w)| *w).collect();
    weights.sort();
    assert_eq!(weights, [1, 3]);

    // After the run: finished, passed, ran its five seconds.
    let r = wait_for_run(&coord, Some(TOKEN), |r| r["id"] == id.as_str());
    assert_eq!(
        (r["state"].as_str(), r["verdict"].as_str()),
        (Some("finished"), Some("pass"))
    );
    assert!((f(&r, "elapsed_s") - 5.0).abs() < 0.5, "{r}");
    let idle = list(&coord, "workers", Some(TOKEN));
    assert!(idle.iter().all(|w| w["run"].is_null()), "{idle:?}");

    // fetch writes the run directory `volley run` wrote, file for file.
    let fetched = data.path().join("fetched");
    let got = volley_op(
        &coord,
        &["fetch", &id, "--out", fetched.to_str().unwrap()],
        Some(TOKEN),
    );
    assert_eq!(got.status.code(), Some(0), "{}", describe(&got));
    assert_same_files(&out, &fetched, &RUN_FILES);
    // The report the coordinator stored.
    assert_same_files(
        &fetched,
        &data.path().join("runs").join(&id),
        &["report.json"],
    );
    let seconds = read_hlog(&fetched.join("latency.hlog"));
    assert_eq!(seconds.len(), report["intervals"].as_array().unwrap().len());
    let ok: u64 = seconds.iter().map(|(_, _, h)| h.len()).sum();
    assert_eq!(ok, u(&report, "requests.ok"));
}

#[test]
fn stop_from_a_second_client_and_attach_from_a_third() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let (_coord, coord) = start_coordinator(&[]);
    let _w = start_worker(&coord, &[]);
    let run = submission(&coord, "op-stop", &scenario("long", &url, 200, 60), &[]);
    let out = run.out.clone();
    let client = std::thread::spawn(move || run_bounded(run.cmd, Duration::from_secs(90)).0);
    // Under way for a second and more, so there is something to keep.
    let r = wait_for_run(&coord, None, |r| {
        r["state"] == "running" && r["elapsed_s"].as_f64() > Some(1.5)
    });
    let id = r["id"].as_str().unwrap().to_string();

    // A run still going has no report to fetch: exit 3, and the way on.
    let early = volley_op(&coord, &["fetch", &id], None);
    assert_eq!(early.status.code(), Some(3), "{}", describe(&early));
    let err = String::from_utf8_lossy(&early.stderr);
    assert!(
        err.contains("still running") && err.contains(&format!("volley attach {id}")),
        "{err}"
    );

    // A third terminal follows it.
    let dir = TempDir::new("op-attach");
    let attached = dir.path().join("attached");
    let mut attach = volley();
    attach
        .args(["attach", &id, "--quiet", "--coordinator", &coord])
        .args(["--out", attached.to_str().unwrap()]);
    let mut follower = spawn(attach, "volley attach");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut said = String::new();
    while !said.contains("following run") {
        said.push_str(&follower.stderr_so_far());
        assert!(Instant::now() < deadline, "attach never followed: {said}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A second terminal stops it: the stop returns once the run ended.
    let stop = volley_op(&coord, &["stop", &id], None);
    assert_eq!(stop.status.code(), Some(0), "{}", describe(&stop));
    assert!(
        String::from_utf8_lossy(&stop.stderr).contains("stopped after"),
        "{}",
        describe(&stop)
    );

    // The submitter gets the partial report and exits 3, as after Ctrl-C.
    let client = client.join().unwrap();
    assert_eq!(client.status.code(), Some(3), "{}", describe(&client));
    let report = read_report(&out);
    assert_eq!(report["complete"], false);
    assert!(
        report["incomplete_reason"]
            .as_str()
            .unwrap()
            .contains("volley stop"),
        "{}",
        report["incomplete_reason"]
    );
    assert_accounted(&report["requests"], "stopped run");
    assert!(
        u(&report, "requests.intended") < 200 * 30,
        "{}",
        report["requests"]
    );

    // The follower wrote the same report and merged log, and exited as the
    // submitter did.
    let status = follower
        .wait_exit(Duration::from_secs(20))
        .expect("attach ends with the run");
    assert_eq!(status.code(), Some(3));
    assert_same_files(
        &out,
        &attached,
        &["report.json", "report.md", "latency.hlog"],
    );

    let r = wait_for_run(&coord, None, |r| r["id"] == id.as_str());
    assert_eq!(
        (r["state"].as_str(), r["verdict"].as_str()),
        (Some("finished"), Some("incomplete"))
    );
    // Stopping it again is refused, saying why.
    let again = volley_op(&coord, &["stop", &id], None);
    assert_eq!(again.status.code(), Some(2), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not in progress"));
}

#[test]
fn fetch_after_the_client_was_killed_and_after_a_coordinator_restart() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let data = TempDir::new("op-restart");
    let data_dir = data.path().to_str().unwrap().to_string();
    let (coord_proc, coord) = start_coordinator(&["--data-dir", &data_dir]);
    let addr = coord.trim_start_matches("http://").to_string();
    let _w = start_worker(&coord, &[]);
    let run = submission(&coord, "op-kill", &scenario("job-pod", &url, 200, 4), &[]);
    let client = spawn(run.cmd, "volley run");
    let r = wait_for_run(&coord, None, |r| r["state"] == "running");
    let id = r["id"].as_str().unwrap().to_string();
    // The Job pod goes away mid-run.
    client.signal("KILL");
    drop(client);
    // The run goes on to its end without its client.
    let r = wait_for_run(&coord, None, |r| {
        r["id"] == id.as_str() && r["state"] == "finished"
    });
    assert_eq!(r["verdict"], "pass", "{r}");

    let first = data.path().join("first");
    let got = volley_op(
        &coord,
        &["fetch", &id, "--out", first.to_str().unwrap()],
        None,
    );
    assert_eq!(got.status.code(), Some(0), "{}", describe(&got));
    let report = read_report(&first);
    assert_eq!(report["complete"], true);
    assert_eq!(u(&report, "requests.intended"), 800);
    assert_same_files(
        &first,
        &data.path().join("runs").join(&id),
        &["report.json"],
    );
    // Every second, merged and per worker, as `volley run` writes them.
    let seconds = report["intervals"].as_array().unwrap().len();
    assert_eq!(read_hlog(&first.join("latency.hlog")).len(), seconds);
    let per_worker = read_hlog(&first.join("workers.hlog"));
    assert!(per_worker.iter().all(|(tag, _, _)| tag.is_some()));
    let ok: u64 = per_worker.iter().map(|(_, _, h)| h.len()).sum();
    assert_eq!(ok, u(&report, "requests.ok"));

    // The coordinator restarts on its data dir: the run is still listed
    // and fetches to the same files.
    coord_proc.signal("KILL");
    drop(coord_proc);
    let (_coord2, coord2) = start_coordinator(&["--data-dir", &data_dir, "--listen", &addr]);
    let r = wait_for_run(&coord2, None, |r| r["id"] == id.as_str());
    assert_eq!(r["scenario"], "job-pod");
    assert_eq!(
        (r["state"].as_str(), r["verdict"].as_str()),
        (Some("finished"), Some("pass"))
    );
    let second = data.path().join("second");
    let got = volley_op(
        &coord2,
        &["fetch", &id, "--out", second.to_str().unwrap()],
        None,
    );
    assert_eq!(got.status.code(), Some(0), "{}", describe(&got));
    assert_same_files(&first, &second, &RUN_FILES);
}

#[test]
fn a_wrong_token_is_refused_by_every_command() {
    let (_coord, coord) = start_coordinator(&["--token", TOKEN]);
    let id = "20260101-000000-abcdef";
    let commands: [&[&str]; 5] = [
        &["workers"],
        &["runs"],
        &["stop", id],
        &["fetch", id],
        &["attach", id],
    ];
    for args in commands {
        for (token, says) in [
            (Some("not-the-token"), "wrong token"),
            (None, "a token is required"),
        ] {
            let out = volley_op(&coord, args, token);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(says), "{args:?} with {token:?}: {err}");
            assert!(out.stdout.is_empty(), "{args:?}: nothing listed");
        }
    }
    // The right token through VOLLEY_TOKEN, as `volley run` reads it.
    let mut cmd = volley();
    cmd.args(["runs", "--output", "json"])
        .env("VOLLEY_COORDINATOR", &coord)
        .env("VOLLEY_TOKEN", TOKEN);
    let (out, _) = run_bounded(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    // With it, an unknown run and a malformed id are bad input too.
    let out = volley_op(&coord, &["stop", id], Some(TOKEN));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("no run {id}")));
    let out = volley_op(&coord, &["fetch", "../etc"], Some(TOKEN));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a run id"));
}

/// `--keep-reports-mib`: a coordinator without a data dir keeps the newest
/// reports in memory up to that much, and says so for an older one rather
/// than writing an empty report. With 0 only the newest is kept.
#[test]
fn a_report_let_go_of_to_keep_newer_ones_is_refused_with_the_way_on() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let (_coord, coord) = start_coordinator(&["--keep-reports-mib", "0"]);
    let _w = start_worker(&coord, &[]);
    let mut ids = Vec::new();
    for name in ["older", "newer"] {
        let run = submission(&coord, "op-keep", &scenario(name, &url, 100, 1), &[]);
        let (out, _) = run_bounded(run.cmd, Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let r = wait_for_run(&coord, None, |r| {
            r["scenario"] == name && r["state"] == "finished"
        });
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    let dir = TempDir::new("op-keep-fetch");

    // The newest: fetched in full.
    let newer = dir.path().join("newer");
    let got = volley_op(
        &coord,
        &["fetch", &ids[1], "--out", newer.to_str().unwrap()],
        None,
    );
    assert_eq!(got.status.code(), Some(0), "{}", describe(&got));
    let report = read_report(&newer);
    assert_eq!(report["scenario"], "newer");
    assert_eq!(u(&report, "requests.ok"), 100);

    // The older: still listed, its report refused with exit 3 and why.
    let runs = list(&coord, "runs", None);
    assert!(
        runs.iter()
            .any(|r| r["id"] == ids[0].as_str() && r["verdict"] == "pass"),
        "{runs:?}"
    );
    let older = dir.path().join("older");
    for cmd in ["fetch", "attach"] {
        let got = volley_op(
            &coord,
            &[cmd, &ids[0], "--out", older.to_str().unwrap()],
            None,
        );
        assert_eq!(got.status.code(), Some(3), "{cmd}: {}", describe(&got));
        let err = String::from_utf8_lossy(&got.stderr);
        assert!(
            err.contains("no longer in this coordinator's memory")
                && err.contains("--keep-reports-mib")
                && err.contains("--data-dir"),
            "{cmd}: {err}"
        );
        assert!(
            !older.join("report.json").exists(),
            "{cmd} wrote no report for a run whose report is gone"
        );
    }
}
