//! Referenced files end to end: read from disk relative to the scenario by
//! [`load`], and resolved on the coordinator from what the client sent.

use std::collections::BTreeMap;
use std::path::PathBuf;

use volley_plan::model::MAX_INLINE_BODY;
use volley_plan::Body;

use super::super::{builtin_url, load, ScenarioTarget};
use super::TEST_CA;
use crate::run::Source;

/// A fresh directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "volley-scenario-files-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    dir
}

const SCENARIO: &str = r#"
[target]
url = "https://example.test/"
tls_ca = "ca.pem"

[[requests]]
name = "order"
path = "/orders"
body_file = "data/order.json"

[[requests]]
name = "again"
body_file = "data/order.json"

[[stages]]
rate = 10
duration = "1s"
"#;

#[test]
fn load_reads_files_next_to_the_scenario_and_hands_them_back() {
    let dir = temp_dir("load");
    std::fs::write(dir.join("ca.pem"), TEST_CA).unwrap();
    std::fs::write(dir.join("data/order.json"), b"{\"n\":1}").unwrap();
    let path = dir.join("mix.toml");
    std::fs::write(&path, SCENARIO).unwrap();

    let loaded = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.text, SCENARIO);
    let names: Vec<_> = loaded.files.keys().map(String::as_str).collect();
    assert_eq!(names, ["ca.pem", "data/order.json"]);
    assert_eq!(loaded.files["data/order.json"], b"{\"n\":1}");
    let plan = &loaded.scenario.plan;
    assert_eq!(plan.target.tls.ca_pem.as_deref(), Some(TEST_CA));
    for r in &plan.target.requests {
        assert_eq!(r.body, Body::Bytes(b"{\"n\":1}".to_vec()));
    }

    // The coordinator, given the text and the files, builds the same plan.
    let source = Source {
        scenario_toml: loaded.text.clone(),
        scenario_name: "mix.toml".into(),
        builtin_target_url: String::new(),
        files: loaded.files.clone(),
        vars: vec![],
        env: vec![],
    };
    assert_eq!(source.scenario().unwrap().plan, *plan);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreadable_files_are_scenario_errors_with_field_and_line() {
    let dir = temp_dir("missing");
    std::fs::write(dir.join("ca.pem"), TEST_CA).unwrap();
    let path = dir.join("mix.toml");
    std::fs::write(&path, SCENARIO).unwrap();
    let e = load(&path).unwrap_err();
    assert_eq!(e.field, "requests[0].body_file");
    assert_eq!(e.line, Some(9));
    assert!(e.file.ends_with("mix.toml"), "{e}");
    assert!(
        e.message.starts_with("cannot read \"data/order.json\": "),
        "{e}"
    );
    assert!(
        e.message
            .ends_with("(paths are relative to the scenario file's directory)"),
        "{e}"
    );

    // A directory, and a file over the limit (read no further than needed).
    std::fs::create_dir_all(dir.join("data/order.json")).unwrap();
    assert!(load(&path).unwrap_err().message.starts_with("cannot read"));
    std::fs::remove_dir_all(dir.join("data/order.json")).unwrap();
    std::fs::write(
        dir.join("data/order.json"),
        vec![b'x'; MAX_INLINE_BODY + 5000],
    )
    .unwrap();
    let e = load(&path).unwrap_err();
    assert_eq!(e.field, "requests[0].body_file");
    assert!(e.message.contains("at most 1048576 bytes"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_coordinator_resolves_files_from_what_was_sent() {
    let mut files = BTreeMap::new();
    files.insert("ca.pem".to_owned(), TEST_CA.as_bytes().to_vec());
    let source = Source {
        scenario_toml: SCENARIO.into(),
        scenario_name: "mix.toml".into(),
        builtin_target_url: String::new(),
        files,
        vars: vec![],
        env: vec![],
    };
    let e = source.scenario().unwrap_err();
    assert_eq!(
        e,
        "mix.toml:9: requests[0].body_file: cannot read \"data/order.json\": \
         the client did not send this file with the scenario"
    );
}

#[test]
fn a_builtin_tcp_target_gets_its_url_from_the_runner() {
    let text = "[target]\nbuiltin = true\nprotocol = \"tcp\"\nbody_file = \"p.bin\"\n\
                [[stages]]\nrate = 1\nduration = \"1s\"\n";
    let mut files = BTreeMap::new();
    files.insert("p.bin".to_owned(), vec![1, 2, 3]);
    let url = builtin_url(
        volley_plan::Protocol::Tcp,
        "127.0.0.1:7001".parse().unwrap(),
    );
    let source = Source {
        scenario_toml: text.into(),
        scenario_name: "tcp.toml".into(),
        builtin_target_url: url.clone(),
        files,
        vars: vec![],
        env: vec![],
    };
    let s = source.scenario().unwrap();
    assert!(matches!(s.target, ScenarioTarget::Builtin(_)));
    assert_eq!(s.plan.target.url, url);
    assert_eq!(s.plan.target.requests[0].body, Body::Bytes(vec![1, 2, 3]));
    // An HTTP URL for a TCP scenario (a runner that ignored the protocol) is refused.
    let wrong = Source {
        builtin_target_url: "http://127.0.0.1:7001/".into(),
        ..source
    };
    assert!(wrong.scenario().unwrap_err().contains("target.url"));
}
