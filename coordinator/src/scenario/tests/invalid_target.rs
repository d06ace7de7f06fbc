//! Refused `[target]` and `[load]` settings: the field is asserted exactly
//! and the message must say what was expected.

use super::{expect, with_target, MIN};

#[test]
fn target_choice() {
    let stage = "[[stages]]\nrate = 1\nduration = \"1s\"\n";
    expect(stage, "target", "missing; expected a [target] table");
    expect(
        &with_target(""),
        "target",
        "expected `url = \"http://host:port/\"` or `builtin = true`",
    );
    expect(
        &with_target("builtin = false"),
        "target.builtin",
        "is false and no `url` is set",
    );
    expect(
        &with_target("builtin = true\nurl = \"http://h/\""),
        "target.builtin",
        "cannot be combined with `url`",
    );
    expect(
        &with_target("builtin = \"yes\""),
        "target.builtin",
        "expected true or a table",
    );
    expect(
        &format!("target = 5\n{stage}"),
        "target",
        "expected a table ([target]), got integer 5",
    );
    expect(
        &with_target("url = \"ftp://h/\""),
        "target.url",
        "expected an http:// or https:// URL",
    );
    expect(&with_target("url = \"http://h:0/\""), "target.url", "port");
    expect(
        &with_target("url = 5"),
        "target.url",
        "expected a string, got integer 5",
    );
}

#[test]
fn target_settings() {
    let t = |l: &str| with_target(&format!("builtin = true\n{l}"));
    expect(
        &t("protocol = \"ftp\""),
        "target.protocol",
        "expected one of \"http1\", \"http2\", \"grpc\", \"tcp\", got \"ftp\"",
    );
    expect(
        &t("protocol = \"HTTP2\""),
        "target.protocol",
        "(protocols are written in lower case)",
    );
    expect(
        &t("protocol = 2"),
        "target.protocol",
        "expected a string, got integer 2",
    );
    expect(
        &t("method = \"G3T\""),
        "target.method",
        "expected an HTTP method such as GET or POST, got \"G3T\"",
    );
    expect(
        &t("method = \"\""),
        "target.method",
        "expected an HTTP method",
    );
    expect(
        &t("body_size = -1"),
        "target.body_size",
        "expected a size in bytes such as 512",
    );
    expect(
        &t("body_size = \"lots\""),
        "target.body_size",
        "got string \"lots\"",
    );
    expect(
        &t("body_size = \"1GiB\""),
        "target.body_size",
        "expected at most 67108864 bytes",
    );
    expect(
        &t("timeout = \"0s\""),
        "target.timeout",
        "between 1ms and 1h",
    );
    expect(
        &t("timeout = \"2h\""),
        "target.timeout",
        "between 1ms and 1h",
    );
    expect(
        &t("timeout = 5"),
        "target.timeout",
        "expected a duration string such as \"10s\", got integer 5",
    );
}

#[test]
fn headers() {
    let t = |l: &str| with_target(&format!("builtin = true\n{l}"));
    expect(
        &t("headers = 5"),
        "target.headers",
        "expected a table of header names to strings",
    );
    expect(
        &t("headers = { \"a b\" = \"x\" }"),
        "target.headers.\"a b\"",
        "is not a valid header name",
    );
    expect(
        &t("headers = { X = \"a\\nb\" }"),
        "target.headers.X",
        "control characters",
    );
    expect(
        &t("headers = { X = 1 }"),
        "target.headers.X",
        "expected a string, got integer 1",
    );
    expect(
        &t("headers = { Content-Length = \"5\" }"),
        "target.headers.Content-Length",
        "set by Volley",
    );
}

#[test]
fn builtin_settings() {
    let b = |l: &str| with_target(&format!("builtin = {{ {l} }}"));
    expect(
        &b("error_rate = 1.5"),
        "target.builtin.error_rate",
        "expected a fraction between 0 and 1",
    );
    expect(
        &b("error_rate = -0.1"),
        "target.builtin.error_rate",
        "expected a fraction between 0 and 1",
    );
    expect(
        &b("error_rate = nan"),
        "target.builtin.error_rate",
        "expected a fraction between 0 and 1",
    );
    expect(
        &b("error_rate = \"x\""),
        "target.builtin.error_rate",
        "got string \"x\"",
    );
    expect(
        &b("capacity = 0"),
        "target.builtin.capacity",
        "expected a rate above 0",
    );
    expect(
        &b("capacity = -1"),
        "target.builtin.capacity",
        "expected a rate above 0",
    );
    expect(&b("delay = \"2h\""), "target.builtin.delay", "at most 1h");
    expect(
        &b("delay = 3"),
        "target.builtin.delay",
        "expected a duration string",
    );
    expect(
        &b("body_size = \"100MiB\""),
        "target.builtin.body_size",
        "at most 67108864 bytes",
    );
}

#[test]
fn load_settings() {
    let l = |line: &str| format!("{MIN}[load]\n{line}\n");
    expect(
        &l("connections = 0"),
        "load.connections",
        "expected an integer between 1 and 65536, got 0",
    );
    expect(
        &l("connections = 100000"),
        "load.connections",
        "between 1 and 65536",
    );
    expect(
        &l("connections = -1"),
        "load.connections",
        "expected a non-negative integer, got integer -1",
    );
    expect(&l("connections = 1.5"), "load.connections", "got float 1.5");
    expect(
        &l("connections = \"many\""),
        "load.connections",
        "got string \"many\"",
    );
    expect(
        &l("max_in_flight = 0"),
        "load.max_in_flight",
        "between 1 and 1000000",
    );
    expect(
        &l("max_in_flight = 99999999999"),
        "load.max_in_flight",
        "between 1 and 1000000",
    );
    expect(
        &l("resolve_every = \"0s\""),
        "load.resolve_every",
        "expected a duration between 100ms and 24h, or \"never\", got 0s",
    );
    expect(
        &l("resolve_every = 30"),
        "load.resolve_every",
        "write \"30s\" for seconds",
    );
    expect(
        &l("resolve_every = \"sometimes\""),
        "load.resolve_every",
        "sometimes",
    );
    expect(
        &l("connection_lifetime = \"1ms\""),
        "load.connection_lifetime",
        "expected a duration between 10ms and 24h, got 1ms",
    );
    expect(
        &l("wake_gap = \"5us\""),
        "load.wake_gap",
        "expected \"auto\" or a duration between 10us and 10ms, got 5us",
    );
    expect(
        &l("wake_gap = \"1s\""),
        "load.wake_gap",
        "expected \"auto\" or a duration between 10us and 10ms, got 1s",
    );
    expect(&l("wake_gap = 200"), "load.wake_gap", "a duration string");
    expect(
        &l("wake_gap = \"sometimes\""),
        "load.wake_gap",
        "expected \"auto\" or a duration such as \"200us\", got \"sometimes\"",
    );
    expect(
        &l("max_requests_per_connection = 0"),
        "load.max_requests_per_connection",
        "expected an integer between 1 and 4294967295, got 0",
    );
    expect(
        &l("max_requests_per_connection = \"10\""),
        "load.max_requests_per_connection",
        "expected a non-negative integer",
    );
    expect(
        &l("arrival = \"burst\""),
        "load.arrival",
        "expected \"uniform\" or \"poisson\", got \"burst\"",
    );
    expect(
        &l("seed = -1"),
        "load.seed",
        "expected a non-negative integer",
    );
    expect(
        &format!("load = 1\n{MIN}"),
        "load",
        "expected a table ([load])",
    );
}
