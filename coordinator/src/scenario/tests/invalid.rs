//! Refused files and top-level keys: unknown keys, syntax, binary input, read
//! errors. The field is asserted exactly and the message must say what was
//! expected.

use super::super::load;
use super::{err, expect, parse, with_stage, with_target, MIN};

const STAGE_KEYS: &str = "expected one of name, duration, rate, from, to, burst";

#[test]
fn unknown_keys_name_the_full_path() {
    let src = format!("{MIN}\n[[stages]]\nrat = 5\nduration = \"1s\"\n");
    let e = expect(&src, "stages[1].rat", &format!("unknown key; {STAGE_KEYS}"));
    assert!(e.message.contains("did you mean `rate`?"), "{e}");
    assert_eq!(e.line, Some(9));
    expect(
        &format!("tresholds = []\n{MIN}"),
        "tresholds",
        "did you mean `thresholds`?",
    );
    expect(
        &with_target("builtin = { dealy = \"1ms\" }"),
        "target.builtin.dealy",
        "expected one of delay,",
    );
    expect(
        &with_target("builtin = true\nurll = \"x\""),
        "target.urll",
        "did you mean `url`?",
    );
    expect(
        &format!("{MIN}[load]\nconnection = 5\n"),
        "load.connection",
        "did you mean `connections`?",
    );
    expect(
        &format!("rate = 5\n{MIN}"),
        "rate",
        "`rate` belongs in a [[stages]] table",
    );
    expect(
        &format!("{MIN}[load]\nurl = \"x\"\n"),
        "load.url",
        "belongs in the [target] table",
    );
}

#[test]
fn top_level_keys_after_a_table_get_a_hint() {
    let e = expect(
        &format!("{MIN}thresholds = [\"p99 < 1s\"]\n"),
        "stages[0].thresholds",
        "top-level keys such as `thresholds` must come before the first [[stages]] table",
    );
    assert!(
        e.message.starts_with(&format!("unknown key; {STAGE_KEYS}")),
        "{e}"
    );
    expect(
        "[target]\nbuiltin = true\nname = \"x\"\n[[stages]]\nrate = 1\nduration = \"1s\"\n",
        "target.name",
        "top-level keys such as `name` must come before the first table",
    );
}

#[test]
fn top_level_values() {
    let top = |line: &str| format!("{line}\n{MIN}");
    expect(&top("name = 5"), "name", "expected a string, got integer 5");
    expect(&top("name = \"\""), "name", "expected 1 to 256 characters");
    expect(&top("name = \"a\\nb\""), "name", "no control characters");
    expect(
        &top("thresholds = \"p99 < 1s\""),
        "thresholds",
        "expected an array of strings",
    );
    expect(
        &top("thresholds = [\"ok\", 5]"),
        "thresholds[1]",
        "expected a string such as \"p99 < 100ms\", got integer 5",
    );
    expect(
        &top("thresholds = [\"  \"]"),
        "thresholds[0]",
        "expected an expression",
    );
    expect(
        &top("recovery_window = \"0s\""),
        "recovery_window",
        "between 1s and 1h",
    );
    expect(
        &top("recovery_window = \"500ms\""),
        "recovery_window",
        "between 1s and 1h",
    );
    expect(
        &top("recovery_window = \"2h\""),
        "recovery_window",
        "between 1s and 1h",
    );
    expect(
        &top("recovery_window = 5"),
        "recovery_window",
        "expected a duration string such as \"10s\"",
    );
    let frac = "expected a fraction between 0 and 1 (exclusive) such as 0.1, or a percentage such as \"10%\"";
    expect(&top("recovery_tolerance = 0"), "recovery_tolerance", frac);
    expect(&top("recovery_tolerance = 1"), "recovery_tolerance", frac);
    expect(
        &top("recovery_tolerance = 10"),
        "recovery_tolerance",
        "write \"10%\"",
    );
    expect(
        &top("recovery_tolerance = \"150%\""),
        "recovery_tolerance",
        frac,
    );
    expect(
        &top("recovery_tolerance = \"ten\""),
        "recovery_tolerance",
        "got string \"ten\"",
    );
    expect(&top("recovery_tolerance = nan"), "recovery_tolerance", frac);
}

#[test]
fn syntax_errors_name_file_and_line() {
    let e = expect("name = \"x\"\n\nrate = \n", "", "invalid TOML");
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("column 8"), "{e}");
    assert!(e.to_string().starts_with("t.toml:3: invalid TOML"), "{e}");
    let e = expect("a = 1\na = 2\n", "", "duplicate key");
    assert_eq!(e.line, Some(2));
}

#[test]
fn binary_input_is_refused_clearly() {
    let e = expect("name = \"x\"\n\0\0\0", "", "NUL byte");
    assert_eq!(e.line, Some(2));
    expect("\u{1}\u{2}\u{3}", "", "invalid TOML");
    expect(
        &"x".repeat(super::super::MAX_FILE_BYTES + 1),
        "",
        "at most 1048576 bytes",
    );
}

#[test]
fn semantic_errors_carry_lines_and_render() {
    let src = "[target]\nbuiltin = true\n\n[[stages]]\nrate = -1\nduration = \"1s\"\n";
    let e = err(src);
    assert_eq!(e.line, Some(5));
    assert_eq!(
        e.to_string(),
        "t.toml:5: stages[0].rate: expected a rate between 0 and 10000000 requests per second, got -1"
    );
    // A missing key points at its table's header.
    assert_eq!(err(&with_stage("rate = 1")).line, Some(4));
}

#[test]
fn load_reports_read_errors_as_scenario_errors() {
    let dir = std::env::temp_dir().join(format!("volley-scenario-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let missing = dir.join("missing.toml");
    let e = load(&missing).unwrap_err();
    assert_eq!((e.field.as_str(), e.line), ("", None));
    assert!(
        e.message.starts_with("cannot read the scenario file"),
        "{e}"
    );
    assert!(e.file.ends_with("missing.toml"));

    let binary = dir.join("binary.toml");
    std::fs::write(&binary, b"name = \"x\"\n\xff\xfe\x00junk").unwrap();
    let e = load(&binary).unwrap_err();
    assert!(e.message.contains("not UTF-8"), "{e}");
    assert_eq!(e.line, Some(2));

    let big = dir.join("big.toml");
    std::fs::write(&big, vec![b'#'; super::super::MAX_FILE_BYTES + 10]).unwrap();
    assert!(load(&big).unwrap_err().message.contains("at most"));

    let e = load(&dir).unwrap_err();
    assert!(e.message.starts_with("cannot read"), "{e}");

    let good = dir.join("good-one.toml");
    std::fs::write(&good, MIN).unwrap();
    assert_eq!(load(&good).unwrap().scenario.name, "good-one");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn parse_never_reports_a_line_past_the_end() {
    for src in ["[", "a = \"", "[[stages]]\nrate = ", "\n\n\n["] {
        let e = parse(src, "x").unwrap_err();
        let lines = src.split('\n').count();
        assert!(
            e.line.is_some_and(|l| l >= 1 && l <= lines),
            "{e} for {src:?}"
        );
    }
}
