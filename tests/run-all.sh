#!/usr/bin/env bash
# The whole test suite: unit tests, the Rust integration tests (each starts the real binary on
# 127.0.0.1:0 with a temporary database, the SIGKILL crash tests among them; tests/deps.sh first
# installs the Debian packages some of them drive the server with), the cargo-fuzz targets of
# fuzz/ for a bounded time each (tests/fuzz/run.sh), a WHATWG EventSource
# (npm `eventsource`, installed by tests/sse_node/run.sh) across forced disconnects, then the
# interop suite that drives the server with the official Python SDK and verifies webhook
# signatures with `standardwebhooks` (its virtualenv is created by tests/interop/run.sh), the
# dashboard in a real headless Chromium (Debian's, driven by playwright-core; tests/ui/run.sh
# installs both; screenshots in target/ui-artifacts/), and last schemathesis, which fuzzes every
# route against assets/openapi.json (tests/schemathesis/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/deps.sh
# As root (CI) the fault tests have all they need, so one that cannot run is a failure.
if [[ "$(id -u)" == 0 ]]; then
    export AXME_REQUIRE_FAULT_TOOLS=1
fi
cargo build --locked
cargo test --locked
bash tests/fuzz/run.sh
AXME_BIN="$PWD/target/debug/axme" bash tests/sse_node/run.sh
AXME_BIN="$PWD/target/debug/axme" bash tests/interop/run.sh
AXME_BIN="$PWD/target/debug/axme" bash tests/ui/run.sh
AXME_BIN="$PWD/target/debug/axme" bash tests/schemathesis/run.sh
