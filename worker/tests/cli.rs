//! The `volley-worker` binary's argument handling. (These tests also make
//! cargo build the binary that `integration-tests/` drives.)

use std::process::Command;

fn worker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_volley-worker"))
}

#[test]
fn the_coordinator_address_is_required() {
    let out = worker().env_remove("VOLLEY_COORDINATOR").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--coordinator"));
}

#[test]
fn a_weight_out_of_range_exits_2() {
    let out = worker()
        .args(["--coordinator", "http://127.0.0.1:9", "--weight", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--weight"));
}

#[test]
fn a_thread_count_out_of_range_exits_2_and_names_the_flag() {
    for bad in ["0", "1025"] {
        let out = worker()
            .args(["--coordinator", "http://127.0.0.1:9", "--threads", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--threads {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("--threads: expected 1..=1024, got {bad}")),
            "{err}"
        );
    }
    let out = worker()
        .args(["--coordinator", "http://127.0.0.1:9", "--threads", "two"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"));
}
