//! `[[data]]` tables: the files, their formats, orders and ends, and every
//! way a data file can be unusable (naming the data file's line and the
//! scenario's).

use std::time::Duration;

use volley_plan::data::{Format, OnEnd, Order, MAX_DATA_BYTES};
use volley_plan::Body;

use super::super::{load, parse};
use super::{expect, ok, test_files, USERS_CSV};

/// `[[data]]` lines, then a target whose body reads `body`, then one stage.
fn with_data(data: &str, body: &str) -> String {
    format!(
        "[[data]]\n{data}\n\n[target]\nurl = \"http://h:1/\"\nbody = '{body}'\n\n\
         [[stages]]\nrate = 1\nduration = \"60s\"\n"
    )
}

const USERS: &str = "name = \"users\"\nfile = \"users.csv\"";

#[test]
fn csv_data_with_defaults() {
    let s = ok(&with_data(USERS, "{{data.users.name}}"));
    let d = &s.plan.data[0];
    assert_eq!(d.name, "users");
    assert_eq!(
        (d.format, d.order, d.on_end),
        (Format::Csv, Order::Sequential, OnEnd::Wrap)
    );
    assert_eq!(d.rows(), 3);
    assert_eq!(d.columns(), ["id", "name"]);
    assert_eq!(d.cell(1, 1), b"bob");
    assert_eq!(
        s.plan.target.requests[0].body,
        Body::Template("{{data.users.name}}".into())
    );
    assert!(s.notices.is_empty());
}

#[test]
fn format_comes_from_the_extension_or_the_key() {
    let s = ok(&with_data(
        "name = \"u\"\nfile = \"users.jsonl\"",
        "{{data.u.name}}",
    ));
    assert_eq!(s.plan.data[0].format, Format::JsonLines);
    assert_eq!(s.plan.data[0].rows(), 2);
    let s = ok(&with_data(
        "name = \"u\"\nfile = \"users.txt\"\nformat = \"jsonl\"",
        "{{data.u.id}}",
    ));
    assert_eq!(s.plan.data[0].cell(0, 0), b"7");
    let e = expect(
        &with_data(&format!("{USERS}\nformat = \"xml\""), "x"),
        "data[0].format",
        "expected \"csv\" or \"jsonl\", got \"xml\"",
    );
    assert_eq!(e.line, Some(4));
}

#[test]
fn order_and_on_end() {
    let s = ok(&with_data(
        &format!("{USERS}\norder = \"random\"\non_end = \"wrap\""),
        "x",
    ));
    assert_eq!(
        (s.plan.data[0].order, s.plan.data[0].on_end),
        (Order::Random, OnEnd::Wrap)
    );
    expect(
        &with_data(&format!("{USERS}\norder = \"shuffled\""), "x"),
        "data[0].order",
        "expected \"sequential\" or \"random\"",
    );
    expect(
        &with_data(&format!("{USERS}\non_end = \"halt\""), "x"),
        "data[0].on_end",
        "expected \"wrap\" or \"stop\"",
    );
    let e = expect(
        &with_data(
            &format!("{USERS}\norder = \"random\"\non_end = \"stop\""),
            "x",
        ),
        "data[0].on_end",
        "needs order = \"sequential\"",
    );
    assert_eq!(e.line, Some(5));
}

#[test]
fn stop_cuts_the_run_at_the_last_row_and_says_so() {
    let s = ok(&with_data(
        &format!("{USERS}\non_end = \"stop\""),
        "{{data.users.id}}",
    ));
    assert_eq!(
        s.notices.len(),
        1,
        "one notice expected, got {:?}",
        s.notices
    );
    let n = &s.notices[0];
    assert!(
        n.starts_with(
            "data set \"users\" has 3 rows and on_end = \"stop\": the run ends after 3 arrivals, at "
        ),
        "{n}"
    );
    assert!(n.ends_with("s instead of 60.0 s"), "{n}");
    assert!(
        s.plan.duration() < Duration::from_secs(10),
        "{:?}",
        s.plan.stages
    );
    // Data that outlasts the run changes nothing.
    let src = with_data(&format!("{USERS}\non_end = \"stop\""), "x")
        .replace("rate = 1\n", "rate = 0.01\n");
    let s = ok(&src);
    assert!(s.notices.is_empty(), "{:?}", s.notices);
    assert_eq!(s.plan.duration(), Duration::from_secs(60));
}

