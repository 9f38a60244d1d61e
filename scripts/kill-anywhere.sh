#!/usr/bin/env bash
# kill -9 at a random instant in each writing command (mirror update, repo
# add, snapshot create, release create, publish, promote, prune, gc, train),
# KILLS times per command (default 200; CI runs 10), checking after each
# kill that `depot check --full` is clean and that a rerun succeeds. The
# test is `hardening::kill_9_anywhere…` in tests/it/hardening.rs; set
# DEPOT_SEED to replay a failure (the seed is printed).
#
#   scripts/kill-anywhere.sh [KILLS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DEPOT_KILLS=${1:-200} cargo test --quiet --test it \
    hardening::kill_9_anywhere_in_a_writing_command_leaves_a_whole_root_and_the_rerun_succeeds \
    -- --exact --nocapture
