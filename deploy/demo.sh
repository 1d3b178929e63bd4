#!/usr/bin/env bash
# The main job on the local stack: bring everything up with the sample
# integrations, deliver the Arroyo partner's sample webhook, wait until its calls
# are in ClickHouse, and show them through the API and the live event stream.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
deploy/stack.sh start
# shellcheck source=deploy/secrets.sh
. deploy/secrets.sh
cm_secrets "${CM_DATA_DIR:-$ROOT/.data/stack}"
AUTH="Authorization: Bearer $CM_ADMIN_TOKEN"

INGEST="http://127.0.0.1:${CM_INGEST_PORT:-8080}"
API="http://127.0.0.1:${CM_API_PORT:-8081}"
CH="http://127.0.0.1:${CM_CLICKHOUSE_HTTP_PORT:-18123}"
DB="${CM_DATABASE:-callmatrix}"
SSE_LOG="$(mktemp)"

# Watch the live feed while the webhook is delivered.
curl -sN --max-time 60 -H "$AUTH" "$API/api/events?client_id=arroyo" >"$SSE_LOG" &
SSE_PID=$!
START="$(date -u +%s)"
sleep 1

echo
echo "== POST the Arroyo sample (3 calls) to $INGEST/api/integrations/webhook/arroyo"
curl -sS -X POST -H 'content-type: application/json' \
  --data-binary @tests/fixtures/arroyo-webhook.json \
  "$INGEST/api/integrations/webhook/arroyo"
echo

echo
echo "== waiting for the calls in ClickHouse (a processor that just started joins its group first)"
for _ in $(seq 1 300); do
  n="$(ch_query "SELECT count() FROM $DB.calls FINAL WHERE client_id = 'arroyo' AND toUnixTimestamp(received_at) >= $START")"
  [ "${n:-0}" -ge 3 ] && break
  sleep 0.2
done
ch_query "SELECT external_id, caller, called, started_at, local_tz, duration_s, payout, status, repeat_of, cm_call_id, match_method FROM $DB.calls FINAL WHERE client_id = 'arroyo' ORDER BY started_at FORMAT PrettyCompactMonoBlock"

echo
echo "== GET $API/api/calls?client_id=arroyo&limit=2"
page="$(curl -s -H "$AUTH" "$API/api/calls?client_id=arroyo&limit=2" | python3 -m json.tool)"
printf '%s\n' "$page" | sed -n '1,40p'
echo "   ... (next page: the \"next_cursor\" value as &cursor=...)"

sleep 1
kill "$SSE_PID" 2>/dev/null || true
wait "$SSE_PID" 2>/dev/null || true
echo
echo "== what $API/api/events sent meanwhile"
grep -E '^(id|event):' "$SSE_LOG" | paste - - || echo "(no events arrived)"
rm -f "$SSE_LOG"

cat <<MSG

Where to look next (the API needs a token: the admin token and one per account
are in $CM_TOKENS_FILE; e.g. TOKEN=\$(python3 -c 'import json; print(json.load(open("$CM_TOKENS_FILE"))["admin"][0])'))
  dashboard        $API/   (paste a token into it)
  calls            curl -H "Authorization: Bearer \$TOKEN" $API/api/calls?client_id=arroyo
  live events      curl -N -H "Authorization: Bearer \$TOKEN" $API/api/events
  dead letters     $API/api/dead-letters
  health/metrics   $INGEST/healthz  $API/metrics  http://127.0.0.1:${CM_PROCESSOR_PORT:-8082}/metrics
  ClickHouse       clickhouse-client --port ${CM_CLICKHOUSE_TCP_PORT:-19000} -u callmatrix_analyst --password "\$CM_CLICKHOUSE_ANALYST_PASSWORD" -d $DB
                   (passwords in ${CM_DATA_DIR:-$ROOT/.data/stack}/secrets/clickhouse.env)
  logs             deploy/stack.sh logs processor
  stop             deploy/stack.sh stop
MSG
