#!/usr/bin/env bash
# The noisy-neighbour run (issue 31): release ingest, processor and api on the local
# infra, account A (acme-leads, integration arroyo) sending RATE calls per second for
# SECONDS alone, then as long again while account B ("noisy", integrations noisy-hook
# and noisy-signed) sends the worst it can (tests/src/neighbours.rs: records too large,
# signature floods, integrations, heavy queries, event streams resumed from the start,
# imports, a webhook flood), then alone again (the control: the broker as full as B
# left it, without B). Reports A's acknowledged-to-dashboard latency (p50, p99,
# max), A's refused and lost calls (by A's own log of partner ids), and every answer B
# got by attack and status. The box is shared by the load generator: its CPU is
# reported (benches/load/cpu_share.sh). Figures in docs/reliability.md.
#
#   benches/load/noisy_neighbour.sh [rate=100] [seconds=60]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
RATE="${1:-100}"
SECONDS_TO_RUN="${2:-60}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CH="http://127.0.0.1:${CM_CLICKHOUSE_HTTP_PORT:-18123}"
DB=nn_bench
PREFIX="nn$(date +%s)."

cargo build --release --quiet -p ingest -p processor -p api -p cmctl -p integration-tests --bins
# shellcheck source=benches/load/world.sh
. benches/load/world.sh
# shellcheck source=benches/load/cpu_share.sh
. benches/load/cpu_share.sh

WORK="$(mktemp -d)"
TOKEN_A="acc_nn_a_$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
TOKEN_B="acc_nn_b_$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
TOKEN_ADMIN="adm_nn_$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
printf '{"admin": ["%s"], "accounts": {"acme-leads": ["%s"], "noisy": ["%s"]}}\n' \
  "$TOKEN_ADMIN" "$TOKEN_A" "$TOKEN_B" >"$WORK/tokens.json"
python3 - "$WORK/noisy.json" <<'PY'
import json, sys
def hook(client, auth):
    return {"client_id": client, "account": "noisy", "name": client, "source": "webhook",
            "version": 1, "auth": auth,
            "mapping": {"fields": {"caller": {"first_of": ["c", "caller"]},
                                   "started_at": {"first_of": ["s", "started_at"]}}}}
json.dump([hook("noisy-hook", {"scheme": "none"}),
           hook("noisy-signed", {"scheme": "standard_webhooks", "secrets": [
               "whsec_Y2FsbG1hdHJpeC10ZXN0LXNlY3JldC0zMi1ieXRlcyE=",
               "whsec_b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZC1zZWNyZXQ="]})],
          open(sys.argv[1], "w"))
PY
"$TARGET_DIR/release/cmctl" integrations publish "$WORK/noisy.json" >/dev/null

INGEST_KAFKA__BROKERS="$CM_KAFKA_BROKERS" INGEST_KAFKA__TOPIC_PREFIX="$PREFIX" \
INGEST_HTTP__LISTEN=127.0.0.1:18097 INGEST_AUTH__TOKENS_FILE="$WORK/tokens.json" INGEST_POLL__ENABLED=false RUST_LOG=warn \
  "$TARGET_DIR/release/ingest" --config deploy/config/ingest.toml >/tmp/nn-ingest.log 2>&1 &
PIDS=($!)
trap 'kill "${PIDS[@]}" $BENCH_TANSU_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
rm -rf /var/tmp/nn-processor-state  # the keyed state on disk, as deployed, empty at start
PROCESSOR_KAFKA__BROKERS="$CM_KAFKA_BROKERS" PROCESSOR_KAFKA__TOPIC_PREFIX="$PREFIX" \
PROCESSOR_CLICKHOUSE__URL="$CH" PROCESSOR_CLICKHOUSE__DATABASE="$DB" PROCESSOR_CLICKHOUSE__PASSWORD="$CM_CLICKHOUSE_WRITER_PASSWORD" \
PROCESSOR_HTTP__LISTEN=127.0.0.1:18096 PROCESSOR_STATE__DIR=/var/tmp/nn-processor-state RUST_LOG=warn \
  "$TARGET_DIR/release/processor" --config deploy/config/processor.toml >/tmp/nn-processor.log 2>&1 &
