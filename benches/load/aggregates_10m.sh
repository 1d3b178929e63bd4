#!/usr/bin/env bash
# Aggregates over 10 million synthetic calls: loads them (once) into a database of
# their own through the shipped migrations, then times the api's aggregate query
# (on `calls_by_time`, sorted by account and start) against the same query on
# `calls FINAL` (sorted by client and id) in the same run, and shows what each read.
#
#   benches/load/aggregates_10m.sh            # needs the local infra (deploy/stack.sh start infra)
#   CM_BENCH_ONLY=views benches/load/aggregates_10m.sh   # the analysts' views only
#
# The api answers whole-hour queries from the hourly rollups: by status or nothing from
# `calls_hourly`, by one other dimension (or one integration) from `calls_hourly_dims`;
# the rest from `calls_by_time`. Each rollup query is timed beside the same question
# asked of the calls (the baseline). The statements are the api's (api/src/aggregates/plan.rs).
#
# The data: 10M calls over the 347 days up to the hour of loading (one every 3 s, so
# "the last 24 hours" holds about 29k), 5 accounts, 20
# integrations, 50 campaigns, 30 publishers, 5 states, 10 buyers, 4 statuses, 9,000
# callers (+1 415 555-1000 to -9999), one version each, each received when it ended
# (start + duration + 5 s), a quarter linked to a CallMatrix call; inserted with
# INSERT ... SELECT from numbers().
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CH="http://127.0.0.1:${CM_CLICKHOUSE_HTTP_PORT:-18123}"
DB="${CM_BENCH_DATABASE:-agg10m_bench}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
deploy/stack.sh start infra >/dev/null
# The stack's ClickHouse has users with passwords, the binaries closed auth
# (docs/security.md): read the secrets, and run the bench's own binaries open on
# loopback.
# shellcheck source=deploy/secrets.sh
. deploy/secrets.sh
cm_secrets "${CM_DATA_DIR:-$ROOT/.data/stack}"
CH_USER="callmatrix_writer:$CM_CLICKHOUSE_WRITER_PASSWORD"
export CM_CLICKHOUSE_USER=callmatrix_writer CM_CLICKHOUSE_PASSWORD="$CM_CLICKHOUSE_WRITER_PASSWORD"
cargo build --quiet -p cmctl -p api
# (Checked before migrating, so an old database is not migrated only to be dropped.)
# Data from before 2026-12-02 was all received at load time (so "the last 24 hours"
# held every call) and had no buyers; data loaded more than a week ago leaves the
# recent views (last 24 h, 7 days) empty: load it again.
stale="$(curl -s -u "$CH_USER" "$CH/?database=$DB" --data-binary "SELECT countIf(buyer = '') + (max(started_at) < now() - 7 * 86400) FROM calls" 2>/dev/null | grep -E '^[0-9]+$' || true)"
if [ "${stale:-0}" -gt 0 ]; then
  echo "dropping $DB: its calls have no buyer or end more than a week ago"
  curl -sS -u "$CH_USER" "$CH/" --data-binary "DROP DATABASE $DB"
fi
CM_DATABASE="$DB" CM_CLICKHOUSE_URL="$CH" "$TARGET_DIR/debug/cmctl" migrate >/dev/null

# Data from an earlier version of this script had callers no phone library accepts
# (+1 415 1xx-xxxx), which the api refuses to show: load it again.
old="$(curl -s -u "$CH_USER" "$CH/?database=$DB" --data-binary "SELECT count() FROM calls WHERE caller LIKE '+14151%'")"
if [ "${old:-0}" -gt 0 ]; then
  echo "dropping $DB: its synthetic callers are not valid numbers (an earlier version of this script)"
  curl -sS -u "$CH_USER" "$CH/" --data-binary "DROP DATABASE $DB"
  CM_DATABASE="$DB" CM_CLICKHOUSE_URL="$CH" "$TARGET_DIR/debug/cmctl" migrate >/dev/null
