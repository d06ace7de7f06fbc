//! The OTLP exporter of `opentelemetry-otlp` (tonic for gRPC, hyper for
//! HTTP/protobuf), wrapped so that it runs on a small tokio runtime of its
//! own: the SDK's periodic reader calls it from a plain thread, where
//! neither tonic nor hyper would find a runtime, and the load test's
//! runtime never does the exporting. A failed export is logged (once per
//! streak of failures, and again when it recovers) and never fails the run.

use super::{OtlpConfig, Protocol, EXPORT_TIMEOUT};
use crate::exit::CliError;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing::warn;

pub struct Exporter {
    /// Dropped on the reader's thread (never inside an async context).
    rt: Option<tokio::runtime::Runtime>,
    inner: opentelemetry_otlp::MetricExporter,
    endpoint: String,
    failing: AtomicBool,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Exporter {
    pub fn build(config: &OtlpConfig) -> Result<Exporter, CliError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("volley-otlp")
            .build()
            .map_err(|e| CliError::incomplete(format!("cannot start the OTLP exporter: {e}")))?;
        // tonic's channel and hyper's client spawn their tasks on the
        // runtime current when they are built.
        let _in = rt.enter();
        let built = match config.protocol {
            Protocol::Grpc => {
                let mut b = opentelemetry_otlp::MetricExporter::builder()
                    .with_tonic()
                    .with_endpoint(config.endpoint.clone())
                    .with_timeout(EXPORT_TIMEOUT);
                if config.endpoint.starts_with("https://") {
                    b = b.with_tls_config(
                        tonic::transport::ClientTlsConfig::new().with_native_roots(),
                    );
                }
                b.build()
            }
            Protocol::HttpProtobuf => opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(config.endpoint.clone())
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
        };
        let inner = built.map_err(|e| {
            CliError::bad_input(format!("--otlp-endpoint {}: {e}", config.endpoint))
        })?;
        drop(_in);
        Ok(Exporter {
            rt: Some(rt),
            inner,
            endpoint: config.endpoint.clone(),
            failing: AtomicBool::new(false),
        })
    }
}

impl PushMetricExporter for Exporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let Some(rt) = self.rt.as_ref() else {
            return Ok(());
        };
        let result = rt.block_on(async {
            match tokio::time::timeout(EXPORT_TIMEOUT, self.inner.export(metrics)).await {
                Ok(r) => r,
                Err(_) => Err(opentelemetry_sdk::error::OTelSdkError::Timeout(
                    EXPORT_TIMEOUT,
                )),
            }
        });
        match &result {
            Err(e) if !self.failing.swap(true, Ordering::Relaxed) => warn!(
                endpoint = %self.endpoint,
                cause = %e,
                "OTLP export failed; the run goes on, and later exports will retry"
            ),
            Ok(()) if self.failing.swap(false, Ordering::Relaxed) => {
                warn!(endpoint = %self.endpoint, "OTLP export works again");
            }
            _ => {}
        }
        // The run goes on whatever the collector does: nothing to report
        // to the SDK, which would only log it again.
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
