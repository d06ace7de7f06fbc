//! `volley-worker` command line. Every flag has a `VOLLEY_*` variable for
//! Kubernetes.

use clap::Parser;
use std::time::Duration;
use volley_worker::WorkerConfig;

/// A Volley worker: dials the coordinator, takes its share of each run and
/// sends it open-model, reporting one histogram per second.
#[derive(Debug, Parser)]
#[command(name = "volley-worker", version)]
pub struct Cli {
    /// Coordinator address, e.g. http://127.0.0.1:7700
    #[arg(long, env = "VOLLEY_COORDINATOR")]
    pub coordinator: String,
    /// Shared token the coordinator expects
    #[arg(long, env = "VOLLEY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Capacity weight (1..=1000): this worker's share relative to others
    #[arg(long, env = "VOLLEY_WEIGHT", default_value_t = 1)]
    pub weight: u32,
    /// Stop sending load after the coordinator has been unreachable this long
    #[arg(long, env = "VOLLEY_MAX_OUTAGE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub max_outage: Duration,
    /// Log format on stderr: text for people, json for log collectors
    #[arg(long, env = "VOLLEY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// PEM file of the CA that signed an https:// coordinator's certificate
    #[arg(long, env = "VOLLEY_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
}

impl TryFrom<Cli> for WorkerConfig {
    type Error = String;

    fn try_from(cli: Cli) -> Result<Self, String> {
        if !(1..=volley_plan::partition::MAX_WEIGHT).contains(&cli.weight) {
            return Err(format!("--weight: expected 1..=1000, got {}", cli.weight));
        }
        let coordinator = if cli.coordinator.contains("://") {
            cli.coordinator
        } else {
            format!("http://{}", cli.coordinator)
        };
        let mut c = WorkerConfig::new(coordinator);
        c.token = cli.token.filter(|t| !t.is_empty());
        c.weight = cli.weight;
        c.max_outage = cli.max_outage;
        if let Some(p) = cli.tls_ca {
            c.tls_ca =
                Some(std::fs::read(&p).map_err(|e| format!("--tls-ca {}: {e}", p.display()))?);
        }
        Ok(c)
    }
}
