//! OpenTelemetry metrics pushed over OTLP (`--otlp-endpoint`), on
//! `volley serve` and in local mode.
//!
//! The same figures as Prometheus `/metrics` (see [`crate::metrics`]): a
//! [`Recorder`] hears every merged second and feeds the OpenTelemetry SDK's
//! instruments, and the SDK's periodic reader exports them (cumulative) every
//! `--otlp-interval` on a thread of its own, so an exporter that is slow or a
//! collector that is down never holds up the run. Each run's end flushes
//! once more, so runs shorter than the interval are exported too.
//!
//! - here: the checked settings ([`OtlpConfig`], from the flags) and
//!   [`Otlp`], the running pipeline;
//! - `record`: the instruments and what each second adds to them;
//! - `transport`: the OTLP exporter (gRPC or HTTP/protobuf) on a runtime of
//!   its own, logging failed exports instead of failing anything.

mod record;
mod transport;

pub use record::Recorder;

use crate::exit::CliError;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use std::sync::Arc;
use std::time::Duration;

/// How long one export may take before it is given up (and logged).
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the end of `volley run` waits for the last export.
pub const FINAL_FLUSH_WAIT: Duration = Duration::from_secs(6);

/// OTLP's two transports (the `OTEL_EXPORTER_OTLP_PROTOCOL` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (port 4317 by convention): the default.
    Grpc,
    /// OTLP protobuf over HTTP POST to `/v1/metrics` (port 4318).
    HttpProtobuf,
}

impl Protocol {
    pub fn parse(s: &str) -> Result<Protocol, String> {
        match s {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            _ => Err(format!(
                "unknown OTLP protocol {s:?}: expected \"grpc\" or \"http/protobuf\""
            )),
        }
    }
}

/// Where and how to push, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// For gRPC the collector's address (`http://host:4317`); for
    /// HTTP/protobuf the full URL of the metrics resource (`/v1/metrics`
    /// added when the URL has no path).
    pub endpoint: String,
    pub protocol: Protocol,
    pub interval: Duration,
}

impl OtlpConfig {
    /// Checks `--otlp-endpoint`, `--otlp-protocol` and `--otlp-interval`;
    /// every error names the flag (exit 2).
    pub fn new(endpoint: &str, protocol: &str, interval: Duration) -> Result<OtlpConfig, CliError> {
        let protocol = Protocol::parse(protocol)
            .map_err(|e| CliError::bad_input(format!("--otlp-protocol: {e}")))?;
        let bad = |why: &str| {
            CliError::bad_input(format!(
                "--otlp-endpoint {endpoint:?}: {why} (expected a URL such as http://collector:4317 \
                 for gRPC or http://collector:4318 with --otlp-protocol http/protobuf)"
            ))
        };
        let (scheme, rest) = endpoint.split_once("://").ok_or_else(|| bad("not a URL"))?;
        if scheme != "http" && scheme != "https" {
            return Err(bad("the scheme must be http or https"));
        }
        if protocol == Protocol::HttpProtobuf && scheme == "https" {
            return Err(bad(
                "https is supported over gRPC only; use --otlp-protocol grpc or an http:// URL",
            ));
        }
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty()
            || authority.contains('@')
            || authority.contains(char::is_whitespace)
        {
            return Err(bad("no host"));
        }
        let uri: http::Uri = endpoint.parse().map_err(|_| bad("not a URL"))?;
        let port_ok = match uri.authority().map(|a| a.as_str()) {
            Some(a) => match a.rsplit_once(':') {
                Some((_, p)) if !a.ends_with(']') => p.parse::<u16>().is_ok_and(|p| p > 0),
                _ => true,
            },
            None => false,
        };
        if uri.host().is_none_or(str::is_empty) || !port_ok {
            return Err(bad("bad host or port"));
        }
        if interval.is_zero() {
            return Err(CliError::bad_input(
                "--otlp-interval: must be more than 0 (for example 10s)".to_string(),
            ));
        }
        let endpoint = match protocol {
            Protocol::Grpc if !matches!(path, "" | "/") => {
                return Err(bad("an OTLP/gRPC endpoint has no path"));
            }
            Protocol::Grpc => format!("{scheme}://{authority}"),
            Protocol::HttpProtobuf if matches!(path, "" | "/") => {
                format!("{scheme}://{authority}/v1/metrics")
            }
            Protocol::HttpProtobuf => endpoint.to_string(),
        };
        Ok(OtlpConfig {
            endpoint,
            protocol,
            interval,
        })
    }
}

