//! Templated paths, headers and bodies; `[vars]`, `--set` and `env.NAME`;
//! how `path` joins the URL's base path. Every bad template names the
//! file, the field and the line.

use volley_plan::Body;

use super::{expect, ok, parse_in, with_target};

const URL: &str = "url = \"http://127.0.0.1:8080/api\"";

fn target(lines: &str) -> String {
    with_target(&format!("{URL}\n{lines}"))
}

#[test]
fn target_path_joins_the_url_base_path() {
    let s = ok(&target("path = \"/orders/{{seq}}\""));
    let r = &s.plan.target.requests[0];
    assert_eq!(r.path, "/api/orders/{{seq}}");
    assert_eq!(r.name, "GET /api/orders/{{seq}}");

    let path = |url: &str, p: &str| {
        let s = ok(&with_target(&format!("url = \"{url}\"\npath = \"{p}\"")));
        s.plan.target.requests[0].path.clone()
    };
    assert_eq!(path("http://h:1", "/a"), "/a");
    assert_eq!(path("http://h:1/", "/a"), "/a");
    assert_eq!(path("http://h:1/api/", "/a"), "/api/a");
    // The URL's query is kept; the path's own follows it.
    assert_eq!(path("http://h:1/api?key=k", "/a?x=1"), "/api/a?key=k&x=1");
    assert_eq!(path("http://h:1/api?key=k", "/a"), "/api/a?key=k");
    // Without `path`, the URL's path is the request's, as before.
    let s = ok(&with_target("url = \"http://h:1/api?key=k\""));
    assert_eq!(s.plan.target.requests[0].path, "/api?key=k");
}

#[test]
fn path_and_body_are_single_request_keys() {
    let src = format!(
        "[target]\n{URL}\npath = \"/x\"\n\n[[requests]]\npath = \"/a\"\n\n[[stages]]\nrate = 1\nduration = \"1s\"\n"
    );
    let e = expect(
        &src,
        "target.path",
        "move `path` into each [[requests]] table",
    );
    assert_eq!(e.line, Some(3));
    let src = src.replace("path = \"/x\"", "body = \"x\"");
    expect(
        &src,
        "target.body",
        "move `body` into each [[requests]] table",
    );
}

#[test]
fn templated_paths_may_hold_spaces_inside_expressions_only() {
    let s = ok(&target("path = \"/o/{{ rand_int(1, 5) }}?u={{ uuid }}\""));
    assert_eq!(
        s.plan.target.requests[0].path,
        "/api/o/{{ rand_int(1, 5) }}?u={{ uuid }}"
    );
    expect(
        &target("path = \"/o p/{{seq}}\""),
        "target.path",
        "expected a path starting with /",
    );
    // What the template renders is checked too.
    let e = expect(
        &format!("[vars]\np = \"a b\"\n{}", target("path = \"/{{vars.p}}\"")),
        "target.path",
        "renders",
    );
    assert_eq!(e.line, Some(5));
}

#[test]
fn the_url_is_not_a_template() {
    expect(
        &with_target("url = \"http://h:1/{{seq}}\""),
        "target.url",
        "the templated part in `path`",
    );
}

