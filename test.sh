#!/usr/bin/env bash
# Runs every test of the workspace: unit, property, CLI and the cross-process
# integration tests (real coordinator, workers and target on loopback).
# Installs what the tests need when it is missing.
set -euo pipefail
cd "$(dirname "$0")"

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test.sh: cargo-nextest not found; installing it from crates.io" >&2
  cargo install cargo-nextest --locked
fi

profile=default
if [ "${CI:-}" = "true" ]; then profile=ci; fi
cargo nextest run --workspace --profile "$profile" "$@"
