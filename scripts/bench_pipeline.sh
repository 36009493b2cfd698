#!/usr/bin/env bash
# The pipeline benchmark (issue 18): one release-built `imgmeta worker` on a stream of distinct
# generated images (no cache or dedup can help) beside the detector's own rate in the same run,
# for worker concurrency 1, 2 and 4; prints one JSON line per concurrency on stderr and the
# whole report on stdout: images/s end to end, the detector's images/s, their ratio, PostgreSQL
# statements per job (pg_stat_statements; the worker connects as its own role), WAL bytes per
# job, and the worker's resident memory (idle with the model loaded, and peak).
#
#   bash scripts/bench_pipeline.sh                         # 300 images, 300-1000 px, c = 1,2,4
#   bash scripts/bench_pipeline.sh --images 100 --concurrency 2
#
# pg_stat_statements must be preloaded: when it is not, this adds it to the local cluster's
# shared_preload_libraries (ALTER SYSTEM) and restarts PostgreSQL once.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
psql_() { psql -h 127.0.0.1 -U postgres -d postgres -Atqc "$1"; }
if ! psql_ "show shared_preload_libraries" | grep -q pg_stat_statements; then
  current="$(psql_ "show shared_preload_libraries")"
  echo "bench_pipeline: preloading pg_stat_statements (restarting PostgreSQL once)" >&2
  psql_ "ALTER SYSTEM SET shared_preload_libraries = '${current:+$current,}pg_stat_statements'"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main restart
  until pg_isready -h 127.0.0.1 -q; do sleep 0.2; done
fi
cargo build --release --locked --bin imgmeta --bin imgmeta-chaos
target/release/imgmeta models fetch >/dev/null
exec target/release/imgmeta-chaos --binary target/release/imgmeta bench-pipeline "$@"
