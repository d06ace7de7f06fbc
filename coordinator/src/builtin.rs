//! `volley target`: the built-in target (`volley-target`) on the command
//! line's listeners, reporting its ports and, at shutdown, its counts on
//! stdout. Only with the `local` cargo feature.

use crate::exit::{CliError, Exit};
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use volley_target::{Listeners, TargetConfig};

/// Binds `listen` (HTTP/1.1, h2c, gRPC) and `tcp_listen` (framed TCP),
/// then serves one target behind both (one error fraction, one queue)
/// until `shutdown` completes.
pub async fn run(
    config: TargetConfig,
    listen: SocketAddr,
    tcp_listen: Option<SocketAddr>,
    shutdown: impl Future<Output = ()>,
) -> Result<Exit, CliError> {
    let bind = |flag: &'static str, addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|e| CliError::bad_input(format!("{flag} {addr}: {e}")))
    };
    let http = bind("--listen", listen).await?;
    let tcp = match tcp_listen {
        Some(addr) => Some(bind("--tcp-listen", addr).await?),
        None => None,
    };
    let local = |l: &TcpListener| {
        l.local_addr()
            .map_err(|e| CliError::incomplete(e.to_string()))
    };
    // Scripts and tests read these lines to learn the ports of :0.
    println!("volley: target listening on http://{}/", local(&http)?);
    if let Some(l) = &tcp {
        println!("volley: target listening on tcp://{}", local(l)?);
    }
    let listeners = Listeners {
        http: Some(http),
        tcp,
    };
    let stats = volley_target::run(config, listeners, shutdown)
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
