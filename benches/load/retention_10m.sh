#!/usr/bin/env bash
# Retention over 10 million calls (issue 36): the synthetic calls of
# benches/load/aggregates_10m.sh, loaded once into a database of this bench's own
# (a run changes them for good), then one account's personal fields older than
# `PERSONAL_DAYS` (default 180) removed by `cmctl retention` (the processor's
# retention code, docs/privacy.md), timed. Then the dashboard's numbers for that
# account, month by month (from the calls and from the hourly rollup), are compared
# with what they were before: they must not change. The baseline, in the same run:
# one full read of the caller column of every call.
#
#   benches/load/retention_10m.sh      # needs the local infra (deploy/stack.sh start infra)
#
# A second run finds nothing left to change (the calls are hashed already) and says
# so; drop the database (DROP DATABASE ret10m_bench) to measure again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CH="http://127.0.0.1:${CM_CLICKHOUSE_HTTP_PORT:-18123}"
DB="${CM_BENCH_DATABASE:-ret10m_bench}"
ACCOUNT="${CM_BENCH_ACCOUNT:-acct0}"
PERSONAL_DAYS="${PERSONAL_DAYS:-180}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
echo "loading the 10M calls into $DB (once; aggregates_10m.sh's data)..."
CM_BENCH_DATABASE="$DB" CM_BENCH_ONLY=views benches/load/aggregates_10m.sh >/dev/null
# shellcheck source=deploy/secrets.sh
. deploy/secrets.sh
cm_secrets "${CM_DATA_DIR:-$ROOT/.data/stack}"
CH_USER="callmatrix_writer:$CM_CLICKHOUSE_WRITER_PASSWORD"
cargo build --quiet -p cmctl
q() { curl -sS --fail-with-body -u "$CH_USER" "$CH/?database=$DB" --data-binary "$1"; }
numbers() {
  q "SELECT toStartOfMonth(started_at) AS month, count(), sum(ifNull(payout, toDecimal64(0, 4))), sum(ifNull(duration_s, 0)), countIf(status = 'repeat')
     FROM calls_by_time FINAL WHERE deleted = 0 AND account = '$ACCOUNT' GROUP BY month ORDER BY month"
  q "SELECT toStartOfMonth(hour) AS month, sum(calls), sum(payout), sum(total_duration_s) FROM hourly_totals
     WHERE account = '$ACCOUNT' GROUP BY month ORDER BY month"
}
pending="account = '$ACCOUNT' AND started_at < now() - $PERSONAL_DAYS * 86400 AND caller != '' AND NOT startsWith(caller, 'h:')"
echo "calls of $ACCOUNT older than $PERSONAL_DAYS days still holding a number: $(q "SELECT count() FROM calls WHERE $pending")"
before="$(numbers)"
start=$(date +%s.%N)
q "SELECT sum(length(caller)) FROM calls FORMAT Null" >/dev/null
baseline=$(echo "$(date +%s.%N) - $start" | bc)
start=$(date +%s.%N)
CM_RETENTION_HASH_KEY="$CM_RETENTION_HASH_KEY" CM_DATABASE="$DB" CM_CLICKHOUSE_URL="$CH" \
  CM_CLICKHOUSE_USER=callmatrix_writer CM_CLICKHOUSE_PASSWORD="$CM_CLICKHOUSE_WRITER_PASSWORD" \
  "$TARGET_DIR/debug/cmctl" retention "$ACCOUNT" --personal-days "$PERSONAL_DAYS"
took=$(echo "$(date +%s.%N) - $start" | bc)
after="$(numbers)"
left="$(q "SELECT count() FROM calls WHERE $pending")"
hashed="$(q "SELECT count() FROM calls WHERE account = '$ACCOUNT' AND startsWith(caller, 'h:')")"
echo "retention run: ${took} s; baseline (one read of every call's caller): ${baseline} s; ratio $(echo "scale=1; $took / $baseline" | bc)"
echo "calls of $ACCOUNT hashed: $hashed; older ones still holding a number: $left"
if [ "$before" = "$after" ]; then
  echo "the dashboard's numbers of $ACCOUNT, month by month from the calls and from the rollup: unchanged"
else
  echo "the dashboard's numbers CHANGED:"; diff <(echo "$before") <(echo "$after") || true
  exit 1
fi