/// The running pipeline: the SDK's meter provider, fed by a [`Recorder`]
/// that listens to the coordinator's metrics.
#[derive(Debug, Clone)]
pub struct Otlp {
    provider: SdkMeterProvider,
}

impl Otlp {
    /// Builds the exporter and starts the periodic reader; call from inside
    /// the tokio runtime. Hook it up with [`Otlp::listen_to`].
    pub fn start(config: &OtlpConfig) -> Result<Otlp, CliError> {
        let exporter = transport::Exporter::build(config)?;
        let reader = PeriodicReader::builder(exporter)
            .with_interval(config.interval)
            .build();
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name("volley")
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let provider = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource)
            .build();
        Ok(Otlp { provider })
    }

    /// Feeds every later second and event of `metrics` to the instruments.
    pub fn listen_to(&self, metrics: &crate::metrics::Metrics) {
        metrics.listen(Arc::new(Recorder::new(self.clone())));
    }

    /// Collects and exports now, on a blocking thread; does not wait.
    pub fn flush_in_background(&self) {
        let provider = self.provider.clone();
        tokio::task::spawn_blocking(move || {
            let _ = provider.force_flush();
        });
    }

    /// The last export (`volley run`'s end, `volley serve`'s shutdown):
    /// waits for it at most [`FINAL_FLUSH_WAIT`], and never fails.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let done = tokio::task::spawn_blocking(move || provider.shutdown());
        if tokio::time::timeout(FINAL_FLUSH_WAIT, done).await.is_err() {
            tracing::warn!(
                wait_s = FINAL_FLUSH_WAIT.as_secs(),
                "the last OTLP export did not finish in time; it was abandoned"
            );
        }
    }

    pub(crate) fn meter(&self) -> opentelemetry::metrics::Meter {
        use opentelemetry::metrics::MeterProvider;
        self.provider.meter("volley")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    fn ok(e: &str, p: &str) -> String {
        OtlpConfig::new(e, p, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}"))
            .endpoint
    }

    fn err(e: &str, p: &str) -> String {
        let e = OtlpConfig::new(e, p, Duration::from_secs(10)).unwrap_err();
        assert_eq!(e.exit, Exit::BadInput);
        e.message
    }

    #[test]
    fn endpoints_follow_the_otlp_conventions() {
        assert_eq!(ok("http://collector:4317", "grpc"), "http://collector:4317");
        assert_eq!(
            ok("https://collector:4317/", "grpc"),
            "https://collector:4317"
        );
        assert_eq!(
            ok("http://127.0.0.1:4318", "http/protobuf"),
            "http://127.0.0.1:4318/v1/metrics"
        );
        assert_eq!(
            ok("http://[::1]:4318/", "http/protobuf"),
            "http://[::1]:4318/v1/metrics"
        );
        assert_eq!(
            ok("http://c:4318/custom/metrics", "http/protobuf"),
            "http://c:4318/custom/metrics"
        );
    }

    #[test]
    fn malformed_endpoints_and_protocols_are_bad_input_naming_the_flag() {
        for bad in [
            "collector:4317",
            "ftp://c:4317",
            "http://",
            "http://:4317",
            "http://c:99999",
            "http://c:x",
            "not a url",
            "http://c:4317/v1/metrics",
        ] {
            let m = err(bad, "grpc");
            assert!(m.starts_with("--otlp-endpoint"), "{bad}: {m}");
        }
        let m = err("http://c:4318", "http/json");
        assert!(
            m.starts_with("--otlp-protocol") && m.contains("http/protobuf"),
            "{m}"
        );
        let e = OtlpConfig::new("http://c:4317", "grpc", Duration::ZERO).unwrap_err();
        assert!(e.message.starts_with("--otlp-interval"), "{e}");
    }
}
