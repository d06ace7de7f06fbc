#!/usr/bin/env bash
# Volley's own lateness (send lag) and CPU per request against nginx, two
# builds alternated in one session (issue 16 §1). Logic in precision.py.
# Usage: bench/precision.sh --baseline DIR [--candidate DIR] [--rates R,R] ...
set -euo pipefail
exec python3 "$(dirname "$0")/precision.py" "$@"
