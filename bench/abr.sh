#!/usr/bin/env bash
# ABR benchmark: production vs baselines under report impairment.
# Called from the repo root as `make bench BENCH=abr`. Needs shared/abr beside
# the repo (or ABR_DATA_DIR). Prints the tables, then ONE JSON line last.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${ABR_DATA_DIR:-$root/../shared/abr}"
if [[ ! -d "$data/norway" ]]; then
    echo "bench/abr.sh: ABR data not found at $data (set ABR_DATA_DIR)" >&2
    exit 1
fi

cargo build --release --quiet -p streamctl --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/release/streamctl"

impair=(--report-delay-ms 1000 --report-loss 0.1 --seed 42)
norway_out="$(mktemp)"
synth_out="$(mktemp)"
trap 'rm -f "$norway_out" "$synth_out"' EXIT

echo "== Norway (142 traces), report delay 1000 ms, loss 10% =="
"$bin" abr-sim --algo all --traces "$data/norway" "${impair[@]}" | tee "$norway_out"
echo
echo "== Synthetic Markov traces (100, seed 42), report delay 1000 ms, loss 10% =="
"$bin" abr-sim --algo all --synthetic 100 --video-sizes "$data" "${impair[@]}" | tee "$synth_out"
echo
echo "== Fixed scenarios, report delay 1000 ms, loss 10% =="
"$bin" abr-sim --algo all --scenarios --video-sizes "$data" "${impair[@]}" | head -n -1
echo

python3 - "$norway_out" "$synth_out" <<'PY'
import json, sys

def qoe(path):
    last = open(path).read().strip().splitlines()[-1]
    res = {r["algo"]: r for r in json.loads(last)["results"]}
    prod = next(r for r in res.values() if r["production"])
    return prod["mean_qoe"], res["robust-mpc-fixed"]["mean_qoe"]

np, nm = qoe(sys.argv[1])
sp, sm = qoe(sys.argv[2])
print(json.dumps({
    "bench": "abr",
    "norway_production_qoe": round(np, 3),
    "norway_robust_mpc_qoe": round(nm, 3),
    "ratio": round(np / nm, 3),
    "synthetic_production_qoe": round(sp, 3),
    "synthetic_robust_mpc_qoe": round(sm, 3),
}))
PY
