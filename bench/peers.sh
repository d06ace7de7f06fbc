#!/usr/bin/env bash
# Volley vs wrk and oha against nginx, one core each: issue 5's comparison table.
# Thin wrapper; the logic is in peers.py (Python 3 stdlib only, reuses worker.py).
# Usage: bench/peers.sh [--quick] [--help] ...
set -euo pipefail
exec python3 "$(dirname "$0")/peers.py" "$@"
