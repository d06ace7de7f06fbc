//! What a user hits first when something is wrong: clear messages and the
//! contract's exit codes, quickly, without a hang or a flood of logs.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn a_broken_scenario_exits_2_naming_file_and_field() {
    let dir = TempDir::new("bad");
    let file = dir.write(
        "broken.toml",
        r#"
[target]
url = "http://127.0.0.1:9/"
[[stages]]
rate = -5
duration = "10s"
"#,
    );
    let mut cmd = volley();
    cmd.args(["run", file.to_str().unwrap(), "--quiet"]);
    let (out, _) = run_bounded(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.toml"), "names the file: {err}");
    assert!(err.contains("stages[0].rate"), "names the field: {err}");

    let file = dir.write(
        "typo.toml",
        "[target]\nurl = \"http://127.0.0.1:9/\"\n[[stages]]\nrat = 5\nduration = \"1s\"\n",
    );
    let mut cmd = volley();
    cmd.args(["run", file.to_str().unwrap()]);
    let (out, _) = run_bounded(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stages[0].rat"),
        "{}",
        describe(&out)
    );

    let mut cmd = volley();
    cmd.args(["run", dir.path().join("missing.toml").to_str().unwrap()]);
    let (out, _) = run_bounded(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn a_target_that_refuses_connections_ends_the_run_quickly_with_exit_3() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new("refused");
    let file = dir.write(
        "refused.toml",
        &format!("[target]\nurl = \"http://127.0.0.1:{port}/\"\n[[stages]]\nrate = 100\nduration = \"60s\"\n"),
    );
    let mut cmd = volley();
    cmd.args([
        "run",
        file.to_str().unwrap(),
        "--local-workers",
        "2",
        "--quiet",
    ]);
    let (out, took) = run_bounded(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unreachable") && err.contains(&port.to_string()),
        "{err}"
    );
    assert!(
        err.lines().count() < 20,
        "a clear message, not a flood:\n{err}"
    );
}

#[test]
fn no_workers_within_the_wait_exits_3() {
    let (_coord, coord_url) = start_coordinator(&[]);
    let dir = TempDir::new("noworkers");
    let file = dir.write(
        "s.toml",
        "[target]\nurl = \"http://127.0.0.1:9/\"\n[[stages]]\nrate = 10\nduration = \"1s\"\n",
    );
    let mut cmd = volley();
    cmd.args([
        "run",
        file.to_str().unwrap(),
        "--coordinator",
        &coord_url,
        "--min-workers",
        "2",
        "--wait",
        "1s",
    ]);
    let (out, _) = run_bounded(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no workers") && err.contains("0 of the 2"),
        "{err}"
    );
}

#[test]
fn an_unreachable_coordinator_exits_3() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new("nocoord");
    let file = dir.write(
        "s.toml",
        "[target]\nurl = \"http://127.0.0.1:9/\"\n[[stages]]\nrate = 10\nduration = \"1s\"\n",
    );
    let mut cmd = volley();
    cmd.args([
        "run",
        file.to_str().unwrap(),
        "--coordinator",
        &format!("http://127.0.0.1:{port}"),
        "--wait",
        "2s",
    ]);
    // The client retries for --wait (a coordinator may still be starting),
    // then gives up with exit 3.
    let (out, took) = run_bounded(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the coordinator"));
}

#[test]
fn serve_beyond_loopback_without_a_token_is_refused() {
    let mut cmd = volley();
    cmd.args(["serve", "--listen", "0.0.0.0:0"]);
    let (out, _) = run_bounded(cmd, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));
}
