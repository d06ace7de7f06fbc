//! `[target.expect]` and `[requests.expect]`: every check, named checks,
//! which protocol takes which check, and malformed regexes and JSONPaths.

use serde_json::json;
use volley_plan::expect::{Check, Rule, StatusMatch};

use super::{expect, ok, with_target};

/// A scenario with an http1 target and an `[target.expect]` table.
fn expecting(lines: &str) -> String {
    with_target(&format!(
        "url = \"http://h:1/\"\n\n[target.expect]\n{lines}"
    ))
}

fn checks(src: &str) -> Vec<Check> {
    ok(src).plan.target.requests[0].expect.checks.clone()
}

fn check(name: &str, rule: Rule) -> Check {
    Check {
        name: name.into(),
        rule,
    }
}

#[test]
fn every_check_with_default_names_in_file_order() {
    let got = checks(&expecting(
        "status = [200, \"3xx\"]\n\
         header = { \"content-type\" = \"application/json\", \"X-B\" = \"1\" }\n\
         body_contains = \"ok\"\n\
         body_regex = 'id\":\\s*\\d+'\n\
         json = { \"$.status\" = \"ok\", \"$.n\" = 2, \"$.f\" = 0.5, \"$.b\" = true, \"$.a\" = [1, \"x\"], \"$.o\" = { k = 1 } }\n\
         max_body_bytes = \"64KiB\"",
    ));
    let json_check = |path: &str, value| {
        check(
            &format!("json {path}"),
            Rule::Json {
                path: path.into(),
                value,
            },
        )
    };
    assert_eq!(
        got,
        [
            check(
                "status",
                Rule::Status(vec![StatusMatch::Code(200), StatusMatch::Class(3)])
            ),
            check(
                "header content-type",
                Rule::Header {
                    name: "content-type".into(),
                    value: "application/json".into()
                }
            ),
            check(
                "header x-b",
                Rule::Header {
                    name: "X-B".into(),
                    value: "1".into()
                }
            ),
            check("body_contains", Rule::BodyContains("ok".into())),
            check("body_regex", Rule::BodyRegex(r#"id":\s*\d+"#.into())),
            json_check("$.status", json!("ok")),
            json_check("$.n", json!(2)),
            json_check("$.f", json!(0.5)),
            json_check("$.b", json!(true)),
            json_check("$.a", json!([1, "x"])),
            json_check("$.o", json!({"k": 1})),
            check("max_body_bytes", Rule::MaxBodyBytes(65536)),
        ]
    );
}

#[test]
fn a_single_status_is_a_list_of_one() {
    assert_eq!(
        checks(&expecting("status = 201")),
        [check("status", Rule::Status(vec![StatusMatch::Code(201)]))]
    );
    assert_eq!(
        checks(&expecting("status = \"2xx\"")),
        [check("status", Rule::Status(vec![StatusMatch::Class(2)]))]
    );
    for bad in ["99", "\"6xx\"", "true", "[200, 1000]"] {
        expect(
            &expecting(&format!("status = {bad}")),
            "target.expect.status",
            "expected an HTTP status such as 200",
        );
    }
    expect(
        &expecting("status = []"),
        "target.expect.status",
        "expected at least one status",
    );
}

#[test]
fn any_check_may_be_named() {
    let got = checks(&expecting(
        "status = { value = [200, 201], name = \"created\" }\n\
         header = { \"content-type\" = { value = \"text/plain\", name = \"plain text\" } }\n\
         json = { \"$.status\" = { value = \"ok\", name = \"status ok\" }, \"$.obj\" = { value = { value = 1 } }, \"$.lit\" = { name = \"n\" } }",
    ));
    let names: Vec<&str> = got.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "created",
            "plain text",
            "status ok",
            "json $.obj",
            "json $.lit"
        ]
    );
    assert_eq!(
        got[2].rule,
        Rule::Json {
            path: "$.status".into(),
            value: json!("ok")
        }
    );
    // A table shaped like a named check is one; nest it to expect the object.
    assert_eq!(
        got[3].rule,
        Rule::Json {
            path: "$.obj".into(),
            value: json!({"value": 1})
        }
    );
    // A table without `value` is a JSON object.
    assert_eq!(
        got[4].rule,
        Rule::Json {
            path: "$.lit".into(),
            value: json!({"name": "n"})
        }
    );
    expect(
        &expecting("status = { name = \"x\" }"),
        "target.expect.status.value",
        "missing; expected the checked value",
    );
    expect(
        &expecting("status = { value = 200, nam = \"x\" }"),
        "target.expect.status.nam",
        "unknown key; expected one of value, name",
    );
    expect(
        &expecting("status = { value = 200, name = \"\" }"),
        "target.expect.status.name",
        "expected 1 to 128 characters",
    );
    let e = expect(
        &expecting("status = { value = 200, name = \"same\" }\nbody_contains = { value = \"x\", name = \"same\" }"),
        "target.expect.body_contains",
        "the check name \"same\" is already used by target.expect.status",
    );
    assert_eq!(e.line, Some(6));
}

