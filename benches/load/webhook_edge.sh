#!/usr/bin/env bash
# Load benchmark of the webhook edge against the broker it writes to. For each
# connection count, in the same run:
#   - wrk against ingest (which answers 202 only after Kafka acknowledged the
#     request's records), one 260-byte record per request, then 100 per request,
#     the records from 9,000 callers (post_callers.lua, post_batch.lua) so that they
#     spread over the raw topic's partitions as the baseline's do;
#   - the same load with no HTTP and none of our code: `raw_kafka produce`, a bare
#     rdkafka producer with ingest's settings sending the same envelopes, each task
#     waiting for its request's acks as a connection does (the broker baseline);
#   - wrk against a bare hyper server that reads the body and answers 202 (the HTTP
#     baseline).
# Reports records/s, p50 and p99 of each, ingest's ratio to the raw producer, and how
# busy the box's two cores were during the raw producer's and ingest's runs (and what
# the broker and ingest took of them: benches/load/cpu_share.sh), which says whether
# either had CPU left to go faster.
# Needs wrk (`apt-get install wrk`):
#
#   benches/load/webhook_edge.sh [duration_s=15] ["connections"="32 256 1024"]
#   CM_BENCH_STORAGE=memory benches/load/webhook_edge.sh   # a private tansu with memory storage
#   CM_BENCH_HALF_LOAD=1 benches/load/webhook_edge.sh      # also ingest at half its rate, open loop
#   CM_BENCH_PRODUCER_PROPS="linger.ms=2" benches/load/webhook_edge.sh   # a producer setting on both sides
#
# With CM_BENCH_HALF_LOAD=1, after each wrk run against ingest, `open_loop` sends the
# same requests at half the rate wrk reached, on as many connections, timing each from
# when it was due (one fixed body: its single records all come from one caller) (wrk's percentiles are at full load: it sends a connection's next
# request only after the last one's answer).
#
# The default broker is the stack's (tansu with sqlite storage). With memory storage,
# the script starts its own tansu on port 39192 and stops it after: that shows our own
# cost apart from the broker's disk. The processor is not started: this measures the
# edge, not the pipeline behind it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DURATION="${1:-15}"
CONNECTIONS="${2:-32 256 1024}"
STORAGE="${CM_BENCH_STORAGE:-sqlite}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
ulimit -n 65536 2>/dev/null || true

cargo build --release --quiet -p ingest -p pipeline-benches -p cmctl --bins
deploy/stack.sh start infra >/dev/null
# The stack's ClickHouse has users with passwords, the binaries closed auth
# (docs/security.md): read the secrets, and run the bench's own binaries open on
# loopback.
# shellcheck source=deploy/secrets.sh
. deploy/secrets.sh
cm_secrets "${CM_DATA_DIR:-$ROOT/.data/stack}"
export CM_CLICKHOUSE_USER=callmatrix_writer CM_CLICKHOUSE_PASSWORD="$CM_CLICKHOUSE_WRITER_PASSWORD"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
if [ "$STORAGE" = memory ]; then
  # shellcheck source=benches/load/memory_broker.sh
  . benches/load/memory_broker.sh
  start_memory_broker
  PIDS+=("$MEMORY_BROKER_PID")
  BROKERS=$MEMORY_BROKER
else
  BROKERS="127.0.0.1:${CM_KAFKA_PORT:-19092}"
fi
export CM_KAFKA_BROKERS="$BROKERS" CM_TOPIC_PREFIX="bench."
"$TARGET_DIR/release/cmctl" topics >/dev/null
"$TARGET_DIR/release/cmctl" integrations publish deploy/integrations/samples.json >/dev/null

# CM_BENCH_PRODUCER_PROPS="key=value ...": librdkafka settings given to ingest's
# producer (through `kafka.properties`, which may change its tuning keys) and to the
# raw producer alike, to try one on both sides.
INGEST_CONFIG=deploy/config/ingest.toml
if [ -n "${CM_BENCH_PRODUCER_PROPS:-}" ]; then
  INGEST_CONFIG=/tmp/bench-ingest-props.toml
  props=$(for kv in $CM_BENCH_PRODUCER_PROPS; do printf '"%s" = "%s", ' "${kv%%=*}" "${kv#*=}"; done)
  sed "s|^# properties = .*|properties = { ${props%, } }|" deploy/config/ingest.toml >"$INGEST_CONFIG"
  grep -q '^properties = ' "$INGEST_CONFIG" || { echo "could not set the properties in $INGEST_CONFIG" >&2; exit 1; }
fi
INGEST_KAFKA__BROKERS="$BROKERS" INGEST_KAFKA__TOPIC_PREFIX="bench." \
INGEST_HTTP__LISTEN=127.0.0.1:18098 INGEST_AUTH__INSECURE_OPEN=true INGEST_POLL__ENABLED=false INGEST_LIMITS__RECORDS_PER_SECOND=0 INGEST_LIMITS__WEBHOOK_BYTES_PER_SECOND=0 \
RUST_LOG=warn \
  "$TARGET_DIR/release/ingest" --config "$INGEST_CONFIG" >/tmp/bench-ingest.log 2>&1 &
