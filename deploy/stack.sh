#!/usr/bin/env bash
# The local stack: a Kafka-protocol broker (tansu, sqlite storage), ClickHouse 18.16
# with the project's own config, and the three binaries, with all data under one
# directory. Idempotent: starting what runs already is a no-op.
#
#   deploy/stack.sh install          install tansu and clickhouse-server if missing
#   deploy/stack.sh start [infra]    start everything (or only broker + ClickHouse),
#                                    create topics, apply migrations, publish integrations
#   deploy/stack.sh stop [infra]     stop everything (or only broker + ClickHouse)
#   deploy/stack.sh status           what runs, on which port, with which pid
#   deploy/stack.sh logs [NAME]      tail a service's log (tansu, clickhouse, ingest, processor, api)
#   deploy/stack.sh crash NAME       kill -9 one service (fault tests: no shutdown, no flush)
#   deploy/stack.sh revive           start again whatever of the five is not running
#                                    (no build, no setup: after `crash`)
#
# Secrets (made once per data directory, never printed): $CM_DATA_DIR/secrets/
#   clickhouse.env (ClickHouse users' passwords), tokens.json (API tokens; see
#   docs/security.md). Scripts read them with `. deploy/secrets.sh; cm_secrets DIR`.
#
# Settings (environment):
#   CM_DATA_DIR               data, logs and pid files       (default: .data/stack in the repo)
#   CM_KAFKA_PORT             broker port                    (default 19092)
#   CM_CLICKHOUSE_HTTP_PORT   ClickHouse HTTP port           (default 18123)
#   CM_CLICKHOUSE_TCP_PORT    ClickHouse native port         (default 19000)
#   CM_INGEST_PORT / CM_API_PORT / CM_PROCESSOR_PORT        (default 8080 / 8081 / 8082)
#   CM_PROMETHEUS_PORT        Prometheus (full stack only)   (default 9090)
#   CM_BIN_DIR                run ingest, processor, api and cmctl from this directory
#                             instead of building them (default: cargo build, debug)
#   CM_TOPIC_PREFIX           prefix of topics and groups    (default empty)
#   CM_DATABASE               ClickHouse database            (default callmatrix)
#   CM_INTEGRATIONS           integrations file to publish   (default deploy/integrations/samples.json)
#   CM_STATIC_MEMBERSHIP      1: processor and ingest join their groups with a stable
#                             instance id (static membership); 0: without   (default 0:
#                             tansu 0.6.0 mishandles static members, docs/architecture.md)
#   CM_TANSU_LOG              the broker's log filter (default: warnings, and its
#                             group coordinator at info)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${CM_DATA_DIR:-$ROOT/.data/stack}"
KAFKA_PORT="${CM_KAFKA_PORT:-19092}"
CH_HTTP_PORT="${CM_CLICKHOUSE_HTTP_PORT:-18123}"
CH_TCP_PORT="${CM_CLICKHOUSE_TCP_PORT:-19000}"
INGEST_PORT="${CM_INGEST_PORT:-8080}"
API_PORT="${CM_API_PORT:-8081}"
PROCESSOR_PORT="${CM_PROCESSOR_PORT:-8082}"
PROMETHEUS_PORT="${CM_PROMETHEUS_PORT:-9090}"
TOPIC_PREFIX="${CM_TOPIC_PREFIX:-}"
DATABASE="${CM_DATABASE:-callmatrix}"
INTEGRATIONS="${CM_INTEGRATIONS:-$ROOT/deploy/integrations/samples.json}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN_DIR="${CM_BIN_DIR:-}"
TANSU_VERSION="0.6.0"

BROKERS="127.0.0.1:$KAFKA_PORT"
CH_URL="http://127.0.0.1:$CH_HTTP_PORT"
APPS=(processor ingest api)

# shellcheck source=deploy/secrets.sh
. "$ROOT/deploy/secrets.sh"
# shellcheck source=deploy/progress.sh
. "$ROOT/deploy/progress.sh"

say() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

port_of() {
  case "$1" in
    tansu) echo "$KAFKA_PORT" ;;
    clickhouse) echo "$CH_HTTP_PORT" ;;
    ingest) echo "$INGEST_PORT" ;;
    api) echo "$API_PORT" ;;
    processor) echo "$PROCESSOR_PORT" ;;
    prometheus) echo "$PROMETHEUS_PORT" ;;
  esac
}

# shellcheck source=deploy/services.sh
. "$ROOT/deploy/services.sh"
PORT_HINT="set the port variable (see deploy/stack.sh header)"

