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
    // A worker that does not trust the CA never gets in.
    let _stranger = start_worker(&https, &["--token", "tls-secret"]);
    let file = dir.write(
        "s.toml",
        &format!("[target]\nurl = \"{url}\"\n[[stages]]\nrate = 100\nduration = \"2s\"\n"),
    );
    let out = dir.path().join("out");
    let mut cmd = volley();
    cmd.args([
        "run",
        file.to_str().unwrap(),
        "--coordinator",
        &https,
        "--token",
        "tls-secret",
        "--quiet",
    ])
    .args(["--tls-ca", &p("ca.pem"), "--out", out.to_str().unwrap()]);
    let (output, _) = run_bounded(cmd, Duration::from_secs(60));
    assert!(output.status.success(), "{}", describe(&output));
    let r = read_report(&out);
    assert_eq!(u(&r, "requests.ok"), 200);
    assert_eq!(
        r["workers"].as_array().unwrap().len(),
        1,
        "only the worker that trusts the CA took part"
    );

    // The CLI without the CA cannot submit: exit 3, and says why.
    let mut cmd = volley();
    cmd.args([
        "run",
        file.to_str().unwrap(),
        "--coordinator",
        &https,
        "--token",
        "tls-secret",
        "--quiet",
    ]);
    let (output, _) = run_bounded(cmd, Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
}
