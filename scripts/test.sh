#!/usr/bin/env bash
# The whole test suite: starts the services the tests need, checks formatting, and runs every
# test of the workspace (unit, integration against the real PostgreSQL and RabbitMQ, and the
# detector's parity tests, which fetch the model weights on first use). Fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
# The deploy tests (crates/imgmeta-telemetry/tests/deploy.rs) validate docker-compose.yml with Compose.
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 \
  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; }
cargo fmt --all -- --check
cargo test --workspace --locked
