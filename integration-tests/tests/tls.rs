//! TLS between workers, the CLI and the coordinator, with certificates
//! generated for the test (openssl, installed by test.sh when missing).

mod common;

use common::*;
use std::time::Duration;

#[test]
fn workers_and_the_cli_talk_to_a_tls_coordinator() {
    let _serial = serial();
    let dir = TempDir::new("tls");
    certificates(dir.path());
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    let (_target, url) = start_target(&[]);
    let (_coord, coord_url) = start_coordinator(&[
        "--token",
        "tls-secret",
        "--tls-cert",
        &p("server.pem"),
        "--tls-key",
        &p("server.key"),
    ]);
    let https = coord_url.replace("http://127.0.0.1", "https://localhost");
    let _w = start_worker(&https, &["--token", "tls-secret", "--tls-ca", &p("ca.pem")]);
    // A worker that does not trust the CA never gets in: it fails the
    // certificate check, says so and exits 3 (retrying cannot make the
    // certificate trusted), before the run is even submitted.
    let mut stranger = start_worker(&https, &["--token", "tls-secret"]);
    let status = stranger
        .wait_exit(Duration::from_secs(20))
        .expect("the worker without the CA exits by itself");
    assert_eq!(status.code(), Some(3), "{}", stranger.stderr_so_far());
    let err = stranger.stderr_so_far();
    assert!(
        err.contains("certificate is not trusted") && err.contains("--tls-ca"),
        "the worker says why and what to pass: {err}"
    );
    let toml = format!("[target]\nurl = \"{url}\"\n[[stages]]\nrate = 100\nduration = \"2s\"\n");
    let (r, _run_dir) = run_to_report(
        &https,
        "tls-run",
        &toml,
        &["--token", "tls-secret", "--tls-ca", &p("ca.pem")],
    );
    assert_eq!(u(&r, "requests.ok"), 200);
    assert_eq!(
        r["workers"].as_array().unwrap().len(),
        1,
        "only the worker that trusts the CA took part"
    );

    // The operator's commands take the same TLS flags.
    let mut runs = volley();
    runs.args(["runs", "--output", "json", "--coordinator", &https])
        .args(["--token", "tls-secret", "--tls-ca", &p("ca.pem")]);
    let (out, _) = run_bounded(runs, Duration::from_secs(30));
    assert!(out.status.success(), "{}", describe(&out));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["id"], r["run_id"], "{listed}");

    // The CLI without the CA cannot submit: exit 3, and says why.
    let s = submission(&https, "tls-no-ca", &toml, &["--token", "tls-secret"]);
    let (output, took) = run_bounded(s.cmd, Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("cannot reach the coordinator") && err.contains("certificate"),
        "the CLI names the certificate as the reason: {err}"
    );
    assert!(
        took < Duration::from_secs(10),
        "an untrusted certificate fails at once, not after retrying: {took:?}"
    );
    assert!(!s.out.join("report.json").exists(), "nothing ran");
}
