//! The gRPC services: the workers' session and the CLI's run control, and
//! the server that hosts both.

pub mod run_control;
pub mod worker_session;

use crate::state::Coordinator;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use volley_proto::pb::{
    run_control_server::RunControlServer, worker_session_server::WorkerSessionServer,
};
use volley_proto::{MAX_MESSAGE_BYTES, MAX_REPORT_BYTES};

/// A certificate and key (PEM) for serving TLS.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// Serves both services on `listener` until `shutdown` completes, over TLS
/// when `tls` is given. Also runs the heartbeat reaper.
pub async fn serve(
    coordinator: Arc<Coordinator>,
    listener: TcpListener,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let reaper = tokio::spawn(worker_session::reaper(coordinator.clone()));
    let sessions = WorkerSessionServer::new(worker_session::Sessions::new(coordinator.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let control = RunControlServer::new(run_control::Control::new(coordinator))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_REPORT_BYTES);
    let mut builder = tonic::transport::Server::builder();
    if let Some(t) = tls {
        let identity = tonic::transport::Identity::from_pem(t.cert_pem, t.key_pem);
        builder =
            builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    // After the shutdown, open streams get a few seconds to end (the run's
    // client reads its last event); a peer that holds on is not waited for.
    let (fired, has_fired) = tokio::sync::oneshot::channel();
    let shutdown = async move {
        shutdown.await;
        let _ = fired.send(());
    };
    let server = builder
        .tcp_nodelay(true)
        // No HTTP/2 pings of our own: workers' heartbeats and the reaper
        // tell a gone worker (and clients ping us themselves, every 10 s,
        // see `volley_proto::channel`). A keep-alive timer per connection
        // cost 1.2 % of a core with 10,000 idle workers (bench/README.md).
        .http2_keepalive_interval(None)
        .add_service(sessions)
        .add_service(control)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown);
    let linger = async {
        match has_fired.await {
            Ok(()) => tokio::time::sleep(CLOSE_WAIT).await,
            Err(_) => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        r = server => r,
        () = linger => {
            tracing::warn!(wait_s = CLOSE_WAIT.as_secs(), "connections still open after the shutdown; closing them");
            Ok(())
        }
    };
    reaper.abort();
    result
}

/// How long a shutting-down server waits for open streams to end.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
