//! The embedded default: `volley run SCENARIO` without `--coordinator`.
//!
//! Starts, inside this process, a coordinator on a loopback port with a
//! random token, `local_workers` workers that dial it over gRPC exactly as
//! remote ones do, and the built-in target when the scenario asks for it;
//! then submits the scenario like any client and shuts everything down.

use crate::client::{self, SubmitOptions};
use crate::exit::{CliError, Exit};
use crate::report::Report;
use crate::scenario::{builtin_url, ScenarioTarget};
use crate::service;
use crate::state::{Coordinator, CoordinatorConfig};
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use volley_plan::Protocol;
use volley_target::{Listeners, TargetConfig};
use volley_worker::WorkerConfig;

#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub scenario: PathBuf,
    pub local_workers: usize,
    pub out: Option<PathBuf>,
    pub live: bool,
    /// Print report.md after the summary.
    pub print_report: bool,
    pub baseline: Option<crate::verdict::Baseline>,
    pub strict: bool,
    /// Also write the verdicts as JUnit XML here.
    pub junit: Option<PathBuf>,
    /// `--set NAME=VALUE` overrides of the scenario's `[vars]`.
    pub vars: Vec<(String, String)>,
    /// Serve Prometheus metrics here while the run goes.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Push the same metrics over OTLP.
    pub otlp: Option<crate::otlp::OtlpConfig>,
}

/// Runs the scenario locally; `interrupt` as in [`client::submit`].
pub async fn run(
    opts: LocalOptions,
    interrupt: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) -> Result<(Exit, Option<Report>), CliError> {
    let (scenario, _) = client::load_scenario(&opts.scenario, &opts.vars)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };

    let mut builtin_target_url = None;
    let mut target_thread = None;
    if let ScenarioTarget::Builtin(b) = &scenario.target {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| CliError::incomplete(format!("cannot bind the built-in target: {e}")))?;
        let addr = std_listener
            .local_addr()
            .map_err(|e| CliError::incomplete(e.to_string()))?;
        // HTTP/1.1, HTTP/2 and gRPC share the HTTP listener; framed TCP
        // gets the TCP echo instead.
        let protocol = scenario.plan.target.protocol;
        builtin_target_url = Some(builtin_url(protocol, addr));
        let config = TargetConfig {
            delay: b.delay,
            error_rate: b.error_rate,
            body_size: b.body_size,
            capacity: b.capacity,
        };
        let rx = stop_rx.clone();
        // Its own runtime thread, so the target never competes with the
        // coordinator's tasks for a scheduler slot.
        target_thread = Some(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("volley-target")
                .enable_all()
                .build()
                .expect("target runtime");
            rt.block_on(async move {
                std_listener
                    .set_nonblocking(true)
                    .expect("nonblocking listener");
                let listener = TcpListener::from_std(std_listener).expect("tokio listener");
                let listeners = if protocol == Protocol::Tcp {
                    Listeners {
                        tcp: Some(listener),
                        ..Listeners::default()
                    }
                } else {
                    Listeners {
                        http: Some(listener),
                        ..Listeners::default()
                    }
                };
                let _ = volley_target::run(config, listeners, stopped(rx)).await;
            });
        }));
    }

    let token = uuid::Uuid::new_v4().simple().to_string();
    let coord = Coordinator::new(CoordinatorConfig {
        token: Some(token.clone()),
        ..CoordinatorConfig::default()
    });
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| CliError::incomplete(format!("cannot bind the local coordinator: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::incomplete(e.to_string()))?;
    if let Some(m) = opts.metrics_listen {
        let l = TcpListener::bind(m)
            .await
            .map_err(|e| CliError::bad_input(format!("--metrics-listen {m}: {e}")))?;
        eprintln!(
            "volley: metrics on http://{}/metrics",
            l.local_addr()
                .map_err(|e| CliError::incomplete(e.to_string()))?
        );
        tokio::spawn(crate::metrics::serve(
            coord.metrics.clone(),
            l,
            stopped(stop_rx.clone()),
        ));
    }
    let otlp = match &opts.otlp {
        Some(c) => {
            let o = crate::otlp::Otlp::start(c)?;
            o.listen_to(&coord.metrics);
            Some(o)
        }
        None => None,
    };
    let server = tokio::spawn(service::serve(
        coord,
        listener,
        None,
        stopped(stop_rx.clone()),
    ));
    let url = format!("http://{addr}");

    let n = opts.local_workers.max(1);
    let mut workers = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = WorkerConfig::new(url.clone());
        c.token = Some(token.clone());
        c.hostname = "local".into();
        workers.push(tokio::spawn(volley_worker::run(
            c,
            stopped(stop_rx.clone()),
        )));
    }

    // The interrupts the client took: after a second one it has abandoned
    // the run and quits at once, without waiting for the workers' drain.
    let interrupts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = || -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let signal = interrupt();
        let interrupts = interrupts.clone();
        Box::pin(async move {
            signal.await;
            interrupts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let result = client::submit(
        SubmitOptions {
            conn: client::Connection {
                coordinator: url,
                token: Some(token),
                tls_ca: None,
            },
            scenario: opts.scenario,
            min_workers: n as u32,
            wait: Duration::from_secs(10),
            builtin_target_url,
            follow: client::FollowOptions {
                out: opts.out,
                live: opts.live,
                print_report: opts.print_report,
                baseline: opts.baseline,
                strict: opts.strict,
                summary: true,
                junit: opts.junit,
            },
            vars: opts.vars,
        },
        counted,
    )
    .await;

    let _ = stop_tx.send(true);
    if interrupts.load(std::sync::atomic::Ordering::SeqCst) > 1 {
        return result;
    }
    // The run's last seconds are in: export them before anything else, so
    // a short or interrupted run is exported too (a second interrupt, above,
    // quits without waiting for it).
    if let Some(o) = otlp {
        o.shutdown().await;
    }
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(3), w).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(3), server).await;
    if let Some(t) = target_thread {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    result
}
