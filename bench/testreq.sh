#!/usr/bin/env bash
# Benchmark of depot's test requests (issue 6):
#   - submit 10,000 requests to RabbitMQ on loopback: one connection,
#     persistent messages, publisher confirms awaited (requests/s);
#   - poll one package with 10,000 runs from a loopback Swift-style server:
#     listing (prefix/delimiter=@, 10,000-name pages) plus every result.tar
#     read and folded per trigger (results/s, and wall time of the CLI).
# Needs RabbitMQ on 127.0.0.1:5672 (guest/guest) or DEPOT_TEST_AMQP_URL.
# DEPOT_BENCH_N changes the count. Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --test it bench_submit_and_poll -- --ignored --nocapture 2>&1 \
    | grep -E '^(submit|poll):|test result|panicked'
