#!/usr/bin/env bash
# Debian packages that the Rust integration tests drive the server with:
# - fiu-utils: libfiu's POSIX fault injector (fiu-run, fiu-ctrl), for the storage that refuses
#   writes in tests/faults.rs;
# - faketime: libfaketime, which steps the server's wall clock in tests/clock_jumps.rs.
# Installed with apt-get when missing and this runs as root (as on CI's fresh machine); otherwise
# the command to run is printed and the tests that need a package say they did not run.
set -euo pipefail

missing=()
command -v fiu-run >/dev/null || missing+=(fiu-utils)
if [[ -z "${AXME_FAKETIME_LIB:-}" ]] && ! compgen -G "/usr/lib/*/faketime/libfaketime.so.1" >/dev/null; then
    missing+=(faketime)
fi
if [[ ${#missing[@]} == 0 ]]; then
    exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
    echo "deps: missing ${missing[*]}; as root: apt-get install ${missing[*]}" >&2
    exit 0
fi
echo "deps: apt-get install ${missing[*]}" >&2
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