fi
rows="$(curl -s -u "$CH_USER" "$CH/?database=$DB" --data-binary "SELECT count() FROM calls")"
if [ "$rows" -lt 10000000 ]; then
  echo "loading 10,000,000 synthetic calls into $DB (once)..."
  curl -sS -u "$CH_USER" "$CH/?database=$DB" --data-binary "INSERT INTO calls (id, version, account, client_id, source, external_id, caller, called, started_at, duration_s, payout, revenue, currency, campaign, publisher, state, status, is_duplicate, qualified, received_at, processed_at, buyer, cm_call_id) SELECT generateUUIDv4(), 1, concat('acct', toString(number % 5)), concat('client', toString(number % 20)), 1 + number % 3, toString(number), concat('+1415555', toString(1000 + number % 9000)), '+18885550100', toStartOfHour(now()) - 30000000 + (number * 3) % 30000000 AS started, toUInt32(number % 900) AS duration, toDecimal64(number % 100, 4), toDecimal64(number % 150, 4), 'USD', concat('camp', toString(number % 50)), concat('pub', toString(number % 30)), ['CA','NY','TX','FL','IL'][1 + number % 5], ['qualified','unqualified','repeat','duplicate'][1 + number % 4], number % 4 = 3, number % 4 = 0, started + duration + 5, started + duration + 6, concat('buyer', toString(number % 10)), if(number % 4 = 3, concat('cm_', toString(number)), '') FROM numbers(10000000)"
fi
dims="$(curl -s -u "$CH_USER" "$CH/?database=$DB" --data-binary "SELECT count() FROM calls_hourly_dims")"
if [ "$dims" -eq 0 ]; then
  # Inserted straight into `calls`, the synthetic calls never went through the
  # processor's rollup worker: roll them up the way migration 7 does, once.
  echo "rolling up the synthetic calls (once)..."
  CM_DATABASE="$DB" CM_CLICKHOUSE_URL="$CH" "$TARGET_DIR/debug/cmctl" rollup-backfill
fi
count() { curl -s -u "$CH_USER" "$CH/?database=$DB" --data-binary "SELECT count() FROM $1"; }
echo "calls: $(count calls), calls_by_time: $(count calls_by_time), calls_hourly: $(count calls_hourly), calls_hourly_dims: $(count calls_hourly_dims)"

measures="count() AS calls, countIf(status = 'qualified') AS qualified, countIf(status = 'repeat') AS repeat, countIf(status = 'duplicate') AS duplicate, sum(ifNull(payout, toDecimal64(0, 4))) AS payout, sum(ifNull(duration_s, 0)) AS total_duration_s"
time_query() { # time_query LABEL SQL → median of 5 runs, and rows read (query_log)
  local label="$1" sql="$2" times=() t id
  for n in 1 2 3 4 5; do
    id="bench-$RANDOM-$n"
    t="$( { /usr/bin/time -f '%e' curl -s -u "$CH_USER" "$CH/?database=$DB${LOG_SETTING-&log_queries=1}&query_id=$id" --data-binary "$sql FORMAT Null" >/dev/null; } 2>&1 )"
    times+=("$t")
  done
  curl -s -u "callmatrix_writer:$CM_CLICKHOUSE_WRITER_PASSWORD" "$CH/" --data-binary "SYSTEM FLUSH LOGS" >/dev/null
  local read
  read="$(curl -s -u "callmatrix_writer:$CM_CLICKHOUSE_WRITER_PASSWORD" "$CH/" --data-binary "SELECT read_rows FROM system.query_log WHERE query_id = '$id' AND type = 2 LIMIT 1")"
  printf '%-52s median %6s s  read_rows %s\n' "$label" "$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)" "${read:-?}"
}
range="started_at >= toDateTime('2026-03-01 00:00:00') AND started_at < toDateTime('2026-04-01 00:00:00')"

# The analysts' views (docs/analysts.md), queried as the read-only user (its profile
# pushes a WHERE into calls_by_start), each beside the statement on the table under
# it that the api or a careful analyst would write.
READER="callmatrix_reader:$CM_CLICKHOUSE_READER_PASSWORD"
time_view() { # time_view LABEL SQL, as the reader (its profile logs queries)
  CH_USER="$READER" LOG_SETTING="" time_query "$@"
}
year="started_at >= toDateTime('2026-01-01 00:00:00') AND started_at < toDateTime('2027-01-01 00:00:00')"
year_hours="hour >= toDateTime('2026-01-01 00:00:00') AND hour < toDateTime('2027-01-01 00:00:00')"
echo "analysts' views (as callmatrix_reader):"
time_view "calls_by_start: one account, March, by day (NY)" \
  "SELECT toDate(started_at, 'America/New_York') AS day, count(), sum(payout) FROM calls_by_start WHERE account = 'acct1' AND $range GROUP BY day"
