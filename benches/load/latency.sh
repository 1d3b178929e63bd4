#!/usr/bin/env bash
# End-to-end latency at a steady rate: release ingest, processor and api on the local
# infra, and `latency_probe` (tests/src/bin/latency_probe.rs) sending RATE distinct
# calls per second, open loop, for SECONDS. Reports p50/p95/p99/max from each call's
# 2xx to its `call.created` at an SSE client, and (one call in 100) to `/api/calls`
# returning it, and where the box's CPU went meanwhile (benches/load/cpu_share.sh).
# Pick RATE as half the end-to-end rate `end_to_end.sh` measures.
#
#   benches/load/latency.sh [rate=1000] [seconds=60]
#   CM_BENCH_INGEST_CONFIG=FILE CM_BENCH_PROCESSOR_CONFIG=FILE CM_BENCH_API_CONFIG=FILE \
#     benches/load/latency.sh ...
#                                  # other config files, to try a setting
#   CM_BENCH_PROCESSOR_BIN=FILE benches/load/latency.sh ...
#                                  # another processor build, to compare two builds
#                                  # in alternating runs (this box is too noisy for
#                                  # one run of each)
#   CM_BENCH_PREFILL_CALLS=2000000 benches/load/latency.sh ...
#                                  # first store this many calls of other accounts in
#                                  # November 2026 (the run's month), merged: the run
#                                  # then writes next to a table of a live system's
#                                  # size, not into an empty one whose every merge
#                                  # rewrites it whole
#   CM_BENCH_STORAGE=memory benches/load/latency.sh ...
#                                  # a private tansu with memory storage as the broker
#                                  # (benches/load/world.sh)
#   CM_BENCH_RSS_EVERY_S=60 benches/load/latency.sh 1300 1800
#                                  # a soak: also prints every 60 s the binaries' RSS,
#                                  # each process's CPU and the processor's batch
#                                  # steps over the minute (interval_steps.py)
#
# Topics (prefix `lat<time>.`) and the database (`lat_bench`, dropped first) are the
# run's own. On a ClickHouse disk of ext4 without a journal, a run right after another
# is slower than one after a few minutes' pause (inserts about twice as long;
# benches/README.md, "2026-12-03 06:05–06:40 UTC"): alternate what you compare.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
RATE="${1:-1000}"
SECONDS_TO_RUN="${2:-60}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CH="http://127.0.0.1:${CM_CLICKHOUSE_HTTP_PORT:-18123}"
DB=lat_bench
PREFIX="lat$(date +%s)."

cargo build --release --quiet -p ingest -p processor -p api -p cmctl -p integration-tests --bins
# shellcheck source=benches/load/world.sh
. benches/load/world.sh
# shellcheck source=benches/load/cpu_share.sh
. benches/load/cpu_share.sh
PREFILL="${CM_BENCH_PREFILL_CALLS:-0}"
if [ "$PREFILL" -gt 0 ]; then
  echo "prefilling $PREFILL calls of accounts prefill0..4"
  curl -sS --fail-with-body -u "$CH_USER" "$CH/?database=$DB" --data-binary "INSERT INTO calls (id, version, account, client_id, source, external_id, caller, called, started_at, duration_s, payout, currency, campaign, publisher, state, status, qualified, received_at, processed_at) SELECT generateUUIDv4(), 1, concat('prefill', toString(number % 5)), concat('prefill', toString(number % 5)), 1, toString(number), concat('+1212555', toString(1000 + number % 9000)), '+18885550100', toDateTime(1793491200) + number % 2500000 AS started, toUInt32(number % 900), toDecimal64(number % 100, 4), 'USD', concat('camp', toString(number % 50)), concat('pub', toString(number % 30)), 'NY', 'qualified', 1, started + 905, started + 906 FROM numbers($PREFILL)"
  for table in calls call_ids calls_by_caller calls_by_time; do
    curl -sS --fail-with-body -u "$CH_USER" "$CH/?database=$DB" --data-binary "OPTIMIZE TABLE $table FINAL"
  done
