#!/usr/bin/env bash
# Runs every test of the workspace: unit, property, CLI and the cross-process
# integration tests (real coordinator, workers and target on loopback).
# Installs what the tests need when it is missing.
set -euo pipefail
cd "$(dirname "$0")"

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test.sh: cargo-nextest not found; installing it from crates.io" >&2
  cargo install cargo-nextest --locked
fi

# The TLS test generates its certificates with openssl.
if ! command -v openssl >/dev/null 2>&1; then
  echo "test.sh: installing openssl (used by the TLS test)" >&2
  apt-get update -qq && apt-get install -y -qq openssl >/dev/null
fi

# An independent HdrHistogram implementation reads our interval logs.
if ! python3 -c "import hdrh" >/dev/null 2>&1; then
  echo "test.sh: installing the Python hdrhistogram package (used to check latency.hlog)" >&2
  python3 -m pip install --quiet --disable-pip-version-check hdrhistogram
fi
# The reference Prometheus text parser checks /metrics.
if ! python3 -c "import prometheus_client" >/dev/null 2>&1; then
  echo "test.sh: installing the Python prometheus-client package (used to check /metrics)" >&2
  python3 -m pip install --quiet --disable-pip-version-check prometheus-client
fi

# report.json is validated against docs/report.schema.json with jsonschema;
# --junit files against a published JUnit XSD with xmlschema, and read back
# with junitparser (integration-tests/tests/report_schema.rs).
for mod_pkg in jsonschema:jsonschema xmlschema:xmlschema junitparser:junitparser; do
  if ! python3 -c "import ${mod_pkg%%:*}" >/dev/null 2>&1; then
    echo "test.sh: installing the Python ${mod_pkg#*:} package (used to check report.json and --junit files)" >&2
    python3 -m pip install --quiet --disable-pip-version-check "${mod_pkg#*:}"
  fi
done
# The JUnit XSD is the Jenkins xUnit plugin's junit-10.xsd, which pytest
# checks its own JUnit output against and ships in its source distribution:
# taken from PyPI, not kept in this repository.
xsd=integration-tests/tests/schemas/junit-10.xsd
if ! [ -s "$xsd" ]; then
  echo "test.sh: fetching junit-10.xsd from pytest's source distribution on PyPI" >&2
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --no-binary :all: "pytest==8.3.4" -d "$tmp"
  tar -xzf "$tmp"/pytest-8.3.4.tar.gz -C "$tmp" pytest-8.3.4/testing/example_scripts/junit-10.xsd
  cp "$tmp"/pytest-8.3.4/testing/example_scripts/junit-10.xsd "$xsd"
  rm -rf "$tmp"
fi

# gRPC: an independent server (grpcio) answers the protocol tests' calls.
if ! python3 -c "import grpc" >/dev/null 2>&1; then
  echo "test.sh: installing the Python grpcio package (the gRPC server of the protocol tests)" >&2
  python3 -m pip install --quiet --disable-pip-version-check grpcio
fi
# OpenTelemetry: an independent OTLP receiver (the protocol's published
# protobufs, with grpcio) checks --otlp-endpoint.
if ! python3 -c "import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc" >/dev/null 2>&1; then
  echo "test.sh: installing the Python opentelemetry-proto package (the OTLP receiver of the OpenTelemetry tests)" >&2
  python3 -m pip install --quiet --disable-pip-version-check opentelemetry-proto
fi
# HTTP/2: nginx (Debian's full `nginx` package has the http_v2 module) is the
# independent h2c server of the protocol tests, which start their own.
if ! command -v nginx >/dev/null 2>&1 && ! [ -x /usr/sbin/nginx ]; then
  echo "test.sh: installing nginx (the HTTP/2 server of the protocol tests)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null
fi

# A real browser renders report.html (integration-tests/tests/html_report.rs).
if ! command -v chromium >/dev/null; then
  echo "test.sh: installing chromium (renders report.html in the browser test)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

profile=default
if [ "${CI:-}" = "true" ]; then profile=ci; fi
cargo nextest run --workspace --profile "$profile" "$@"

# The Helm chart: lint, render, Kubernetes schemas, and the multi-host test
# of its wiring; the Grafana dashboard and the GitHub Action (action.yml).
# run.sh installs what those need (Python and node packages, shellcheck).
# Runs after the Rust tests; any failure fails test.sh.
./charts/tests/run.sh
