#!/usr/bin/env bash
# Fuzzes the real axme binary against its own OpenAPI document with schemathesis.
#
#   bash tests/schemathesis/run.sh [extra `st run` args...]
#
# - keeps a virtualenv in <repo>/target/schemathesis-venv and (re)installs requirements.txt into
#   it only when that file changed (a sha256 stamp lives in the venv);
# - builds the binary with `cargo build --locked` unless AXME_BIN names one already;
# - starts it on 127.0.0.1 (a free port) with a database in a temporary directory and an admin
#   key, then runs schemathesis on http://127.0.0.1:PORT/openapi.json with that key, checking
#   that no answer is a 5xx and that every status, content type and body is the one the
#   document gives for the operation;
# - where the machine allows it (root, `unshare`, `ip`), the server and schemathesis run in a
#   network namespace of their own with only the loopback interface, so a generated webhook URL
#   cannot reach any other host; hooks.py points push targets at a closed loopback port anyway;
# - skips the SSE streams (they stay open) and takes long-poll waits out (hooks.py);
# - bounded: AXME_ST_MAX_EXAMPLES cases per operation and phase (default 20), a fixed seed
#   (AXME_ST_SEED, default 1) so a failure reproduces;
# - fails on any check failure, on a server that panicked (its stderr says "panicked"), or on a
#   server that died during the run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$repo/target/schemathesis-venv"
api_key="axme_schemathesis_admin_key_0123456789"
# shellcheck source=../lib.sh source-path=SCRIPTDIR
. "$here/../lib.sh"

if [[ -z "${AXME_ST_ISOLATED:-}" ]]; then
    ensure_venv schemathesis "$venv" "$here/requirements.txt"
    use_axme_bin schemathesis "$repo"

    # Everything that needs the network is done: go on without it where that is possible.
    if [[ "$(id -u)" == 0 ]] && command -v unshare >/dev/null && command -v ip >/dev/null \
        && unshare --net true 2>/dev/null; then
        export AXME_ST_ISOLATED=netns
        exec unshare --net bash "${BASH_SOURCE[0]}" "$@"
    fi
    echo "schemathesis: no network namespace here; push targets are still loopback-only (hooks.py)" >&2
    export AXME_ST_ISOLATED=none
fi

if [[ "$AXME_ST_ISOLATED" == netns ]]; then
    ip link set lo up
fi

work="$(mktemp -d)"
server_pid=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$AXME_BIN" serve --data "$work/axme.db" --listen 127.0.0.1:0 --api-key "$api_key" \
    --durability normal >"$work/stdout" 2>"$work/stderr" </dev/null &
server_pid=$!

# The binary prints `listening on http://ADDR` once its socket is bound.
base=""
for _ in $(seq 300); do
    base="$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/stdout" | head -n 1)"
    if [[ -n "$base" ]] || ! kill -0 "$server_pid" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if [[ -z "$base" ]]; then
    echo "schemathesis: axme did not start" >&2
    cat "$work/stderr" >&2
    exit 1
fi
echo "schemathesis: axme on $base (network: $AXME_ST_ISOLATED)" >&2

# The id of the run's own key, which hooks.py keeps from being revoked.
AXME_ST_KEY_ID="$("$venv/bin/python" - "$base" "$api_key" <<'PY'
import json
import sys
import urllib.request

base, key = sys.argv[1], sys.argv[2]
req = urllib.request.Request(base + "/v1/keys", headers={"x-api-key": key})
with urllib.request.urlopen(req, timeout=10) as r:
    keys = json.load(r)["keys"]
print(next(k["key_id"] for k in keys if k["role"] == "admin" and not k["revoked_at"]))
PY
)"
export AXME_ST_KEY_ID

status=0
(
    cd "$work"
    SCHEMATHESIS_HOOKS="$here/hooks.py" "$venv/bin/st" run "$base/openapi.json" \
        --url "$base" \
        --header "x-api-key: $api_key" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --exclude-path-regex '/stream$' \
        --max-examples "${AXME_ST_MAX_EXAMPLES:-20}" \
        --seed "${AXME_ST_SEED:-1}" \
        --request-timeout 20 \
        --report junit --report-junit-path "$work/junit.xml" \
        "$@"
) || status=$?

server_failures=0
if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "schemathesis: axme exited during the run" >&2
    server_failures=1
fi
if grep -q "panicked" "$work/stderr"; then
    echo "schemathesis: axme panicked during the run:" >&2
    grep -A3 "panicked" "$work/stderr" >&2
    server_failures=1
fi
if [[ "$server_failures" != 0 ]]; then
    status=1
fi

# One closing line for CI: operations that passed every phase, and those that failed one (or
# the server itself, counted once).
if [[ -f "$work/junit.xml" ]]; then
    "$venv/bin/python" - "$work/junit.xml" "$server_failures" <<'PY'
import sys
import xml.etree.ElementTree as ET

suites = ET.parse(sys.argv[1]).getroot()
count = lambda name: int(suites.get(name, "0"))
failed = count("failures") + count("errors")
passed = count("tests") - failed - count("skipped")
print(f"schemathesis: {passed} passed, {failed + int(sys.argv[2])} failed")
PY
fi
exit "$status"