# Every port this start needs, checked before anything starts, so a conflict never
# leaves a half-started stack behind.
check_ports() {
  local name port
  for name in "$@"; do
    port="$(port_of "$name")"
    if ! running "$name" && port_busy "$port"; then
      die "port $port for $name is already taken by another process ($(ss -ltnpH "sport = :$port" | sed 's/.*users://' | head -n1)); free it or set the port variable (see deploy/stack.sh header)"
    fi
  done
  if ! running clickhouse && port_busy "$CH_TCP_PORT"; then
    die "port $CH_TCP_PORT (ClickHouse native) is already taken; set CM_CLICKHOUSE_TCP_PORT"
  fi
}

install() {
  if ! command -v tansu >/dev/null 2>&1; then
    say "installing tansu $TANSU_VERSION with sqlite and memory storage (several minutes on 2 cores, once per machine)"
    heartbeat "cargo install tansu" cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql
  fi
  if ! command -v clickhouse-server >/dev/null 2>&1; then
    say "installing clickhouse-server from Debian"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q clickhouse-server clickhouse-client
  fi
  if [ "${1:-all}" != infra ] && ! command -v prometheus >/dev/null 2>&1; then
    say "installing prometheus from Debian (scrapes the binaries, evaluates deploy/prometheus/rules.yml)"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus
  fi
  command -v ss >/dev/null 2>&1 || die "the ss command (iproute2) is missing"
  command -v curl >/dev/null 2>&1 || die "curl is missing"
  say "tools present: $(command -v tansu), $(command -v clickhouse-server)"
}

# tansu drops the first slash of a sqlite URL's path: an absolute path needs four.
abs_path() { (mkdir -p "$1" && cd "$1" && pwd) | sed 's|^/|//|'; }

start_tansu() {
  mkdir -p "$DATA/kafka"
  # The group coordinator's decisions (members joining, missed heartbeats, leaders)
  # are logged at info: a consumer left without partitions is diagnosed from them.
  launch tansu env RUST_LOG="${CM_TANSU_LOG:-warn,tansu_broker::coordinator=info}" tansu broker \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine "sqlite://$(abs_path "$DATA")/kafka/tansu.db"
  wait_until 30 tansu bash -c "exec 3<>/dev/tcp/127.0.0.1/$KAFKA_PORT"
}

start_clickhouse() {
  mkdir -p "$DATA/clickhouse/tmp" "$DATA/clickhouse/user_files" "$DATA/clickhouse/format_schemas" "$DATA/logs"
  sed -e "s|@DATA@|$DATA|g" -e "s|@HTTP_PORT@|$CH_HTTP_PORT|g" -e "s|@TCP_PORT@|$CH_TCP_PORT|g" \
    "$ROOT/deploy/clickhouse/config.xml.template" >"$DATA/clickhouse/config.xml"
  # Users with passwords (secrets/clickhouse.env); ClickHouse stores only the hashes.
  cm_clickhouse_users "$DATA/clickhouse/users.xml"
  warn_if_no_journal "$DATA/clickhouse"
  launch clickhouse clickhouse-server --config-file="$DATA/clickhouse/config.xml"
  wait_until 60 clickhouse curl -fsS "$CH_URL/ping"
}

cargo_bin() { echo "${BIN_DIR:-$TARGET_DIR/debug}/$1"; }

build() {
  if [ -n "$BIN_DIR" ]; then
    say "using the binaries in $BIN_DIR (CM_BIN_DIR; not building)"
    return
  fi
  # Not quiet: on a fresh 2-core machine this takes minutes, and cargo's lines are
  # the progress (crate by crate).
  say "building the workspace binaries (cargo build --workspace --bins; minutes on a fresh machine)"
  (cd "$ROOT" && heartbeat "cargo build" cargo build --workspace --bins)
}

setup() {
  "$(cargo_bin cmctl)" topics
  "$(cargo_bin cmctl)" migrate
  "$(cargo_bin cmctl)" integrations publish "$INTEGRATIONS"
  # CallMatrix's own numbers and routed calls (copied from ../shared/samples).
  "$(cargo_bin cmctl)" callmatrix numbers "$ROOT/deploy/callmatrix/numbers.csv"
  "$(cargo_bin cmctl)" callmatrix calls "$ROOT/deploy/callmatrix/calls.json"
}

