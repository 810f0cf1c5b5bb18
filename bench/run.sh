#!/usr/bin/env bash
# `make bench [BENCH=name]`: run one benchmark or all. Each ends with one
# JSON line of its figures and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
# The in-process stacks run VOD transcodes in the `test-transcoder` child.
stack_bins() { cargo build --release -q -p stream-tests --bins; }
run_transcode() { stack_bins && cargo run --release -q -p stream-bench --bin transcode; }
run_abr() { bash bench/abr.sh; }
run_sessions() { cargo build --release -q --bins && stack_bins && cargo run --release -q -p stream-bench --bin sessions; }
run_markers() { stack_bins && RUST_LOG="${RUST_LOG:-warn}" cargo run --release -q -p stream-bench --bin markers; }
# The compatible mode vs kn-sock's server first; its figures join tcp's line.
run_tcp() {
  cargo build --release -q --bins && stack_bins
  local knsock_out; knsock_out=$(mktemp)
  RUST_LOG="${RUST_LOG:-warn}" cargo run --release -q -p stream-bench --bin knsock | tee "$knsock_out"
  KNSOCK_RESULT="$(tail -n 1 "$knsock_out")" RUST_LOG="${RUST_LOG:-warn}" cargo run --release -q -p stream-bench --bin tcp
  rm -f "$knsock_out"
}
run_knsock() { stack_bins && RUST_LOG="${RUST_LOG:-warn}" cargo run --release -q -p stream-bench --bin knsock; }
run_live() { stack_bins && RUST_LOG="${RUST_LOG:-warn}" cargo run --release -q -p stream-bench --bin live; }
case "${1:-all}" in
  transcode) run_transcode ;;
  abr) run_abr ;;
  sessions) run_sessions ;;
  markers) run_markers ;;
  live) run_live ;;
  tcp) run_tcp ;;
  knsock) run_knsock ;;
  all) run_transcode; run_abr; run_sessions; run_markers; run_live; run_tcp ;;
  *) echo "unknown bench ${1}; one of: transcode, abr, sessions, markers, live, tcp, all" >&2; exit 2 ;;
esac
