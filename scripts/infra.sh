#!/usr/bin/env bash
# Start NATS (JetStream) and Redis on loopback, each only if nothing listens
# on its port yet (NATS_URL / REDIS_URL decide the ports). What this script
# starts is recorded in var/run/*.pid so `make down` stops exactly that.
set -euo pipefail
cd "$(dirname "$0")/.."
NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
mkdir -p var/run var/log var/nats var/redis

hostport() { local u=${1#*://}; u=${u#*@}; u=${u%%/*}; echo "$u"; }
listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 100); do listening "$1" "$2" && return 0; sleep 0.1; done
  echo "infra: nothing came up on $1:$2" >&2; return 1
}

hp=$(hostport "$NATS_URL"); host=${hp%:*}; port=${hp##*:}
if listening "$host" "$port"; then
  echo "infra: NATS already on $host:$port"
else
  echo "infra: starting nats-server -js on $host:$port"
  nohup nats-server -a "$host" -p "$port" -js -sd "$PWD/var/nats" >var/log/nats.log 2>&1 &
  echo $! > var/run/nats.pid
  wait_port "$host" "$port"
fi

hp=$(hostport "$REDIS_URL"); host=${hp%:*}; port=${hp##*:}
if listening "$host" "$port"; then
  echo "infra: Redis already on $host:$port"
else
  echo "infra: starting redis-server on $host:$port"
  redis-server --daemonize yes --bind "$host" --port "$port" --dir "$PWD/var/redis" \
    --appendonly yes --appendfsync everysec --save "" \
    --pidfile "$PWD/var/run/redis.pid" --logfile "$PWD/var/log/redis.log"
  wait_port "$host" "$port"
fi
