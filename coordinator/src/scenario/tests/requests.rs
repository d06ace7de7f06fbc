//! `[[requests]]`, `body_file`, and how the single request of `[target]`
//! and the weighted ones relate.

use volley_plan::model::{MAX_INLINE_BODY, MAX_REQUESTS};
use volley_plan::Body;

use super::{err, expect, ok, with_target};

/// A scenario with `[target]` lines, then the given `[[requests]]` tables
/// (each a block of lines), then one stage.
fn with_requests(target: &str, requests: &[&str]) -> String {
    let mut s = format!("[target]\n{target}\n");
    for r in requests {
        s += &format!("\n[[requests]]\n{r}\n");
    }
    s + "\n[[stages]]\nrate = 100\nduration = \"10s\"\n"
}

const URL: &str = "url = \"http://127.0.0.1:8080/items?x=1\"";

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_documented_mix_parses() {
    let s = ok(&with_requests(
        "url = \"http://127.0.0.1:8080/items\"\nheaders = { \"X-Tenant\" = \"a\" }",
        &[
            "name = \"list items\"\nweight = 80\nmethod = \"GET\"\npath = \"/items\"\n\
             headers = { \"Accept\" = \"application/json\" }",
            "name = \"place order\"\nweight = 20\nmethod = \"POST\"\npath = \"/orders\"\n\
             body_file = \"order.json\"",
        ],
    ));
    let r = &s.plan.target.requests;
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].name.as_str(), r[0].weight), ("list items", 80));
    assert_eq!(
        (r[0].method.as_str(), r[0].path.as_str()),
        ("GET", "/items")
    );
    assert_eq!(
        r[0].headers,
        pairs(&[("X-Tenant", "a"), ("Accept", "application/json")])
    );
    assert_eq!(r[0].body, Body::Generated(0));
    assert_eq!((r[1].name.as_str(), r[1].weight), ("place order", 20));
    assert_eq!(
        (r[1].method.as_str(), r[1].path.as_str()),
        ("POST", "/orders")
    );
    assert_eq!(r[1].headers, pairs(&[("X-Tenant", "a")]));
    assert_eq!(r[1].body, Body::Bytes(br#"{"item":1}"#.to_vec()));
}

#[test]
fn request_defaults() {
    let s = ok(&with_requests(
        URL,
        &[
            "",
            "body_size = \"1KiB\"",
            "method = \"delete\"\npath = \"/a/b\"",
        ],
    ));
    let r = &s.plan.target.requests;
    let summary: Vec<_> = r
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.weight,
                r.method.as_str(),
                r.path.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("GET /items?x=1", 1, "GET", "/items?x=1"),
            ("POST /items?x=1", 1, "POST", "/items?x=1"),
            ("DELETE /a/b", 1, "DELETE", "/a/b"),
        ]
    );
    assert_eq!(r[1].body, Body::Generated(1024));
}

#[test]
fn request_headers_win_over_target_headers_by_name() {
    let s = ok(&with_requests(
        "builtin = true\nheaders = { Accept = \"*/*\", X-Id = \"1\" }",
        &["headers = { accept = \"text/html\" }", "name = \"plain\""],
    ));
    let r = &s.plan.target.requests;
    assert_eq!(
        r[0].headers,
        pairs(&[("X-Id", "1"), ("accept", "text/html")])
    );
    assert_eq!(r[1].headers, pairs(&[("Accept", "*/*"), ("X-Id", "1")]));
}

#[test]
fn default_names_per_protocol() {
    let tcp = |n: usize| {
        let tables = vec!["body_size = 8"; n];
        ok(&with_requests(
            "url = \"tcp://h:9\"\nprotocol = \"tcp\"",
            &tables,
        ))
        .plan
        .target
        .requests
        .into_iter()
        .map(|r| r.name)
        .collect::<Vec<_>>()
    };
    assert_eq!(tcp(1), ["message"]);
    assert_eq!(tcp(3), ["message 1", "message 2", "message 3"]);
    let s = ok(&with_requests(
        "url = \"http://h:1\"\nprotocol = \"grpc\"",
        &[
            "method = \"/a.B/Get\"\nweight = 3",
            "method = \"/a.B/Put\"\nbody_file = \"body.bin\"\nheaders = { x-user = \"1\" }",
        ],
    ));
    let r = &s.plan.target.requests;
    assert_eq!(
        (r[0].name.as_str(), r[0].path.as_str()),
        ("/a.B/Get", "/a.B/Get")
    );
    assert_eq!((r[1].method.as_str(), r[1].weight), ("POST", 1));
    assert_eq!(r[1].body, Body::Bytes(b"hello".to_vec()));
}

