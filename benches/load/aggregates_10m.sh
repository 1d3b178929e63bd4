#!/usr/bin/env bash
# Aggregates over 10 million synthetic calls: loads them (once) into a database of
# their own through the shipped migrations, then times the api's aggregate query
# (on `calls_by_time`, sorted by account and start) against the same query on
# `calls FINAL` (sorted by client and id) in the same run, and shows what each read.
#
#   benches/load/aggregates_10m.sh            # needs the local infra (deploy/stack.sh start infra)
#
# The api answers whole-hour, status-only queries without an integration filter from
# the hourly rollup (`calls_hourly`), the rest from `calls_by_time`; both are timed.
#
# The data: 10M calls over 2026, 5 accounts, 20 integrations, 50 campaigns, 5
# states, 4 statuses, one version each, inserted with INSERT ... SELECT from numbers().
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CH="http://127.0.0.1:${CM_CLICKHOUSE_HTTP_PORT:-18123}"
DB="${CM_BENCH_DATABASE:-agg10m_bench}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
deploy/stack.sh start infra >/dev/null
cargo build --quiet -p cmctl
CM_DATABASE="$DB" CM_CLICKHOUSE_URL="$CH" "$TARGET_DIR/debug/cmctl" migrate >/dev/null

rows="$(curl -s "$CH/?database=$DB" --data-binary "SELECT count() FROM calls")"
if [ "$rows" -lt 10000000 ]; then
  echo "loading 10,000,000 synthetic calls into $DB (once)..."
  curl -sS "$CH/?database=$DB" --data-binary "INSERT INTO calls (id, version, account, client_id, source, external_id, caller, called, started_at, duration_s, payout, revenue, currency, campaign, publisher, state, status, is_duplicate, qualified, received_at, processed_at) SELECT generateUUIDv4(), 1, concat('acct', toString(number % 5)), concat('client', toString(number % 20)), 1 + number % 3, toString(number), concat('+1415', toString(1000000 + number % 900000)), '+18885550100', toDateTime('2026-01-01 00:00:00') + (number * 3) % (365 * 86400), toUInt32(number % 900), toDecimal64(number % 100, 4), toDecimal64(number % 150, 4), 'USD', concat('camp', toString(number % 50)), concat('pub', toString(number % 30)), ['CA','NY','TX','FL','IL'][1 + number % 5], ['qualified','unqualified','repeat','duplicate'][1 + number % 4], number % 4 = 3, number % 4 = 0, now(), now() FROM numbers(10000000)"
fi
hourly="$(curl -s "$CH/?database=$DB" --data-binary "SELECT count() FROM calls_hourly")"
if [ "$hourly" -eq 0 ]; then
  # Inserted straight into `calls`, the synthetic calls never went through the
  # processor's rollup worker: compute the rollup as it would, once.
  echo "computing the hourly rollup for the synthetic calls (once)..."
  curl -sS "$CH/?database=$DB" --data-binary "INSERT INTO calls_hourly SELECT account, toStartOfHour(started_at) AS hour, status, 1 AS version, count() AS calls, sum(ifNull(payout, toDecimal64(0, 4))) AS payout, sum(ifNull(revenue, toDecimal64(0, 4))) AS revenue, sum(ifNull(duration_s, 0)) AS total_duration_s, count(duration_s) AS duration_count FROM calls_by_time FINAL WHERE deleted = 0 GROUP BY account, hour, status"
fi
echo "calls: $(curl -s "$CH/?database=$DB" --data-binary "SELECT count() FROM calls"), calls_by_time: $(curl -s "$CH/?database=$DB" --data-binary "SELECT count() FROM calls_by_time"), calls_hourly: $(curl -s "$CH/?database=$DB" --data-binary "SELECT count() FROM calls_hourly")"

