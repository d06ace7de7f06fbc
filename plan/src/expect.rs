//! Response checks (`[target.expect]`, `[requests.expect]`): what a reply
//! must look like to count as ok.
//!
//! A reply that fails a check is an error of kind `check`, counted under
//! the check's name (`errors_by_check`). Checks are judged in a fixed order
//! (status, grpc_status, headers, max_body_bytes, body_contains, body_regex,
//! json) and only the first failing one is counted, so the per-check counts
//! add up to `errors_by_kind.check`.
//!
//! A `status` check replaces the default rule (HTTP status < 400 is ok):
//! a status in the list is ok, any other is a `check` error. Likewise
//! `grpc_status` replaces "only OK is ok" for gRPC calls.
//!
//! [`Expect`] is the plain description that travels in the plan;
//! [`Checker`] is its compiled form (regexes, JSONPath queries), built once
//! per worker. The body is read and kept only when a check needs it
//! ([`Checker::needs_body`]); `max_body_bytes` alone only counts bytes.

use regex::bytes::Regex;
use serde_json_path::JsonPath;

/// Most bytes of a reply body kept for `body_contains`, `body_regex` or
/// `json`; a longer body fails those checks (it cannot be judged whole).
pub const MAX_CHECKED_BODY: usize = 4 * 1024 * 1024;
/// Most checks of one request.
pub const MAX_CHECKS: usize = 64;

/// One allowed HTTP status: a code, or a class such as `2xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Code(u16),
    /// `2xx` is `Class(2)`.
    Class(u8),
}

impl StatusMatch {
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Code(c) => c == status,
            StatusMatch::Class(c) => status / 100 == u16::from(c),
        }
    }

    /// `"2xx"` → `Class(2)`, `"200"` → `Code(200)`.
    pub fn parse(s: &str) -> Option<StatusMatch> {
        let s = s.trim();
        let b = s.as_bytes();
        if b.len() == 3 && b[1..].eq_ignore_ascii_case(b"xx") && (b'1'..=b'5').contains(&b[0]) {
            return Some(StatusMatch::Class(b[0] - b'0'));
        }
        s.parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
            .map(StatusMatch::Code)
    }

    pub fn to_text(self) -> String {
        match self {
            StatusMatch::Code(c) => c.to_string(),
            StatusMatch::Class(c) => format!("{c}xx"),
        }
    }
}

/// What one check asks of a reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Status(Vec<StatusMatch>),
    /// gRPC status codes allowed (numbers; see [`grpc_code`]).
    GrpcStatus(Vec<u32>),
    /// The header is present and its value (trimmed) equals `value`.
    Header {
        name: String,
        value: String,
    },
    MaxBodyBytes(u64),
    BodyContains(String),
    BodyRegex(String),
    /// The JSONPath query finds at least one node and every node equals
    /// `value`.
    Json {
        path: String,
        value: serde_json::Value,
    },
}

impl Rule {
    /// The name a check gets when the scenario gives none, as the report
    /// shows it: `status`, `header content-type`, `json $.status`, …
    pub fn default_name(&self) -> String {
        match self {
            Rule::Status(_) => "status".into(),
            Rule::GrpcStatus(_) => "grpc_status".into(),
            Rule::Header { name, .. } => format!("header {}", name.to_ascii_lowercase()),
            Rule::MaxBodyBytes(_) => "max_body_bytes".into(),
            Rule::BodyContains(_) => "body_contains".into(),
            Rule::BodyRegex(_) => "body_regex".into(),
            Rule::Json { path, .. } => format!("json {path}"),
        }
    }

    /// Judging order: cheap facts of the head first, the body last.
    fn rank(&self) -> u8 {
        match self {
            Rule::Status(_) => 0,
            Rule::GrpcStatus(_) => 1,
            Rule::Header { .. } => 2,
            Rule::MaxBodyBytes(_) => 3,
            Rule::BodyContains(_) => 4,
            Rule::BodyRegex(_) => 5,
            Rule::Json { .. } => 6,
        }
    }

