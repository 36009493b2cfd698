#!/usr/bin/env bash
# Builds imgmeta, starts PostgreSQL and RabbitMQ if needed, fetches the detector's weights,
# migrates the database and runs the API and one worker on http://127.0.0.1:8080.
#
# This is the local development start: unless you set it yourself, it turns on
# IMGMETA_FETCH_ALLOW_PRIVATE so that images served from this machine can be analysed, and
# IMGMETA_SIGNUP=open so that the console's sign-up works.
# Production deployments leave both off (the defaults of the binary itself).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/system_deps.sh
bash scripts/services.sh
cargo build --locked --bin imgmeta
export IMGMETA_FETCH_ALLOW_PRIVATE="${IMGMETA_FETCH_ALLOW_PRIVATE:-true}"
export IMGMETA_SIGNUP="${IMGMETA_SIGNUP:-open}"
./target/debug/imgmeta models fetch
exec ./target/debug/imgmeta up
