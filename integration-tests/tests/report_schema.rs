//! report.json against its checked-in JSON Schema, and `--junit` against a
//! published JUnit XSD, on reports of real runs: every protocol against an
//! independent server (nginx, grpcio) or the built-in target, a mix of
//! request definitions, a burst with its recovery, passing, warning and
//! failing thresholds, regressions against a baseline, and a worker killed
//! mid-run.
//!
//! The consumers are independent of Volley: Python's `jsonschema` validates
//! the reports (`python/validate_report.py`); `xmlschema` validates the
//! JUnit files against the Jenkins xUnit plugin's junit-10.xsd
//! (`schemas/`) and `junitparser` reads them (`python/check_junit.py`).
//! Their counts must be the verdicts of report.json.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn schema_file() -> PathBuf {
    workspace().join("docs/report.schema.json")
}

fn python(script: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/python")
            .join(script),
    );
    cmd
}

/// Validates every report with `jsonschema`; panics with its errors.
fn assert_valid(reports: &[PathBuf]) {
    assert!(!reports.is_empty());
    let mut cmd = python("validate_report.py");
    cmd.arg(schema_file()).args(reports);
    let (out, _) = run_bounded(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "report.json does not match docs/report.schema.json:\n{}",
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        reports.len(),
        "{stdout}"
    );
}

