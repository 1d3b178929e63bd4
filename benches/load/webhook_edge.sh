#!/usr/bin/env bash
# Load benchmark of the webhook edge: wrk against ingest (which answers 202 only
# after Kafka acknowledged the record) and, in the same run, against a bare hyper
# server that reads the body and answers 202. Reports requests/s, p50 and p99 of
# each, and the ratios. Needs wrk (`apt-get install wrk`) and the local infra:
#
#   benches/load/webhook_edge.sh [duration_s=20] [connections=32]
#
# The processor is not started: this measures the edge, not the pipeline behind it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DURATION="${1:-20}"
CONNECTIONS="${2:-32}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

cargo build --release --quiet -p ingest -p pipeline-benches -p cmctl --bins
deploy/stack.sh start infra >/dev/null
# The stack's ClickHouse has users with passwords, the binaries closed auth
# (docs/security.md): read the secrets, and run the bench's own binaries open on
# loopback.
# shellcheck source=deploy/secrets.sh
. deploy/secrets.sh
cm_secrets "${CM_DATA_DIR:-$ROOT/.data/stack}"
CH_USER="callmatrix_writer:$CM_CLICKHOUSE_WRITER_PASSWORD"
export CM_CLICKHOUSE_USER=callmatrix_writer CM_CLICKHOUSE_PASSWORD="$CM_CLICKHOUSE_WRITER_PASSWORD"
export CM_KAFKA_BROKERS="127.0.0.1:${CM_KAFKA_PORT:-19092}" CM_TOPIC_PREFIX="bench."
"$TARGET_DIR/release/cmctl" topics >/dev/null
"$TARGET_DIR/release/cmctl" integrations publish deploy/integrations/samples.json >/dev/null

INGEST_KAFKA__BROKERS="$CM_KAFKA_BROKERS" INGEST_KAFKA__TOPIC_PREFIX="bench." \
INGEST_HTTP__LISTEN=127.0.0.1:18098 INGEST_AUTH__INSECURE_OPEN=true INGEST_POLL__ENABLED=false RUST_LOG=warn \
  "$TARGET_DIR/release/ingest" --config deploy/config/ingest.toml >/tmp/bench-ingest.log 2>&1 &
INGEST_PID=$!
"$TARGET_DIR/release/bare_edge" 127.0.0.1:18099 2>/dev/null &
BARE_PID=$!
trap 'kill $INGEST_PID $BARE_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:18098/healthz >/dev/null 2>&1 && break; sleep 0.2; done

run() { # run URL → "req/s p50 p99" (latencies in ms)
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s benches/load/post.lua "$1" | awk '
    function ms(v) { if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 } if (v ~ /ms$/) { sub(/ms$/, "", v); return v } if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000 } return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 } /Non-2xx/ { bad = $NF }
    END { printf "%s %s %s %s\n", rps, p50, p99, (bad == "" ? 0 : bad) }'
}
echo "wrk -t2 -c$CONNECTIONS -d${DURATION}s, one 260-byte record per request"
read -r bare_rps bare_p50 bare_p99 bare_bad < <(run http://127.0.0.1:18099/api/integrations/webhook/arroyo)
read -r edge_rps edge_p50 edge_p99 edge_bad < <(run http://127.0.0.1:18098/api/integrations/webhook/arroyo)
printf '%-28s %10s %10s %10s %8s\n' target req/s p50_ms p99_ms non2xx
printf '%-28s %10s %10s %10s %8s\n' "bare hyper 202 (baseline)" "$bare_rps" "$bare_p50" "$bare_p99" "$bare_bad"
printf '%-28s %10s %10s %10s %8s\n' "ingest webhook (acks=all)" "$edge_rps" "$edge_p50" "$edge_p99" "$edge_bad"
awk -v a="$edge_rps" -v b="$bare_rps" -v p="$edge_p99" -v q="$bare_p99" \
  'BEGIN { printf "ratio: ingest throughput = %.3f x baseline; ingest p99 = %.1f x baseline p99\n", a / b, p / q }'
