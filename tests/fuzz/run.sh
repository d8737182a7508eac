#!/usr/bin/env bash
# The cargo-fuzz (libFuzzer) targets of fuzz/, each run for a bounded time: the router, the
# request helpers, the create-intent reader, every other write-body reader, and the lifecycle
# operations on an in-memory database. Any crash, failed assertion, timeout or out-of-memory
# fails this script, which prints the input that caused it (replay it with
# `cargo fuzz run <target> <that file>` in fuzz/).
#
#   AXME_FUZZ_TARGET_SECS  seconds of fuzzing per target (default 30)
#   AXME_FUZZ_TARGETS      which targets (default: all five of fuzz/Cargo.toml)
#   AXME_FUZZ_JOBS         how many targets run at once (default 2, one per core)
#   AXME_FUZZ_TARGET_DIR   cargo's target dir for the fuzz build (default fuzz/target)
#   AXME_FUZZ_SANITIZER    none (default) or address
#
# The grown corpus goes to a scratch directory under the target dir, never into the tree: the
# committed seeds (fuzz/corpus/<target>/seed-*) are read, not written.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

CARGO_FUZZ_VERSION=0.13.2
secs=${AXME_FUZZ_TARGET_SECS:-30}
target_dir=${AXME_FUZZ_TARGET_DIR:-$root/fuzz/target}
targets=${AXME_FUZZ_TARGETS:-router request intent_create write_bodies lifecycle}

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# cargo fuzz drives nightly-only compiler flags: `-Zsanitizer=...` for a sanitizer, `-Zbuild-std`
# for its careful mode. This machine has only a stable toolchain, and RUSTC_BOOTSTRAP=1 lets that
# compiler accept them. With the default `--sanitizer none` cargo-fuzz 0.13.2 passes only stable
# `-C` flags (the coverage instrumentation libFuzzer steers by), so the variable matters once
# AXME_FUZZ_SANITIZER=address is asked for; it is set here only, never for the server's build.
export RUSTC_BOOTSTRAP=1

# `--sanitizer none` by default: the crate forbids `unsafe`, so AddressSanitizer would watch
# only the dependencies' unsafe code (the bundled SQLite's C is not instrumented either way)
# while it makes the cold build and every run slower. What these targets look for is a panic
# or a broken invariant, which needs no sanitizer. Debug assertions and overflow checks stay on.
# `--codegen-units 16` instead of cargo fuzz's 1: a shorter build for slightly slower runs.
sanitizer=${AXME_FUZZ_SANITIZER:-none}
build_flags=(--sanitizer "$sanitizer" --codegen-units 16 --target-dir "$target_dir")

started=$SECONDS
# cargo fuzz has no --locked: refuse here a fuzz/Cargo.lock that would have to change.
(cd fuzz && cargo fetch --locked)
(cd fuzz && cargo fuzz build "${build_flags[@]}")
echo "fuzz: built the targets in $((SECONDS - started)) s"

# One target's run; its output goes to $target_dir/<target>.log, its verdict to <target>.status.
fuzz_one() {
    local t=$1 corpus="$target_dir/corpus/$1" artifacts="$target_dir/artifacts/$1/"
    local log="$target_dir/$1.log" extra=()
    rm -rf "$artifacts"
    mkdir -p "$corpus" "$artifacts"
    # A lifecycle input is at most 64 operations of two bytes: let it have them from the start.
    if [ "$t" = lifecycle ]; then
        extra=(-max_len=160 -len_control=0)
    fi
    # libFuzzer writes to the first corpus directory and only reads the seeds; -timeout and
    # -rss_limit_mb turn a hang or a memory blow-up into a failure.
    if (cd fuzz && cargo fuzz run "${build_flags[@]}" "$t" "$corpus" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -dict=requests.dict \
        -artifact_prefix="$artifacts" -print_final_stats=1 "${extra[@]}") >"$log" 2>&1; then
        echo ok >"$target_dir/$t.status"
    else
        echo failed >"$target_dir/$t.status"
    fi
}

# libFuzzer runs on one core: two targets at a time keep both cores of the machine busy.
jobs=${AXME_FUZZ_JOBS:-2}
echo "fuzz: $targets, ${secs} s each, $jobs at a time"
for t in $targets; do
    rm -f "$target_dir/$t.status"
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    fuzz_one "$t" &
done
wait

failed=()
for t in $targets; do
    log="$target_dir/$t.log"
    if [ "$(cat "$target_dir/$t.status" 2>/dev/null)" = ok ]; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        echo "fuzz: $t: ${runs:-?} inputs, ${rate:-?}/s, no failure"
    else
        # The panic (or libFuzzer's verdict on a timeout or leak of memory), not the backtrace.
        grep -E -A2 "panicked at|ERROR: libFuzzer" "$log" | head -n 20 || tail -n 30 "$log"
        for f in "$target_dir/artifacts/$t/"*; do
            if [ -e "$f" ]; then
                echo "fuzz: $t FAILED on input $f"
                echo "fuzz: replay: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $sanitizer $t $f)"
            fi
        done
        failed+=("$t")
    fi
done

echo "fuzz: done in $((SECONDS - started)) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failing targets: ${failed[*]} (logs in $target_dir/<target>.log)"
    exit 1
fi
