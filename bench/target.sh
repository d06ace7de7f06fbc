#!/usr/bin/env bash
# The built-in target vs nginx under wrk, one core each (issue 5, target 3).
# Thin wrapper; the logic is in target.py (Python 3 stdlib only).
set -euo pipefail
exec python3 "$(dirname "$0")/target.py" "$@"
