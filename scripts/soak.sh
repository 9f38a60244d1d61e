#!/usr/bin/env bash
# Concurrency soak: 8 processes run random mixes of writing commands
# (mirror update, repo add, snapshot/release create and drop, publish,
# promote, prune, gc) on overlapping objects for SECONDS (default 600; CI
# runs 60). No command may hang; every refusal must be exit 3 naming what
# holds the object; `depot check --full` must be clean at the end. The
# test is `hardening::eight_processes…` in tests/it/hardening.rs.
#
#   scripts/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DEPOT_SOAK_SECS=${1:-600} cargo test --quiet --test it \
    hardening::eight_processes_racing_over_the_same_objects_never_deadlock_or_damage_the_root \
    -- --exact --nocapture
