#!/usr/bin/env bash
# Runs the fuzz targets in fuzz/ (cargo fuzz: libFuzzer with AddressSanitizer, on the
# nightly toolchain) for SECONDS each, default 60; all targets, or those named.
#   bash scripts/fuzz.sh 600                 # ten minutes each
#   bash scripts/fuzz.sh 30 socks5 config    # two of them
# New inputs go to ~/.cache/coinslot/fuzz/<target> (the seeds in fuzz/corpus stay as they
# are); a crash stops the run, leaves its input in ~/.cache/coinslot/fuzz/artifacts and
# makes the script fail: turn it into a regression test (fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true

bash scripts/setup.sh
tools="$HOME/.cache/coinslot/tools"
export PATH="$tools/bin:$PATH"
export CARGO_TARGET_DIR="${COINSLOT_FUZZ_TARGET_DIR:-$HOME/.cache/coinslot/fuzz-target}"
work="$HOME/.cache/coinslot/fuzz"
version=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$version"; then
    echo "== installing cargo-fuzz $version into $tools"
    cargo install --quiet --locked --root "$tools" cargo-fuzz --version "$version"
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzzing needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
mkdir -p "$work/artifacts"
summary=""
for target in "${targets[@]}"; do
    echo "== fuzz $target for ${seconds}s"
    mkdir -p "$work/$target" "fuzz/corpus/$target"
    log="$work/$target.log"
    set +e
    (cd fuzz && cargo +nightly fuzz run "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 \
        -artifact_prefix="$work/artifacts/$target-" -print_final_stats=1) >"$log" 2>&1
    status=$?
    set -e
    grep -E "^(#[0-9]+ +(INITED|DONE)|==[0-9]+==ERROR|SUMMARY|thread .* panicked)" "$log" || true
    runs=$(awk '/^stat::number_of_executed_units/ { n = $2 } END { print n + 0 }' "$log")
    summary+="$target: ${runs:-0} executions, exit ${status}"$'\n'
    if [ "$status" != 0 ]; then
        printf '%s' "$summary"
        echo "fuzz target $target failed: see $log and $work/artifacts" >&2
        exit 1
    fi
done
printf '%s' "$summary"