time_view "baseline: calls_by_time FINAL, the same" \
  "SELECT toDate(started_at, 'America/New_York') AS day, count(), sum(payout) FROM calls_by_time FINAL WHERE deleted = 0 AND account = 'acct1' AND $range GROUP BY day"
time_view "calls_by_start: all accounts, year, by month" \
  "SELECT toStartOfMonth(started_at) AS month, count(), sum(payout) FROM calls_by_start WHERE $year GROUP BY month"
time_view "baseline: calls_by_time FINAL, the same" \
  "SELECT toStartOfMonth(started_at) AS month, count(), sum(payout) FROM calls_by_time FINAL WHERE deleted = 0 AND $year GROUP BY month"
time_view "calls_current: one integration, by status" \
  "SELECT status, count(), sum(payout) FROM calls_current WHERE client_id = 'client1' GROUP BY status"
time_view "baseline: calls FINAL, the same" \
  "SELECT status, count(), sum(payout) FROM calls FINAL WHERE client_id = 'client1' GROUP BY status"
time_view "hourly_totals: all accounts, year, by month x status" \
  "SELECT toStartOfMonth(toDate(hour, 'America/New_York')) AS month, status, sum(calls), sum(payout) FROM hourly_totals WHERE $year_hours GROUP BY month, status"
time_view "hourly_totals_by_dimension: year, by month x campaign" \
  "SELECT toStartOfMonth(toDate(hour, 'America/New_York')) AS month, value, sum(calls), sum(payout) FROM hourly_totals_by_dimension WHERE dimension = 'campaign' AND $year_hours GROUP BY month, value"
if [ "${CM_BENCH_ONLY:-}" = views ]; then exit 0; fi

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
for dimension in campaign publisher state; do
  time_query "baseline: all accounts, year, by month (NY) x $dimension" \
    "SELECT toString(toStartOfMonth(toDate(started_at, 'America/New_York'))) AS bucket, toString($dimension) AS d_$dimension, $measures FROM calls_by_time FINAL WHERE deleted = 0 AND $year GROUP BY bucket, d_$dimension"
  time_query "api (rollup): all accounts, year, by month (NY) x $dimension" \
    "SELECT toString(toStartOfMonth(toDate(hour, 'America/New_York'))) AS bucket, value AS d_$dimension, $rollup FROM calls_hourly_dims FINAL WHERE status != '' AND $year_hours AND dimension = '$dimension' AND (account, hour, version) IN (SELECT account, hour, max(version) FROM calls_hourly_dims WHERE $year_hours AND dimension = '$dimension' GROUP BY account, hour) GROUP BY bucket, d_$dimension"
done
time_query "api (rollup): one integration, year, by day x status" \
  "SELECT toString(toDate(hour, 'UTC')) AS bucket, toString(status) AS d_status, $rollup FROM calls_hourly_dims FINAL WHERE status != '' AND $year_hours AND account = 'acct1' AND dimension = 'client_id' AND value = 'client1' AND (account, hour, version) IN (SELECT account, hour, max(version) FROM calls_hourly_dims WHERE $year_hours AND account = 'acct1' AND dimension = 'client_id' GROUP BY account, hour) GROUP BY bucket, d_status"
time_query "baseline: the same from the calls" \
  "SELECT toString(toDate(started_at, 'UTC')) AS bucket, toString(status) AS d_status, $measures FROM calls_by_time FINAL WHERE deleted = 0 AND $year AND account = 'acct1' AND client_id = 'client1' GROUP BY bucket, d_status"

# The api itself, over HTTP, against the same database: each query as a dashboard or
# an analyst sends it, answered from the table the api picks (its `table` field), beside
# the same query with exact=true (every call, from calls_by_time) as the baseline.
API_PORT="${CM_BENCH_API_PORT:-18391}"
API_CLICKHOUSE__URL="$CH" API_CLICKHOUSE__DATABASE="$DB" API_HTTP__LISTEN="127.0.0.1:$API_PORT" \
  API_KAFKA__BROKERS="127.0.0.1:${CM_KAFKA_PORT:-19092}" API_AUTH__INSECURE_OPEN=true \
  API_CLICKHOUSE__USER=callmatrix_reader API_CLICKHOUSE__PASSWORD="$CM_CLICKHOUSE_READER_PASSWORD" \
  "$TARGET_DIR/debug/api" --config deploy/config/api.toml >/tmp/aggregates_10m_api.log 2>&1 &
