#!/usr/bin/env bash
# Does a batch cost more when the store holds a year of history? (issue 32)
#
# For each store size (calls of ONE account, acme-leads, already stored, callers
# drawn from a pool of 5M numbers):
#   1. a world of the run's own (topics, database `hs_bench`, sample integrations);
#   2. the history: SIZE calls inserted straight into `calls` (its views fill
#      `calls_by_caller`, `calls_by_time`, `call_ids`), starts spread over the 30 days
#      before the run's hour;
#   3. `cmctl state build` (the migration path), timed;
#   4. the processor started on an empty state directory: its first restore from
#      the changelog, timed per partition (its log); one warm-up call through;
#   5. the processor stopped, DURATION s of distinct webhook calls queued at ingest
#      (benches/load/history_calls.lua: callers from the same pool, starts after the
#      history), the processor started again (its local copy still valid) and timed
#      until every accepted call is stored; or, with CM_HS_LIVE=1, the processor
#      kept running and the calls timed from the first sent to the last stored (no
#      restart: on tansu's memory storage a restart drops the local copy, whose
#      changelog end the broker reports below what it acknowledged);
# and reports per size: the drain rate (calls stored per second from the restart to
# the last one stored), ClickHouse rows read by the pipeline per raw batch
# (`system.query_log`, the writer user's queries during the drain, by kind), the
# processor's RSS (now and peak), its state on disk, and the processor's own time
# per call (the sum of its batch times over the calls: what the store's size costs
# it, whether or not it is the bottleneck of the rate). Then the ratio of each
# size's rate and time per call to the first size's, same run, same script, same box.
#
#   benches/load/history_scale.sh [sizes="0 10000000"] [duration_s=30] [connections=16]
#
# Needs wrk and the local infra (deploy/stack.sh start infra, started here). The
# database is dropped and made again for each size. Release binaries. Disk: about
# 2 KB per history call in the broker's database (the changelog) and 0.3 KB in
# ClickHouse and in the state directory (/var/tmp/hs-state-SIZE, removed at the end).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SIZES="${1:-0 10000000}"
DURATION="${2:-30}"
CONNECTIONS="${3:-16}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CH="http://127.0.0.1:${CM_CLICKHOUSE_HTTP_PORT:-18123}"
DB=hs_bench
ACCOUNT=acme-leads
INGEST_PORT=18077
PROCESSOR_PORT=18076
cargo build --release --quiet -p ingest -p processor -p cmctl
# The webhooks start in the hour before this one; the history in the 30 days before.
BASE=$(( $(date +%s) / 3600 * 3600 - 3600 ))
export CM_HS_BASE="$BASE"
INGEST_PID= PROCESSOR_PID=
trap 'kill $INGEST_PID $PROCESSOR_PID ${BENCH_TANSU_PID:-} 2>/dev/null || true' EXIT

q() { curl -sS -u "$CH_USER" "$CH/?database=$DB" --data-binary "$1"; }
metric() { # metric NAME: the sum of a series' values on the processor's /metrics
  curl -fsS "http://127.0.0.1:$PROCESSOR_PORT/metrics" 2>/dev/null |
    awk -v name="$1" '$1 == name || index($1, name "{") == 1 { s += $NF } END { print s + 0 }'
}
# The run's own calls (starts from BASE): the sorting key of calls_by_time keeps this
# read to their rows, whatever the history holds.
stored() { q "SELECT count() AS hs_bench_count FROM calls_by_time FINAL WHERE account = '$ACCOUNT' AND deleted = 0 AND started_at >= toDateTime($BASE)"; }

