#!/usr/bin/env bash
# Stop what `make up` started, by PID (services, then NATS/Redis if ours).
set -uo pipefail
cd "$(dirname "$0")/.."
for svc in edge marker ingest control nats redis; do
  f="var/run/$svc.pid"
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "down: stopped $svc ($pid)"
  fi
  rm -f "$f"
done
