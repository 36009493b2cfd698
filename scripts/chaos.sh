#!/usr/bin/env bash
# The fault-injection suite: builds the imgmeta binary and the harness, makes sure PostgreSQL
# and RabbitMQ run, then runs every scenario of crates/imgmeta-chaos (one JSON line of counts
# each) and exits non-zero if any scenario lost, duplicated or mis-finished a job.
#
#   bash scripts/chaos.sh                 # all scenarios
#   bash scripts/chaos.sh poison          # one scenario (`list` prints the names)
#   bash scripts/chaos.sh ci              # only those that leave RabbitMQ and PostgreSQL running
#   JOBS=200 bash scripts/chaos.sh        # background jobs per scenario (default 100)
#   bash scripts/chaos.sh load            # the 10,000-job load test, broker up then down
#
# It stops and starts the machine's RabbitMQ and restarts its PostgreSQL for a few seconds at
# a time, and always starts them again before it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
cargo build --bin imgmeta --bin imgmeta-chaos
chaos=target/debug/imgmeta-chaos

case "${1:-all}" in
  load)
    "$chaos" load --jobs "${LOAD_JOBS:-10000}" --concurrency "${CONCURRENCY:-64}"
    "$chaos" load --jobs "${LOAD_JOBS:-10000}" --concurrency "${CONCURRENCY:-64}" --broker-down
    ;;
  *)
    "$chaos" scenario "${1:-all}" --jobs "${JOBS:-100}"
    ;;
esac