start_ingest() {
  INGEST_KAFKA__BROKERS="$CM_KAFKA_BROKERS" INGEST_KAFKA__TOPIC_PREFIX="$PREFIX" \
  INGEST_HTTP__LISTEN="127.0.0.1:$INGEST_PORT" INGEST_AUTH__INSECURE_OPEN=true INGEST_POLL__ENABLED=false INGEST_LIMITS__RECORDS_PER_SECOND=0 INGEST_LIMITS__WEBHOOK_BYTES_PER_SECOND=0 \
  RUST_LOG=warn \
    "$TARGET_DIR/release/ingest" --config deploy/config/ingest.toml >/tmp/hs-ingest.log 2>&1 &
  INGEST_PID=$!
}
start_processor() { # the state directory persists between starts of one size
  PROCESSOR_KAFKA__BROKERS="$CM_KAFKA_BROKERS" PROCESSOR_KAFKA__TOPIC_PREFIX="$PREFIX" \
  PROCESSOR_CLICKHOUSE__URL="$CH" PROCESSOR_CLICKHOUSE__DATABASE="$DB" PROCESSOR_CLICKHOUSE__PASSWORD="$CM_CLICKHOUSE_WRITER_PASSWORD" \
  PROCESSOR_HTTP__LISTEN="127.0.0.1:$PROCESSOR_PORT" PROCESSOR_STATE__DIR="$STATE_DIR" \
  PROCESSOR_RETENTION__HASH_KEY="$CM_RETENTION_HASH_KEY" \
  RUST_LOG="warn,processor::state=info" \
    "$TARGET_DIR/release/processor" --config deploy/config/processor.toml >>"/tmp/hs-processor-$SIZE.log" 2>&1 &
  PROCESSOR_PID=$!
  for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$PROCESSOR_PORT/healthz" >/dev/null 2>&1 && return; sleep 0.2; done
  echo "the processor did not come up: /tmp/hs-processor-$SIZE.log" >&2; exit 1
}
stop_processor() {
  kill -TERM "$PROCESSOR_PID"; wait "$PROCESSOR_PID" 2>/dev/null || true; PROCESSOR_PID=
}
wait_restored() { # until every partition of calls.raw is caught up (3), at most 2 h
  for _ in $(seq 1 7200); do
    [ "$(metric processor_state_restore_seconds_count)" -ge 3 ] && return
    kill -0 "$PROCESSOR_PID" 2>/dev/null || { echo "the processor stopped: /tmp/hs-processor-$SIZE.log" >&2; exit 1; }
    sleep 1
  done
  echo "no restore after 2 h" >&2; exit 1
}
rss() { awk '/^VmRSS|^VmHWM/ { printf "%s %.0f MB  ", $1, $2 / 1024 }' "/proc/$1/status"; }

# shellcheck source=benches/load/history.sh
. benches/load/history.sh

