#!/usr/bin/env bash
# Runs a scenario for the composite action (action.yml): `volley run`, then
# report.md into the job summary ($GITHUB_STEP_SUMMARY), the outputs
# exit-code, run-dir and report into $GITHUB_OUTPUT, and volley's own exit
# code as this script's, so the step fails on 1 (a threshold or a regression
# failed), 2 (bad input) and 3 (the run could not complete).
#
# Environment: VOLLEY (the binary), SCENARIO, OUT (the run directory),
# BASELINE (optional: a report.json; skipped with a warning when the file
# does not exist, as on the first run of a branch), REGRESSION_THRESHOLD
# (with a baseline), ARGS (extra `volley run` arguments, split on white space).
set -uo pipefail

: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set (run inside GitHub Actions, or set it to a file)}"
: "${GITHUB_STEP_SUMMARY:?GITHUB_STEP_SUMMARY is not set}"
: "${VOLLEY:?VOLLEY (the binary) is not set}"
: "${SCENARIO:?the scenario input is empty}"
out=${OUT:-volley-report}

args=(run "$SCENARIO" --out "$out" --quiet)
if [ -n "${BASELINE:-}" ]; then
  if [ -f "$BASELINE" ]; then
    args+=(--baseline "$BASELINE")
    if [ -n "${REGRESSION_THRESHOLD:-}" ]; then
      args+=(--threshold "$REGRESSION_THRESHOLD")
    fi
  else
    echo "::warning title=volley action::baseline $BASELINE not found: running without a regression check"
  fi
fi
if [ -n "${ARGS:-}" ]; then
  read -r -a extra <<< "$ARGS"
  args+=("${extra[@]}")
fi

echo "volley ${args[*]}" >&2
"$VOLLEY" "${args[@]}"
code=$?

if [ -f "$out/report.md" ]; then
  cat "$out/report.md" >> "$GITHUB_STEP_SUMMARY"
else
  printf '## Volley\n\n%s exited %d before writing a report; see the job log.\n' \
    "\`volley run $SCENARIO\`" "$code" >> "$GITHUB_STEP_SUMMARY"
fi
{
  echo "exit-code=$code"
  echo "run-dir=$out"
  if [ -f "$out/report.json" ]; then echo "report=$out/report.json"; fi
} >> "$GITHUB_OUTPUT"

case $code in
  0) ;;
  1) echo "::error title=volley::a threshold or a regression check failed (exit 1); see the job summary" ;;
  2) echo "::error title=volley::bad input: scenario or flags (exit 2); see the log above" ;;
  3) echo "::error title=volley::the run could not complete (exit 3); see the job summary" ;;
  *) echo "::error title=volley::volley exited $code" ;;
esac
exit "$code"
