#!/usr/bin/env bash
# Soak test for gc racing writers: runs the integration test
# `retention::gc_racing_writers…` ITERATIONS times with ROUNDS rounds each
# (the test's own default is 20 rounds), stopping at the first failure.
#
#   scripts/retention-soak.sh [ITERATIONS] [ROUNDS]     (defaults: 10 100)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ITERATIONS=${1:-10}
ROUNDS=${2:-100}
for i in $(seq 1 "$ITERATIONS"); do
  echo "soak $i/$ITERATIONS: $ROUNDS rounds" >&2
  DEPOT_SOAK_ROUNDS=$ROUNDS cargo test --quiet --test it \
    retention::gc_racing_writers_deletes_nothing_they_write_or_reference -- --exact >/dev/null
done
echo "soak: $ITERATIONS x $ROUNDS rounds of gc racing writers, no failure" >&2