declare -A RATE PER_CALL
for SIZE in $SIZES; do
  echo "=== $SIZE calls of $ACCOUNT stored before the run ==="
  PREFIX="hs$(date +%s)."
  # shellcheck source=benches/load/world.sh
  . benches/load/world.sh
  STATE_DIR="/var/tmp/hs-state-$SIZE"
  rm -rf "$STATE_DIR" "/tmp/hs-processor-$SIZE.log"
  if [ "$SIZE" -gt 0 ]; then
    insert_history "$SIZE"
  fi
  start_ingest
  t=$(date +%s.%N)
  start_processor
  wait_restored
  echo "  first start (empty state directory, restored from the changelog): $(python3 -c "print(f'{$(date +%s.%N) - $t:.1f}')") s; $(rss "$PROCESSOR_PID")"
  sed 's/\x1b\[[0-9;]*m//g' "/tmp/hs-processor-$SIZE.log" | grep 'keyed state caught up' |
    sed -E 's/.*partition=([0-9]+).*entries=([0-9]+) seconds=([0-9.]+).*/    partition \1: \2 entries in \3 s/' || true
  for _ in $(seq 1 150); do curl -fs "http://127.0.0.1:$INGEST_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -s -o /dev/null -H 'content-type: application/json' --data-binary \
    "{\"call\":{\"id\":\"hs_warmup\",\"caller\":{\"number\":\"4152200001\"},\"started_at\":\"$(date -u -d "@$BASE" +%FT%TZ)\",\"duration\":\"1:00\"}}" \
    "http://127.0.0.1:$INGEST_PORT/api/integrations/webhook/arroyo"
  for _ in $(seq 1 600); do [ "$(stored)" -ge 1 ] && break; sleep 0.2; done
  live="${CM_HS_LIVE:-0}"
  [ "$live" = 1 ] || stop_processor
  busy_before=0
  [ "$live" = 1 ] && busy_before=$(metric processor_batch_seconds_sum)
  t0=$(date +%s)
  start=$(date +%s.%N)

  summary="$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -s benches/load/history_calls.lua \
    "http://127.0.0.1:$INGEST_PORT/api/integrations/webhook/arroyo" | grep '^sent')"
  sent=$(echo "$summary" | awk '{ print $2 }'); bad=$(echo "$summary" | awk '{ print $4 }')
  expected=$((sent - bad + 1))
  echo "  queued: wrk counted $sent requests answered, $bad not 2xx, in ${DURATION} s"

  if [ "$live" != 1 ]; then
    t0=$(date +%s)
    start=$(date +%s.%N)
    start_processor
  fi
  last=-1; changed=$(date +%s.%N)
  while :; do
    now_stored="$(stored)"; now=$(date +%s.%N)
    if [ "$now_stored" != "$last" ]; then last="$now_stored"; changed="$now"; fi
    if [ "$now_stored" -ge "$expected" ] && python3 -c "import sys; sys.exit(0 if $now - $changed >= 3 else 1)"; then break; fi
    if python3 -c "import sys; sys.exit(0 if $now - $changed > 120 else 1)"; then
      echo "stuck at $now_stored of at least $expected stored: no change for 120 s" >&2; exit 1
    fi
    sleep 1
  done
  calls=$((last - 1))
  rate=$(python3 -c "print(f'{$calls / ($changed - $start):.0f}')")
  RATE[$SIZE]=$rate
  batches=$(metric processor_batch_seconds_count)
  busy=$(python3 -c "print($(metric processor_batch_seconds_sum) - $busy_before)")
  PER_CALL[$SIZE]=$(python3 -c "print(f'{$busy / $calls * 1e6:.0f}')")
  what=$([ "$live" = 1 ] && echo "from the first sent" || echo "from the restart")
  echo "  drain: $calls calls stored in $(python3 -c "print(f'{$changed - $start:.1f}')") s $what = $rate calls/s; $batches raw batches; processor busy $(python3 -c "print(f'{$busy:.1f}')") s = ${PER_CALL[$SIZE]} µs a call; $(rss "$PROCESSOR_PID")"
  echo "  state: $(du -sm "$STATE_DIR" | cut -f1) MB on disk; entries $(metric processor_state_entries)"
  q "SYSTEM FLUSH LOGS" >/dev/null
  echo "  ClickHouse reads by the pipeline during the drain (system.query_log, user callmatrix_writer):"
  q "SELECT multiIf(query LIKE 'INSERT INTO calls_hourly%', 'rollup recompute',
                    query LIKE 'INSERT%', 'insert',
                    query LIKE '%calls_by_caller%', 'caller histories',
                    query LIKE '%call_ids%', 'call ids',
                    query LIKE '%FROM calls%', 'calls by id', 'other') AS kind,
            count() AS queries, sum(read_rows) AS rows_read, max(read_rows) AS max_per_query,
            round(sum(read_rows) / $batches, 1) AS rows_per_batch, round(sum(query_duration_ms) / 1000, 2) AS seconds
     FROM system.query_log
     WHERE type = 2 AND user = 'callmatrix_writer' AND event_time >= toDateTime($t0)
       AND query NOT LIKE '%hs_bench_count%' AND query NOT LIKE '%query_log%' AND query NOT LIKE 'SYSTEM%'
     GROUP BY kind ORDER BY kind FORMAT PrettyCompactMonoBlock" | sed 's/^/    /'
  benches/load/processor_steps.sh "http://127.0.0.1:$PROCESSOR_PORT" | sed 's/^/  /'
  stop_processor
  kill "$INGEST_PID" 2>/dev/null || true; wait "$INGEST_PID" 2>/dev/null || true; INGEST_PID=
  rm -rf "$STATE_DIR"
  # The world's private broker (CM_BENCH_STORAGE=memory): each size has its own.
  if [ -n "${BENCH_TANSU_PID:-}" ]; then
    kill "$BENCH_TANSU_PID" 2>/dev/null || true; wait "$BENCH_TANSU_PID" 2>/dev/null || true
  fi
done
first=${SIZES%% *}
for SIZE in $SIZES; do
  echo "stored before: $SIZE calls; drain ${RATE[$SIZE]} calls/s; ratio to $first: $(python3 -c "print(f'{${RATE[$SIZE]} / ${RATE[$first]}:.3f}')"); processor ${PER_CALL[$SIZE]} µs a call, ratio $(python3 -c "print(f'{${PER_CALL[$SIZE]} / ${PER_CALL[$first]}:.3f}')")"
done
