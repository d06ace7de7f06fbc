//! The `volley` binary's argument handling. (These tests also make cargo
//! build the binary that `integration-tests/` drives.)

use std::process::Command;

fn volley() -> Command {
    Command::new(env!("CARGO_BIN_EXE_volley"))
}

#[test]
fn help_lists_the_commands() {
    let out = volley().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "serve", "target", "report"] {
        assert!(text.contains(cmd), "{cmd} missing from:\n{text}");
    }
}

#[test]
fn bad_flags_exit_2() {
    let out = volley().args(["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = volley()
        .args(["target", "--error-rate", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 0 and 1"));
}

#[test]
fn report_of_a_non_report_exits_2_naming_the_file() {
    let path =
        std::env::temp_dir().join(format!("volley-not-a-report-{}.json", std::process::id()));
    std::fs::write(&path, "{\"hello\": 1}").unwrap();
    let out = volley().arg("report").arg(&path).output().unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Volley report"));
}
