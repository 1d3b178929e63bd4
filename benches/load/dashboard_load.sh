#!/usr/bin/env bash
# The dashboard's load time over the 10M-call bench database: a release api on the
# local infra against `agg10m_bench` (load it first with
# `CM_BENCH_ONLY=views benches/load/aggregates_10m.sh`), then
# benches/load/dashboard_load.mjs (headless chromium, fresh context per load).
#
#   benches/load/dashboard_load.sh [runs=5]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
RUNS="${1:-5}"
CH="http://127.0.0.1:${CM_CLICKHOUSE_HTTP_PORT:-18123}"
DB="${CM_BENCH_DATABASE:-agg10m_bench}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PORT="${CM_BENCH_API_PORT:-18392}"
deploy/stack.sh start infra >/dev/null
# shellcheck source=deploy/secrets.sh
. deploy/secrets.sh
cm_secrets "${CM_DATA_DIR:-$ROOT/.data/stack}"
calls="$(curl -s -u "callmatrix_writer:$CM_CLICKHOUSE_WRITER_PASSWORD" "$CH/?database=$DB" --data-binary "SELECT count() FROM calls" || echo 0)"
if [ "${calls:-0}" -lt 10000000 ]; then
  echo "$DB holds ${calls:-0} calls: load it first (CM_BENCH_ONLY=views benches/load/aggregates_10m.sh)" >&2
  exit 1
fi
[ -d tests/browser/node_modules/playwright-core ] || npm ci --prefix tests/browser --silent
cargo build --release --quiet -p api -p cmctl
CM_KAFKA_BROKERS="127.0.0.1:${CM_KAFKA_PORT:-19092}" "$TARGET_DIR/release/cmctl" topics >/dev/null
API_CLICKHOUSE__URL="$CH" API_CLICKHOUSE__DATABASE="$DB" API_HTTP__LISTEN="127.0.0.1:$PORT" \
  API_KAFKA__BROKERS="127.0.0.1:${CM_KAFKA_PORT:-19092}" API_AUTH__INSECURE_OPEN=true \
  API_CLICKHOUSE__USER=callmatrix_reader API_CLICKHOUSE__PASSWORD="$CM_CLICKHOUSE_READER_PASSWORD" RUST_LOG=warn \
  "$TARGET_DIR/release/api" --config deploy/config/api.toml >/tmp/dashboard_load_api.log 2>&1 &
API_PID=$!
trap 'kill $API_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
echo "$DB: $calls calls; release api on port $PORT"
node benches/load/dashboard_load.mjs "http://127.0.0.1:$PORT" "$RUNS"
