#!/usr/bin/env bash
# Build the page, start the mock edge/ingest, run the browser test against it,
# stop the mock. Needs: npm ci done, /usr/bin/ffmpeg, /usr/bin/chromium.
#   tests/e2e-mock.sh            (PORT/INGEST_PORT default 18080/18081)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-18080}"
INGEST_PORT="${INGEST_PORT:-18081}"
HLS_DIR="${HLS_DIR:-/tmp/stream-fixture/hls}"
tests/make-fixture.sh "$HLS_DIR"
npm run --silent build
PORT="$PORT" INGEST_PORT="$INGEST_PORT" HLS_DIR="$HLS_DIR" node tests/mock-server.mjs &
mock=$!
trap 'kill "$mock" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$PORT/api/v1/config" >/dev/null && break
  sleep 0.1
done
BASE_URL="http://127.0.0.1:$PORT" \
EXPECT_TITLES="${EXPECT_TITLES:-bigbuckbunny,bikes,carphone_pristine}" \
PLAY_TITLE="${PLAY_TITLE:-bigbuckbunny}" \
  node tests/browser.mjs
