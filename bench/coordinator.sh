#!/usr/bin/env bash
# Coordinator scale: a real coordinator, N simulated workers over real gRPC,
# one run each, and a table of what the coordinator spent.
# The logic is in coordinator/examples/scale/main.rs; see bench/README.md.
#
# Usage: bench/coordinator.sh [--no-build] [-- extra args for the harness]
# Environment:
#   WORKERS       worker counts to run, in order   (default "100 1000 10000")
#   RUN_SECONDS   length of each run, seconds      (default 20)
#   PIN           1: coordinator on CPU 0, simulated workers on CPU 1 (default 0)
set -euo pipefail

cd "$(dirname "$0")/.."
WORKERS=${WORKERS:-"100 1000 10000"}
RUN_SECONDS=${RUN_SECONDS:-20}
PIN=${PIN:-0}
build=1
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "coordinator.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

bin=target/release/examples/scale
if [ "$build" = 1 ]; then
    if ! cargo build --release -p volley-coordinator --example scale; then
        [ -x "$bin" ] || { echo "coordinator.sh: the build failed and there is no earlier binary" >&2; exit 1; }
        echo "coordinator.sh: WARNING: the build failed; using the binary built $(date -r "$bin")" >&2
    fi
fi
[ -x "$bin" ] || { echo "coordinator.sh: $bin is missing; run without --no-build" >&2; exit 1; }

# A private copy, so a concurrent cargo build cannot swap it mid-run.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$bin" "$tmp/scale"

# Every simulated worker is one socket in each process.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
ulimit -n "$hard"
max=0
for n in $WORKERS; do [ "$n" -gt "$max" ] && max=$n; done
if [ "$hard" -lt $((max + 64)) ]; then
    echo "coordinator.sh: WARNING: open files are limited to $hard; runs above $((hard - 64)) workers will refuse to start" >&2
fi

pin=()
pin_args=()
if [ "$PIN" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    pin=(taskset -c 0)
    pin_args=(--workers-cpu 1)
    echo "coordinator on CPU 0, simulated workers on CPU 1; ${RUN_SECONDS} s per run; open files $(ulimit -n)" >&2
else
    echo "unpinned; ${RUN_SECONDS} s per run; open files $(ulimit -n)" >&2
fi
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) (other processes skew every figure on a 2-core machine)" >&2

header=()
status=0
for n in $WORKERS; do
    echo "--- $n workers" >&2
    # The harness stops itself after --limit-s; `timeout` is the backstop.
    if ! timeout --kill-after=10 $((RUN_SECONDS + 150)) \
        "${pin[@]}" "$tmp/scale" --workers "$n" --seconds "$RUN_SECONDS" \
        --limit-s $((RUN_SECONDS + 120)) "${pin_args[@]}" "${header[@]}" "${extra[@]}"; then
        status=1
    fi
    header=(--no-header)
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exit $status
