//! `volley`: parses the command line, starts tracing, and calls the library.

mod cli;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;
#[cfg(feature = "local")]
use volley_coordinator::local;
use volley_coordinator::report::{html, markdown, Report};
use volley_coordinator::{
    client, service, verdict, CliError, Coordinator, CoordinatorConfig, Exit,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `volley run` reports problems itself (they reach the client as run
    // events); its embedded coordinator logs only errors unless RUST_LOG
    // says otherwise. Long-lived servers log warnings.
    init_tracing(
        if matches!(cli.command, Command::Run(_)) {
            "error"
        } else {
            "warn"
        },
        cli.log_format,
    );
    let result = match cli.command {
        Command::Run(a) => runtime(None).block_on(run(a)),
        Command::Serve(a) => runtime(None).block_on(serve(a)),
        Command::Target(a) => {
            let threads = a.threads.unwrap_or_else(cores);
            runtime(Some(threads)).block_on(target(a))
        }
        Command::Report(a) => report(a),
    };
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            eprintln!("volley: {e}");
            ExitCode::from(e.exit.code())
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn runtime(threads: Option<usize>) -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = threads {
        b.worker_threads(t.max(1));
    }
    b.enable_all().build().expect("tokio runtime")
}

fn init_tracing(default: &str, format: cli::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Json => fmt.json().init(),
        cli::LogFormat::Text => fmt.init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

fn ctrl_c() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

fn baseline(v: &cli::VerdictArgs) -> Result<Option<verdict::Baseline>, CliError> {
    v.baseline
        .as_deref()
        .map(|p| verdict::load_baseline(p, v.threshold))
        .transpose()
}

async fn run(a: cli::RunArgs) -> Result<Exit, CliError> {
    let live = !a.quiet;
    // Checked before any traffic: a bad baseline must not cost a run.
    let baseline = baseline(&a.verdict)?;
    let strict = a.verdict.strict;
    let (exit, _) = match a.coordinator {
        Some(url) => {
            let coordinator = if url.contains("://") {
                url
            } else {
                format!("http://{url}")
            };
            client::submit(
                client::SubmitOptions {
                    coordinator,
                    token: a.token.filter(|t| !t.is_empty()),
                    scenario: a.scenario,
                    min_workers: a.min_workers.max(1),
                    wait: a.wait,
                    out: a.out,
                    builtin_target_url: None,
                    tls_ca: match a.tls_ca.as_deref() {
                        Some(p) => Some(std::fs::read(p).map_err(|e| {
                            CliError::bad_input(format!("--tls-ca {}: {e}", p.display()))
                        })?),
                        None => None,
                    },
                    live,
                    baseline: baseline.clone(),
                    strict,
                    vars: a.set.clone(),
                },
                ctrl_c,
            )
            .await?
        }
        #[cfg(feature = "local")]
        None => {
            local::run(
                local::LocalOptions {
                    scenario: a.scenario,
                    local_workers: a.local_workers.unwrap_or_else(cores),
                    out: a.out,
                    live,
                    baseline: baseline.clone(),
                    strict,
                    vars: a.set.clone(),
                    metrics_listen: a.metrics_listen,
                },
                ctrl_c,
            )
            .await?
        }
        #[cfg(not(feature = "local"))]
        None => {
            return Err(needs_local(
                "`volley run` without --coordinator (local mode)",
            ))
        }
    };
    Ok(exit)
}

async fn serve(a: cli::ServeArgs) -> Result<Exit, CliError> {
    let token = a.token.filter(|t| !t.is_empty());
    if token.is_none() && !a.listen.ip().is_loopback() && !a.insecure_no_auth {
        return Err(CliError::bad_input(format!(
            "--listen {}: refusing to listen beyond loopback without --token (or VOLLEY_TOKEN); \
             pass --insecure-no-auth to do it anyway",
            a.listen
        )));
    }
    let read = |flag: &str, p: &std::path::Path| {
        std::fs::read(p).map_err(|e| CliError::bad_input(format!("{flag} {}: {e}", p.display())))
    };
    let tls = match (a.tls_cert.as_deref(), a.tls_key.as_deref()) {
        (Some(c), Some(k)) => Some(service::Tls {
            cert_pem: read("--tls-cert", c)?,
            key_pem: read("--tls-key", k)?,
        }),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| CliError::bad_input(format!("--listen {}: {e}", a.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::incomplete(e.to_string()))?;
    // Scripts and tests read this line to learn the port of --listen :0.
    println!("volley: coordinator listening on {addr}");
    if let Some(d) = a.data_dir.as_deref() {
        std::fs::create_dir_all(d)
            .map_err(|e| CliError::bad_input(format!("--data-dir {}: {e}", d.display())))?;
    }
    let coord = Coordinator::new(CoordinatorConfig {
        token,
        heartbeat_timeout: a.heartbeat_timeout,
        data_dir: a.data_dir.clone(),
        ..CoordinatorConfig::default()
    });
    if let Some(m) = a.metrics_listen {
        let l = tokio::net::TcpListener::bind(m)
            .await
            .map_err(|e| CliError::bad_input(format!("--metrics-listen {m}: {e}")))?;
        println!(
            "volley: metrics on http://{}/metrics",
            l.local_addr()
                .map_err(|e| CliError::incomplete(e.to_string()))?
        );
        tokio::spawn(volley_coordinator::metrics::serve(
            coord.metrics.clone(),
            l,
            std::future::pending(),
        ));
    }
    volley_coordinator::run::resume::resume_unfinished(coord.clone());
    service::serve(coord, listener, tls, shutdown_signal())
        .await
        .map_err(|e| CliError::incomplete(format!("coordinator stopped: {e}")))?;
    Ok(Exit::Ok)
}

#[cfg(feature = "local")]
async fn target(a: cli::TargetArgs) -> Result<Exit, CliError> {
    use volley_target::{Listeners, TargetConfig};
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| CliError::bad_input(format!("--listen {}: {e}", a.listen)))?;
    let tcp_listener = match a.tcp_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| CliError::bad_input(format!("--tcp-listen {addr}: {e}")))?,
        ),
        None => None,
    };
    let local = |l: &tokio::net::TcpListener| {
        l.local_addr()
            .map_err(|e| CliError::incomplete(e.to_string()))
    };
    // Scripts and tests read these lines to learn the ports of :0.
    println!("volley: target listening on http://{}/", local(&listener)?);
    if let Some(l) = &tcp_listener {
        println!("volley: target listening on tcp://{}", local(l)?);
    }
    let config = TargetConfig {
        delay: a.delay,
        error_rate: a.error_rate,
        body_size: a.body_size,
        capacity: a.capacity,
    };
    // One target behind both listeners: one error fraction, one queue.
    let listeners = Listeners {
        http: Some(listener),
        tcp: tcp_listener,
    };
    let stats = volley_target::run(config, listeners, shutdown_signal())
        .await
        .map_err(|e| CliError::incomplete(format!("target stopped: {e}")))?;
    println!(
        "volley: target served {} requests ({} ok, {} errors) on {} connections",
        stats.requests(),
        stats.ok(),
        stats.errors(),
        stats.connections()
    );
    Ok(Exit::Ok)
}

#[cfg(not(feature = "local"))]
async fn target(_: cli::TargetArgs) -> Result<Exit, CliError> {
    Err(needs_local("`volley target`"))
}

/// Local mode and the built-in target are embedded only with the `local`
/// cargo feature (on by default).
#[cfg(not(feature = "local"))]
fn needs_local(what: &str) -> CliError {
    CliError::bad_input(format!(
        "{what} needs the `local` cargo feature, and this volley was built without it \
         (build it with default features)"
    ))
}

fn report(a: cli::ReportArgs) -> Result<Exit, CliError> {
    let text = std::fs::read_to_string(&a.report)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", a.report.display())))?;
    let mut r: Report = serde_json::from_str(&text).map_err(|e| {
        CliError::bad_input(format!("{}: not a Volley report: {e}", a.report.display()))
    })?;
    if let Some(b) = baseline(&a.verdict)? {
        verdict::apply_baseline(&mut r, &b);
    }
    match a.format {
        cli::Format::Md => print!("{}", markdown::render(&r)),
        cli::Format::Json => println!("{}", r.to_json()),
        cli::Format::Html => print!("{}", html::render(&r)),
    }
    Ok(verdict::exit_code(&r, a.verdict.strict))
}