#[test]
fn malformed_regex_and_jsonpath_name_field_and_line() {
    let e = expect(
        &expecting("body_contains = \"x\"\nbody_regex = \"(unclosed\""),
        "target.expect.body_regex",
        "expected a valid regular expression",
    );
    assert_eq!(e.line, Some(6));
    let e = expect(
        &expecting("json = { \"$..[\" = 1 }"),
        "target.expect.json.\"$..[\"",
        "expected a valid JSONPath",
    );
    assert_eq!(e.line, Some(5));
    expect(
        &expecting("body_contains = \"\""),
        "target.expect.body_contains",
        "expected a non-empty string",
    );
    expect(
        &expecting("json = { \"$.x\" = nan }"),
        "target.expect.json.\"$.x\"",
        "nan and inf are not JSON",
    );
    expect(
        &expecting("max_body_bytes = -1"),
        "target.expect.max_body_bytes",
        "expected a size in bytes",
    );
    expect(
        &expecting("header = { \"bad name\" = \"x\" }"),
        "target.expect.header.\"bad name\"",
        "is not a valid header name",
    );
    expect(
        &expecting("header = \"x\""),
        "target.expect.header",
        "expected a table such as",
    );
}

#[test]
fn unknown_keys_get_hints() {
    expect(
        &expecting("headers = { a = \"b\" }"),
        "target.expect.headers",
        "did you mean `header`?",
    );
    expect(
        &with_target("url = \"http://h:1/\"\nstatus = 200"),
        "target.status",
        "belongs in a [target.expect] or [requests.expect] table",
    );
}

#[test]
fn checks_must_fit_the_protocol() {
    let e = expect(
        &expecting("grpc_status = \"OK\""),
        "target.expect.grpc_status",
        "applies to protocol \"grpc\" only",
    );
    assert_eq!(e.line, Some(5));
    let grpc = |lines: &str| {
        with_target(&format!(
            "url = \"http://h:1\"\nprotocol = \"grpc\"\nmethod = \"/a.B/C\"\n\n[target.expect]\n{lines}"
        ))
    };
    assert_eq!(
        checks(&grpc("grpc_status = [\"OK\", \"not_found\", 14]")),
        [check("grpc_status", Rule::GrpcStatus(vec![0, 5, 14]))]
    );
    expect(
        &grpc("grpc_status = [\"NOPE\"]"),
        "target.expect.grpc_status",
        "expected a gRPC status name",
    );
    let tcp = |lines: &str| {
        with_target(&format!(
            "url = \"tcp://h:1\"\nprotocol = \"tcp\"\n\n[target.expect]\n{lines}"
        ))
    };
    expect(
        &tcp("status = 200"),
        "target.expect.status",
        "a framed-TCP reply has no status or headers",
    );
    expect(
        &tcp("header = { a = \"b\" }"),
        "target.expect.header.a",
        "a framed-TCP reply has no status or headers",
    );
    assert_eq!(checks(&tcp("body_contains = \"pong\"")).len(), 1);
}

#[test]
fn a_requests_expect_replaces_the_targets() {
    let src = "[target]\nurl = \"http://h:1/\"\n\n[target.expect]\nstatus = 200\nbody_contains = \"ok\"\n\n\
               [[requests]]\nname = \"inherits\"\n\n\
               [[requests]]\nname = \"own\"\nexpect = { status = 201 }\n\n\
               [[requests]]\nname = \"none\"\nexpect = {}\n\n\
               [[requests]]\nname = \"table\"\n[requests.expect]\njson = { \"$.ok\" = true }\n\n\
               [[stages]]\nrate = 1\nduration = \"1s\"\n";
    let s = ok(src);
    let r = &s.plan.target.requests;
    let names =
        |i: usize| -> Vec<&str> { r[i].expect.checks.iter().map(|c| c.name.as_str()).collect() };
    assert_eq!(names(0), ["status", "body_contains"]);
    assert_eq!(names(1), ["status"]);
    assert_eq!(
        r[1].expect.checks[0].rule,
        Rule::Status(vec![StatusMatch::Code(201)])
    );
    assert!(names(2).is_empty());
    assert_eq!(names(3), ["json $.ok"]);
    let e = expect(
        &src.replace(
            "expect = { status = 201 }",
            "expect = { body_regex = \"[\" }",
        ),
        "requests[1].expect.body_regex",
        "expected a valid regular expression",
    );
    assert_eq!(e.line, Some(13));
}
