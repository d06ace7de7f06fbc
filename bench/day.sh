#!/usr/bin/env bash
# A day of a run in minutes: what the coordinator keeps per second of run,
# measured over 24 hours of run time-compressed (issue 16 §6).
#
# A real coordinator (`coordinator/examples/scale/main.rs`) and simulated workers
# over real gRPC; the workers report SPEED seconds of the run per real second,
# and the coordinator merges, publishes and keeps each one as it does in a
# real run (it is not told). Its RSS is printed every hour of run, then the
# least-squares slope of its anonymous RSS past the first hour (the hour of
# events kept for clients that attach again fills during the first hour), in
# KB per hour of run and MB per day. Two runs: every second drops 2
# requests (each second has drop reasons), then none drops.
#
# What it does not measure: the worker, whose seconds cannot be compressed
# (bench/soak.sh runs real workers in real time), and the data dir.
#
# Usage: bench/day.sh [--no-build] [--hours H] [--speed S] [--workers N] [--values V]
# Defaults: 24 h at 400 seconds of run per second (about 4 minutes a run),
# 4 workers, 2,000 values per worker-second.
set -euo pipefail

cd "$(dirname "$0")/.."
build=1
hours=24
speed=400
workers=4
values=2000
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --hours) hours=$2; shift ;;
        --speed) speed=$2; shift ;;
        --workers) workers=$2; shift ;;
        --values) values=$2; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "day.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

bin=${CARGO_TARGET_DIR:-target}/release/examples/scale
if [ "$build" = 1 ]; then
    cargo build --release -p volley-coordinator --example scale
fi
[ -x "$bin" ] || { echo "day.sh: $bin is missing; run without --no-build" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$bin" "$tmp/scale"

seconds=$(python3 -c "print(int(float('$hours') * 3600))")
wall=$(python3 -c "print(int($seconds / float('$speed')) + 120)")
ulimit -n 4096 2>/dev/null || true
echo "day.sh: $hours h of run at $speed s per s, $workers workers × $values values; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
status=0
for drops in with without; do
    flag=()
    [ "$drops" = without ] && flag=(--no-drops)
    echo
    echo "### $hours h of run, $workers workers, seconds $drops drops"
    # The harness stops itself after --limit-s; `timeout` is the backstop.
    if ! timeout --kill-after=10 $((wall + 60)) "$tmp/scale" --workers "$workers" \
        --seconds "$seconds" --speed "$speed" --values "$values" --idle-seconds 1 \
        --rss-every 3600 --limit-s "$wall" "${flag[@]}"; then
        status=1
    fi
done
exit $status