#[test]
fn a_hundred_requests_fit_and_one_more_does_not() {
    let tables: Vec<String> = (0..MAX_REQUESTS)
        .map(|i| format!("path = \"/{i}\""))
        .collect();
    let refs: Vec<&str> = tables.iter().map(String::as_str).collect();
    assert_eq!(
        ok(&with_requests("builtin = true", &refs))
            .plan
            .target
            .requests
            .len(),
        MAX_REQUESTS
    );
    let mut more = refs.clone();
    more.push("path = \"/last\"");
    expect(
        &with_requests("builtin = true", &more),
        "requests",
        "expected at most 100 [[requests]] tables, got 101",
    );
}

#[test]
fn single_request_keys_move_into_the_tables() {
    for (line, key) in [
        ("method = \"POST\"", "method"),
        ("body_size = 10", "body_size"),
        ("body_file = \"body.bin\"", "body_file"),
    ] {
        let e = expect(
            &with_requests(&format!("builtin = true\n{line}"), &["path = \"/x\""]),
            &format!("target.{key}"),
            &format!(
                "cannot be set in [target] when there are [[requests]] tables; move `{key}` \
                 into each [[requests]] table"
            ),
        );
        assert_eq!(e.line, Some(3));
    }
}

#[test]
fn the_requests_array() {
    let stage = "[[stages]]\nrate = 1\nduration = \"1s\"\n";
    expect(
        &format!("requests = []\n[target]\nbuiltin = true\n{stage}"),
        "requests",
        "expected at least one [[requests]] table",
    );
    expect(
        &format!("requests = 5\n[target]\nbuiltin = true\n{stage}"),
        "requests",
        "expected an array of tables written as [[requests]], got integer 5",
    );
    expect(
        &format!("[target]\nbuiltin = true\n[requests]\npath = \"/\"\n{stage}"),
        "requests",
        "expected an array of tables written as [[requests]], got a table",
    );
    expect(
        &format!("requests = [1]\n[target]\nbuiltin = true\n{stage}"),
        "requests[0]",
        "expected a table ([[requests]]), got integer 1",
    );
}

#[test]
fn request_names_are_unique_and_sane() {
    let e = expect(
        &with_requests(
            "builtin = true",
            &["name = \"a\"", "path = \"/b\"", "name = \"a\""],
        ),
        "requests[2].name",
        "\"a\" is already used by requests[0]; request names must be unique",
    );
    assert_eq!(e.line, Some(11));
    expect(
        &with_requests("builtin = true", &["", "headers = { X = \"1\" }"]),
        "requests[1].name",
        "the default name \"GET /\" is already used by requests[0]",
    );
    expect(
        &with_requests("builtin = true", &["name = \"\""]),
        "requests[0].name",
        "expected 1 to 128 characters",
    );
    expect(
        &with_requests("builtin = true", &["name = \"a\\tb\""]),
        "requests[0].name",
        "no control characters",
    );
    expect(
        &with_requests("builtin = true", &["name = 1"]),
        "requests[0].name",
        "expected a string, got integer 1",
    );
}

