#!/usr/bin/env bash
# Start the four services in the background (logs in var/log, PIDs in
# var/run), ingest the samples that are not in the catalogue yet, print the
# URL. Running it again is harmless: live services are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export MEDIA_STORE=${MEDIA_STORE:-$PWD/var/media}
export INGEST_SCRATCH_DIR=${INGEST_SCRATCH_DIR:-$PWD/var/scratch}
export EDGE_STATIC_DIR=${EDGE_STATIC_DIR:-$PWD/frontend/dist}
EDGE_PORT=${EDGE_PORT:-8080}; INGEST_PORT=${INGEST_PORT:-8081}
MARKER_PORT=${MARKER_PORT:-8082}; CONTROL_PORT=${CONTROL_PORT:-50051}
export EDGE_HTTP_ADDR=${EDGE_HTTP_ADDR:-0.0.0.0:$EDGE_PORT}
# kn-sock 0.3.0 compatible stream (docs/knsock.md): kn-sock's own ports.
export EDGE_KNSOCK_VIDEO_ADDR=${EDGE_KNSOCK_VIDEO_ADDR:-0.0.0.0:8000}
export EDGE_KNSOCK_AUDIO_ADDR=${EDGE_KNSOCK_AUDIO_ADDR:-0.0.0.0:8001}
export EDGE_KNSOCK_CONTROL_ADDR=${EDGE_KNSOCK_CONTROL_ADDR:-0.0.0.0:8010}
export EDGE_KNSOCK_SCRATCH_DIR=${EDGE_KNSOCK_SCRATCH_DIR:-$PWD/var/scratch/knsock}
export INGEST_HTTP_ADDR=${INGEST_HTTP_ADDR:-0.0.0.0:$INGEST_PORT}
export MARKER_HTTP_ADDR=${MARKER_HTTP_ADDR:-0.0.0.0:$MARKER_PORT}
export CONTROL_GRPC_ADDR=${CONTROL_GRPC_ADDR:-0.0.0.0:$CONTROL_PORT}
export CONTROL_URL=${CONTROL_URL:-http://127.0.0.1:$CONTROL_PORT}
export EDGE_INGEST_PUBLIC_URL=${EDGE_INGEST_PUBLIC_URL:-http://localhost:$INGEST_PORT}
export EDGE_CORS_ORIGINS=${EDGE_CORS_ORIGINS:-http://localhost:$EDGE_PORT,http://127.0.0.1:$EDGE_PORT}
export INGEST_CORS_ORIGINS=${INGEST_CORS_ORIGINS:-http://localhost:$EDGE_PORT,http://127.0.0.1:$EDGE_PORT}
mkdir -p var/run var/log "$MEDIA_STORE" "$INGEST_SCRATCH_DIR"
# Playback tokens: one secret shared by control (signs) and the edge (checks
# the native stream's hello), made once and kept in var/ (mode 600).
if [ -z "${CONTROL_TOKEN_SECRET:-}" ]; then
  [ -s var/token-secret ] || (umask 077; python3 -c 'import secrets; print(secrets.token_hex(32))' > var/token-secret)
  CONTROL_TOKEN_SECRET=$(cat var/token-secret)
fi
export CONTROL_TOKEN_SECRET
export EDGE_NATIVE_ADDR=${EDGE_NATIVE_ADDR:-0.0.0.0:9000}

alive() { [ -f "var/run/$1.pid" ] && kill -0 "$(cat "var/run/$1.pid")" 2>/dev/null; }
for svc in control ingest marker edge; do
  if alive "$svc"; then echo "up: $svc already running (pid $(cat var/run/$svc.pid))"; continue; fi
  nohup "target/release/$svc" >"var/log/$svc.log" 2>&1 &
  echo $! > "var/run/$svc.pid"
  echo "up: started $svc (pid $!, log var/log/$svc.log)"
done

wait_ok() {
  for _ in $(seq 1 150); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.2; done
  echo "up: $1 did not become ready; see var/log/" >&2; exit 1
}
wait_ok "http://127.0.0.1:$INGEST_PORT/readyz"
wait_ok "http://127.0.0.1:$MARKER_PORT/readyz"
wait_ok "http://127.0.0.1:$EDGE_PORT/readyz"
wait_ok "http://127.0.0.1:$EDGE_PORT/api/v1/videos"

# Ingest each sample once (by title).
titles=$(curl -fsS "http://127.0.0.1:$EDGE_PORT/api/v1/videos?page_size=100" | python3 scripts/catalog.py titles)
for f in .cache/samples/*.mp4; do
  t=$(basename "$f" .mp4)
  if grep -qx "$t" <<<"$titles"; then echo "up: $t already ingested"; continue; fi
  id=$(curl -fsS -X POST -H 'content-type: video/mp4' --data-binary "@$f" \
    "http://127.0.0.1:$INGEST_PORT/v1/videos?title=$t" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  echo "up: uploaded $t as $id"
done

# Wait for the catalogue to settle (bounded), showing progress.
for _ in $(seq 1 300); do
  line=$(curl -fsS "http://127.0.0.1:$EDGE_PORT/api/v1/videos?page_size=100" | python3 scripts/catalog.py progress)
  printf '\r%s' "$(head -1 <<<"$line")"
  [ "$(tail -1 <<<"$line")" = done ] && break
  sleep 1
done
echo

# Two live channels, unless they already run: bigbuckbunny played live in a
# loop, and the test-pattern generator with its events (markers).
start_channel() { # title json
  if curl -fsS "http://127.0.0.1:$EDGE_PORT/api/v1/channels?page_size=100" | python3 scripts/catalog.py running "$1"; then
    echo "up: channel \"$1\" already running"; return
  fi
  curl -fsS -X POST -H 'content-type: application/json' -d "$2" \
    "http://127.0.0.1:$EDGE_PORT/api/v1/channels" >/dev/null && echo "up: started channel \"$1\""
}
bbb=$(curl -fsS "http://127.0.0.1:$EDGE_PORT/api/v1/videos?page_size=100" | python3 scripts/catalog.py id bigbuckbunny)
if [ -n "$bbb" ]; then
  start_channel "bigbuckbunny live" "{\"title\":\"bigbuckbunny live\",\"source\":{\"file\":{\"video_id\":\"$bbb\",\"loop\":true}},\"latency\":\"low\"}"
fi
start_channel "generator" '{"title":"generator","source":{"generator":{"event_interval_s":10,"width":640,"height":360}},"latency":"low"}'
echo "up: open http://localhost:$EDGE_PORT"
echo "up: native stream: target/release/streamctl play tcp://127.0.0.1:${EDGE_NATIVE_ADDR##*:}/<video or channel id>"
echo "up: kn-sock clients: connect_to_live_server(\"127.0.0.1\", 8000) (docs/knsock.md)"
