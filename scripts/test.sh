#!/usr/bin/env bash
# The whole test suite: starts the services the tests need, checks formatting, and runs every
# test of the workspace (unit, integration against the real PostgreSQL and RabbitMQ, and the
# detector's parity tests, which fetch the model weights on first use), then the CI subset of
# the fault-injection suite. Fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# libheif for HEIC/AVIF decoding (apt-get install when missing; fails loudly otherwise).
bash scripts/system_deps.sh
bash scripts/services.sh
# The deploy tests (crates/imgmeta-telemetry/tests/deploy.rs) validate docker-compose.yml with Compose.
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 \
  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; }
# The Standard Webhooks reference implementation (Python, PyPI), which the webhook tests use to
# verify our signatures independently.
bash scripts/dev_python.sh >/dev/null
# The console's browser test (the e2e test `console`) drives Debian's chromium with playwright-core
# from the npm registry (tests/browser/package-lock.json); no browser is downloaded.
command -v chromium >/dev/null \
  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
{ command -v node >/dev/null && command -v npm >/dev/null; } \
  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
cargo fmt --all -- --check
cargo test --workspace --locked
# The heavy tests, alone once the rest has run (same build): a million-line NDJSON upload with
# the API's memory measured (about a minute).
cargo test --workspace --locked --test e2e -- --ignored --test-threads 1
# The fault-injection scenarios that leave the shared RabbitMQ and PostgreSQL running (real
# processes SIGKILLed or frozen mid-job, a poison image, duplicate, lost and garbage messages,
# SIGTERM drains; hostile clients: slow-body, connection and method floods, a redirect fan-in;
# about 10 minutes). The ones that restart the broker or the database run with
# `bash scripts/chaos.sh`.
bash scripts/chaos.sh ci
# The CUDA build (`--features cuda`) still compiles: CUDA 13.0 from PyPI wheels, no GPU needed;
# skipped while its inputs are unchanged since a passing check (scripts/check-cuda.sh).
bash scripts/check-cuda.sh