    fn needs_body(&self) -> bool {
        matches!(
            self,
            Rule::BodyContains(_) | Rule::BodyRegex(_) | Rule::Json { .. }
        )
    }
}

/// A named check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub rule: Rule,
}

/// The checks of one request definition (empty: the default rules only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expect {
    pub checks: Vec<Check>,
}

impl Expect {
    /// Checks under their default names (`status`, `json $.status`, …).
    pub fn from_rules(rules: impl IntoIterator<Item = Rule>) -> Expect {
        Expect {
            checks: rules
                .into_iter()
                .map(|rule| Check {
                    name: rule.default_name(),
                    rule,
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }
}

/// The gRPC status code names, in code order.
pub const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A gRPC status code by name (`"NOT_FOUND"`, case-insensitive) or number.
pub fn grpc_code(s: &str) -> Option<u32> {
    let s = s.trim();
    GRPC_CODES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(s))
        .map(|i| i as u32)
        .or_else(|| s.parse::<u32>().ok().filter(|&c| c < 17))
}

enum Compiled {
    Status(Vec<StatusMatch>),
    Grpc(Vec<u32>),
    Header {
        name: Vec<u8>,
        value: Vec<u8>,
    },
    MaxBody(u64),
    Contains(Box<memchr::memmem::Finder<'static>>),
    Regex(Regex),
    Json {
        path: Box<JsonPath>,
        value: serde_json::Value,
    },
}

/// The verdict of a check stage: ok, the default rule applies, or the
/// index of the first failing check (into [`Expect::checks`]).
pub type CheckFailure = u16;

/// The compiled checks of one request, judged on the worker.
pub struct Checker {
    /// (index into `Expect::checks`, compiled), in judging order.
    checks: Vec<(CheckFailure, Compiled)>,
    needs_body: bool,
    has_status: bool,
    has_grpc: bool,
    has_headers: bool,
    max_body: Option<u64>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Checker({} checks)", self.checks.len())
    }
}

/// Why a check cannot be compiled: the index of the check and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CheckError {
    pub check: usize,
    pub message: String,
}

impl Checker {
    pub fn new(expect: &Expect) -> Result<Checker, CheckError> {
        if expect.checks.len() > MAX_CHECKS {
            return Err(CheckError {
                check: MAX_CHECKS,
                message: format!("at most {MAX_CHECKS} checks per request"),
            });
        }
        let mut order: Vec<usize> = (0..expect.checks.len()).collect();
        order.sort_by_key(|&i| (expect.checks[i].rule.rank(), i));
        let mut checks = Vec::with_capacity(order.len());
        for i in order {
            let fail = |message: String| CheckError { check: i, message };
            let c = match &expect.checks[i].rule {
                Rule::Status(list) => {
                    if list.is_empty() {
                        return Err(fail(
                            "at least one status, such as [200] or [\"2xx\"]".into(),
                        ));
                    }
                    Compiled::Status(list.clone())
                }
                Rule::GrpcStatus(list) => {
                    if list.is_empty() {
                        return Err(fail(
                            "at least one gRPC status name, such as [\"OK\"]".into(),
                        ));
                    }
                    Compiled::Grpc(list.clone())
                }
                Rule::Header { name, value } => Compiled::Header {
                    name: name.to_ascii_lowercase().into_bytes(),
                    value: value.trim().as_bytes().to_vec(),
                },
                Rule::MaxBodyBytes(n) => Compiled::MaxBody(*n),
                Rule::BodyContains(s) => {
                    if s.is_empty() {
                        return Err(fail("a non-empty string to look for".into()));
                    }
                    Compiled::Contains(Box::new(
                        memchr::memmem::Finder::new(s.as_bytes()).into_owned(),
                    ))
                }
                Rule::BodyRegex(r) => Compiled::Regex(
                    Regex::new(r).map_err(|e| fail(format!("a valid regular expression: {e}")))?,
                ),
                Rule::Json { path, value } => Compiled::Json {
                    path: Box::new(JsonPath::parse(path).map_err(|e| {
                        fail(format!("a valid JSONPath such as \"$.status\": {e}"))
                    })?),
                    value: value.clone(),
                },
            };
            checks.push((i as CheckFailure, c));
        }
        let has = |f: fn(&Compiled) -> bool| checks.iter().any(|(_, c)| f(c));
        Ok(Checker {
            needs_body: expect.checks.iter().any(|c| c.rule.needs_body()),
            has_status: has(|c| matches!(c, Compiled::Status(_))),
            has_grpc: has(|c| matches!(c, Compiled::Grpc(_))),
            has_headers: has(|c| matches!(c, Compiled::Header { .. })),
            max_body: checks.iter().find_map(|(_, c)| match c {
                Compiled::MaxBody(n) => Some(*n),
                _ => None,
            }),
            checks,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// Whether the reply body must be read into memory.
    pub fn needs_body(&self) -> bool {
        self.needs_body
    }

    /// Whether any header is checked (else headers need no look).
    pub fn has_headers(&self) -> bool {
        self.has_headers
    }

    /// Whether the body length matters (`max_body_bytes`).
    pub fn max_body(&self) -> Option<u64> {
        self.max_body
    }

    /// Judges an HTTP status: `None` when a `status` check is absent (the
    /// default rule applies), `Some(Ok)` when allowed, `Some(Err(check))`.
    #[inline]
    pub fn status(&self, status: u16) -> Option<Result<(), CheckFailure>> {
        if !self.has_status {
            return None;
        }
        for (i, c) in &self.checks {
            if let Compiled::Status(list) = c {
                if !list.iter().any(|m| m.matches(status)) {
                    return Some(Err(*i));
                }
            }
        }
        Some(Ok(()))
    }

    /// Judges a gRPC status code like [`Checker::status`].
    #[inline]
    pub fn grpc_status(&self, code: u32) -> Option<Result<(), CheckFailure>> {
        if !self.has_grpc {
            return None;
        }
        for (i, c) in &self.checks {
            if let Compiled::Grpc(list) = c {
                if !list.contains(&code) {
                    return Some(Err(*i));
                }
            }
        }
        Some(Ok(()))
    }

    /// Judges the header checks against a reply's headers (`name` in any
    /// case); the first failing check.
    pub fn headers<'h>(
        &self,
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
    ) -> Result<(), CheckFailure> {
        for (i, c) in &self.checks {
            if let Compiled::Header { name, value } = c {
                let found = headers.clone().any(|(n, v)| {
                    n.eq_ignore_ascii_case(name) && v.trim_ascii() == value.as_slice()
                });
                if !found {
                    return Err(*i);
                }
            }
        }
        Ok(())
    }

    /// The `max_body_bytes` check on a body of `len` bytes.
    #[inline]
    pub fn body_len(&self, len: u64) -> Result<(), CheckFailure> {
        match self.max_body {
            Some(max) if len > max => Err(self.first(|c| matches!(c, Compiled::MaxBody(_)))),
            _ => Ok(()),
        }
    }

    /// The body checks on a whole body; `truncated` when the body was
    /// longer than [`MAX_CHECKED_BODY`] (every body check then fails).
    pub fn body(&self, body: &[u8], truncated: bool) -> Result<(), CheckFailure> {
        let mut json: Option<Option<serde_json::Value>> = None;
        for (i, c) in &self.checks {
            let pass = match c {
                Compiled::Contains(f) => !truncated && f.find(body).is_some(),
                Compiled::Regex(r) => !truncated && r.is_match(body),
                Compiled::Json { path, value } => {
                    if truncated {
                        false
                    } else {
                        let doc = json.get_or_insert_with(|| serde_json::from_slice(body).ok());
                        match doc {
                            Some(doc) => {
                                let nodes = path.query(doc).all();
                                !nodes.is_empty() && nodes.iter().all(|n| *n == value)
                            }
                            None => false,
                        }
                    }
                }
                _ => true,
            };
            if !pass {
                return Err(*i);
            }
        }
        Ok(())
    }

    fn first(&self, f: impl Fn(&Compiled) -> bool) -> CheckFailure {
        self.checks
            .iter()
            .find(|(_, c)| f(c))
            .map(|(i, _)| *i)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(rule: Rule) -> Check {
        Check {
            name: rule.default_name(),
            rule,
        }
    }

    fn checker(rules: Vec<Rule>) -> Checker {
        Checker::new(&Expect::from_rules(rules)).unwrap()
    }

    #[test]
    fn status_lists_and_classes() {
        assert_eq!(StatusMatch::parse("2xx"), Some(StatusMatch::Class(2)));
        assert_eq!(StatusMatch::parse("201"), Some(StatusMatch::Code(201)));
        assert_eq!(StatusMatch::parse("7xx"), None);
        assert_eq!(StatusMatch::parse("99"), None);
        let c = checker(vec![Rule::Status(vec![
            StatusMatch::Code(200),
            StatusMatch::Class(3),
        ])]);
        assert_eq!(c.status(200), Some(Ok(())));
        assert_eq!(c.status(302), Some(Ok(())));
        assert_eq!(c.status(201), Some(Err(0)), "a 201 against [200] fails");
        assert_eq!(checker(vec![]).status(500), None, "no check: default rule");
    }

    #[test]
    fn grpc_codes_by_name() {
        assert_eq!(grpc_code("not_found"), Some(5));
        assert_eq!(grpc_code("OK"), Some(0));
        assert_eq!(grpc_code("16"), Some(16));
        assert_eq!(grpc_code("NOPE"), None);
        let c = checker(vec![Rule::GrpcStatus(vec![0])]);
        assert_eq!(c.grpc_status(0), Some(Ok(())));
        assert_eq!(c.grpc_status(5), Some(Err(0)));
    }

    #[test]
    fn headers_compare_names_in_any_case_and_trimmed_values() {
        let c = checker(vec![Rule::Header {
            name: "Content-Type".into(),
            value: "application/json".into(),
        }]);
        let ok: Vec<(&[u8], &[u8])> = vec![(b"content-type", b" application/json ")];
        assert_eq!(c.headers(ok.iter().copied()), Ok(()));
        let bad: Vec<(&[u8], &[u8])> = vec![(b"content-type", b"text/html")];
        assert_eq!(c.headers(bad.iter().copied()), Err(0));
        assert_eq!(c.headers(std::iter::empty()), Err(0));
    }

    #[test]
    fn body_checks_in_order_first_failure_counts() {
        let c = checker(vec![
            Rule::Json {
                path: "$.status".into(),
                value: json!("ok"),
            },
            Rule::BodyContains("status".into()),
            Rule::BodyRegex("^\\{".into()),
            Rule::MaxBodyBytes(100),
        ]);
        assert!(c.needs_body());
        assert_eq!(c.body(br#"{"status":"ok"}"#, false), Ok(()));
        assert_eq!(c.body(br#"{"status":"error"}"#, false), Err(0));
        assert_eq!(c.body(br#" {"status":"ok"}"#, false), Err(2));
        assert_eq!(c.body(br#"{"x":1}"#, false), Err(1), "contains before json");
        assert_eq!(c.body(b"not json status {", false), Err(2));
        assert_eq!(
            c.body(br#"{"status":"ok"}"#, true),
            Err(1),
            "a truncated body fails"
        );
        assert_eq!(c.body_len(101), Err(3));
        assert_eq!(c.body_len(100), Ok(()));
    }

    #[test]
    fn json_needs_a_node_and_all_nodes_equal() {
        let c = checker(vec![Rule::Json {
            path: "$.items[*].ok".into(),
            value: json!(true),
        }]);
        assert_eq!(
            c.body(br#"{"items":[{"ok":true},{"ok":true}]}"#, false),
            Ok(())
        );
        assert_eq!(
            c.body(br#"{"items":[{"ok":true},{"ok":false}]}"#, false),
            Err(0)
        );
        assert_eq!(c.body(br#"{"items":[]}"#, false), Err(0));
    }

    #[test]
    fn only_max_body_bytes_does_not_need_the_body() {
        let c = checker(vec![Rule::MaxBodyBytes(10)]);
        assert!(!c.needs_body());
        assert_eq!(c.max_body(), Some(10));
    }

    #[test]
    fn malformed_regex_and_jsonpath_are_refused_with_the_check_index() {
        let e = Checker::new(&Expect {
            checks: vec![
                check(Rule::BodyContains("a".into())),
                check(Rule::BodyRegex("(".into())),
            ],
        })
        .unwrap_err();
        assert_eq!(e.check, 1);
        assert!(e.message.contains("regular expression"), "{e}");
        let e = Checker::new(&Expect {
            checks: vec![check(Rule::Json {
                path: "$[".into(),
                value: json!(1),
            })],
        })
        .unwrap_err();
        assert!(e.message.contains("JSONPath"), "{e}");
        assert!(Checker::new(&Expect {
            checks: vec![check(Rule::Status(vec![]))]
        })
        .is_err());
    }

    #[test]
    fn statuses_print_as_written() {
        for text in ["200", "2xx", "5xx", "404"] {
            let m = StatusMatch::parse(text).unwrap();
            assert_eq!(m.to_text(), text);
        }
        assert_eq!(grpc_code("17"), None, "codes stop at 16");
    }

    #[test]
    fn a_checker_says_what_it_looks_at() {
        assert!(Expect::default().is_empty());
        let none = checker(vec![]);
        assert!(none.is_empty() && !none.has_headers() && !none.needs_body());
        assert_eq!(format!("{none:?}"), "Checker(0 checks)");
        let head = checker(vec![
            Rule::Status(vec![StatusMatch::Code(200)]),
            Rule::Header {
                name: "x".into(),
                value: "1".into(),
            },
        ]);
        assert!(!head.is_empty() && head.has_headers() && !head.needs_body());
        assert_eq!(head.max_body(), None);
        assert_eq!(format!("{head:?}"), "Checker(2 checks)");
        let e = Expect::from_rules([Rule::MaxBodyBytes(1)]);
        assert!(!e.is_empty());
        assert!(!checker(vec![Rule::GrpcStatus(vec![0])]).has_headers());
    }

    #[test]
    fn at_most_max_checks() {
        let n = |k: usize| Expect::from_rules((0..k).map(|i| Rule::MaxBodyBytes(i as u64)));
        assert!(Checker::new(&n(MAX_CHECKS)).is_ok());
        let e = Checker::new(&n(MAX_CHECKS + 1)).unwrap_err();
        assert_eq!(e.check, MAX_CHECKS);
        assert!(e.message.contains("at most 64 checks"), "{e}");
    }

    #[test]
    fn a_truncated_body_fails_each_body_check() {
        let body = br#"{"status":"ok"}"#;
        let regex = checker(vec![Rule::BodyRegex("ok".into())]);
        assert_eq!(regex.body(body, false), Ok(()));
        assert_eq!(regex.body(body, true), Err(0));
        let contains = checker(vec![Rule::BodyContains("ok".into())]);
        assert_eq!(contains.body(body, false), Ok(()));
        assert_eq!(contains.body(body, true), Err(0));
        let json = checker(vec![Rule::Json {
            path: "$.status".into(),
            value: json!("ok"),
        }]);
        assert_eq!(json.body(body, false), Ok(()));
        assert_eq!(json.body(body, true), Err(0));
    }

    #[test]
    fn the_checked_body_limit_is_the_documented_4_mib() {
        // docs/scenarios.md: body checks read "at most 4 MiB" of a reply.
        assert_eq!(MAX_CHECKED_BODY, 4_194_304);
    }

    #[test]
    fn default_names() {
        assert_eq!(
            Rule::Json {
                path: "$.status".into(),
                value: json!("ok")
            }
            .default_name(),
            "json $.status"
        );
        assert_eq!(
            Rule::Header {
                name: "X-Id".into(),
                value: String::new()
            }
            .default_name(),
            "header x-id"
        );
    }
}
