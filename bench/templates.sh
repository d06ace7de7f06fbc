#!/usr/bin/env bash
# Worker CPU per request: static body vs templated body vs templated + json check,
# at a fixed rate against nginx (issue 13). Thin wrapper; the logic is in
# templates.py (Python 3 stdlib only, reuses worker.py and peers.py).
# Usage: bench/templates.sh [--quick] [--rounds N] [--help] ...
set -euo pipefail
exec python3 "$(dirname "$0")/templates.py" "$@"
