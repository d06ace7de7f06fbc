#!/usr/bin/env bash
# Memory over a long run: RSS slope of coordinator, worker and local mode, in KB per hour.
# Thin wrapper; the logic is in soak.py (Python 3 stdlib only).
# Usage: bench/soak.sh [--rate N] [--duration S] [--only cluster|local] [--worker-cores 0-1] [--bin DIR] [--samples FILE]
set -euo pipefail
exec python3 "$(dirname "$0")/soak.py" "$@"
