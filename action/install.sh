#!/usr/bin/env bash
# Gets the `volley` binary for the composite action (action.yml) and prints
# `volley=PATH` to $GITHUB_OUTPUT. One of, in this order:
#   VOLLEY_PATH  an existing binary (e.g. built by an earlier step)
#   VOLLEY_URL   a download: a plain executable, or a .tar.gz/.tgz holding
#                one named `volley` (this project publishes no release
#                binaries itself: point it at your own build)
#   otherwise    `cargo build --locked --bin volley` from the action's own
#                source (ACTION_PATH), profile VOLLEY_CARGO_PROFILE
#                (default release), into CARGO_TARGET_DIR (default
#                $RUNNER_TEMP/volley-target)
set -euo pipefail

: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set (run inside GitHub Actions, or set it to a file)}"
fail() { echo "::error title=volley action::$*" >&2; exit 2; }

if [ -n "${VOLLEY_PATH:-}" ]; then
  [ -x "$VOLLEY_PATH" ] || fail "volley-path: $VOLLEY_PATH is not an executable file"
  bin=$(cd "$(dirname "$VOLLEY_PATH")" && pwd)/$(basename "$VOLLEY_PATH")
elif [ -n "${VOLLEY_URL:-}" ]; then
  dir=$(mktemp -d "${RUNNER_TEMP:-/tmp}/volley-bin.XXXXXX")
  echo "volley action: downloading $VOLLEY_URL" >&2
  curl --fail --silent --show-error --location --retry 3 -o "$dir/download" "$VOLLEY_URL" \
    || fail "volley-url: cannot download $VOLLEY_URL"
  case "$VOLLEY_URL" in
    *.tar.gz|*.tgz)
      tar -xzf "$dir/download" -C "$dir" || fail "volley-url: $VOLLEY_URL is not a gzipped tar archive"
      bin=$(find "$dir" -type f -name volley | head -n 1)
      [ -n "$bin" ] || fail "volley-url: no file named volley in $VOLLEY_URL"
      ;;
    *) bin="$dir/volley"; mv "$dir/download" "$bin" ;;
  esac
  chmod +x "$bin"
else
  src=${ACTION_PATH:?ACTION_PATH, the source of the action, is not set}
  profile=${VOLLEY_CARGO_PROFILE:-release}
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${RUNNER_TEMP:-/tmp}/volley-target}
  command -v cargo >/dev/null || fail "cargo not found: install a Rust toolchain first, or give volley-path or volley-url"
  echo "volley action: building volley from $src (profile $profile)" >&2
  cargo build --locked --quiet --profile "$profile" --bin volley --manifest-path "$src/Cargo.toml"
  case "$profile" in dev) sub=debug ;; *) sub=$profile ;; esac
  bin=$CARGO_TARGET_DIR/$sub/volley
fi

"$bin" --version >&2 || fail "$bin does not run"
echo "volley=$bin" >> "$GITHUB_OUTPUT"
