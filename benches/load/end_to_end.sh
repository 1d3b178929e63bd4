#!/usr/bin/env bash
# End-to-end load benchmark: webhooks → ingest → Kafka → processor (map, enrich,
# dedupe) → ClickHouse. wrk posts distinct calls to ingest for DURATION seconds
# (benches/load/unique_calls.lua); the script then waits until every accepted call
# is stored (the count reaches what wrk saw accepted and stays put for 3 s) and
# reports:
#   - the edge rate: calls stored over the time wrk ran (every stored call was
#     accepted while wrk ran);
#   - the end-to-end rate: calls stored per second, from the first request to the
#     last call stored (the count's last change);
#   - the drain: how long after wrk stopped the last call was stored;
# and the ratio end-to-end / edge, measured in the same run (1.0: the processor keeps
# up with the edge); then where the processor's time went (benches/load/processor_steps.sh)
# and the raw producer's rate on the same broker with as many tasks as connections.
# Needs wrk (`apt-get install wrk`) and the local infra:
#
#   benches/load/end_to_end.sh [duration_s=20] [connections=16]
#   CM_BENCH_CLUSTER=1 benches/load/end_to_end.sh ...   # on the local cluster
#
# With CM_BENCH_CLUSTER=1 the same run goes to the local cluster (deploy/cluster.sh,
# docs/deploy.md "Cluster mode"): two ingest instances, each loaded by its own wrk
# with half the connections (one thread each), and two processors, one writing
# through ClickHouse node ch1 and one through ch3; calls are counted through ch1's
# Distributed table.
#
# CM_E2E_LAG=1 also checks the lag gauge against the load generator's own clock: wrk
# puts the millisecond it made each call into the call's id (CM_WRK_STAMP=1), the
# script reads the processor's `kafka_group_lag_seconds` once a second, and after
# the run compares each reading with the truth at that moment: the age of the oldest
# call sent and not yet processed, processed meaning its event is on calls.enriched
# (that record's Kafka timestamp). CM_E2E_PAUSE_S=N stops the processor (SIGSTOP) for
# N seconds a third of the way in, so there is a backlog to measure (keep N under
# the 10 s session timeout, or the group rebalances).
#
# Topics (prefix `e2e<time>.`) and the database (`e2e_bench`, dropped first) are the
# run's own; the release binaries are used.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DURATION="${1:-20}"
CONNECTIONS="${2:-16}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CH="http://127.0.0.1:${CM_CLICKHOUSE_HTTP_PORT:-18123}"
DB=e2e_bench
PREFIX="e2e$(date +%s)."

cargo build --release --quiet -p ingest -p processor -p cmctl -p pipeline-benches --bins
# shellcheck source=benches/load/world.sh
. benches/load/world.sh

