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
# shellcheck source=../lib.sh source-path=SCRIPTDIR
. "$here/../lib.sh"

ensure_npm sse_node "$here"
use_axme_bin sse_node "$repo"

cd "$here"
exec node --test --test-reporter=spec "$@" eventsource.test.mjs
