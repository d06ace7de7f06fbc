#!/usr/bin/env bash
# The guide's burst scenario against nginx, recovery judged (issue 16 §5).
# Logic in burst.py. Usage: bench/burst.sh [--bin-dir DIR] [--out DIR]
set -euo pipefail
exec python3 "$(dirname "$0")/burst.py" "$@"
