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