api_pid=$!
trap 'kill $api_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$API_PORT/api/openapi.json" >/dev/null && break
  sleep 0.2
done
time_api() { # time_api LABEL QUERY → median of 5 through the api, the table it read, and the baseline
  local label="$1" query="$2" url="http://127.0.0.1:$API_PORT/api/aggregates?$2" fast slow table
  median() { for _ in 1 2 3 4 5; do curl -s -o /dev/null -w '%{time_total}\n' "$1"; done | sort -n | sed -n 3p; }
  table="$(curl -s "$url" | python3 -c 'import json,sys; a=json.load(sys.stdin); print(a.get("table"), len(a.get("rows", [])), "rows")')"
  fast="$(median "$url")"
  slow="$(median "$url&exact=true")"
  printf '%-44s %-30s median %6.3f s  exact=true %6.3f s  ratio %5.1fx\n' "$label" "$table" "$fast" "$slow" \
    "$(python3 -c "print($slow / $fast)")"
}
year="from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z"
echo "through the api (http://127.0.0.1:$API_PORT):"
time_api "all accounts, year, by month (NY) x status" "$year&bucket=month&tz=America/New_York&group_by=status"
time_api "all accounts, year, totals" "$year&bucket=none"
for dimension in campaign publisher state source client_id; do
  time_api "all accounts, year, by month (NY) x $dimension" "$year&bucket=month&tz=America/New_York&group_by=$dimension"
done
time_api "all accounts, year, by month x campaign x status" "$year&bucket=month&group_by=campaign,status"
time_api "one integration, year, by day x status" "$year&bucket=day&client_id=client1&group_by=status"
time_api "one account, March, by day (NY) x state" "from=2026-03-01T05:00:00Z&to=2026-04-01T04:00:00Z&bucket=day&tz=America/New_York&account=acct1&group_by=state"

# Calls search and export through the api, beside the statement the api sent before
# pages were read through calls_by_time (calls FINAL with the same filter, newest
# first), timed on ClickHouse directly in the same run.
median_url() { for _ in 1 2 3 4 5; do curl -s -o /dev/null -w '%{time_total}\n' "$1"; done | sort -n | sed -n 3p; }
median_sql() { for _ in 1 2 3 4 5; do curl -s -u "$CH_USER" -o /dev/null -w '%{time_total}\n' "$CH/?database=$DB" --data-binary "$1 FORMAT Null"; done | sort -n | sed -n 3p; }
time_calls() { # time_calls LABEL QUERY WHERE
  local label="$1" url="http://127.0.0.1:$API_PORT/api/calls?$2" fast slow count
  count="$(curl -s "$url" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["calls"]))')"
  fast="$(median_url "$url")"
  slow="$(median_sql "SELECT * FROM calls FINAL WHERE 1 $3 ORDER BY started_at DESC, toString(id) DESC LIMIT 51")"
  printf '%-44s %4s calls  median %6.3f s  calls FINAL %6.3f s  ratio %5.1fx\n' "$label" "$count" "$fast" "$slow" \
    "$(python3 -c "print($slow / $fast)")"
}
echo "calls search through the api:"
time_calls "one account, newest page" "account=acct1" "AND account = 'acct1'"
time_calls "one integration, newest page" "client_id=client1" "AND client_id = 'client1'"
time_calls "one account, one day" "account=acct1&from=2026-06-01T00:00:00Z&to=2026-06-02T00:00:00Z" \
  "AND account = 'acct1' AND started_at >= toDateTime('2026-06-01 00:00:00') AND started_at < toDateTime('2026-06-02 00:00:00')"
time_calls "one account, repeat calls of one campaign" "account=acct1&status=repeat&campaign=camp6" \
  "AND account = 'acct1' AND status = 'repeat' AND campaign = 'camp6'"
time_calls "one caller" "caller=%2B14155551234" "AND caller = '+14155551234'"
page2="$(curl -s "http://127.0.0.1:$API_PORT/api/calls?account=acct1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"])')"
echo "one account, second page (cursor): median $(median_url "http://127.0.0.1:$API_PORT/api/calls?account=acct1&cursor=$page2") s"
curl -s -o /dev/null -w "export, one account's day: %{time_total} s, %{size_download} bytes\n" \
  "http://127.0.0.1:$API_PORT/api/calls/export.csv?account=acct1&from=2026-06-01T00:00:00Z&to=2026-06-02T00:00:00Z"