# start_ingest PORT NAME / start_processor CLICKHOUSE_URL PORT NAME: one release
# binary on the run's world, logging to /tmp/NAME.log; the pid in $!.
start_ingest() {
  INGEST_KAFKA__BROKERS="$CM_KAFKA_BROKERS" INGEST_KAFKA__TOPIC_PREFIX="$PREFIX" \
  INGEST_HTTP__LISTEN="127.0.0.1:$1" INGEST_AUTH__INSECURE_OPEN=true INGEST_POLL__ENABLED=false INGEST_LIMITS__RECORDS_PER_SECOND=0 INGEST_LIMITS__WEBHOOK_BYTES_PER_SECOND=0 INGEST_KAFKA__INSTANCE_ID="$2" RUST_LOG=warn \
    "$TARGET_DIR/release/ingest" --config deploy/config/ingest.toml >"/tmp/$2.log" 2>&1 &
}
start_processor() { # its keyed state on disk, as deployed, empty at start
  rm -rf "/var/tmp/$3-state"
  PROCESSOR_KAFKA__BROKERS="$CM_KAFKA_BROKERS" PROCESSOR_KAFKA__TOPIC_PREFIX="$PREFIX" \
  PROCESSOR_CLICKHOUSE__URL="$1" PROCESSOR_CLICKHOUSE__DATABASE="$DB" PROCESSOR_CLICKHOUSE__PASSWORD="$CM_CLICKHOUSE_WRITER_PASSWORD" PROCESSOR_HTTP__LISTEN="127.0.0.1:$2" \
  PROCESSOR_KAFKA__INSTANCE_ID="$3" PROCESSOR_STATE__DIR="/var/tmp/$3-state" RUST_LOG=warn \
    "$TARGET_DIR/release/processor" --config deploy/config/processor.toml >"/tmp/$3.log" 2>&1 &
}
start_ingest 18097 e2e-ingest
INGEST_PID=$!
start_processor "$CH" 18096 e2e-processor
PROCESSOR_PID=$!
PROGRESS_PID= SAMPLER_PID= PAUSER_PID=
CLUSTER="${CM_BENCH_CLUSTER:-0}"
INGEST2_PID= PROCESSOR2_PID=
if [ "$CLUSTER" = 1 ]; then
  start_ingest 18095 e2e-ingest2
  INGEST2_PID=$!
  start_processor "$CH3" 18094 e2e-processor2
  PROCESSOR2_PID=$!
fi
trap 'kill $INGEST_PID $PROCESSOR_PID $INGEST2_PID $PROCESSOR2_PID $PROGRESS_PID $SAMPLER_PID $PAUSER_PID $BENCH_TANSU_PID 2>/dev/null || true' EXIT
healthy() {
  local port
  for port in 18097 18096 ${INGEST2_PID:+18095} ${PROCESSOR2_PID:+18094}; do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 || return 1
  done
}
for _ in $(seq 1 150); do healthy && break; sleep 0.2; done
stored() { curl -s -u "$CH_USER" "$CH/?database=$DB" --data-binary "SELECT count() FROM calls FINAL WHERE client_id = 'arroyo'"; }
# Wait for the processor to hold its partitions: one call through, end to end.
curl -s -o /dev/null -H 'content-type: application/json' --data-binary \
  '{"call":{"id":"e2e_warmup","caller":{"number":"4155550199"},"started_at":"2026-11-20T14:03:22Z","duration":"1:00"}}' \
  http://127.0.0.1:18097/api/integrations/webhook/arroyo
for _ in $(seq 1 300); do [ "$(stored)" -ge 1 ] && break; sleep 0.1; done

if [ "$CLUSTER" = 1 ]; then
  echo "two wrk, -t1 -c$((CONNECTIONS / 2)) -d${DURATION}s each (one per ingest), distinct calls"
else
  echo "wrk -t2 -c$CONNECTIONS -d${DURATION}s, distinct calls"
