//! A latency figure is never flattered: when the target stalls, every request
//! that was due during the stall carries the stall in its latency
//! (coordinated omission corrected).

mod common;

use common::*;
use std::time::Duration;

#[test]
fn a_stalled_target_shows_in_the_latency_of_requests_due_during_the_stall() {
    let _serial = serial();
    let (target, url) = start_target(&[]);
    let (_coord, coord_url) = start_coordinator(&[]);
    let _w = start_worker(&coord_url, &[]);
    // 500 rps for 6 s; the target is frozen (SIGSTOP) for 1 s in the middle.
    let toml = format!(
        "[target]\nurl = \"{url}\"\ntimeout = \"5s\"\n[load]\nconnections = 32\n[[stages]]\nrate = 500\nduration = \"6s\"\n"
    );
    let Submission {
        dir: _dir,
        out,
        cmd,
    } = submission(&coord_url, "stall", &toml, &[]);
    let run = std::thread::spawn(move || run_bounded(cmd, Duration::from_secs(60)));
    // Freeze it once 3 s of load were served (the target's own count), not
    // after an assumed setup time. The 1 s freeze itself is the stall.
    wait_served(&url, 1500, Duration::from_secs(30));
    target.signal("STOP");
    std::thread::sleep(Duration::from_millis(1000));
    target.signal("CONT");
    let (output, _) = run.join().unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    let r = read_report(&out);
    assert_accounted(&r["requests"], "run");
    assert_eq!(u(&r, "requests.errors"), 0);
    // About 500 requests (1/6 of the run) were due during the 1 s stall; the
    // first waited ~1 s, the last ~0. So ~1/6 of all latencies spread over
    // 0..1 s: the max is near 1 s and the p95 (the worst 30 % of the stalled
    // ones) is at least ~0.6 s. A tool that measured from the actual send
    // would report a p95 of a millisecond or two.
    let max = f(&r, "latency_ms.max");
    let p95 = f(&r, "latency_ms.p95");
    assert!(max >= 900.0, "max {max} ms should carry the 1 s stall");
    assert!(p95 >= 500.0, "p95 {p95} ms should carry the stall");
    // The service time (from the actual send) does not see most of it: only
    // the 32 requests already on the wire waited on the frozen target.
    let service_p95 = f(&r, "service_time_ms.p95");
    assert!(
        service_p95 < p95 / 2.0,
        "service p95 {service_p95} vs latency p95 {p95}"
    );
}
