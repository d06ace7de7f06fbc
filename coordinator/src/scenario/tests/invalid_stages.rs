//! Refused `[[stages]]`: the field is asserted exactly and the message must
//! say what was expected.

use super::{expect, with_stage};

#[test]
fn durations() {
    let e = expect(
        &with_stage("rate = 1\nduration = 10"),
        "stages[0].duration",
        "expected a duration string such as \"10s\", got integer 10",
    );
    assert!(e.message.contains("\"10s\" for seconds"), "{e}");
    expect(
        &with_stage("rate = 1\nduration = \"10\""),
        "stages[0].duration",
        "\"10s\"",
    );
    expect(
        &with_stage("rate = 1\nduration = 1.5"),
        "stages[0].duration",
        "got float 1.5",
    );
    expect(
        &with_stage("rate = 1\nduration = \"soon\""),
        "stages[0].duration",
        "expected a duration string",
    );
    expect(
        &with_stage("rate = 1"),
        "stages[0].duration",
        "missing; expected a duration string",
    );
    expect(
        &with_stage("rate = 1\nduration = \"0s\""),
        "stages[0].duration",
        "between 1ms and 30 days",
    );
    expect(
        &with_stage("rate = 1\nduration = \"31days\""),
        "stages[0].duration",
        "between 1ms and 30 days",
    );
    expect(
        &with_stage("rate = 1\nduration = \"100us\""),
        "stages[0].duration",
        "between 1ms and 30 days",
    );
}

#[test]
fn rates() {
    let r = |v: &str| with_stage(&format!("rate = {v}\nduration = \"1s\""));
    let range = "expected a rate between 0 and 10000000 requests per second";
    expect(&r("-5"), "stages[0].rate", &format!("{range}, got -5"));
    expect(&r("nan"), "stages[0].rate", &format!("{range}, got NaN"));
    expect(&r("inf"), "stages[0].rate", range);
    expect(&r("\"20M\""), "stages[0].rate", range);
    expect(
        &r("\"fast\""),
        "stages[0].rate",
        "expected a rate in requests per second such as 1000, 2.5 or \"10k\", got string \"fast\"",
    );
    expect(
        &r("\"-5\""),
        "stages[0].rate",
        "expected a rate in requests per second",
    );
    expect(
        &r("\"nan\""),
        "stages[0].rate",
        "expected a rate in requests per second",
    );
    expect(&r("true"), "stages[0].rate", "got boolean true");
    expect(
        &with_stage("from = -1\nto = 5\nduration = \"1s\""),
        "stages[0].from",
        range,
    );
    expect(
        &with_stage("from = 1\nto = nan\nduration = \"1s\""),
        "stages[0].to",
        range,
    );
}

#[test]
fn rate_and_ramp_shapes() {
    expect(
        &with_stage("rate = 1\nfrom = 1\nto = 2\nduration = \"1s\""),
        "stages[0].from",
        "cannot be combined with `rate`",
    );
    expect(
        &with_stage("rate = 1\nto = 2\nduration = \"1s\""),
        "stages[0].to",
        "cannot be combined with `rate`",
    );
    expect(
        &with_stage("from = 1\nduration = \"1s\""),
        "stages[0].to",
        "a ramp needs both `from` and `to`",
    );
    expect(
        &with_stage("to = 1\nduration = \"1s\""),
        "stages[0].from",
        "a ramp needs both `from` and `to`",
    );
    expect(
        &with_stage("duration = \"1s\""),
        "stages[0].rate",
        "missing; expected `rate`",
    );
}

#[test]
fn stage_rules() {
    let stage = |extra: &str| format!("[[stages]]\nrate = 10\nduration = \"1s\"\n{extra}\n");
    let two = |a: &str, b: &str| format!("[target]\nbuiltin = true\n{}{}", stage(a), stage(b));
    expect(
        &with_stage("rate = 1\nduration = \"1s\"\nburst = true"),
        "stages[0].burst",
        "the first stage cannot be a burst",
    );
    expect(
        &format!("{}{}", two("", "burst = true"), stage("burst = true")),
        "stages[2].burst",
        "cannot itself be a burst",
    );
    let zero_base = "[target]\nbuiltin = true\n[[stages]]\nrate = 0\nduration = \"1s\"\n\
                     [[stages]]\nrate = 10\nduration = \"1s\"\nburst = true\n";
    expect(zero_base, "stages[1].burst", "must send traffic");
    expect(
        &with_stage("rate = 1\nduration = \"1s\"\nburst = \"yes\""),
        "stages[0].burst",
        "expected true or false, got string \"yes\"",
    );
    expect(
        &two("name = \"a\"", "name = \"a\""),
        "stages[1].name",
        "\"a\" is already used by stages[0]",
    );
    expect(
        &two("name = \"stage-2\"", ""),
        "stages[1].name",
        "the default name \"stage-2\" is already used by stages[0]",
    );
    expect(
        &with_stage("name = \"a b\"\nrate = 1\nduration = \"1s\""),
        "stages[0].name",
        "letters, digits, '_' or '-'",
    );
    expect(
        &with_stage("name = \"p.99\"\nrate = 1\nduration = \"1s\""),
        "stages[0].name",
        "`name.p99`",
    );
    expect(
        &with_stage("name = \"\"\nrate = 1\nduration = \"1s\""),
        "stages[0].name",
        "letters, digits",
    );
    expect(
        &with_stage("name = 3\nrate = 1\nduration = \"1s\""),
        "stages[0].name",
        "expected a string, got integer 3",
    );
    expect(
        &with_stage("rate = 0\nduration = \"1s\""),
        "stages",
        "every stage has rate 0",
    );
}

#[test]
fn stages_list() {
    expect("", "stages", "at least one [[stages]] table");
    expect(
        "# only a comment\n\n",
        "stages",
        "at least one [[stages]] table",
    );
    expect(
        "[target]\nbuiltin = true\n",
        "stages",
        "expected at least one [[stages]] table",
    );
    expect(
        "stages = []\n[target]\nbuiltin = true\n",
        "stages",
        "expected at least one [[stages]] table",
    );
    expect(
        "[target]\nbuiltin = true\n[stages]\nrate = 1\n",
        "stages",
        "expected an array of tables written as [[stages]], got a table",
    );
    expect(
        "stages = [1]\n[target]\nbuiltin = true\n",
        "stages[0]",
        "expected a table ([[stages]]), got integer 1",
    );
    let many = "[[stages]]\nrate = 1\nduration = \"1s\"\n".repeat(1001);
    expect(
        &format!("[target]\nbuiltin = true\n{many}"),
        "stages",
        "at most 1000 stages",
    );
    // Each stage is fine; together they pass Plan's 31-day limit.
    let long = "[[stages]]\nrate = 1\nduration = \"30days\"\n".repeat(2);
    expect(
        &format!("[target]\nbuiltin = true\n{long}"),
        "stages",
        "at most 31 days",
    );
}
