//! End-to-end tests of [`parse`](super::parse) and [`load`](super::load).

mod invalid;
mod invalid_stages;
mod invalid_target;
mod props;
mod valid;

use super::{parse, Scenario, ScenarioError};

/// Directory of the checked-in example scenarios (`examples/` at the
/// workspace root).
const EXAMPLES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");

/// The smallest valid scenario.
const MIN: &str = "[target]\nbuiltin = true\n\n[[stages]]\nrate = 100\nduration = \"10s\"\n";

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
