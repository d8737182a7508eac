# shellcheck shell=bash
# Helpers shared by the runners tests/*/run.sh, which source this file (it runs nothing by
# itself). Each helper takes the runner's name first, for its messages on stderr.

# stamp_is_current FILE STAMP: whether STAMP holds the sha256 of FILE (installs are redone
# only when the file they come from changed).
stamp_is_current() {
    local want have=""
    want="$(sha256sum "$1" | cut -d' ' -f1)"
    if [[ -f "$2" ]]; then
        have="$(cat "$2")"
    fi
    [[ "$want" == "$have" ]]
}

# stamp_write FILE STAMP: records the sha256 of FILE in STAMP.
stamp_write() {
    sha256sum "$1" | cut -d' ' -f1 >"$2"
}

# ensure_venv NAME VENV REQUIREMENTS: a virtualenv at VENV with REQUIREMENTS installed,
# reinstalled only when that file changed (the stamp lives in the venv).
ensure_venv() {
    local name="$1" venv="$2" requirements="$3"
    local stamp="$venv/.requirements.sha256"
    if [[ ! -x "$venv/bin/python" ]]; then
        echo "$name: creating virtualenv $venv" >&2
        mkdir -p "$(dirname "$venv")"
        python3 -m venv "$venv"
    fi
    if ! stamp_is_current "$requirements" "$stamp"; then
        echo "$name: installing $requirements" >&2
        rm -f "$stamp"
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet -r "$requirements"
        stamp_write "$requirements" "$stamp"
    fi
}

# ensure_npm NAME DIR: `npm ci` in DIR when node_modules is missing or package-lock.json changed
# since the last install (the stamp lives in node_modules).
ensure_npm() {
    local name="$1" dir="$2"
    local lock="$dir/package-lock.json"
    local stamp="$dir/node_modules/.package-lock.sha256"
    if ! stamp_is_current "$lock" "$stamp"; then
        echo "$name: npm ci" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
        stamp_write "$lock" "$stamp"
    fi
}

# use_axme_bin NAME REPO: exports AXME_BIN as an absolute path; when it is unset, builds the
# debug binary with `cargo build --locked` and uses that. Exits 2 when it is not executable.
use_axme_bin() {
    local name="$1" repo="$2"
    if [[ -z "${AXME_BIN:-}" ]]; then
        echo "$name: cargo build --locked" >&2
        (cd "$repo" && cargo build --locked)
        AXME_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/axme"
    fi
    if [[ ! -x "$AXME_BIN" ]]; then
        echo "$name: AXME_BIN=$AXME_BIN is not an executable file" >&2
        exit 2
    fi
    AXME_BIN="$(cd "$(dirname "$AXME_BIN")" && pwd)/$(basename "$AXME_BIN")"
    export AXME_BIN
}
