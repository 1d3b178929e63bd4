# Sourced by the load scripts that run the whole pipeline (end_to_end.sh, latency.sh):
# starts the local infra, reads the stack's secrets (its ClickHouse has users with
# passwords; the bench's own binaries run open on loopback, docs/security.md), and
# makes a world of the run's own: topics with prefix $PREFIX, database $DB (dropped
# first, then migrated), the sample integrations. Needs ROOT, TARGET_DIR, CH, DB and
# PREFIX set; sets CH_USER and the CM_* variables cmctl reads.
#
# With CM_BENCH_CLUSTER=1 the world is the local cluster's instead (deploy/cluster.sh:
# ZooKeeper, ClickHouse 2 shards x 2 replicas, its own broker; ports from 26000): the
# database is migrated in cluster mode, the topics have 4 partitions, and CH is node
# ch1 (the script sets it). Sets CH3 (node ch3) for a second processor.
#
# With CM_BENCH_STORAGE=memory (not with the cluster) the run's broker is a private
# tansu with memory storage (benches/load/memory_broker.sh), started here
# (BENCH_TANSU_PID; the caller stops it): the figure without the broker's disk.
if [ "${CM_BENCH_CLUSTER:-0}" = 1 ]; then
  deploy/cluster.sh start infra >/dev/null
  # shellcheck source=deploy/secrets.sh
  . deploy/secrets.sh
  cm_secrets "${CM_CLUSTER_DATA_DIR:-$ROOT/.data/cluster}"
  CH="http://127.0.0.1:26121" CH3="http://127.0.0.1:26123"
  export CM_KAFKA_PORT=26092 CM_CLICKHOUSE_CLUSTER=callmatrix
  ON_CLUSTER=" ON CLUSTER callmatrix" PARTITIONS=4
else
  deploy/stack.sh start infra >/dev/null
  # shellcheck source=deploy/secrets.sh
  . deploy/secrets.sh
  cm_secrets "${CM_DATA_DIR:-$ROOT/.data/stack}"
  ON_CLUSTER="" PARTITIONS=3
fi
BENCH_TANSU_PID=""
if [ "${CM_BENCH_STORAGE:-sqlite}" = memory ] && [ "${CM_BENCH_CLUSTER:-0}" != 1 ]; then
  # shellcheck source=benches/load/memory_broker.sh
  . benches/load/memory_broker.sh
  start_memory_broker
  BENCH_TANSU_PID=$MEMORY_BROKER_PID CM_KAFKA_PORT="${MEMORY_BROKER##*:}"
fi
CH_USER="callmatrix_writer:$CM_CLICKHOUSE_WRITER_PASSWORD"
export CM_CLICKHOUSE_USER=callmatrix_writer CM_CLICKHOUSE_PASSWORD="$CM_CLICKHOUSE_WRITER_PASSWORD"
export CM_KAFKA_BROKERS="127.0.0.1:${CM_KAFKA_PORT:-19092}" CM_TOPIC_PREFIX="$PREFIX"
export CM_CLICKHOUSE_URL="$CH" CM_DATABASE="$DB"
curl -sS -u "$CH_USER" "$CH/" --data-binary "DROP DATABASE IF EXISTS $DB$ON_CLUSTER" >/dev/null
"$TARGET_DIR/release/cmctl" topics --partitions "$PARTITIONS" >/dev/null
"$TARGET_DIR/release/cmctl" migrate >/dev/null
"$TARGET_DIR/release/cmctl" integrations publish deploy/integrations/samples.json >/dev/null
