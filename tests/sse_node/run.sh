#!/usr/bin/env bash
# Runs the EventSource interop test: a WHATWG-compliant EventSource (npm `eventsource`, pinned in
# package-lock.json) against the real axme binary, across forced disconnects.
#
#   bash tests/sse_node/run.sh [node --test args...]
#
# - runs `npm ci` when node_modules is missing or package-lock.json changed since the last install
#   (a sha256 stamp lives in node_modules);
# - uses AXME_BIN, or builds target/debug/axme with `cargo build --locked`;
# - runs the tests with `node --test`, whose summary is the last thing printed; exits with its code.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
lock="$here/package-lock.json"
stamp="$here/node_modules/.package-lock.sha256"

want="$(sha256sum "$lock" | cut -d' ' -f1)"
have=""
if [[ -f "$stamp" ]]; then
    have="$(cat "$stamp")"
fi
if [[ "$want" != "$have" ]]; then
    echo "sse_node: npm ci" >&2
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$want" >"$stamp"
fi

if [[ -z "${AXME_BIN:-}" ]]; then
    echo "sse_node: cargo build --locked" >&2
    (cd "$repo" && cargo build --locked)
    AXME_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/axme"
fi
if [[ ! -x "$AXME_BIN" ]]; then
    echo "sse_node: AXME_BIN=$AXME_BIN is not an executable file" >&2
    exit 2
fi
AXME_BIN="$(cd "$(dirname "$AXME_BIN")" && pwd)/$(basename "$AXME_BIN")"
export AXME_BIN

cd "$here"
exec node --test --test-reporter=spec "$@" eventsource.test.mjs