fi
LAG_CHECK="${CM_E2E_LAG:-0}"
PAUSE_S="${CM_E2E_PAUSE_S:-0}"
if [ "$LAG_CHECK" = 1 ]; then
  export CM_WRK_STAMP=1
  # Each reading: the midpoint of the scrape (ms) and the largest partition's age.
  ( while :; do
      a=$(date +%s%3N)
      age=$(curl -s -m 2 http://127.0.0.1:18096/metrics | awk -v g="${PREFIX}processor" '
        index($0, "kafka_group_lag_seconds{group=\"" g "\"") == 1 { n++; if ($2 > max) max = $2 }
        END { if (n) print max + 0; else print "NA" }' || true)
      b=$(date +%s%3N)
      echo "$(( (a + b) / 2 )) $(( b - a )) $age"
      sleep 1
    done ) > /tmp/e2e-lag.tsv &
  SAMPLER_PID=$!
fi
if [ "$PAUSE_S" -gt 0 ]; then
  ( sleep $((DURATION / 3)); kill -STOP "$PROCESSOR_PID"; sleep "$PAUSE_S"; kill -CONT "$PROCESSOR_PID" ) &
  PAUSER_PID=$!
fi
start=$(date +%s.%N)
# Progress each minute: calls stored so far (the processor's pace, for long runs).
( while sleep 60; do echo "  $(date -u +%T) stored $(stored)"; done ) &
PROGRESS_PID=$!
if [ "$CLUSTER" = 1 ]; then
  half=$((CONNECTIONS / 2))
  CM_WRK_TAG_BASE=10 wrk -t1 -c"$half" -d"${DURATION}s" -s benches/load/unique_calls.lua \
    http://127.0.0.1:18095/api/integrations/webhook/arroyo >/tmp/e2e-wrk2.out &
  wrk2=$!
  summary="$(wrk -t1 -c"$half" -d"${DURATION}s" -s benches/load/unique_calls.lua \
    http://127.0.0.1:18097/api/integrations/webhook/arroyo | grep '^sent')"
  wait "$wrk2"
  summary="$(printf '%s\n%s\n' "$summary" "$(grep '^sent' /tmp/e2e-wrk2.out)")"
else
  summary="$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -s benches/load/unique_calls.lua \
    http://127.0.0.1:18097/api/integrations/webhook/arroyo | grep '^sent')"
fi
stopped=$(date +%s.%N)
kill "$PROGRESS_PID" 2>/dev/null || true
sent=$(echo "$summary" | awk '{ s += $2 } END { print s }')
bad=$(echo "$summary" | awk '{ s += $4 } END { print s }')
# wrk counts the requests it saw answered; up to one per connection was still in
# flight when it stopped, and may have been accepted too. So: wait until at least the
# counted ones are stored, then until the count stops changing for 3 s.
expected=$((sent - bad + 1))   # plus the warm-up call
last=-1
changed=$(date +%s.%N)
while :; do
  now_stored="$(stored)"
  now=$(date +%s.%N)
  if [ "$now_stored" != "$last" ]; then last="$now_stored"; changed="$now"; fi
  if [ "$now_stored" -ge "$expected" ] && python3 -c "import sys; sys.exit(0 if $now - $changed >= 3 else 1)"; then break; fi
  # A processor behind the edge drains its backlog after the load: wait while the
  # count moves, and give up after 60 s without a change.
  if python3 -c "import sys; sys.exit(0 if $now - $changed > 60 else 1)"; then
    echo "stuck at $now_stored of at least $expected stored: no change for 60 s" >&2
    benches/load/processor_steps.sh http://127.0.0.1:18096 >&2 || true
    exit 1
  fi
  # Not faster: each poll is a `count() FROM calls FINAL`, which over a million
  # calls costs ClickHouse about 0.1 s of CPU, taken from the processor's drain.
  sleep 1
done
python3 - "$start" "$stopped" "$changed" "$sent" "$bad" "$last" "$CONNECTIONS" <<'PY'
import sys
start, stopped, done, sent, bad, stored, connections = map(float, sys.argv[1:])
calls = stored - 1  # the warm-up call
edge = calls / (stopped - start)
e2e = calls / (done - start)
print(f"wrk counted {int(sent)} requests answered, {int(bad)} of them not 2xx; calls stored {int(calls)} "
      f"(+1 warm-up; {int(calls - (sent - bad))} more than wrk counted, in flight when it stopped, "
      f"at most {int(connections)})")
print(f"edge: {edge:,.0f} calls/s accepted; end to end: {e2e:,.0f} calls/s stored; "
      f"drain after the load stopped: {done - stopped:.1f} s")
print(f"ratio: end to end = {e2e / edge:.3f} x edge")
PY
if [ "$LAG_CHECK" = 1 ]; then
  kill "$SAMPLER_PID" 2>/dev/null || true
  # Once more if the broker was too slow to answer the first metadata request.
  "$TARGET_DIR/release/raw_kafka" stamps "$CM_KAFKA_BROKERS" "${PREFIX}calls.enriched" e2e_ > /tmp/e2e-stamps.tsv 2>/tmp/e2e-stamps.err ||
    "$TARGET_DIR/release/raw_kafka" stamps "$CM_KAFKA_BROKERS" "${PREFIX}calls.enriched" e2e_ > /tmp/e2e-stamps.tsv
  python3 - /tmp/e2e-lag.tsv /tmp/e2e-stamps.tsv <<'PY'
import bisect, os, sys
readings = []
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 3 and parts[2] != "NA":  # NA: no answer (the processor stopped)
        readings.append((int(parts[0]), int(parts[1]), float(parts[2])))
processed = {}
for line in open(sys.argv[2]):
    stamp, call = line.rstrip("\n").split("\t")
    fields = call.split("_")
    if len(fields) != 3:
        continue
    sent, stamp = int(fields[2]), int(stamp)
    processed[call] = (sent, min(stamp, processed.get(call, (0, stamp))[1]))
calls = sorted(processed.values())          # by send time
sent_times = [s for s, _ in calls]
# For a reading at t: the oldest call sent by t whose event came after t.
# Suffix minimum is not enough (processing is not in send order across partitions):
# scan the calls sent by t, oldest first, for the first one not yet processed.
# Readings from the generator's first call on: one taken before it sees the warm-up
# call (no send time in its id) still in hand.
first = sent_times[0] if sent_times else 0
rows = []
for at, took, gauge in readings:
    if at < first:
        continue
    end = bisect.bisect_right(sent_times, at)
    truth = 0.0
    for sent, done in calls[:end]:
        if done > at:
            truth = (at - sent) / 1000
            break
    rows.append((at, took, gauge, truth))
busy = [r for r in rows if r[2] > 0.5 or r[3] > 0.5]
errors = sorted(abs(g - t) for _, _, g, t in busy)
print(f"lag check: {len(processed)} calls with the generator's send time; {len(rows)} readings, "
      f"{len(busy)} with a backlog (gauge or truth over 0.5 s)")
if errors:
    within = sum(1 for e in errors if e <= 1.0)
    pick = lambda q: errors[min(len(errors) - 1, int(q * len(errors)))]
    print(f"  |gauge - truth| over those: median {pick(0.5):.2f} s, p90 {pick(0.9):.2f} s, max {errors[-1]:.2f} s; "
          f"within 1 s: {within} of {len(errors)}; largest truth {max(r[3] for r in busy):.1f} s, largest gauge {max(r[2] for r in busy):.1f} s")
    for at, took, gauge, truth in busy[:: max(1, len(busy) // int(os.environ.get("CM_E2E_LAG_SHOW", "12")))]:
        print(f"    at {at} (scrape {took} ms): gauge {gauge:.2f} s, truth {truth:.2f} s")
PY
fi
echo "processor, per batch, over the whole run (where the time went; the rollup worker's steps beside it):"
benches/load/processor_steps.sh http://127.0.0.1:18096
if [ "$CLUSTER" = 1 ]; then
  echo "the second processor (through ch3):"
  benches/load/processor_steps.sh http://127.0.0.1:18094
fi
kill "$INGEST_PID" "$PROCESSOR_PID" $INGEST2_PID $PROCESSOR2_PID 2>/dev/null || true
# The broker baseline, right after on the same broker: a bare rdkafka producer with
# ingest's settings, CONNECTIONS tasks each waiting for its record's ack as a
# connection does, for 10 s (`raw_kafka produce`; records/s, p50 and p99 ack ms).
echo "raw producer, $CONNECTIONS tasks, 10 s: $("$TARGET_DIR/release/raw_kafka" produce "$CM_KAFKA_BROKERS" "${PREFIX}calls.raw" 10 "$CONNECTIONS" | awk '{ print $1 " records/s, p50 " $2 " ms, p99 " $3 " ms" }')"
