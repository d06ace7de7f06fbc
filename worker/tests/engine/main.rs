//! The traffic engine against small servers written here, one per
//! behaviour, for every protocol: counts add up, replies are matched to
//! their requests, and each way of failing lands in its own error kind.
//! (The cross-process tests against nginx, grpcio and the built-in target
//! are in `integration-tests/tests/protocols.rs`.)

mod http1;
mod http2;
mod schedule;
mod servers;
mod support;
mod tcp;
