#!/usr/bin/env bash
# Regression check of the benchmarks' ratios, run by hand (not in CI: these machines
# are shared and noisy, and the edge part needs the local infra and wrk). Runs short
# versions of the criterion benches and of the webhook edge load, and fails when a
# ratio falls more than 20 % below the one recorded in benches/ratios.tsv (the
# latest figures of benches/README.md).
#
#   benches/check.sh            # criterion benches and the edge
#   benches/check.sh criterion  # the criterion benches only
#   benches/check.sh record     # both, and write the ratios measured into benches/ratios.tsv
#
# Ratios: for criterion, the figure's median time over its baseline's in the same run
# (lower is better); for the edge, ingest's records/s over the raw producer's
# (higher is better).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
measured="$(mktemp)"
trap 'rm -f "$measured"' EXIT

cargo bench -q -p pipeline-benches -- --warm-up-time 1 --measurement-time 3 >/dev/null 2>&1 || { echo "cargo bench failed: run it alone to see why" >&2; exit 1; }
python3 - "$TARGET_DIR/criterion" >>"$measured" <<'PY'
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
median = lambda d: json.loads((d / "new" / "estimates.json").read_text())["median"]["point_estimate"]
for group in sorted(p for p in root.iterdir() if (p / "baseline").is_dir()):
    baselines = [d for d in (group / "baseline").iterdir() if (d / "new").is_dir()]
    if len(baselines) != 1:
        continue
    base = median(baselines[0])
    for kind in ("figure", "part"):
        for d in sorted((group / kind).glob("*")) if (group / kind).is_dir() else []:
            if (d / "new").is_dir():
                print(f"{group.name}/{kind}/{d.name}\t{median(d) / base:.3f}")
PY
if [ "${1:-all}" != criterion ]; then
  benches/load/webhook_edge.sh 5 256 | awk '/ratio at/ {
    printf "edge/%s_connections/%s_per_request\t%s\n", $3, $5, $10 }' >>"$measured"
fi

if [ "${1:-all}" = record ]; then
  {
    echo "# name	ratio	better (benches/check.sh record, $(date -u +%F); see benches/README.md)"
    awk -F'\t' '{ print $1 "\t" $2 "\t" ($1 ~ /^edge\// ? "higher" : "lower") }' "$measured"
  } >benches/ratios.tsv
  cat benches/ratios.tsv
  exit 0
fi
python3 - "$measured" benches/ratios.tsv <<'PY'
import sys
measured = dict(line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if "\t" in line)
failed = 0
for line in open(sys.argv[2]):
    if line.startswith("#") or not line.strip():
        continue
    name, recorded, better = line.rstrip("\n").split("\t")
    if name not in measured:
        continue
    now, then = float(measured[name]), float(recorded)
    # 20 % below in throughput terms: a time ratio 1/0.8 = 1.25 times the recorded
    # one, or a rate ratio 0.8 times it.
    worse = now > then / 0.8 if better == "lower" else now < then * 0.8
    failed += worse
    print(f"{'FAIL' if worse else 'ok  '}  {name}: {now:.3f} (recorded {then:.3f}, {better} is better)")
sys.exit(1 if failed else 0)
PY