fi

INGEST_KAFKA__BROKERS="$CM_KAFKA_BROKERS" INGEST_KAFKA__TOPIC_PREFIX="$PREFIX" \
INGEST_HTTP__LISTEN=127.0.0.1:18087 INGEST_AUTH__INSECURE_OPEN=true INGEST_POLL__ENABLED=false INGEST_LIMITS__RECORDS_PER_SECOND=0 INGEST_LIMITS__WEBHOOK_BYTES_PER_SECOND=0 RUST_LOG=warn \
  "$TARGET_DIR/release/ingest" --config "${CM_BENCH_INGEST_CONFIG:-deploy/config/ingest.toml}" >/tmp/lat-ingest.log 2>&1 &
PIDS=($!)
trap 'kill "${PIDS[@]}" $BENCH_TANSU_PID 2>/dev/null || true' EXIT
rm -rf /var/tmp/lat-processor-state  # the keyed state on disk, as deployed, empty at start
PROCESSOR_KAFKA__BROKERS="$CM_KAFKA_BROKERS" PROCESSOR_KAFKA__TOPIC_PREFIX="$PREFIX" \
PROCESSOR_CLICKHOUSE__URL="$CH" PROCESSOR_CLICKHOUSE__DATABASE="$DB" PROCESSOR_CLICKHOUSE__PASSWORD="$CM_CLICKHOUSE_WRITER_PASSWORD" \
PROCESSOR_HTTP__LISTEN=127.0.0.1:18086 PROCESSOR_STATE__DIR=/var/tmp/lat-processor-state RUST_LOG=warn \
  "${CM_BENCH_PROCESSOR_BIN:-$TARGET_DIR/release/processor}" --config "${CM_BENCH_PROCESSOR_CONFIG:-deploy/config/processor.toml}" >/tmp/lat-processor.log 2>&1 &
PIDS+=($!)
API_KAFKA__BROKERS="$CM_KAFKA_BROKERS" API_KAFKA__TOPIC_PREFIX="$PREFIX" \
API_CLICKHOUSE__URL="$CH" API_CLICKHOUSE__DATABASE="$DB" API_HTTP__LISTEN=127.0.0.1:18085 API_AUTH__INSECURE_OPEN=true \
API_CLICKHOUSE__USER=callmatrix_reader API_CLICKHOUSE__PASSWORD="$CM_CLICKHOUSE_READER_PASSWORD" RUST_LOG=warn \
  "$TARGET_DIR/release/api" --config "${CM_BENCH_API_CONFIG:-deploy/config/api.toml}" >/tmp/lat-api.log 2>&1 &
PIDS+=($!)
for port in 18087 18086 18085; do
  for _ in $(seq 1 150); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
done
# One call through before timing: the processor holds its partitions.
curl -s -o /dev/null -H 'content-type: application/json' --data-binary \
  '{"call":{"id":"lat_warmup","caller":{"number":"4155550199"},"started_at":"2026-11-20T14:03:22Z","duration":"1:00"}}' \
  http://127.0.0.1:18087/api/integrations/webhook/arroyo
for _ in $(seq 1 300); do
  [ "$(curl -s -u "$CH_USER" "$CH/?database=$DB" --data-binary "SELECT count() FROM calls")" -ge 1 ] && break
  sleep 0.1
done
echo "$(date -u +%FT%TZ) latency at $RATE calls/s for ${SECONDS_TO_RUN}s (tansu ${CM_BENCH_STORAGE:-sqlite}, ClickHouse 18.16, release binaries, 2 cores shared)"
INFRA_RUN="${CM_DATA_DIR:-$ROOT/.data/stack}/run"
INFRA_PIDS=()
if [ "${CM_BENCH_CLUSTER:-0}" != 1 ]; then
  INFRA_PIDS=("tansu=${BENCH_TANSU_PID:-$(cat "$INFRA_RUN/tansu.pid")}" "clickhouse=$(cat "$INFRA_RUN/clickhouse.pid")")