PIDS+=($!)
"$TARGET_DIR/release/bare_edge" 127.0.0.1:18099 2>/dev/null &
PIDS+=($!)
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:18098/healthz >/dev/null 2>&1 && break; sleep 0.2; done

# shellcheck source=benches/load/cpu_share.sh
. benches/load/cpu_share.sh
TANSU_PID="${PIDS[0]:-}"
[ "$STORAGE" = memory ] || TANSU_PID="$(cat "${CM_DATA_DIR:-$ROOT/.data/stack}/run/tansu.pid")"
INGEST_PID="${PIDS[-2]}"
with_cpu() { # with_cpu COMMAND...: its output, then "cpu: busy ..." for its run
  cpu_mark "tansu=$TANSU_PID" "ingest=$INGEST_PID"
  "$@"
  echo "cpu: $(cpu_report --brief)"
}

wrk_run() { # wrk_run URL CONNECTIONS SCRIPT RECORDS_PER_REQUEST → "records/s p50_ms p99_ms non2xx"
  wrk -t2 -c"$2" -d"${DURATION}s" --timeout 10s --latency -s "$3" "$1" | awk -v per="$4" '
    function ms(v) { if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 } if (v ~ /ms$/) { sub(/ms$/, "", v); return v } if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000 } return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 } /Non-2xx/ { bad = $NF }
    END { printf "%.0f %s %s %s\n", rps * per, p50, p99, (bad == "" ? 0 : bad) }'
}
raw_run() { # raw_run CONNECTIONS BATCH → "records/s p50_ms p99_ms"
  "$TARGET_DIR/release/raw_kafka" produce "$BROKERS" bench.calls.raw "$DURATION" "$1" "$2" | awk '{ print $1, $2, $3 }'
}
row() { printf '%-7s %-6s %-24s %10s %9s %9s %7s\n' "$@"; }
echo "$(date -u +%FT%TZ) tansu storage: $STORAGE; wrk -t2 -d${DURATION}s; records are the same 260-byte webhook record (in a $(
  "$TARGET_DIR/release/raw_kafka" produce "$BROKERS" bench.calls.raw 1 1 | awk '{ print $5 }')-byte envelope)"
row conns per_req target records/s p50_ms p99_ms non2xx
for c in $CONNECTIONS; do
  for per in 1 100; do
    script=benches/load/post_callers.lua
    [ "$per" = 100 ] && script=benches/load/post_batch.lua
    with_cpu raw_run "$c" "$per" >/tmp/bench-edge-raw.out
    read -r raw_rps raw_p50 raw_p99 </tmp/bench-edge-raw.out
    with_cpu wrk_run http://127.0.0.1:18098/api/integrations/webhook/arroyo "$c" "$script" "$per" >/tmp/bench-edge-ingest.out
    read -r edge_rps edge_p50 edge_p99 edge_bad </tmp/bench-edge-ingest.out
    read -r bare_rps bare_p50 bare_p99 bare_bad < <(wrk_run http://127.0.0.1:18099/api/integrations/webhook/arroyo "$c" "$script" "$per")
    row "$c" "$per" "raw producer (baseline)" "$raw_rps" "$raw_p50" "$raw_p99" -
    row "$c" "$per" "ingest webhook" "$edge_rps" "$edge_p50" "$edge_p99" "$edge_bad"
    row "$c" "$per" "bare hyper 202" "$bare_rps" "$bare_p50" "$bare_p99" "$bare_bad"
    if [ "${CM_BENCH_HALF_LOAD:-0}" = 1 ]; then
      body_file=$(mktemp)
      if [ "$per" = 100 ]; then
        content_type=application/x-ndjson
        for i in $(seq 1 100); do sed -n "s/^wrk.body = '\(.*\)'$/\1/p" benches/load/post.lua | sed "s/load_1/load_$i/; s/4155552671/415555$((1000 + i))/"; done >"$body_file"
      else
        content_type=application/json
        sed -n "s/^wrk.body = '\(.*\)'$/\1/p" benches/load/post.lua | tr -d '\n' >"$body_file"
      fi
      half=$(awk -v r="$edge_rps" -v p="$per" 'BEGIN { printf "%.0f", r / p / 2 }')
      read -r _ _ half_bad half_rps half_p50 _ half_p99 _ < <("$TARGET_DIR/release/open_loop" 127.0.0.1:18098 \
        /api/integrations/webhook/arroyo "$body_file" "$half" "$DURATION" "$c" "$content_type")
      rm -f "$body_file"
      row "$c" "$per" "ingest, half load (open)" "$(awk -v r="$half_rps" -v p="$per" 'BEGIN { printf "%.0f", r * p }')" "$half_p50" "$half_p99" "$half_bad"
    fi
    awk -v a="$edge_rps" -v b="$raw_rps" -v c="$c" -v p="$per" \
      'BEGIN { printf "        ratio at %s connections, %s per request: ingest = %.2f x the raw producer\n", c, p, a / b }'
    echo "        cpu during the raw producer: $(sed -n 's/^cpu: //p' /tmp/bench-edge-raw.out)"
    echo "        cpu during ingest:           $(sed -n 's/^cpu: //p' /tmp/bench-edge-ingest.out)"
  done
done
