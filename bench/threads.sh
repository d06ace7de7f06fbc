#!/usr/bin/env bash
# One worker of N threads against N one-thread workers, same rate and CPUs
# (issue 16 §3). Logic in threads.py.
# Usage: bench/threads.sh [--bin DIR] [--threads 2] [--rate 20000] [--duration 10] [--rounds 3]
set -euo pipefail
exec python3 "$(dirname "$0")/threads.py" "$@"
