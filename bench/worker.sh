#!/usr/bin/env bash
# One Volley worker on one core: CPU per request and highest sustained rate.
# Thin wrapper; the logic is in worker.py (Python 3 stdlib only).
# Usage: bench/worker.sh [--quick] [--help] ...
set -euo pipefail
exec python3 "$(dirname "$0")/worker.py" "$@"