export_app_env() {
  export CM_KAFKA_BROKERS="$BROKERS" CM_TOPIC_PREFIX="$TOPIC_PREFIX"
  export CM_CLICKHOUSE_URL="$CH_URL" CM_DATABASE="$DATABASE"
  for app in INGEST PROCESSOR API; do
    export "${app}_KAFKA__BROKERS=$BROKERS" "${app}_KAFKA__TOPIC_PREFIX=$TOPIC_PREFIX"
  done
  export PROCESSOR_CLICKHOUSE__URL="$CH_URL" PROCESSOR_CLICKHOUSE__DATABASE="$DATABASE"
  # The processor's keyed state on disk, one directory per topic prefix (a copy made
  # from another changelog is dropped at start anyway: docs/architecture.md).
  export PROCESSOR_STATE__DIR="$DATA/processor-state/${TOPIC_PREFIX:-default}"
  export API_CLICKHOUSE__URL="$CH_URL" API_CLICKHOUSE__DATABASE="$DATABASE"
  # The pipeline writes as callmatrix_writer; the api only reads, as callmatrix_reader.
  export CM_CLICKHOUSE_USER=callmatrix_writer CM_CLICKHOUSE_PASSWORD="$CM_CLICKHOUSE_WRITER_PASSWORD"
  export PROCESSOR_CLICKHOUSE__USER=callmatrix_writer PROCESSOR_CLICKHOUSE__PASSWORD="$CM_CLICKHOUSE_WRITER_PASSWORD"
  export PROCESSOR_RETENTION__HASH_KEY="$CM_RETENTION_HASH_KEY"
  export API_CLICKHOUSE__USER=callmatrix_reader API_CLICKHOUSE__PASSWORD="$CM_CLICKHOUSE_READER_PASSWORD"
  # API tokens (secrets/tokens.json): closed by default; cmctl uses the admin token.
  export API_AUTH__TOKENS_FILE="$CM_TOKENS_FILE" INGEST_AUTH__TOKENS_FILE="$CM_TOKENS_FILE"
  export CM_TOKEN="$CM_ADMIN_TOKEN"
  export INGEST_HTTP__LISTEN="127.0.0.1:$INGEST_PORT"
  export API_HTTP__LISTEN="127.0.0.1:$API_PORT" API_INGEST__URL="http://127.0.0.1:$INGEST_PORT" API_OPS__PROMETHEUS_URL="http://127.0.0.1:$PROMETHEUS_PORT"
  export PROCESSOR_HTTP__LISTEN="127.0.0.1:$PROCESSOR_PORT"
  # Static group membership: a restarted processor takes its partitions back at once.
  # Off by default here: tansu 0.6.0 keeps dead static members and revokes the live
  # one's partitions (docs/architecture.md, "Consumer groups that stop moving").
  if [ "${CM_STATIC_MEMBERSHIP:-0}" = 1 ]; then
    export PROCESSOR_KAFKA__INSTANCE_ID="processor-$(hostname)"
    # Likewise for ingest's poll workers (group `poller`).
    export INGEST_KAFKA__INSTANCE_ID="ingest-$(hostname)"
  fi
}

start_apps() {
  for app in "${APPS[@]}"; do
    # A binary rebuilt since the app started: restart it so the stack runs the
    # current code (the apps are stateless; Kafka and ClickHouse keep running).
    if running "$app" && [ "$(cargo_bin "$app")" -nt "$(pid_file "$app")" ]; then
      say "$app was rebuilt since it started; restarting it"
      stop_one "$app"
    fi
    launch "$app" "$(cargo_bin "$app")" --config "$ROOT/deploy/config/$app.toml"
  done
  for app in "${APPS[@]}"; do
    wait_until 60 "$app" curl -fsS "http://127.0.0.1:$(port_of "$app")/healthz"
    say "$app ready on http://127.0.0.1:$(port_of "$app")"
  done
}

status() { status_of tansu clickhouse "${APPS[@]}" prometheus; }

command="${1:-}"; scope="${2:-all}"
case "$command" in
  install) install ;;
  start)
    install "$scope"
    if [ "$scope" = "infra" ]; then check_ports tansu clickhouse; else check_ports tansu clickhouse "${APPS[@]}" prometheus; fi
    cm_secrets "$DATA" "$INTEGRATIONS"
    start_tansu
    start_clickhouse
    export_app_env
    if [ "$scope" != "infra" ]; then
      build
      setup
      start_apps
      start_prometheus "$PROMETHEUS_PORT" "$INGEST_PORT" "$PROCESSOR_PORT" "$API_PORT"
    fi
    say "stack is up (data under $DATA)"
    ;;
  stop)
    if [ "$scope" != "infra" ]; then for app in prometheus api ingest processor; do stop_one "$app"; done; fi
    stop_one clickhouse
    stop_one tansu
    ;;
  status) status ;;
  crash) crash_one "${2:-}" ;;
  revive)
    cm_secrets "$DATA" "$INTEGRATIONS"
    running tansu || start_tansu
    running clickhouse || start_clickhouse
    export_app_env
    for app in "${APPS[@]}"; do
      if ! running "$app"; then
        launch "$app" "$(cargo_bin "$app")" --config "$ROOT/deploy/config/$app.toml"
        wait_until 60 "$app" curl -fsS "http://127.0.0.1:$(port_of "$app")/healthz"
      fi
    done
    ;;
  logs)
    name="${2:-}"
    if [ -z "$name" ]; then ls -1 "$DATA/logs"; else tail -n 100 -f "$DATA/logs/$name.log"; fi
    ;;
  *)
    sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'
    [ -z "$command" ] || exit 2
    ;;
esac
