#!/usr/bin/env bash
# The local cluster: ZooKeeper, ClickHouse as 2 shards x 2 replicas (four
# clickhouse-server processes), the broker, and two instances each of ingest, the
# processor and the api, from the same binaries and configs as the single-node stack
# (deploy/stack.sh, still the README's first command). The schema is migrated in
# cluster mode (docs/deploy.md, "Cluster mode"). All data under one directory.
#
#   deploy/cluster.sh start [infra]   start everything (or ZooKeeper, ClickHouse and the broker)
#   deploy/cluster.sh stop            stop everything
#   deploy/cluster.sh status          what runs, on which port, with which pid
#   deploy/cluster.sh crash NAME      kill -9 one service (e.g. ch3, processor2)
#   deploy/cluster.sh revive          start again whatever is not running
#
# Services and ports (environment CM_CLUSTER_PORT_BASE, default 26000, moves them all;
# every port is below Linux's ephemeral range, 32768-60999):
#   zookeeper  BASE+181          tansu  BASE+92
#   ch1..ch4   HTTP BASE+121..124, native BASE+101..104, replication BASE+141..144
#              (ch1, ch2: shard 01; ch3, ch4: shard 02)
#   ingest1/2  BASE+80 / BASE+83     api1/2  BASE+81 / BASE+84
#   processor1/2 (ops port)  BASE+82 / BASE+85
#   prometheus BASE+90 (scrapes all six instances, evaluates deploy/prometheus/rules.yml)
# Each instance talks to its own ClickHouse node: processor1 ch1, processor2 ch3,
# api1 ch2, api2 ch4 (a load balancer's job in production).
#
# Settings: CM_CLUSTER_DATA_DIR (default .data/cluster), CM_INTEGRATIONS as stack.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${CM_CLUSTER_DATA_DIR:-$ROOT/.data/cluster}"
# Absolute: the ClickHouse configs name paths under it, read from their own directory.
mkdir -p "$DATA" && DATA="$(cd "$DATA" && pwd)"
BASE="${CM_CLUSTER_PORT_BASE:-26000}"
CLUSTER=callmatrix
DATABASE=callmatrix
INTEGRATIONS="${CM_INTEGRATIONS:-$ROOT/deploy/integrations/samples.json}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
ZK_PORT=$((BASE + 181))
KAFKA_PORT=$((BASE + 92))
BROKERS="127.0.0.1:$KAFKA_PORT"
NODES=(ch1 ch2 ch3 ch4)
APPS=(processor1 processor2 ingest1 ingest2 api1 api2)

# shellcheck source=deploy/secrets.sh
. "$ROOT/deploy/secrets.sh"
# shellcheck source=deploy/progress.sh
. "$ROOT/deploy/progress.sh"

say() { printf '[cluster] %s\n' "$*"; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

node_number() { echo "${1#ch}"; }
http_port() { echo $((BASE + 120 + $(node_number "$1"))); }
tcp_port() { echo $((BASE + 100 + $(node_number "$1"))); }
port_of() {
  case "$1" in
    zookeeper) echo "$ZK_PORT" ;;
    tansu) echo "$KAFKA_PORT" ;;
    ch?) http_port "$1" ;;
    ingest1) echo $((BASE + 80)) ;;
    api1) echo $((BASE + 81)) ;;
    processor1) echo $((BASE + 82)) ;;
    ingest2) echo $((BASE + 83)) ;;
    api2) echo $((BASE + 84)) ;;
    processor2) echo $((BASE + 85)) ;;
    prometheus) echo $((BASE + 90)) ;;
  esac
}
# The ClickHouse node an app instance talks to.
node_of() {
  case "$1" in
    processor1) echo ch1 ;; processor2) echo ch3 ;;
    api1) echo ch2 ;; api2) echo ch4 ;;
    *) echo ch1 ;;
  esac
}

# shellcheck source=deploy/services.sh
. "$ROOT/deploy/services.sh"
PORT_HINT="set CM_CLUSTER_PORT_BASE"

install() {
  "$ROOT/deploy/stack.sh" install
  if [ ! -x /usr/share/zookeeper/bin/zkServer.sh ]; then
    say "installing zookeeper from Debian"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q zookeeper
  fi
}

