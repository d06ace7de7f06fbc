#!/usr/bin/env bash
# The cross-process tests beside a busy loop pinned to one core, RUNS times
# (default 2): a loaded CI machine, made on purpose. Every test must pass
# every time; a test whose load cannot fit beside the loop says in its own
# text how it was scaled.
#
#   bench/busy-tests.sh [RUNS] [-- NEXTEST FILTER ARGS...]
#   bench/busy-tests.sh 2
#   bench/busy-tests.sh 1 -- -E 'binary(examples)'
#
# Prints each run's summary line and its wall time; the logs are kept in
# target/busy-tests/. Needs taskset (util-linux).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=2
if [[ $# -gt 0 && $1 != -- ]]; then runs=$1; shift; fi
[[ ${1:-} == -- ]] && shift
target=${CARGO_TARGET_DIR:-target}
logs=$target/busy-tests
mkdir -p "$logs"
cargo build --workspace --bins
cargo nextest run -p volley-integration-tests --no-run
busy=
stop_busy() { [[ -n $busy ]] && kill "$busy" 2>/dev/null; busy=; }
trap stop_busy EXIT
failed=0
for i in $(seq 1 "$runs"); do
  # Bounded: the loop ends by itself after an hour even if this script dies.
  timeout 3600 taskset -c 0 sh -c 'while :; do :; done' &
  busy=$!
  start=$(date +%s)
  log=$logs/run-$i.log
  if cargo nextest run -p volley-integration-tests --no-fail-fast "$@" >"$log" 2>&1; then rc=0; else rc=$?; fi
  stop_busy
  summary=$(grep -E '^ +Summary' "$log" | tail -1 | sed 's/^ *//')
  echo "run $i: ${summary:-no summary (see $log)}; exit $rc; $(( $(date +%s) - start )) s wall"
  grep -E '^ +FAIL ' "$log" | sort -u || true
  [[ $rc -eq 0 ]] || failed=1
done
exit $failed
