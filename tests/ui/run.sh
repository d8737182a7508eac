#!/usr/bin/env bash
# Runs the dashboard in a real browser: Debian's Chromium, driven by playwright-core (pinned in
# package-lock.json), against the real axme binary. Logs in, watches an intent appear live, opens
# its timeline, approves a human task, replays a dead-lettered delivery, accepts an invite on its
# page, downloads an attachment, and saves screenshots in target/ui-artifacts/.
#
#   bash tests/ui/run.sh [node --test args...]
#
# - installs Debian's `chromium` with apt-get when /usr/bin/chromium is missing (needs root, as
#   on CI's fresh machine); playwright never downloads a browser of its own;
# - runs `npm ci` when node_modules is missing or package-lock.json changed since the last install
#   (a sha256 stamp lives in node_modules);
# - uses AXME_BIN, or builds target/debug/axme with `cargo build --locked`;
# - runs the test with `node --test`, whose summary is the last thing printed; exits with its code.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=../lib.sh source-path=SCRIPTDIR
. "$here/../lib.sh"

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
    if [[ "$(id -u)" != 0 ]]; then
        echo "ui: $CHROMIUM is missing; install Debian's chromium (apt-get install chromium) as root" >&2
        exit 2
    fi
    echo "ui: apt-get install chromium" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    if [[ ! -x "$CHROMIUM" ]]; then
        echo "ui: chromium was installed but $CHROMIUM is still missing" >&2
        exit 2
    fi
fi

ensure_npm ui "$here"
use_axme_bin ui "$repo"

export UI_ARTIFACTS="${UI_ARTIFACTS:-${CARGO_TARGET_DIR:-$repo/target}/ui-artifacts}"
mkdir -p "$UI_ARTIFACTS"

cd "$here"
exec node --test --test-reporter=spec "$@" dashboard.test.mjs