measures="count() AS calls, countIf(status = 'qualified') AS qualified, countIf(status = 'repeat') AS repeat, countIf(status = 'duplicate') AS duplicate, sum(ifNull(payout, toDecimal64(0, 4))) AS payout, sum(ifNull(duration_s, 0)) AS total_duration_s"
time_query() { # time_query LABEL SQL → median of 5 runs, and rows read (query_log)
  local label="$1" sql="$2" times=() t id
  for n in 1 2 3 4 5; do
    id="bench-$RANDOM-$n"
    t="$( { /usr/bin/time -f '%e' curl -s "$CH/?database=$DB&log_queries=1&query_id=$id" --data-binary "$sql FORMAT Null" >/dev/null; } 2>&1 )"
    times+=("$t")
  done
  curl -s "$CH/" --data-binary "SYSTEM FLUSH LOGS" >/dev/null
  local read
  read="$(curl -s "$CH/" --data-binary "SELECT read_rows FROM system.query_log WHERE query_id = '$id' AND type = 2 LIMIT 1")"
  printf '%-52s median %6s s  read_rows %s\n' "$label" "$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)" "${read:-?}"
}
range="started_at >= toDateTime('2026-03-01 00:00:00') AND started_at < toDateTime('2026-04-01 00:00:00')"
time_query "api: one account, March, by day (NY) x status" \
  "SELECT toString(toDate(started_at, 'America/New_York')) AS bucket, toString(status) AS d_status, $measures FROM calls_by_time FINAL WHERE deleted = 0 AND $range AND account = 'acct1' GROUP BY bucket, d_status"
time_query "baseline: the same on calls FINAL" \
  "SELECT toString(toDate(started_at, 'America/New_York')) AS bucket, toString(status) AS d_status, $measures FROM calls FINAL WHERE $range AND account = 'acct1' GROUP BY bucket, d_status"
time_query "api: one account, whole year, by month x campaign" \
  "SELECT toString(toStartOfMonth(toDate(started_at, 'UTC'))) AS bucket, toString(campaign) AS d_campaign, $measures FROM calls_by_time FINAL WHERE deleted = 0 AND started_at >= toDateTime('2026-01-01 00:00:00') AND started_at < toDateTime('2027-01-01 00:00:00') AND account = 'acct1' GROUP BY bucket, d_campaign"
time_query "api: all accounts (admin), March, by day x status" \
  "SELECT toString(toDate(started_at, 'UTC')) AS bucket, toString(status) AS d_status, $measures FROM calls_by_time FINAL WHERE deleted = 0 AND $range GROUP BY bucket, d_status"
time_query "exact=true: all accounts, whole year, no bucket" \
  "SELECT $measures FROM calls_by_time FINAL WHERE deleted = 0 AND started_at >= toDateTime('2026-01-01 00:00:00') AND started_at < toDateTime('2027-01-01 00:00:00')"
rollup="sum(calls) AS r_calls, sumIf(calls, status = 'qualified') AS r_qualified, sumIf(calls, status = 'repeat') AS r_repeat, toString(sum(payout)) AS r_payout, sum(total_duration_s) AS r_total"
latest="(account, hour, version) IN (SELECT account, hour, max(version) FROM calls_hourly WHERE hour >= toDateTime('2026-01-01 00:00:00') AND hour < toDateTime('2027-01-01 00:00:00') GROUP BY account, hour)"
time_query "api (rollup): all accounts, whole year, no bucket" \
  "SELECT $rollup FROM calls_hourly FINAL WHERE status != '' AND hour >= toDateTime('2026-01-01 00:00:00') AND hour < toDateTime('2027-01-01 00:00:00') AND $latest"
time_query "api (rollup): all accounts, whole year, by month x status" \
  "SELECT toString(toStartOfMonth(toDate(hour, 'America/New_York'))) AS bucket, toString(status) AS d_status, $rollup FROM calls_hourly FINAL WHERE status != '' AND hour >= toDateTime('2026-01-01 00:00:00') AND hour < toDateTime('2027-01-01 00:00:00') AND $latest GROUP BY bucket, d_status"

