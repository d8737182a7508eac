#!/usr/bin/env bash
# Runs the Python SDK interop suite against the real axme binary.
#
#   bash tests/interop/run.sh [pytest args...]
#
# - keeps a virtualenv in <repo>/target/interop-venv and (re)installs tests/interop/requirements.txt
#   into it only when that file changed (a sha256 stamp lives in the venv);
# - builds the binary with `cargo build --locked` unless AXME_BIN names one already;
# - runs pytest on tests/interop with AXME_BIN set; extra arguments go to pytest;
# - exits with pytest's exit code (5 = no tests collected, which is a failure too).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
venv="$repo/target/interop-venv"
requirements="$here/requirements.txt"
stamp="$venv/.requirements.sha256"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "interop: creating virtualenv $venv" >&2
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
fi

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
have=""
if [[ -f "$stamp" ]]; then
    have="$(cat "$stamp")"
fi
if [[ "$want" != "$have" ]]; then
    echo "interop: installing $requirements" >&2
    rm -f "$stamp"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet -r "$requirements"
    printf '%s\n' "$want" >"$stamp"
fi

if [[ -z "${AXME_BIN:-}" ]]; then
    echo "interop: cargo build --locked" >&2
    (cd "$repo" && cargo build --locked)
    AXME_BIN="$target_dir/debug/axme"
fi
if [[ ! -x "$AXME_BIN" ]]; then
    echo "interop: AXME_BIN=$AXME_BIN is not an executable file" >&2
    exit 2
fi
AXME_BIN="$(cd "$(dirname "$AXME_BIN")" && pwd)/$(basename "$AXME_BIN")"
export AXME_BIN

cd "$repo"
exec "$venv/bin/python" -m pytest "$here" "$@"