start_zookeeper() {
  mkdir -p "$DATA/zookeeper/data" "$DATA/zookeeper/conf"
  cat >"$DATA/zookeeper/conf/zoo.cfg" <<EOF
tickTime=2000
dataDir=$DATA/zookeeper/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
EOF
  launch zookeeper env ZOOCFGDIR="$DATA/zookeeper/conf" ZOO_LOG_DIR="$DATA/logs" \
    /usr/share/zookeeper/bin/zkServer.sh start-foreground "$DATA/zookeeper/conf/zoo.cfg"
  # Serving, not only listening: a ClickHouse node with replicated tables that
  # starts against a ZooKeeper still loading its data fails to start.
  wait_until 60 zookeeper bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZK_PORT; echo srvr >&3; grep -q '^Mode: ' <&3"
}

# The <shard> elements of remote_servers: ch1+ch2 and ch3+ch4. The nodes query each
# other as callmatrix_writer (the file is readable by its owner only).
shards_xml() {
  local shard node
  for shard in "ch1 ch2" "ch3 ch4"; do
    printf '            <shard>\n                <internal_replication>true</internal_replication>\n'
    for node in $shard; do
      printf '                <replica><host>127.0.0.1</host><port>%s</port><user>callmatrix_writer</user><password>%s</password></replica>\n' \
        "$(tcp_port "$node")" "$CM_CLICKHOUSE_WRITER_PASSWORD"
    done
    printf '            </shard>\n'
  done
}

start_node() {
  local node="$1" n; n="$(node_number "$1")"
  local dir="$DATA/$node"
  mkdir -p "$dir/clickhouse/tmp" "$dir/clickhouse/user_files" "$dir/clickhouse/format_schemas" \
    "$dir/logs" "$dir/clickhouse/config.d" "$dir/clickhouse/users.d"
  sed -e "s|@DATA@|$dir|g" -e "s|@HTTP_PORT@|$(http_port "$node")|g" -e "s|@TCP_PORT@|$(tcp_port "$node")|g" \
    "$ROOT/deploy/clickhouse/config.xml.template" >"$dir/clickhouse/config.xml"
  local shard=01; [ "$n" -gt 2 ] && shard=02
  local shards; shards="$(shards_xml)"
  (umask 077 && sed -e "s|@INTERSERVER_PORT@|$((BASE + 140 + n))|" -e "s|@ZK_PORT@|$ZK_PORT|" \
    -e "s|@SHARD@|$shard|" -e "s|@REPLICA@|$node|" -e "s|@CLUSTER@|$CLUSTER|g" \
    "$ROOT/deploy/clickhouse/cluster/cluster.xml.template" |
    python3 -c 'import sys; print(sys.stdin.read().replace("@SHARDS@", sys.argv[1]), end="")' "$shards" \
      >"$dir/clickhouse/config.d/cluster.xml")
  cm_clickhouse_users "$dir/clickhouse/users.xml"
  cp "$ROOT/deploy/clickhouse/cluster/users.xml.template" "$dir/clickhouse/users.d/cluster.xml"
  # The node's own log is in $dir/logs; stdout and stderr of the process in logs/chN.log.
  launch "$node" clickhouse-server --config-file="$dir/clickhouse/config.xml"
}

start_tansu() {
  mkdir -p "$DATA/kafka"
  launch tansu env RUST_LOG="${CM_TANSU_LOG:-warn}" tansu broker \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine "sqlite://$( (cd "$DATA/kafka" && pwd) | sed 's|^/|//|')/tansu.db"
  wait_until 30 tansu bash -c "exec 3<>/dev/tcp/127.0.0.1/$KAFKA_PORT"
}

start_infra() {
  start_zookeeper
  mkdir -p "$DATA" && warn_if_no_journal "$DATA"
  for node in "${NODES[@]}"; do start_node "$node"; done
  for node in "${NODES[@]}"; do
    wait_until 90 "$node" curl -fsS "http://127.0.0.1:$(http_port "$node")/ping"
  done
  start_tansu
}

# Environment shared by cmctl and the apps; each instance's own settings in app_env.
export_env() {
  export CM_KAFKA_BROKERS="$BROKERS" CM_TOPIC_PREFIX="" CM_DATABASE="$DATABASE"
  export CM_CLICKHOUSE_URL="http://127.0.0.1:$(http_port ch1)" CM_CLICKHOUSE_CLUSTER="$CLUSTER"
  export CM_CLICKHOUSE_USER=callmatrix_writer CM_CLICKHOUSE_PASSWORD="$CM_CLICKHOUSE_WRITER_PASSWORD"
  export CM_TOKEN="$CM_ADMIN_TOKEN"
}

