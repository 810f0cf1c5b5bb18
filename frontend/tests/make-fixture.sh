#!/usr/bin/env bash
# Generate a small fMP4/CMAF HLS ladder (720p/480p/360p H.264 + separate stereo
# AAC audio group + master playlist) for the mock server. Dev-only; output is
# not committed. Usage: tests/make-fixture.sh [OUT_DIR]   (default /tmp/stream-fixture/hls)
# Env: SECONDS_LONG (8) = clip length.
set -euo pipefail
out="${1:-/tmp/stream-fixture/hls}"
if [ -f "$out/master.m3u8" ]; then echo "fixture exists: $out"; exit 0; fi
mkdir -p "$out"
cd "$out"
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i testsrc2=size=1280x720:rate=25 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 \
  -filter_complex "[0:v]split=3[a][b][c];[a]scale=1280:720[v0];[b]scale=854:480[v1];[c]scale=640:360[v2]" \
  -map "[v0]" -map "[v1]" -map "[v2]" -map 1:a \
  -c:v libx264 -preset veryfast -pix_fmt yuv420p -profile:v main \
  -b:v:0 3000k -b:v:1 1200k -b:v:2 600k \
  -g 50 -keyint_min 50 -sc_threshold 0 \
  -c:a aac -b:a 128k -ac 2 \
  -t "${SECONDS_LONG:-8}" \
  -f hls -hls_time 2 -hls_playlist_type vod -hls_segment_type fmp4 \
  -hls_flags independent_segments -hls_fmp4_init_filename init.mp4 \
  -hls_segment_filename '%v/seg_%03d.m4s' \
  -master_pl_name master.m3u8 \
  -var_stream_map "a:0,agroup:aud,name:audio v:0,agroup:aud,name:720p v:1,agroup:aud,name:480p v:2,agroup:aud,name:360p" \
  '%v/index.m3u8'
# ffmpeg also lists the audio rendition as an audio-only variant; the
# platform's master playlist does not, so drop it (STREAM-INF + URI line).
awk '/^#EXT-X-STREAM-INF:.*CODECS="mp4a[^,]*"/ {skip=1; next} skip {skip=0; next} {print}' \
  master.m3u8 > master.tmp && mv master.tmp master.m3u8
echo "fixture written: $out"