#[test]
fn stop_notices_keep_thresholds_on_the_written_stages() {
    let src = with_data(&format!("{USERS}\non_end = \"stop\""), "x")
        .replace("[[stages]]\n", "[[stages]]\nname = \"warm\"\n")
        + "\n[[stages]]\nname = \"late\"\nrate = 1\nduration = \"60s\"\n";
    let src = format!("thresholds = [\"late.p99 < 1s\"]\n{src}");
    let s = ok(&src);
    assert_eq!(s.plan.stages.len(), 1);
    assert_eq!(s.thresholds.len(), 1);
}

#[test]
fn template_names_must_exist_in_the_data() {
    let e = expect(
        &with_data(USERS, "{{data.users.email}}"),
        "target.body",
        "data set \"users\" has no column \"email\" (its columns are: \"id\", \"name\")",
    );
    assert_eq!(e.line, Some(7));
    expect(
        &with_data(USERS, "{{data.orders.id}}"),
        "target.body",
        "unknown data set \"orders\"",
    );
}

#[test]
fn ragged_rows_name_the_data_line_and_the_scenario_line() {
    let e = expect(
        &with_data("name = \"u\"\nfile = \"ragged.csv\"", "x"),
        "data[0].file",
        "\"ragged.csv\" line 4",
    );
    assert!(
        e.message.contains("2 fields as in the header row, got 3"),
        "{e}"
    );
    assert_eq!(e.line, Some(3));
    assert!(
        e.to_string()
            .starts_with("t.toml:3: data[0].file: cannot use"),
        "{e}"
    );
}

#[test]
fn empty_and_header_only_files_are_refused() {
    for file in ["empty.csv", "header-only.csv"] {
        let e = expect(
            &with_data(&format!("name = \"u\"\nfile = \"{file}\""), "x"),
            "data[0].file",
            "at least one data row",
        );
        assert_eq!(e.line, Some(3));
    }
}

#[test]
fn data_files_over_the_limit_are_refused_naming_the_file() {
    let huge = |name: &str| match name {
        "huge.csv" => Ok(vec![b'a'; MAX_DATA_BYTES as usize + 1]),
        _ => test_files(name),
    };
    let src = with_data("name = \"u\"\nfile = \"huge.csv\"", "x");
    let e = parse(&src, "t.toml", &huge).unwrap_err();
    assert_eq!((e.field.as_str(), e.line), ("data[0].file", Some(3)));
    assert!(
        e.message
            .contains("expected a data file of at most 256 MiB; \"huge.csv\""),
        "{e}"
    );
}

#[test]
fn data_files_are_not_held_to_the_body_file_limit() {
    let rows = 200_000;
    let mut csv = String::from("id\n");
    for i in 0..rows {
        csv += &format!("{i:08}\n");
    }
    assert!(csv.len() > 1024 * 1024);
    let files = |name: &str| match name {
        "big.csv" => Ok(csv.as_bytes().to_vec()),
        _ => test_files(name),
    };
    let src = with_data("name = \"u\"\nfile = \"big.csv\"", "{{data.u.id}}");
    let s = parse(&src, "t.toml", &files).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.plan.data[0].rows(), rows);
}

#[test]
fn names_and_files_are_required_and_checked() {
    let e = expect(
        &with_data("file = \"users.csv\"", "x"),
        "data[0].name",
        "missing; expected a name",
    );
    assert_eq!(e.line, Some(1));
    expect(
        &with_data("name = \"u\"", "x"),
        "data[0].file",
        "missing; expected a CSV or JSON Lines file",
    );
    expect(
        &with_data("name = \"a.b\"\nfile = \"users.csv\"", "x"),
        "data[0].name",
        "expected a name of a letter or _",
    );
    expect(
        &with_data("name = \"u\"\nfile = \"nope.csv\"", "x"),
        "data[0].file",
        "cannot read \"nope.csv\"",
    );
    expect(
        &with_data(&format!("{USERS}\nrows = 3"), "x"),
        "data[0].rows",
        "unknown key; expected one of name, file, format, order, on_end",
    );
    let two = with_data(&format!("{USERS}\n\n[[data]]\n{USERS}"), "x");
    expect(&two, "data[1].name", "\"users\" is already used by data[0]");
}

#[test]
fn load_reads_data_files_next_to_the_scenario() {
    let dir = std::env::temp_dir().join(format!("volley-scenario-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("users.csv"), USERS_CSV).unwrap();
    let path = dir.join("s.toml");
    std::fs::write(&path, with_data(USERS, "{{data.users.id}}")).unwrap();
    let loaded = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.files["users.csv"], USERS_CSV.as_bytes());
    assert_eq!(loaded.scenario.plan.data[0].rows(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}
