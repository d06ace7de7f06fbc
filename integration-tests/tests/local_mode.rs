//! The README's quickstart command: the embedded default runs the example
//! end to end and writes its report.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn the_quickstart_runs_on_the_embedded_default() {
    let _serial = serial();
    let dir = TempDir::new("quickstart");
    let out = dir.path().join("out");
    let mut cmd = volley();
    cmd.args([
        "run",
        examples_dir().join("quickstart.toml").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let (output, _) = run_bounded(cmd, Duration::from_secs(90));
    assert!(output.status.success(), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    // A live line per second while it runs.
    let live = stdout
        .lines()
        .filter(|l| l.starts_with('[') && l.contains("target"))
        .count();
    assert!(live >= 10, "expected a line per second:\n{stdout}");
    let r = read_report(&out);
    assert_accounted(&r["requests"], "run");
    assert_eq!(u(&r, "requests.intended"), 200 * 3 + 1000 * 7);
    assert_eq!(u(&r, "requests.ok"), u(&r, "requests.intended"));
    assert_eq!(r["stages"].as_array().unwrap().len(), 2);
    for f in ["report.json", "report.md", "latency.hlog"] {
        assert!(out.join(f).exists(), "{f} written");
    }
}

/// What a Kubernetes Job (the chart's run Job, in an image with no shell)
/// relies on: `--print-report` puts report.md in the log, exactly as
/// written, after the summary; `--wait-for` holds the run until an address
/// accepts connections.
#[test]
fn print_report_puts_report_md_on_stdout_after_waiting_for_an_address() {
    let _serial = serial();
    let toml = "name = \"printed\"\nthresholds = [\"success_rate > 0.99\"]\n[target]\nbuiltin = true\n[[stages]]\nname = \"main\"\nrate = 100\nduration = \"2s\"\n";
    // Bound before the run starts: the run must connect to it and go on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let s = local_submission(
        "print-report",
        toml,
        &["--print-report", "--wait-for", &addr, "--wait", "20s"],
    );
    let (output, _) = run_bounded(s.cmd, Duration::from_secs(90));
    assert!(output.status.success(), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let md = std::fs::read_to_string(s.out.join("report.md")).unwrap();
    assert_eq!(u(&read_report(&s.out), "requests.intended"), 200);
    let begin = format!("----- {} -----\n", s.out.join("report.md").display());
    let printed = stdout
        .split_once(&begin)
        .unwrap_or_else(|| panic!("no report.md marker in stdout:\n{stdout}"))
        .1;
    let (body, after) = printed
        .split_once("----- end of report -----\n")
        .unwrap_or_else(|| panic!("no end marker in stdout:\n{stdout}"));
    assert_eq!(body, md, "report.md is printed exactly as written");
    assert_eq!(after, "", "report.md comes last");
    let summary = stdout
        .find("PASS success_rate > 0.99")
        .expect("the summary");
    assert!(
        summary < stdout.find(&begin).unwrap(),
        "the summary comes first"
    );
    drop(listener);
}

#[test]
fn wait_for_an_address_that_never_answers_exits_3_naming_it() {
    let _serial = serial();
    let toml = "name = \"unreachable\"\n[target]\nbuiltin = true\n[[stages]]\nname = \"main\"\nrate = 10\nduration = \"1s\"\n";
    // A port nobody listens on: bound, then closed.
    let addr = format!("127.0.0.1:{}", free_port());
    let s = local_submission("wait-for", toml, &["--wait-for", &addr, "--wait", "2s"]);
    let (output, took) = run_bounded(s.cmd, Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("--wait-for {addr}: still unreachable after 2s")),
        "{stderr}"
    );
    assert!(took >= Duration::from_secs(2), "it waited: {took:?}");
    assert!(!s.out.exists(), "no run was started");

    // Bad input is reported at once: a malformed address, and a bad scenario
    // even when the address would be waited for.
    let s = local_submission("wait-for-bad", toml, &["--wait-for", "nohost"]);
    let (output, _) = run_bounded(s.cmd, Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected HOST:PORT"));
    let s = local_submission(
        "wait-for-bad-scenario",
        "name = 1\n",
        &["--wait-for", &addr, "--wait", "60s"],
    );
    let (output, took) = run_bounded(s.cmd, Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        took < Duration::from_secs(10),
        "not after the wait: {took:?}"
    );
}
