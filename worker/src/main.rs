//! `volley-worker`: a worker process. Parses the CLI and calls the library.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.log_format == "json");
    let config = match volley_worker::WorkerConfig::try_from(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("volley-worker: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(volley_worker::run(config, shutdown())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("volley-worker: {e}");
            ExitCode::from(3)
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,volley_worker=info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        fmt.json().init();
    } else {
        fmt.init();
    }
}

/// The first SIGTERM or SIGINT: the worker leaves its run gracefully (see
/// `volley_worker::session::run`). A second one quits at once. Signals are
/// counted by [`volley_proto::signals`], as `volley` counts them: `timeout
/// -s TERM volley-worker` delivers its one signal twice (to the worker, then
/// to its process group), which must stay one graceful leave, and a second
/// signal that comes while the first is handled is never missed.
async fn shutdown() {
    volley_proto::signals::next().await;
    tokio::spawn(async {
        volley_proto::signals::next().await;
        eprintln!("volley-worker: second signal; quitting without finishing the run");
        std::process::exit(3);
    });
}
