//! Cross-process tests live in `tests/`: they start the real `volley` and
//! `volley-worker` binaries (built by the same `cargo test`/`cargo nextest`
//! run, see `tests/common`) on loopback ports from `127.0.0.1:0`.
