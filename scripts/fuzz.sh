#!/usr/bin/env bash
# Runs depot's fuzz targets (fuzz/fuzz_targets/) with cargo-fuzz and
# libFuzzer on stable Rust (no sanitizer: `-s none`; the code under test
# has no `unsafe` of its own, and a panic, a hang or a runaway allocation
# is what we look for).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   each target for SECONDS (default 20)
#   FUZZ_RUNS=N scripts/fuzz.sh ...         ... or until N executions, if sooner
#
# The issue's campaign bar, ≥ 30 min or ≥ 10 M executions per target:
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 1800
#
# Each target starts from its committed seed corpus (fuzz/corpus/TARGET,
# made by fuzz/seed.sh) and writes what it finds to a scratch copy, so the
# committed corpus changes only when someone copies a finding in. A run
# fails on a panic, on one input taking more than 1 s, and on an RSS over
# 1 GiB; the input is saved under fuzz/artifacts/TARGET/ and its
# reproduction command printed. CI runs it with a few seconds per target.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-20}
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
# FUZZ_PROFILE=dev (CI) builds faster and runs slower than the default,
# an optimised build.
profile=-O
[ "${FUZZ_PROFILE:-}" = dev ] && profile=--dev
cargo fuzz build -s none $profile
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "artifacts/$t"
    log="$scratch/$t.log"
    # Past findings (tests/fixtures/fuzz/TARGET) are replayed first.
    found=()
    [ -d "../tests/fixtures/fuzz/$t" ] && found=("../tests/fixtures/fuzz/$t")
    if cargo fuzz run -s none $profile "$t" "$scratch/$t" "corpus/$t" "${found[@]}" -- \
        -max_total_time="$secs" ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} -timeout=1 -rss_limit_mb=1024 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
        took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o '[0-9]* second' | grep -o '[0-9]*' || echo "$secs")
        echo "fuzz $t: ${took}s, $runs executions, no finding"
    else
        status=1
        echo "fuzz $t: FAILED"
        grep -E 'panicked|ERROR|Test unit written|SUMMARY' "$log" | head -20
    fi
done
exit $status
