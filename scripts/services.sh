#!/usr/bin/env bash
# Starts PostgreSQL and RabbitMQ on this machine if they are not already answering on
# 127.0.0.1:5432 and 127.0.0.1:5672, and waits until both do. Used by scripts/up.sh and
# scripts/test.sh; does nothing when the services already run (or are remote: set
# IMGMETA_SKIP_SERVICES=1).
set -euo pipefail

[ "${IMGMETA_SKIP_SERVICES:-0}" = "1" ] && exit 0

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local name=$1 port=$2 seconds=$3
  for _ in $(seq "$seconds"); do
    port_open "$port" && return 0
    sleep 1
  done
  echo "services.sh: $name did not start listening on 127.0.0.1:$port within ${seconds}s" >&2
  return 1
}

if ! port_open 5432; then
  echo "services.sh: starting PostgreSQL" >&2
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  else
    echo "services.sh: PostgreSQL is not running and pg_ctlcluster is not available" >&2
    exit 1
  fi
  wait_port PostgreSQL 5432 60
fi

if ! port_open 5672; then
  echo "services.sh: starting RabbitMQ" >&2
  if command -v rabbitmq-server >/dev/null; then
    rabbitmq-server -detached
  else
    echo "services.sh: RabbitMQ is not running and rabbitmq-server is not available" >&2
    exit 1
  fi
  wait_port RabbitMQ 5672 120
fi

# The port opens a moment before the broker accepts AMQP sessions.
if command -v rabbitmq-diagnostics >/dev/null; then
  for _ in $(seq 60); do
    rabbitmq-diagnostics -q check_running >/dev/null 2>&1 && break
    sleep 1
  done
fi
