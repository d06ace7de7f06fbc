//! `volley serve`: the long-lived coordinator of cluster mode.
//!
//! [`ServeConfig`] is what it runs with, checked before anything listens:
//! the binary builds it from its flags (`TryFrom<ServeArgs>` in the CLI),
//! which is where the rule lives that a coordinator reachable beyond
//! loopback needs a token ([`check_exposure`]), and where the TLS files are
//! read ([`read_tls`]). [`serve`] then runs it on a bound listener until
//! shutdown.

use crate::exit::{CliError, Exit};
use crate::service::{self, Tls};
use crate::state::{Coordinator, CoordinatorConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use tokio::net::TcpListener;

/// Everything `volley serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where workers and run submissions connect; the caller binds it.
    pub listen: SocketAddr,
    /// The coordinator's own settings (token, heartbeats, data dir).
    pub coordinator: CoordinatorConfig,
    /// Serve TLS with this certificate and key; `None`: plain gRPC.
    pub tls: Option<Tls>,
    /// Serve Prometheus `/metrics` here.
    pub metrics_listen: Option<SocketAddr>,
    /// Push the same metrics over OTLP.
    pub otlp: Option<crate::otlp::OtlpConfig>,
}

/// The security rule of `volley serve`: anyone who can reach the port can
/// run load from the connected workers, so listening beyond loopback needs
/// a token, unless `insecure_no_auth` says to do it anyway. Loopback needs
/// nothing.
pub fn check_exposure(
    listen: SocketAddr,
    token: Option<&str>,
    insecure_no_auth: bool,
) -> Result<(), CliError> {
    if token.is_none() && !listen.ip().is_loopback() && !insecure_no_auth {
        return Err(CliError::bad_input(format!(
            "--listen {listen}: refusing to listen beyond loopback without --token (or VOLLEY_TOKEN); \
             pass --insecure-no-auth to do it anyway"
        )));
    }
    Ok(())
}

/// Reads the PEM certificate (chain) and key to serve TLS with; a file that
/// cannot be read is bad input naming its flag and path.
pub fn read_tls(cert: &Path, key: &Path) -> Result<Tls, CliError> {
    let read = |flag: &str, p: &Path| {
        std::fs::read(p).map_err(|e| CliError::bad_input(format!("{flag} {}: {e}", p.display())))
    };
    Ok(Tls {
        cert_pem: read("--tls-cert", cert)?,
        key_pem: read("--tls-key", key)?,
    })
}

/// Runs the coordinator of `config` on `listener` until `shutdown`
/// completes: creates the data dir, serves `/metrics` if asked (printing
/// its address on stdout, where scripts read it), resumes the run a
/// previous coordinator on the same data dir left unfinished, and serves
/// the gRPC services.
pub async fn serve(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<Exit, CliError> {
    if let Some(d) = config.coordinator.data_dir.as_deref() {
        std::fs::create_dir_all(d)
            .map_err(|e| CliError::bad_input(format!("--data-dir {}: {e}", d.display())))?;
    }
    let coord = Coordinator::new(config.coordinator);
    if let Some(m) = config.metrics_listen {
        let l = TcpListener::bind(m)
            .await
            .map_err(|e| CliError::bad_input(format!("--metrics-listen {m}: {e}")))?;
        println!(
            "volley: metrics on http://{}/metrics",
            l.local_addr()
                .map_err(|e| CliError::incomplete(e.to_string()))?
        );
        tokio::spawn(crate::metrics::serve(
            coord.metrics.clone(),
            l,
            std::future::pending(),
        ));
    }
    let otlp = match &config.otlp {
        Some(c) => {
            let o = crate::otlp::Otlp::start(c)?;
            o.listen_to(&coord.metrics);
            Some(o)
        }
        None => None,
    };
    crate::run::resume::resume_unfinished(coord.clone());
    // A signal stops the running load and waits for its report (sent to its
    // client, written to the data dir) before the server closes.
    let graceful = {
        let coord = coord.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: stopping the running load");
            if !coord.shut_down(SHUTDOWN_REASON, RUN_END_WAIT).await {
                tracing::warn!(
                    wait_s = RUN_END_WAIT.as_secs(),
                    "the running run did not end in time; its report may be incomplete"
                );
            }
        }
    };
    let served = service::serve(coord, listener, config.tls, graceful).await;
    if let Some(o) = otlp {
        o.shutdown().await;
    }
    served.map_err(|e| CliError::incomplete(format!("coordinator stopped: {e}")))?;
    Ok(Exit::Ok)
}

/// Why a run stopped by a coordinator shutdown ended early (its report's
/// `incomplete_reason`).
const SHUTDOWN_REASON: &str = "the coordinator was shut down (SIGTERM or SIGINT)";

/// How long a shutting-down coordinator waits for the running run to
/// stop and write its report: workers stop within a second and drain for at
/// most 2 s; the rest is margin. The chart's grace period covers it.
const RUN_END_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_needs_no_token() {
        for listen in ["127.0.0.1:7700", "127.0.0.1:0", "[::1]:7700"] {
            assert!(
                check_exposure(addr(listen), None, false).is_ok(),
                "{listen}"
            );
        }
    }

    #[test]
    fn open_listen_without_a_token_is_refused_naming_the_way_out() {
        for listen in ["0.0.0.0:7700", "10.1.2.3:7700", "[::]:7700"] {
            let err = check_exposure(addr(listen), None, false).unwrap_err();
            assert_eq!(err.exit, Exit::BadInput);
            assert!(
                err.message.starts_with(&format!("--listen {listen}:")),
                "{err}"
            );
            assert!(err.message.contains("--token"), "{err}");
            assert!(err.message.contains("--insecure-no-auth"), "{err}");
        }
    }

    #[test]
    fn open_listen_with_a_token_or_insecure_no_auth_is_allowed() {
        assert!(check_exposure(addr("0.0.0.0:7700"), Some("s3cret"), false).is_ok());
        assert!(check_exposure(addr("0.0.0.0:7700"), None, true).is_ok());
    }

    #[test]
    fn unreadable_tls_files_are_bad_input_naming_flag_and_path() {
        let dir = std::env::temp_dir().join(format!("volley-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, "CERT").unwrap();
        std::fs::write(&key, "KEY").unwrap();
        let missing = dir.join("missing.pem");

        let tls = read_tls(&cert, &key).unwrap();
        assert_eq!(
            (&tls.cert_pem[..], &tls.key_pem[..]),
            (&b"CERT"[..], &b"KEY"[..])
        );

        let err = read_tls(&missing, &key).unwrap_err();
        assert_eq!(err.exit, Exit::BadInput);
        assert!(
            err.message
                .starts_with(&format!("--tls-cert {}: ", missing.display())),
            "{err}"
        );
        let err = read_tls(&cert, &missing).unwrap_err();
        assert!(
            err.message
                .starts_with(&format!("--tls-key {}: ", missing.display())),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