PIDS+=($!)
API_KAFKA__BROKERS="$CM_KAFKA_BROKERS" API_KAFKA__TOPIC_PREFIX="$PREFIX" \
API_CLICKHOUSE__URL="$CH" API_CLICKHOUSE__DATABASE="$DB" API_HTTP__LISTEN=127.0.0.1:18095 \
API_AUTH__TOKENS_FILE="$WORK/tokens.json" \
API_CLICKHOUSE__USER=callmatrix_reader API_CLICKHOUSE__PASSWORD="$CM_CLICKHOUSE_READER_PASSWORD" RUST_LOG=warn \
  "$TARGET_DIR/release/api" --config deploy/config/api.toml >/tmp/nn-api.log 2>&1 &
PIDS+=($!)
for port in 18097 18096 18095; do
  for _ in $(seq 1 150); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
done
# One call through first: the processor holds its partitions.
curl -s -o /dev/null -H 'content-type: application/json' --data-binary \
  '{"call":{"id":"nn_warmup","caller":{"number":"4155550199"},"started_at":"2026-11-20T14:03:22Z","duration":"1:00"}}' \
  http://127.0.0.1:18097/api/integrations/webhook/arroyo
for _ in $(seq 1 300); do
  [ "$(curl -s -u "$CH_USER" "$CH/?database=$DB" --data-binary "SELECT count() FROM calls")" -ge 1 ] && break
  sleep 0.1
done
echo "$(date -u +%FT%TZ) noisy neighbour: A at $RATE calls/s for ${SECONDS_TO_RUN}s alone, then beside B (release binaries, tansu ${CM_BENCH_STORAGE:-sqlite}, ClickHouse 18.16, 2 cores shared with the load generator)"
INFRA_RUN="${CM_DATA_DIR:-$ROOT/.data/stack}/run"
cpu_mark "ingest=${PIDS[0]}" "processor=${PIDS[1]}" "api=${PIDS[2]}" \
  "tansu=${BENCH_TANSU_PID:-$(cat "$INFRA_RUN/tansu.pid")}" "clickhouse=$(cat "$INFRA_RUN/clickhouse.pid")"
"$TARGET_DIR/release/noisy_neighbour" http://127.0.0.1:18097 http://127.0.0.1:18095 \
  "$TOKEN_A" "$TOKEN_B" "$RATE" "$SECONDS_TO_RUN" | tee "$WORK/report.txt"
cpu_report
python3 - "$WORK/report.txt" <<'PY'
import json, sys
runs = {}
for line in open(sys.argv[1]):
    name, _, body = line.partition(" ")
    if body.startswith("{"):
        runs[name] = json.loads(body)
alone, beside, after = runs.get("alone"), runs.get("beside_b"), runs.get("alone_after")
if alone and beside:
    for name, r in (("A alone", alone), ("A beside B", beside), ("A alone after B", after)):
        if r is None:
            continue
        print(f"{name}: sent {r['a_sent']}, refused {r['a_refused']}, lost {r['a_lost']}, "
              f"p50 {r['a_p50_ms']} ms, p99 {r['a_p99_ms']} ms, max {r['a_max_ms']} ms, reconnects {r['a_reconnects']}")
    ratio = beside["a_p99_ms"] / max(alone["a_p99_ms"], 1)
    print(f"A's p99 beside B / alone before: {ratio:.2f}")
    if after:
        # The control: the same broker, as full as B left it, without B.
        ratio = beside["a_p99_ms"] / max(after["a_p99_ms"], 1)
        print(f"A's p99 beside B / alone after: {ratio:.2f}")
    for attack, statuses in beside["b_answers"].items():
        print(f"B {attack}: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    print(f"B refusals naming no limit: {len(beside['b_unnamed'])}")
PY
health="$(curl -s http://127.0.0.1:18096/healthz)"
echo "processor health after: $health"
# Where the processor's time went over both runs (warm-up batch included).
echo "processor, per batch:"
benches/load/processor_steps.sh http://127.0.0.1:18096