app_env() { # app_env NAME: the environment of one instance, as `env` arguments
  local name="$1" kind="${1%[12]}" url
  url="http://127.0.0.1:$(http_port "$(node_of "$name")")"
  local upper; upper="$(echo "$kind" | tr '[:lower:]' '[:upper:]')"
  printf '%s\n' "${upper}_KAFKA__BROKERS=$BROKERS" "${upper}_HTTP__LISTEN=127.0.0.1:$(port_of "$name")"
  case "$kind" in
    processor)
      printf '%s\n' "PROCESSOR_CLICKHOUSE__URL=$url" "PROCESSOR_CLICKHOUSE__DATABASE=$DATABASE" \
        "PROCESSOR_CLICKHOUSE__CLUSTER=$CLUSTER" "PROCESSOR_CLICKHOUSE__USER=callmatrix_writer" "PROCESSOR_CLICKHOUSE__PASSWORD=$CM_CLICKHOUSE_WRITER_PASSWORD" \
        "PROCESSOR_STATE__DIR=$DATA/$name-state" "PROCESSOR_STATE__STANDBY_INTERVAL_MS=1000" ;;
    api)
      printf '%s\n' "API_CLICKHOUSE__URL=$url" "API_CLICKHOUSE__DATABASE=$DATABASE" \
        "API_CLICKHOUSE__USER=callmatrix_reader" "API_CLICKHOUSE__PASSWORD=$CM_CLICKHOUSE_READER_PASSWORD" \
        "API_AUTH__TOKENS_FILE=$CM_TOKENS_FILE" "API_INGEST__URL=http://127.0.0.1:$(port_of "ingest${name: -1}")" \
        "API_OPS__PROMETHEUS_URL=http://127.0.0.1:$(port_of prometheus)" ;;
    ingest)
      printf '%s\n' "INGEST_AUTH__TOKENS_FILE=$CM_TOKENS_FILE" ;;
  esac
}

start_app() {
  local name="$1" kind="${1%[12]}"
  local vars; mapfile -t vars < <(app_env "$name")
  launch "$name" env "${vars[@]}" "$TARGET_DIR/debug/$kind" --config "$ROOT/deploy/config/$kind.toml"
  wait_until 90 "$name" curl -fsS "http://127.0.0.1:$(port_of "$name")/healthz"
}

setup() {
  local cmctl="$TARGET_DIR/debug/cmctl"
  # Four partitions of calls.raw: two per processor (docs/deploy.md, "Partitions").
  "$cmctl" topics --partitions 4
  "$cmctl" migrate
  "$cmctl" integrations publish "$INTEGRATIONS"
  "$cmctl" callmatrix numbers "$ROOT/deploy/callmatrix/numbers.csv"
  "$cmctl" callmatrix calls "$ROOT/deploy/callmatrix/calls.json"
}

status() { status_of zookeeper "${NODES[@]}" tansu "${APPS[@]}" prometheus; }

# The same Prometheus as the single-node stack's, with every instance a target.
start_cluster_prometheus() {
  start_prometheus "$(port_of prometheus)" "$(port_of ingest1) $(port_of ingest2)" \
    "$(port_of processor1) $(port_of processor2)" "$(port_of api1) $(port_of api2)"
}

command="${1:-}"; scope="${2:-all}"
case "$command" in
  start)
    install
    cm_secrets "$DATA" "$INTEGRATIONS"
    start_infra
    export_env
    if [ "$scope" != infra ]; then
      say "building the workspace binaries"
      (cd "$ROOT" && heartbeat "cargo build" cargo build --workspace --bins)
      setup
      for app in "${APPS[@]}"; do start_app "$app"; done
      start_cluster_prometheus
    fi
    say "cluster is up (data under $DATA)"
    ;;
  stop)
    for name in prometheus api2 api1 ingest2 ingest1 processor2 processor1 tansu ch4 ch3 ch2 ch1 zookeeper; do stop_one "$name"; done
    ;;
  status) status ;;
  crash) crash_one "${2:-}" ;;
  revive)
    cm_secrets "$DATA" "$INTEGRATIONS"
    running zookeeper || start_zookeeper
    for node in "${NODES[@]}"; do
      if ! running "$node"; then
        start_node "$node"
        wait_until 90 "$node" curl -fsS "http://127.0.0.1:$(http_port "$node")/ping"
      fi
    done
    running tansu || start_tansu
    export_env
    for app in "${APPS[@]}"; do running "$app" || start_app "$app"; done
    running prometheus || start_cluster_prometheus
    ;;
  *)
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
    [ -z "$command" ] || exit 2
    ;;
esac
