#!/usr/bin/env bash
# Checks the Helm chart (charts/volley) with Helm's own code and runs its
# multi-host wiring test. Installs what it needs when missing: the Python
# packages helm-python-sdk (Helm's Go SDK), kubernetes-validate, pytest and
# PyYAML, and iproute2 for the network namespaces; builds the binaries.
set -euo pipefail
cd "$(dirname "$0")/../.."

py=python3
if ! "$py" -c "import helm_python, kubernetes_validate, pytest, yaml" >/dev/null 2>&1; then
  echo "charts/tests/run.sh: installing helm-python-sdk, kubernetes-validate, pytest, PyYAML" >&2
  "$py" -m pip install --quiet --disable-pip-version-check \
    helm-python-sdk kubernetes-validate pytest pyyaml
fi

if ! command -v ip >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "charts/tests/run.sh: installing iproute2 (network namespaces for the multi-host test)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
fi

# The multi-host test runs the real binaries; cargo rebuilds only what changed.
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
