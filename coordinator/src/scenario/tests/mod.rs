//! End-to-end tests of [`parse`](super::parse) and [`load`](super::load).

mod checks;
mod data;
mod files;
mod invalid;
mod invalid_stages;
mod invalid_target;
mod props;
mod protocols;
mod requests;
mod templates;
mod valid;

use volley_plan::model::MAX_INLINE_BODY;

use super::{Inputs, Scenario, ScenarioError};

/// Directory of the checked-in example scenarios (`examples/` at the
/// workspace root).
const EXAMPLES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");

/// The smallest valid scenario.
const MIN: &str = "[target]\nbuiltin = true\n\n[[stages]]\nrate = 100\nduration = \"10s\"\n";

/// A certificate in PEM, as `tls_ca` expects (its contents are the
/// worker's business; the parser checks the framing).
const TEST_CA: &str =
    "# test CA\n-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n";

/// The files test scenarios may reference, as a resolver.
fn test_files(name: &str) -> Result<Vec<u8>, String> {
    match name {
        "body.bin" => Ok(b"hello".to_vec()),
        "order.json" => Ok(br#"{"item":1}"#.to_vec()),
        "empty.bin" => Ok(Vec::new()),
        "full.bin" => Ok(vec![7; MAX_INLINE_BODY]),
        "big.bin" => Ok(vec![7; MAX_INLINE_BODY + 1]),
        "ca.pem" => Ok(TEST_CA.as_bytes().to_vec()),
        "not-pem.txt" => Ok(b"hello".to_vec()),
        "begin-only.pem" => Ok(b"-----BEGIN CERTIFICATE-----\nMIIB\n".to_vec()),
        "der.crt" => Ok(vec![0x30, 0x82, 0xff, 0xfe]),
        "users.csv" => Ok(USERS_CSV.as_bytes().to_vec()),
        "users.jsonl" => {
            Ok(b"{\"id\": 1, \"name\": \"ann\"}\n{\"id\": 2, \"name\": \"bob\"}\n".to_vec())
        }
        "users.txt" => Ok(b"{\"id\": 7}\n".to_vec()),
        "ragged.csv" => Ok(b"id,name\n1,ann\n2,bob\n3,cy,extra\n".to_vec()),
        "empty.csv" => Ok(Vec::new()),
        "header-only.csv" => Ok(b"id,name\n".to_vec()),
        "order-tpl.json" => {
            Ok(b"{\n  \"id\": {{seq}},\n  \"user\": \"{{data.users.name}}\"\n}\n".to_vec())
        }
        "bad-tpl.json" => Ok(b"{\n  \"id\": {{seq}},\n  \"x\": {{ nope }}\n}\n".to_vec()),
        "binary-braces.bin" => Ok(vec![0xff, b'{', b'{', 0xfe, b'}', b'}']),
        _ => Err("No such file or directory (os error 2)".to_owned()),
    }
}

/// The rows of `users.csv`: three users.
const USERS_CSV: &str = "id,name\n1,ann\n2,bob\n3,cy\n";

/// Parses with [`test_files`], `--set` overrides and an environment of
/// `(name, value)` pairs.
fn parse_in(
    src: &str,
    set: &[(&str, &str)],
    env: &[(&str, &str)],
) -> Result<Scenario, ScenarioError> {
    let set: Vec<(String, String)> = set
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let lookup = |name: &str| {
        env.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    };
    let inputs = Inputs {
        files: &test_files,
        vars: &set,
        env: &lookup,
    };
    super::parse_with(src, "t.toml", &inputs)
}

/// Parses with [`test_files`].
fn parse(src: &str, file: &str) -> Result<Scenario, ScenarioError> {
    super::parse(src, file, &test_files)
}

fn ok(src: &str) -> Scenario {
    parse(src, "t.toml").unwrap_or_else(|e| panic!("{e}\n--- source ---\n{src}"))
}

fn err(src: &str) -> ScenarioError {
    match parse(src, "t.toml") {
        Ok(s) => panic!("expected an error, got {s:?}\n--- source ---\n{src}"),
        Err(e) => e,
    }
}

/// Asserts the error names `field` exactly and its message contains `needle`.
#[track_caller]
fn expect(src: &str, field: &str, needle: &str) -> ScenarioError {
    let e = err(src);
    assert_eq!(e.field, field, "wrong field in: {e}\n--- source ---\n{src}");
    assert!(
        e.message.contains(needle),
        "message lacks {needle:?}: {e}\n--- source ---\n{src}"
    );
    e
}

/// A built-in-target scenario whose only stage has the given lines.
fn with_stage(stage: &str) -> String {
    format!("[target]\nbuiltin = true\n\n[[stages]]\n{stage}\n")
}

/// A scenario whose `[target]` has the given lines, with one stage.
fn with_target(target: &str) -> String {
    format!("[target]\n{target}\n\n[[stages]]\nrate = 100\nduration = \"10s\"\n")
}
