#!/usr/bin/env bash
# Fuzz the native stream's parsers (crates/native/fuzz) with cargo-fuzz
# (libFuzzer): each target for FUZZ_SECONDS (default 20; `make test` runs
# the short default, run longer by hand: FUZZ_SECONDS=3600 scripts/fuzz.sh).
# Crashes land in crates/native/fuzz/artifacts/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")/../crates/native"
SECONDS_EACH=${FUZZ_SECONDS:-20}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
# cargo-fuzz passes nightly flags; the machine has one stable toolchain.
export RUSTC_BOOTSTRAP=1
for target in frame_decoder cmaf; do
  mkdir -p "fuzz/corpus/$target"
  echo "fuzz: $target for ${SECONDS_EACH} s"
  cargo fuzz run --sanitizer none "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$SECONDS_EACH" -max_len=65536 -print_final_stats=1 2>&1 | tail -n 3
done
