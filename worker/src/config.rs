//! Worker settings, built from the CLI (or by the embedded default) so the
//! library never sees clap.

use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `http://host:port` of the coordinator.
    pub coordinator: String,
    pub token: Option<String>,
    /// Capacity weight, 1..=1000: the share of the load this worker takes
    /// relative to the others.
    pub weight: u32,
    /// Engine threads (each with its own part of the worker's share); the
    /// worker is still one worker to the coordinator.
    pub threads: usize,
    pub id: Uuid,
    /// How long a worker keeps sending load while it cannot reach the
    /// coordinator; after that it stops.
    pub max_outage: Duration,
    pub hostname: String,
    /// PEM CA certificate(s) to trust for an `https://` coordinator, on top
    /// of the system roots.
    pub tls_ca: Option<Vec<u8>>,
}

impl WorkerConfig {
    pub fn new(coordinator: impl Into<String>) -> WorkerConfig {
        WorkerConfig {
            coordinator: coordinator.into(),
            token: None,
            weight: 1,
            threads: 1,
            id: Uuid::new_v4(),
            max_outage: Duration::from_secs(60),
            hostname: std::env::var("HOSTNAME").unwrap_or_default(),
            tls_ca: None,
        }
    }
}
