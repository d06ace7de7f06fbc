#!/usr/bin/env bash
# Mutation testing (issue 18 §5): cargo-mutants over the plan crate, the
# coordinator's analysis modules and the worker's recorder and outcome code,
# each area tested by its own crate's unit tests only, one mutant at a time.
# Run by hand (not in CI): about an hour for the default set on a 2-core
# machine shared with one other build (docs/mutants.md has the times). See
# bench/README.md, "bench/mutants.sh".
#
# Usage: bench/mutants.sh [AREA...]     AREA: plan plan-rest analysis thresholds
#                                             merge worker
#                                       (default: plan plan-rest analysis thresholds
#                                        worker; merge only when named)
#        bench/mutants.sh --summary [AREA...]   reprint the table, run nothing
# Environment:
#   MUTANTS_OUT   where each area's mutants.out goes  (default target/mutants)
#   JOBS          mutants built and tested at once    (default 1)
#   TIMEOUT       seconds one mutant's tests may run  (default: cargo-mutants'
#                 own, 5 x the unmutated run and at least 20 s)
#   MEM_LIMIT_KB  address space of every build and test process, in KiB
#                 (default 6291456, 6 GiB; 0: no limit). Two recorder mutants
#                 loop forever pushing seconds: unbounded, they fill the
#                 machine's memory long before TIMEOUT and the kernel kills
#                 whatever it picks; capped, the test process alone aborts.
# Needs cargo-mutants: cargo install cargo-mutants --locked (tested with 27.1.0).
set -uo pipefail

cd "$(dirname "$0")/.."
OUT=${MUTANTS_OUT:-target/mutants}
JOBS=${JOBS:-1}
timeout=()
[ -n "${TIMEOUT:-}" ] && timeout=(--timeout "$TIMEOUT")
summary_only=0
if [ "${1:-}" = "--summary" ]; then summary_only=1; shift; fi
case "${1:-}" in -h|--help) sed -n '2,24p' "$0"; exit 0 ;; esac
mem=${MEM_LIMIT_KB:-6291456}
[ "$mem" != 0 ] && ulimit -v "$mem"
areas=("$@")
[ ${#areas[@]} -eq 0 ] && areas=(plan plan-rest analysis thresholds worker)

# Each area: the files mutated (--file) and the tests run for them: the
# mutated crate's own tests only. For the coordinator and the worker, only
# their library's unit tests (-C --lib, passed to the build as well as to the
# test run, so the binaries and integration tests are not relinked for every
# mutant): those start processes and take minutes per mutant.
# merge is not in the default set (about 8 min more; see the note).
area_args() {
    case "$1" in
        plan) args=(-p volley-plan
            --file plan/src/schedule.rs
            --file plan/src/partition.rs
            --file plan/src/mix.rs
            --file plan/src/rate.rs) ;;
        plan-rest) args=(-p volley-plan
            --file plan/src/data.rs
            --file plan/src/expect.rs
            --file plan/src/model.rs
            --file plan/src/outcome.rs
            --file plan/src/template.rs) ;;
        analysis) args=(-p volley-coordinator -C --lib
            --file coordinator/src/analysis/recovery.rs
            --file coordinator/src/analysis/regression.rs) ;;
        thresholds) args=(-p volley-coordinator -C --lib
            --file coordinator/src/analysis/thresholds.rs
            --file coordinator/src/analysis/thresholds/parse.rs) ;;
        merge) args=(-p volley-coordinator -C --lib
            --file coordinator/src/merge/mod.rs
            --file coordinator/src/merge/acc.rs
            --file coordinator/src/merge/apportion.rs
            --file coordinator/src/merge/interval.rs
            --file coordinator/src/merge/resources.rs
            --file coordinator/src/merge/soak.rs) ;;
        worker) args=(-p volley-worker -C --lib
            --file worker/src/engine/recorder.rs
            --file worker/src/engine/outcome.rs) ;;
        *) echo "mutants.sh: unknown area '$1' (expected plan, plan-rest, analysis, thresholds, merge or worker)" >&2
           return 2 ;;
    esac
}

# --summary reads any area's directory under MUTANTS_OUT, known or not.
if [ "$summary_only" = 0 ]; then
    for a in "${areas[@]}"; do area_args "$a" || exit 2; done
fi

if [ "$summary_only" = 0 ]; then
    if ! cargo mutants --version >/dev/null 2>&1; then
        echo "mutants.sh: cargo-mutants is missing: cargo install cargo-mutants --locked" >&2
        exit 2
    fi
    for a in "${areas[@]}"; do
        mkdir -p "$OUT/$a"
        start=$(date +%s)
        area_args "$a"
        cargo mutants --no-shuffle --jobs "$JOBS" "${timeout[@]}" \
            --build-timeout 900 --output "$OUT/$a" "${args[@]}"
        rc=$?
        echo "$(( $(date +%s) - start ))" > "$OUT/$a/seconds"
        # 0: all caught; 2: some missed; 3: some timed out. Anything else is a
        # failure of the run itself (4: the unmutated tree fails its tests).
        case $rc in 0|2|3) ;; *) echo "mutants.sh: area $a: cargo mutants exited $rc" >&2; exit 1 ;; esac
    done
fi

python3 - "$OUT" "${areas[@]}" <<'EOF'
import datetime, json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print(f"{'area':<10}{'total':>7}{'caught':>8}{'missed':>8}{'timeout':>9}{'unviable':>10}{'seconds':>9}")
missed = []
for area in sys.argv[2:]:
    d = out / area / "mutants.out"
    try:
        o = json.loads((d / "outcomes.json").read_text())
    except FileNotFoundError:
        print(f"{area:<10} (not run)")
        continue
    secs = out / area / "seconds"
    if secs.exists():
        secs = secs.read_text().strip()
    elif o.get("end_time"):
        t = lambda s: datetime.datetime.fromisoformat(s[:26].rstrip("Z"))
        secs = str(round((t(o["end_time"]) - t(o["start_time"])).total_seconds()))
    else:
        secs = "running"
    print(f"{area:<10}{o['total_mutants']:>7}{o['caught']:>8}{o['missed']:>8}"
          f"{o['timeout']:>9}{o['unviable']:>10}{secs:>9}")
    per_file = {}
    names = {"CaughtMutant": 1, "MissedMutant": 2, "Timeout": 3, "Unviable": 4}
    for x in o["outcomes"]:
        m = x["scenario"]
        if not isinstance(m, dict) or "Mutant" not in m:
            continue
        row = per_file.setdefault(m["Mutant"]["file"], [0, 0, 0, 0, 0])
        row[0] += 1
        if x["summary"] in names:
            row[names[x["summary"]]] += 1
    for f, (t, c, mi, ti, u) in sorted(per_file.items()):
        print(f"  {f.rsplit('/', 1)[-1]:<22}{t:>3}{c:>8}{mi:>8}{ti:>9}{u:>10}")
    for f in ("missed.txt", "timeout.txt"):
        p = d / f
        if p.exists():
            missed += [f"{area}: {f[:-4]}: {l}" for l in p.read_text().splitlines() if l]
for m in missed:
    print(m)
EOF
