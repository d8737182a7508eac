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
venv="$repo/target/interop-venv"
# shellcheck source=../lib.sh source-path=SCRIPTDIR
. "$here/../lib.sh"

ensure_venv interop "$venv" "$here/requirements.txt"
use_axme_bin interop "$repo"

cd "$repo"
exec "$venv/bin/python" -m pytest "$here" "$@"