/// `jsonschema`'s verdict on one report: the lines it printed, and whether
/// it accepted it.
fn validation_of(report: &Value, dir: &TempDir, name: &str) -> (bool, String) {
    let path = dir.write(name, &serde_json::to_string_pretty(report).unwrap());
    let mut cmd = python("validate_report.py");
    cmd.arg(schema_file()).arg(&path);
    let (out, _) = run_bounded(cmd, Duration::from_secs(60));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The JUnit file validated against junit-10.xsd and read by
/// `junitparser`: what it saw.
fn read_junit(path: &Path) -> Value {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas/junit-10.xsd");
    assert!(
        xsd.is_file(),
        "{} is missing: ./test.sh fetches it from pytest's source distribution on PyPI",
        xsd.display()
    );
    let mut cmd = python("check_junit.py");
    cmd.arg(xsd).arg(path);
    let (out, _) = run_bounded(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{} does not validate against junit-10.xsd:\n{}",
        path.display(),
        describe(&out)
    );
    serde_json::from_slice(&out.stdout).expect("check_junit.py prints JSON")
}

/// The JUnit file, as junitparser read it, says what report.json says: a
/// case per threshold and per regression row, in order, failed exactly
/// where the verdict failed (and, under `strict`, where it warned), and
/// the run's metadata in each suite's properties.
fn assert_junit_matches(j: &Value, r: &Value, exit: i32, strict: bool) {
    let thresholds = r["thresholds"].as_array().unwrap();
    let regressions = r["regressions"].as_array().unwrap();
    let failed_t = thresholds
        .iter()
        .filter(|t| t["status"] == "fail" || (strict && t["status"] == "warn"))
        .count();
    let failed_r = regressions.iter().filter(|x| x["pass"] == false).count();
    let noted = regressions
        .iter()
        .filter(|x| x["pass"] == true && x.get("note").is_some())
        .count();
    assert_eq!(j["root"], "JUnitXml", "the root is <testsuites>: {j}");
    assert_eq!(
        j["tests"].as_u64(),
        Some((thresholds.len() + regressions.len()) as u64),
        "{j}"
    );
    assert_eq!(j["failures"].as_u64(), Some((failed_t + failed_r) as u64));
    assert_eq!(j["errors"].as_u64(), Some(0));
    let suites = j["suites"].as_array().unwrap();
    assert_eq!(suites.len(), 2, "{j}");
    let (ts, rs) = (&suites[0], &suites[1]);
    assert_eq!(ts["name"], "thresholds");
    assert_eq!(rs["name"], "regressions");
    assert_eq!(ts["failures"].as_u64(), Some(failed_t as u64));
    assert_eq!(rs["failures"].as_u64(), Some(failed_r as u64));
    assert_eq!(rs["skipped"].as_u64(), Some(noted as u64));

    // Case by case, as junitparser classifies the results.
    let cases = ts["cases"].as_array().unwrap();
    assert_eq!(cases.len(), thresholds.len());
    for (c, t) in cases.iter().zip(thresholds) {
        assert_eq!(c["name"], t["expr"], "{c}");
        let status = t["status"].as_str().unwrap();
        let failed = status == "fail" || (strict && status == "warn");
        let results = c["results"].as_array().unwrap();
        if failed {
            assert_eq!(results, &[Value::from("Failure")], "{c}");
        } else {
            assert!(results.is_empty(), "{c}");
        }
        let says_warn = c["system_out"]
            .as_str()
            .is_some_and(|s| s.starts_with("warn: "));
        assert_eq!(says_warn, status == "warn" && !strict, "{c}");
    }
    let cases = rs["cases"].as_array().unwrap();
    assert_eq!(cases.len(), regressions.len());
    for (c, x) in cases.iter().zip(regressions) {
        assert_eq!(c["name"], x["metric"], "{c}");
        let expected: &[&str] = match (x["pass"].as_bool().unwrap(), x.get("note")) {
            (false, _) => &["Failure"],
            (true, Some(_)) => &["Skipped"],
            (true, None) => &[],
        };
        assert_eq!(c["results"], serde_json::json!(expected), "{c}");
    }

    let verdict = match exit {
        0 => "pass",
        1 => "fail",
        _ => "incomplete",
    };
    for s in suites {
        let p = &s["properties"];
        assert_eq!(p["run_id"], r["run_id"], "{p}");
        assert_eq!(p["scenario"], r["scenario"], "{p}");
        assert_eq!(p["target"], r["target"]["url"], "{p}");
        assert_eq!(p["protocol"], r["target"]["protocol"], "{p}");
        let figure = |k: &str| p[k].as_str().unwrap().parse::<f64>().unwrap();
        assert_eq!(figure("duration_s"), f(r, "duration_s"), "{p}");
        assert_eq!(figure("achieved_rps"), f(r, "achieved_rps"), "{p}");
        assert_eq!(p["complete"], r["complete"].to_string(), "{p}");
        assert_eq!(p["verdict"], verdict, "{p}");
        assert_eq!(p["exit_code"], exit.to_string(), "{p}");
    }
}

/// Runs `cmd` to its end; its exit code.
fn exit_of(cmd: Command) -> (i32, std::process::Output) {
    let (out, _) = run_bounded(cmd, Duration::from_secs(90));
    let code = out.status.code().expect("exited, not killed");
    (code, out)
}

#[test]
fn volley_schema_report_prints_the_checked_in_schema() {
    let mut cmd = volley();
    cmd.args(["schema", "report"]);
    let (code, out) = exit_of(cmd);
    assert_eq!(code, 0, "{}", describe(&out));
    let checked_in = std::fs::read(schema_file()).unwrap();
    assert!(
        out.stdout == checked_in,
        "`volley schema report` differs from docs/report.schema.json; regenerate it with\n    \
         cargo run -q -p volley-coordinator -- schema report > docs/report.schema.json"
    );
    let s: Value = serde_json::from_slice(&checked_in).unwrap();
    assert_eq!(
        s["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "jsonschema picks its validator from $schema"
    );
    // Anything else is bad input.
    let mut cmd = volley();
    cmd.args(["schema", "scenario"]);
    let (code, out) = exit_of(cmd);
    assert_eq!(code, 2, "{}", describe(&out));
}

/// One stage of `rate` for `secs` at the target keys given; `more` is
/// appended (`[[requests]]` tables).
fn scenario(name: &str, target: &str, rate: u32, secs: &str, more: &str) -> String {
    format!(
        "name = \"{name}\"\n[target]\n{target}\ntimeout = \"2s\"\n[load]\nconnections = 2\n\
         [[stages]]\nname = \"main\"\nrate = {rate}\nduration = \"{secs}\"\n{more}"
    )
}

#[test]
fn every_protocol_and_a_request_mix_write_reports_the_schema_accepts() {
    let _serial = serial();
    let (_target, url, tcp) = start_target_with_tcp(&[]);
    let nginx = start_nginx_h2(64);
    let echo = start_grpc_echo(None);
    let mix = r#"
[[requests]]
name = "read"
weight = 3
method = "GET"
path = "/items"

[[requests]]
name = "write"
weight = 1
method = "POST"
path = "/orders"
body_size = 16
"#;
    let runs = [
        ("http1", format!("url = \"{url}\""), ""),
        ("http1-mix", format!("url = \"{url}\""), mix),
        (
            "http2",
            format!("url = \"{}\"\nprotocol = \"http2\"", nginx.url("/items")),
            "",
        ),
        (
            "grpc",
            format!(
                "url = \"{}\"\nprotocol = \"grpc\"\nmethod = \"/echo.Echo/Say\"\nbody_size = 32",
                echo.url()
            ),
            "",
        ),
        (
            "tcp",
            format!("url = \"tcp://{tcp}\"\nprotocol = \"tcp\"\nbody_size = 32"),
            "",
        ),
    ];
    let mut dirs = Vec::new();
    let mut reports = Vec::new();
    for (tag, target, more) in &runs {
        let toml = scenario(tag, target, 100, "1500ms", more);
        let (r, dir) = run_local_to_report(tag, &toml, &["--local-workers", "1"]);
        // Real traffic, of that protocol, made this report.
        assert_eq!(u(&r, "requests.ok"), 150, "{tag}: {}", r["errors_by_kind"]);
        let protocol = tag.split('-').next().unwrap();
        assert_eq!(r["target"]["protocol"], protocol, "{tag}");
        if *tag == "http1-mix" {
            assert_eq!(r["per_request"].as_array().map(Vec::len), Some(2), "{tag}");
        }
        reports.push(dir.path().join("out/report.json"));
        dirs.push(dir);
    }
    assert!(nginx.requests_served() >= 150);
    assert_eq!(echo.ok_count(), 150);
    assert_valid(&reports);
}

#[test]
fn burst_thresholds_and_regressions_write_valid_reports_and_junit() {
    let _serial = serial();
    // The target serves 300 requests/s: a 1 s burst at 600 leaves a
    // backlog of ~300, drained at 200/s after it.
    let (_target, url) = start_target(&["--capacity", "300"]);
    let toml = format!(
        r#"
name = "burst-verdicts"
thresholds = ["recovery_time < 30s", "success_rate > 0.5", "p99 < 10s warn 1ms", "max < 1ms"]
recovery_window = "1s"
recovery_tolerance = "50%"
[target]
url = "{url}"
timeout = "5s"
[[stages]]
name = "baseline"
rate = 100
duration = "1500ms"
[[stages]]
name = "burst"
rate = 600
duration = "1s"
burst = true
[[stages]]
name = "after"
rate = 100
duration = "2500ms"
"#
    );
    // 1. `volley run --junit`: pass, pass, warn, fail (the burst's queue
    // puts max and p99 above 1 ms) → exit 1.
    let s = local_submission("burst", &toml, &["--local-workers", "1"]);
    let junit = s.dir.path().join("junit/run.xml");
    let mut cmd = s.cmd;
    cmd.arg("--junit").arg(&junit);
    let (code, out) = exit_of(cmd);
    assert_eq!(code, 1, "a failed threshold: {}", describe(&out));
    let report_path = s.out.join("report.json");
    let r = read_report(&s.out);
    let statuses: Vec<&str> = r["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["pass", "pass", "warn", "fail"],
        "{}",
        r["thresholds"]
    );
    assert_eq!(
        r["recovery"].as_array().unwrap().len(),
        1,
        "{}",
        r["recovery"]
    );
    assert_eq!(r["recovery"][0]["stage"], "burst");
    assert_junit_matches(&read_junit(&junit), &r, 1, false);

    // 2. `volley report --baseline --junit` against a baseline twice as
    // fast: the rate rows regress. Its JSON is a report too.
    let mut fast = r.clone();
    for k in ["throughput_rps", "achieved_rps"] {
        fast[k] = Value::from(f(&r, k) * 2.0);
    }
    let baseline = s.dir.write("fast.json", &fast.to_string());
    let compared = s.dir.path().join("compared.json");
    let junit2 = s.dir.path().join("report.xml");
    let mut cmd = volley();
    cmd.arg("report")
        .arg(&report_path)
        .arg("--baseline")
        .arg(&baseline)
        .args(["--format", "json", "--junit"])
        .arg(&junit2);
    let (code, out) = exit_of(cmd);
    assert_eq!(code, 1, "{}", describe(&out));
    std::fs::write(&compared, &out.stdout).unwrap();
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    let failing: Vec<&str> = c["regressions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["pass"] == false)
        .map(|x| x["metric"].as_str().unwrap())
        .collect();
    assert!(
        failing.contains(&"throughput_rps") && failing.contains(&"achieved_rps"),
        "{}",
        c["regressions"]
    );
    assert_junit_matches(&read_junit(&junit2), &c, 1, false);

    // --strict: the warning is a failure in the file as in the exit code.
    let junit3 = s.dir.path().join("strict.xml");
    let mut cmd = volley();
    cmd.arg("report")
        .arg(&report_path)
        .args(["--strict", "--junit"])
        .arg(&junit3);
    let (code, out) = exit_of(cmd);
    assert_eq!(code, 1, "{}", describe(&out));
    assert_junit_matches(&read_junit(&junit3), &r, 1, true);

    // A directory is no --junit file: bad input, named.
    let mut cmd = volley();
    cmd.arg("report")
        .arg(&report_path)
        .arg("--junit")
        .arg(s.dir.path());
    let (code, out) = exit_of(cmd);
    assert_eq!(code, 2, "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--junit"),
        "{}",
        describe(&out)
    );

    // 3. `volley run --baseline --junit`: a steady run compared with the
    // burst run; its report.json carries the regression rows.
    let steady = format!(
        "name = \"steady\"\nthresholds = [\"success_rate > 0.5\"]\n[target]\nurl = \"{url}\"\n\
         [[stages]]\nname = \"main\"\nrate = 100\nduration = \"1500ms\"\n"
    );
    let s2 = local_submission("steady", &steady, &["--local-workers", "1"]);
    let junit4 = s2.dir.path().join("steady.xml");
    let mut cmd = s2.cmd;
    cmd.arg("--baseline")
        .arg(&report_path)
        .arg("--junit")
        .arg(&junit4);
    let (code, out) = exit_of(cmd);
    assert!(code == 0 || code == 1, "{}", describe(&out));
    let r2 = read_report(&s2.out);
    assert!(!r2["regressions"].as_array().unwrap().is_empty(), "{r2}");
    assert_junit_matches(&read_junit(&junit4), &r2, code, false);

    assert_valid(&[
        report_path.clone(),
        compared.clone(),
        s2.out.join("report.json"),
    ]);

    // The schema is strict: a field it does not name, at the top or
    // nested, fails validation, and so does a missing one.
    let (ok, _) = validation_of(&r, &s.dir, "same.json");
    assert!(ok, "the report as written validates");
    let mut extra = r.clone();
    extra["surprise"] = Value::from(1);
    let (ok, said) = validation_of(&extra, &s.dir, "extra.json");
    assert!(!ok && said.contains("surprise"), "{said}");
    let mut nested = r.clone();
    nested["recovery"][0]["surprise"] = Value::from(1);
    let (ok, said) = validation_of(&nested, &s.dir, "nested.json");
    assert!(!ok && said.contains("at recovery/0"), "{said}");
    let mut missing = r.clone();
    missing.as_object_mut().unwrap().remove("achieved_rps");
    let (ok, said) = validation_of(&missing, &s.dir, "missing.json");
    assert!(!ok && said.contains("achieved_rps"), "{said}");
    let mut v2 = r.clone();
    v2["schema"] = Value::from("volley.report.v2");
    let (ok, _) = validation_of(&v2, &s.dir, "v2.json");
    assert!(!ok, "a v1 schema accepts only v1 reports");
}

#[test]
fn a_run_that_lost_a_worker_writes_a_valid_report_and_junit() {
    let _serial = serial();
    const RATE: u64 = 200;
    let (_target, url) = start_target(&["--delay", "5ms"]);
    let (_coord, coord_url) = start_coordinator(&["--heartbeat-timeout", "2s"]);
    let mut workers: Vec<Proc> = (0..2).map(|_| start_worker(&coord_url, &[])).collect();
    let toml = format!(
        "name = \"lost\"\nthresholds = [\"success_rate > 0.2\"]\n[target]\nurl = \"{url}\"\n\
         timeout = \"2s\"\n[[stages]]\nname = \"main\"\nrate = {RATE}\nduration = \"4s\"\n"
    );
    let sub = announced_submission(&coord_url, "lost", &toml, &["--min-workers", "2"]);
    let junit = sub.dir.path().join("lost.xml");
    let mut cmd = sub.cmd;
    cmd.arg("--junit").arg(&junit);
    let mut run = spawn(cmd, "volley run");
    run.wait_stderr(STARTED, Duration::from_secs(30));
    wait_served(&url, RATE, Duration::from_secs(30));
    let victim = workers.remove(1);
    victim.signal("KILL");
    let status = run
        .wait_exit(Duration::from_secs(90))
        .expect("volley run ends");
    drop(victim);
    assert!(status.success(), "{}", run.stderr_so_far());
    let r = read_report(&sub.out);
    let lost = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| !w["lost_at_s"].is_null())
        .count();
    assert_eq!(lost, 1, "{}", r["workers"]);
    assert!(
        r["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["text"].as_str().unwrap_or("").contains("lost")),
        "{}",
        r["events"]
    );
    assert_valid(&[sub.out.join("report.json")]);
    assert_junit_matches(&read_junit(&junit), &r, 0, false);
}