#[test]
fn request_values() {
    let one = |l: &str| with_requests("builtin = true", &["path = \"/ok\"", l]);
    for w in ["0", "1001", "99999999999"] {
        expect(
            &one(&format!("weight = {w}")),
            "requests[1].weight",
            &format!("expected an integer between 1 and 1000, got {w}"),
        );
    }
    expect(
        &one("weight = -1"),
        "requests[1].weight",
        "non-negative integer",
    );
    expect(
        &one("weight = \"10\""),
        "requests[1].weight",
        "got string \"10\"",
    );
    expect(
        &one("path = \"items\""),
        "requests[1].path",
        "expected a path starting with / such as \"/items?id=1\"",
    );
    expect(
        &one("path = \"/a b\""),
        "requests[1].path",
        "without spaces",
    );
    expect(
        &one("method = \"G3T\""),
        "requests[1].method",
        "expected an HTTP method such as GET or POST, got \"G3T\"",
    );
    expect(
        &one("headers = { Content-Length = \"1\" }"),
        "requests[1].headers.Content-Length",
        "is set by Volley from the body",
    );
    expect(
        &one("url = \"http://h/\""),
        "requests[1].url",
        "`url` belongs in the [target] table",
    );
    expect(
        &one("timeout = \"1s\""),
        "requests[1].timeout",
        "unknown key; expected one of name, weight, method, path, headers, body, body_size, body_file, expect",
    );
    expect(
        &with_requests("builtin = true", &["weigth = 2"]),
        "requests[0].weigth",
        "did you mean `weight`?",
    );
    expect(
        &with_requests("url = \"http://h:1\"\nprotocol = \"grpc\"", &["weight = 2"]),
        "requests[0].method",
        "missing; expected a gRPC method path",
    );
    expect(
        &with_requests(
            "url = \"http://h:1\"\nprotocol = \"grpc\"",
            &["method = \"/a.B/C\"\npath = \"/a.B/C\""],
        ),
        "requests[0].path",
        "for protocol \"grpc\" the method path goes in `method`",
    );
}

#[test]
fn body_files() {
    let t = |l: &str| with_target(&format!("builtin = true\n{l}"));
    let s = ok(&t("body_file = \"body.bin\""));
    let r = &s.plan.target.requests[0];
    assert_eq!(r.body, Body::Bytes(b"hello".to_vec()));
    assert_eq!(r.name, "POST /");
    // Exactly 1 MiB is allowed.
    let s = ok(&t("body_file = \"full.bin\""));
    assert_eq!(s.plan.target.requests[0].body.len(), MAX_INLINE_BODY as u64);

    expect(
        &t("body_file = \"big.bin\""),
        "target.body_file",
        "expected a file of at most 1048576 bytes (1 MiB); \"big.bin\" is larger",
    );
    expect(
        &t("body_size = 1\nbody_file = \"body.bin\""),
        "target.body_file",
        "cannot be combined with `body_size`",
    );
    expect(
        &t("body_file = \"\""),
        "target.body_file",
        "expected a file path relative to the scenario file",
    );
    expect(
        &t("body_file = 5"),
        "target.body_file",
        "expected a string, got integer 5",
    );
    let e = expect(
        &with_requests(
            "builtin = true",
            &["path = \"/a\"", "body_file = \"nope.bin\""],
        ),
        "requests[1].body_file",
        "cannot read \"nope.bin\": No such file or directory",
    );
    assert_eq!(e.line, Some(8));
    assert!(
        e.to_string()
            .starts_with("t.toml:8: requests[1].body_file: cannot read"),
        "{e}"
    );
}

#[test]
fn referenced_files_are_capped_in_total() {
    let three = [
        "body_file = \"full.bin\"\nname = \"a\"",
        "body_file = \"full.bin\"\nname = \"b\"",
        "body_file = \"full.bin\"\nname = \"c\"",
    ];
    assert_eq!(
        ok(&with_requests("builtin = true", &three))
            .plan
            .target
            .requests
            .len(),
        3
    );
    let mut four = three.to_vec();
    four.push("body_file = \"body.bin\"\nname = \"d\"");
    expect(
        &with_requests("builtin = true", &four),
        "requests[3].body_file",
        "the files this scenario references add up to more than 3145728 bytes",
    );
}

#[test]
fn top_level_keys_after_requests_get_a_hint() {
    let e = err(&format!(
        "{}thresholds = []\n",
        with_requests("builtin = true", &["path = \"/\""])
            .replace("\n[[stages]]\nrate = 100\nduration = \"10s\"\n", "\n")
    ));
    assert_eq!(e.field, "requests[0].thresholds");
    assert!(
        e.message
            .contains("must come before the first [[requests]] table"),
        "{e}"
    );
}
