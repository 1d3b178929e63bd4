#!/usr/bin/env bash
# How long a takeover keeps partitions undecided, without and with a standby
# (issue 32: `state.standby_interval_ms`).
#
# A world of the run's own (world.sh), SIZE calls of one account's history and
# `cmctl state build` (history.sh); then twice, the baseline first, same run:
#   1. processor A (a state directory of its own) started, its first restore of
#      every partition waited for;
#   2. processor B started beside it on an empty state directory, without a standby
#      (the baseline) or with one (`state.standby_interval_ms` 1000); its restore of
#      the partitions the group gives it waited for and, with a standby, its
#      following of A's partitions (its standby counter still for 5 s);
#   3. A stopped (SIGTERM: it leaves the group) and, at once, three calls sent;
#      timed until B has caught up every partition after the rebalance and until
#      the three calls are stored.
# Reports, per variant, the changelog entries B read at the takeover, the takeover's
# time and the calls' latency, and the ratios standby / baseline.
#
#   benches/load/takeover.sh [size=1000000]
#
# Needs the local infra (started here). Release binaries.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SIZE="${1:-1000000}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CH="http://127.0.0.1:${CM_CLICKHOUSE_HTTP_PORT:-18123}"
DB=to_bench
ACCOUNT=acme-leads
INGEST_PORT=18067
A_PORT=18066
B_PORT=18065
cargo build --release --quiet -p ingest -p processor -p cmctl
BASE=$(( $(date +%s) / 3600 * 3600 - 3600 ))
INGEST_PID= A_PID= B_PID=
finish() {
  kill $INGEST_PID $A_PID $B_PID ${BENCH_TANSU_PID:-} 2>/dev/null || true
  rm -rf /var/tmp/to-state-*
  [ -n "${CH_USER:-}" ] && curl -sS -u "$CH_USER" "$CH/" --data-binary "DROP DATABASE IF EXISTS $DB" >/dev/null || true
}
trap finish EXIT

q() { curl -sS -u "$CH_USER" "$CH/?database=$DB" --data-binary "$1"; }
metric() { # metric PORT NAME: the sum of a series' values on that processor's /metrics
  curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null |
    awk -v name="$2" '$1 == name || index($1, name "{") == 1 { s += $NF } END { printf "%d\n", s + 0 }'
}
stored() { q "SELECT count() AS to_bench_count FROM calls_by_time FINAL WHERE account = '$ACCOUNT' AND deleted = 0 AND started_at >= toDateTime($BASE)"; }
now() { date +%s.%N; }
since() { python3 -c "print(f'{$(now) - $1:.2f}')"; }

start_processor() { # start_processor NAME PORT DIR [standby ms]: prints its pid
  PROCESSOR_KAFKA__BROKERS="$CM_KAFKA_BROKERS" PROCESSOR_KAFKA__TOPIC_PREFIX="$PREFIX" \
  PROCESSOR_CLICKHOUSE__URL="$CH" PROCESSOR_CLICKHOUSE__DATABASE="$DB" PROCESSOR_CLICKHOUSE__PASSWORD="$CM_CLICKHOUSE_WRITER_PASSWORD" \
  PROCESSOR_HTTP__LISTEN="127.0.0.1:$2" PROCESSOR_STATE__DIR="$3" \
  PROCESSOR_STATE__STANDBY_INTERVAL_MS="${4:-0}" PROCESSOR_RETENTION__HASH_KEY="$CM_RETENTION_HASH_KEY" \
  RUST_LOG="warn,processor::state=info" \
    "$TARGET_DIR/release/processor" --config deploy/config/processor.toml >>"/tmp/to-$1.log" 2>&1 &
  echo $!
}
wait_healthy() {
  for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return; sleep 0.2; done
  echo "port $1 did not come up" >&2; exit 1
}
wait_metric_at_least() { # PORT NAME VALUE: at most an hour
  for _ in $(seq 1 36000); do
    [ "$(metric "$1" "$2")" -ge "$3" ] && return
    sleep 0.1
  done
  echo "$2 on port $1 never reached $3" >&2; exit 1
}
send_call() { # send_call ID CALLER
  curl -s -o /dev/null -H 'content-type: application/json' --data-binary \
    "{\"call\":{\"id\":\"$1\",\"caller\":{\"number\":\"$2\"},\"started_at\":\"$(date -u -d "@$((BASE + 60))" +%FT%TZ)\",\"duration\":\"1:00\"}}" \
    "http://127.0.0.1:$INGEST_PORT/api/integrations/webhook/arroyo"
}

