//! Dialling the coordinator: one place for timeouts and TLS, shared by the
//! workers and the CLI.

use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// An endpoint for `url`; `https://` URLs use TLS (rustls) trusting the
/// system roots plus `ca_pem` when given.
pub fn endpoint(url: &str, ca_pem: Option<&[u8]>) -> Result<Endpoint, String> {
    let mut ep = Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("bad coordinator address {url:?}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10));
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = ca_pem {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        ep = ep
            .tls_config(tls)
            .map_err(|e| format!("TLS for {url}: {e}"))?;
    } else if ca_pem.is_some() {
        return Err(format!(
            "--tls-ca given but {url} is not an https:// address"
        ));
    }
    Ok(ep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(endpoint("http://127.0.0.1:7700", None).is_ok());
        assert!(endpoint("https://coordinator:7700", None).is_ok());
        assert!(endpoint("http://127.0.0.1:7700", Some(b"x"))
            .unwrap_err()
            .contains("https"));
        assert!(endpoint("not a url", None).is_err());
    }
}
