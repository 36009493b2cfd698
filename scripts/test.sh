#!/usr/bin/env bash
# The whole test suite: starts the services the tests need, checks formatting, and runs every
# test of the workspace (unit, integration against the real PostgreSQL and RabbitMQ, and the
# detector's parity tests, which fetch the model weights on first use). Fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
cargo fmt --all -- --check
cargo test --workspace --locked
