//! `volley-worker` command line. Every flag has a `VOLLEY_*` variable for
//! Kubernetes.

use clap::Parser;
use std::time::Duration;
use volley_worker::WorkerConfig;

/// Most engine threads one worker runs.
const MAX_THREADS: usize = 1024;

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
    /// [default: its thread count]
    #[arg(long, env = "VOLLEY_WEIGHT")]
    pub weight: Option<u32>,
    /// Engine threads, each sending its part of this worker's share on its
    /// own core; still one worker to the coordinator. Never more than the
    /// scenario's `load.connections` or `load.max_in_flight`
    /// [default: the cores this process may use]
    #[arg(long, env = "VOLLEY_THREADS")]
    pub threads: Option<usize>,
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
        let threads = match cli.threads {
            Some(n) if !(1..=MAX_THREADS).contains(&n) => {
                return Err(format!("--threads: expected 1..={MAX_THREADS}, got {n}"));
            }
            Some(n) => n,
            // What the affinity mask and the cgroup CPU quota allow (a pod's
            // CPU limit, rounded up).
            None => std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS)),
        };
        let max_weight = volley_plan::partition::MAX_WEIGHT;
        let weight = cli
            .weight
            .unwrap_or(threads.min(max_weight as usize) as u32);
        if !(1..=max_weight).contains(&weight) {
            return Err(format!("--weight: expected 1..={max_weight}, got {weight}"));
        }
        let coordinator = if cli.coordinator.contains("://") {
            cli.coordinator
        } else {
            format!("http://{}", cli.coordinator)
        };
        let mut c = WorkerConfig::new(coordinator);
        c.token = cli.token.filter(|t| !t.is_empty());
        c.weight = weight;
        c.threads = threads;
        c.max_outage = cli.max_outage;
        if let Some(p) = cli.tls_ca {
            c.tls_ca =
                Some(std::fs::read(&p).map_err(|e| format!("--tls-ca {}: {e}", p.display()))?);
        }
        Ok(c)
    }
}