fi
if [ -n "${CM_BENCH_RSS_EVERY_S:-}" ]; then
  # A soak: every interval, the binaries' RSS, each process's CPU over the interval
  # (cores), and what the processor's batches did meanwhile (interval_steps.py), so
  # a latency that grows through the run shows what grows with it.
  SNAPS="$(mktemp -d)"
  (
    WATCHED=("ingest=${PIDS[0]}" "processor=${PIDS[1]}" "api=${PIDS[2]}" "${INFRA_PIDS[@]}")
    declare -A last
    for pair in "${WATCHED[@]}"; do last[$pair]="$(cpu_process_ticks "${pair#*=}")"; done
    curl -fsS http://127.0.0.1:18086/metrics >"$SNAPS/prev.prom" 2>/dev/null || true
    while sleep "$CM_BENCH_RSS_EVERY_S"; do
      printf 'rss_kib %s ingest %s processor %s api %s\n' "$(date -u +%T)" \
        "$(awk '/^VmRSS/ {print $2}' /proc/"${PIDS[0]}"/status)" \
        "$(awk '/^VmRSS/ {print $2}' /proc/"${PIDS[1]}"/status)" \
        "$(awk '/^VmRSS/ {print $2}' /proc/"${PIDS[2]}"/status)"
      line="cpu_cores"
      for pair in "${WATCHED[@]}"; do
        now="$(cpu_process_ticks "${pair#*=}")"
        line+=" ${pair%%=*} $(awk -v a="${last[$pair]}" -v b="$now" -v t="$CPU_TICKS_PER_S" -v s="$CM_BENCH_RSS_EVERY_S" 'BEGIN {printf "%.2f", (b - a) / t / s}' 2>/dev/null)"
        last[$pair]="$now"
      done
      echo "$line"
      if curl -fsS http://127.0.0.1:18086/metrics >"$SNAPS/now.prom" 2>/dev/null; then
        python3 benches/load/interval_steps.py "$SNAPS/prev.prom" "$SNAPS/now.prom" || true
        mv "$SNAPS/now.prom" "$SNAPS/prev.prom"
      fi
    done
  ) &
  PIDS+=($!)
fi
ch_events() {
  curl -s -u "$CH_USER" "$CH/" --data-binary "SELECT groupArray(value) FROM (SELECT event, value FROM system.events WHERE event IN ('InsertQuery', 'MergeTreeDataWriterBlocks', 'MergedRows', 'MergesTimeMilliseconds', 'InsertedRows') ORDER BY event) FORMAT TSV"
}
CH_EVENTS_BEFORE="$(ch_events)"
cpu_mark "ingest=${PIDS[0]}" "processor=${PIDS[1]}" "api=${PIDS[2]}" "${INFRA_PIDS[@]}"
"$TARGET_DIR/release/latency_probe" http://127.0.0.1:18087 http://127.0.0.1:18085 "$RATE" "$SECONDS_TO_RUN"
# Whether the box had CPU to spare (the probe itself is in "other"), and what
# ClickHouse did beside the queries: the parts the inserts wrote and the merges.
cpu_report
echo "clickhouse over the run (every database): $(python3 -c '
import json, sys
names = ["inserts", "rows inserted", "parts written", "rows merged", "merge time s"]
before, after = (json.loads(a) for a in sys.argv[1:])
d = [b - a for a, b in zip(before, after)]
d[4] /= 1000
print(", ".join(f"{n} {v:,.0f}" for n, v in zip(names, d)))
' "$CH_EVENTS_BEFORE" "$(ch_events)")"
# Where the processor's time went (warm-up batch included).
echo "processor, per batch:"
benches/load/processor_steps.sh http://127.0.0.1:18086
