//! End-to-end tests of [`parse`](super::parse) and [`load`](super::load).

mod files;
mod invalid;
mod invalid_stages;
mod invalid_target;
mod props;
mod protocols;
mod requests;
mod valid;

use volley_plan::model::MAX_INLINE_BODY;

use super::{Scenario, ScenarioError};

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
        _ => Err("No such file or directory (os error 2)".to_owned()),
    }
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