PREFIX="to$(date +%s)."
# shellcheck source=benches/load/world.sh
. benches/load/world.sh
# shellcheck source=benches/load/history.sh
. benches/load/history.sh
echo "$(date -u +%FT%TZ) takeover with $SIZE calls of $ACCOUNT stored (tansu ${CM_BENCH_STORAGE:-sqlite}, release binaries, 2 cores)"
[ "$SIZE" -gt 0 ] && insert_history "$SIZE"
INGEST_KAFKA__BROKERS="$CM_KAFKA_BROKERS" INGEST_KAFKA__TOPIC_PREFIX="$PREFIX" \
INGEST_HTTP__LISTEN="127.0.0.1:$INGEST_PORT" INGEST_AUTH__INSECURE_OPEN=true INGEST_POLL__ENABLED=false RUST_LOG=warn \
  "$TARGET_DIR/release/ingest" --config deploy/config/ingest.toml >/tmp/to-ingest.log 2>&1 &
INGEST_PID=$!
wait_healthy "$INGEST_PORT"

declare -A READ TOOK CALLS
probe=0
for variant in baseline standby; do
  rm -rf /var/tmp/to-state-* /tmp/to-a.log /tmp/to-b.log
  t=$(now)
  A_PID=$(start_processor a "$A_PORT" /var/tmp/to-state-a)
  wait_healthy "$A_PORT"
  wait_metric_at_least "$A_PORT" processor_state_restore_seconds_count 3
  echo "[$variant] A restored every partition in $(since "$t") s"
  standby=0
  [ "$variant" = standby ] && standby=1000
  t=$(now)
  B_PID=$(start_processor b "$B_PORT" /var/tmp/to-state-b "$standby")
  wait_healthy "$B_PORT"
  wait_metric_at_least "$B_PORT" processor_state_restore_seconds_count 1
  if [ "$standby" -gt 0 ]; then
    last=-1
    while :; do
      followed=$(metric "$B_PORT" processor_state_standby_entries_total)
      [ "$followed" -gt 0 ] && [ "$followed" = "$last" ] && break
      last=$followed
      sleep 5
    done
    echo "[$variant] B restored its partitions and followed $followed entries of A's in $(since "$t") s"
  else
    sleep 5
    echo "[$variant] B restored its partitions in $(since "$t") s"
  fi
  restores=$(metric "$B_PORT" processor_state_restore_seconds_count)
  entries=$(metric "$B_PORT" processor_state_restored_entries_total)
  before=$(stored)
  t=$(now)
  kill -TERM "$A_PID"
  for caller in 4152200101 3122200102 2122200103; do
    probe=$((probe + 1))
    send_call "to_probe_$probe" "$caller"
  done
  wait_metric_at_least "$B_PORT" processor_state_restore_seconds_count $((restores + 3))
  TOOK[$variant]=$(since "$t")
  READ[$variant]=$(( $(metric "$B_PORT" processor_state_restored_entries_total) - entries ))
  for _ in $(seq 1 6000); do [ "$(stored)" -ge $((before + 3)) ] && break; sleep 0.1; done
  CALLS[$variant]=$(since "$t")
  echo "[$variant] takeover: B read ${READ[$variant]} changelog entries, caught up every partition ${TOOK[$variant]} s after A's stop; the three calls sent then stored after ${CALLS[$variant]} s"
  wait "$A_PID" 2>/dev/null || true; A_PID=
  kill -TERM "$B_PID"; wait "$B_PID" 2>/dev/null || true; B_PID=
done
echo "ratio standby / baseline: entries read $(python3 -c "print(f'{${READ[standby]} / max(${READ[baseline]}, 1):.3f}')"), takeover time $(python3 -c "print(f'{${TOOK[standby]} / ${TOOK[baseline]}:.3f}')"), calls stored $(python3 -c "print(f'{${CALLS[standby]} / ${CALLS[baseline]}:.3f}')")"