#[test]
fn inline_bodies_are_bytes_or_templates() {
    let s = ok(&target("body = '{\"a\":1}'"));
    let r = &s.plan.target.requests[0];
    assert_eq!(r.body, Body::Bytes(br#"{"a":1}"#.to_vec()));
    assert_eq!(r.method, "POST");
    let s = ok(&target(
        "body = '{\"id\":{{seq}},\"q\":{{rand_int(1, 5)}}}'",
    ));
    assert_eq!(
        s.plan.target.requests[0].body,
        Body::Template(r#"{"id":{{seq}},"q":{{rand_int(1, 5)}}}"#.into())
    );
    for other in ["body_size = 10", "body_file = \"body.bin\""] {
        let key = other.split(' ').next().unwrap();
        let e = expect(
            &target(&format!("body = \"x\"\n{other}")),
            &format!("target.{key}"),
            "cannot be combined with `body`",
        );
        assert_eq!(e.line, Some(4));
    }
    // The old pair still names the same field.
    expect(
        &target("body_size = 1\nbody_file = \"body.bin\""),
        "target.body_file",
        "cannot be combined with `body_size`",
    );
}

#[test]
fn requests_take_body_too() {
    let src = "[target]\nurl = \"http://h:1/\"\n\n[[requests]]\npath = \"/a/{{seq}}\"\nbody = \"n={{seq}}\"\n\n[[requests]]\npath = \"/b\"\nbody = \"plain\"\n\n[[stages]]\nrate = 1\nduration = \"1s\"\n";
    let s = ok(src);
    let r = &s.plan.target.requests;
    // A request's path is the whole path on the host.
    assert_eq!(r[0].path, "/a/{{seq}}");
    assert_eq!(r[0].body, Body::Template("n={{seq}}".into()));
    assert_eq!(r[1].body, Body::Bytes(b"plain".to_vec()));
}

#[test]
fn body_files_with_braces_are_templates_when_text() {
    let s = ok(&format!(
        "[[data]]\nname = \"users\"\nfile = \"users.csv\"\n{}",
        target("body_file = \"order-tpl.json\"")
    ));
    assert!(matches!(&s.plan.target.requests[0].body, Body::Template(t) if t.contains("{{seq}}")));
    let s = ok(&target("body_file = \"binary-braces.bin\""));
    assert!(matches!(s.plan.target.requests[0].body, Body::Bytes(_)));
    // An error in a body file names the file's line and the key's line.
    let e = expect(
        &target("body_file = \"bad-tpl.json\""),
        "target.body_file",
        "\"bad-tpl.json\" line 3: invalid template: unknown value \"nope\"",
    );
    assert_eq!(e.line, Some(3));
}

#[test]
fn header_values_may_be_templates() {
    let s = ok(&target("headers = { \"Idempotency-Key\" = \"{{uuid}}\" }"));
    assert_eq!(
        s.plan.target.requests[0].headers,
        [("Idempotency-Key".to_string(), "{{uuid}}".to_string())]
    );
    let e = expect(
        &target("headers = { \"X-Id\" = \"{{ nope(1) }}\" }"),
        "target.headers.X-Id",
        "unknown function \"nope\"",
    );
    assert_eq!(e.line, Some(3));
    assert!(e
        .to_string()
        .starts_with("t.toml:3: target.headers.X-Id: invalid template"));
}

#[test]
fn unknown_names_are_errors_with_field_and_line() {
    let e = expect(
        &target("body = \"{{vars.tenant}}\""),
        "target.body",
        "unknown variable vars.tenant; define it in [vars] or pass --set tenant=VALUE",
    );
    assert_eq!(e.line, Some(3));
    expect(
        &target("body = \"{{ rand_float() }}\""),
        "target.body",
        "unknown function \"rand_float\"",
    );
    expect(&target("body = \"{{ seq\""), "target.body", "closing }}");
    // In a multi-line body, the line of the expression itself.
    let e = expect(
        &target("body = \"\"\"\n{\n  \"id\": {{seq}},\n  \"n\": {{ nope }}\n}\"\"\""),
        "target.body",
        "unknown value \"nope\"",
    );
    assert_eq!(e.line, Some(6));
    // With escapes the text and the source differ: the value's first line.
    let e = expect(
        &target("body = \"\\n{{ nope }}\""),
        "target.body",
        "unknown value",
    );
    assert_eq!(e.line, Some(3));
}

#[test]
fn vars_are_strings_and_scalars_written_as_text() {
    let s = ok(&format!(
        "[vars]\ntenant = \"acme\"\nqty = 3\nratio = 0.5\nwhole = 1.0\non = true\n{}",
        target("body = '{{vars.tenant}}{{vars.qty}}{{vars.ratio}}{{vars.whole}}{{vars.on}}'")
    ));
    let vars: Vec<(&str, &str)> = s
        .plan
        .vars
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        vars,
        [
            ("tenant", "acme"),
            ("qty", "3"),
            ("ratio", "0.5"),
            ("whole", "1.0"),
            ("on", "true")
        ]
    );
    assert!(s.warnings.is_empty());
    let e = expect(
        &format!("[vars]\nlist = [1]\n{}", target("")),
        "vars.list",
        "expected a string, number or boolean",
    );
    assert_eq!(e.line, Some(2));
    expect(
        &format!("[vars]\n\"a.b\" = \"x\"\n{}", target("")),
        "vars.\"a.b\"",
        "is not a variable name",
    );
    expect(
        &format!("vars = 1\n{}", target("")),
        "vars",
        "expected a table ([vars])",
    );
}

#[test]
fn set_overrides_and_defines_vars() {
    let src = format!(
        "[vars]\ntenant = \"acme\"\n{}",
        target("headers = { \"X-Tenant\" = \"{{vars.tenant}}\", \"X-Run\" = \"{{vars.run}}\" }")
    );
    let s = parse_in(&src, &[("tenant", "beta"), ("run", "7")], &[]).unwrap();
    assert_eq!(
        s.plan.vars,
        [
            ("tenant".to_string(), "beta".to_string()),
            ("run".to_string(), "7".to_string())
        ]
    );
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    // Without the --set, `run` is unknown.
    let e = parse_in(&src, &[], &[]).unwrap_err();
    assert_eq!(e.field, "target.headers.X-Run");
}

#[test]
fn an_unused_set_is_a_warning() {
    let src = format!("[vars]\ntenant = \"acme\"\n{}", target(""));
    let s = parse_in(&src, &[("tenant", "beta"), ("tenatn", "x")], &[]).unwrap();
    assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
    assert!(s.warnings[1].starts_with("--set tenatn=…: no template reads vars.tenatn"));
    // A var [vars] defines but nothing reads is not warned about.
    assert!(ok(&src).warnings.is_empty());
}

#[test]
fn env_vars_are_read_only_when_a_template_names_them() {
    let src = target("headers = { \"Authorization\" = \"Bearer {{env.API_TOKEN}}\" }");
    let env = [("API_TOKEN", "s3cret"), ("OTHER", "x")];
    let s = parse_in(&src, &[], &env).unwrap();
    assert_eq!(
        s.plan.env,
        [("API_TOKEN".to_string(), "s3cret".to_string())]
    );
    let e = parse_in(&src, &[], &[("OTHER", "x")]).unwrap_err();
    assert_eq!(e.field, "target.headers.Authorization");
    assert_eq!(e.line, Some(3));
    assert!(
        e.message
            .contains("environment variable API_TOKEN is not set"),
        "{e}"
    );
    // `parse` has no environment at all.
    expect(&src, "target.headers.Authorization", "API_TOKEN is not set");
    // Named twice, recorded once.
    let src = target("path = \"/{{env.A}}/{{ env.A }}\"");
    let s = parse_in(&src, &[], &[("A", "x")]).unwrap();
    assert_eq!(s.plan.env.len(), 1);
}
