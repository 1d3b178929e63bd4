# Sourced by the load scripts that run the whole pipeline (end_to_end.sh, latency.sh):
# starts the local infra, reads the stack's secrets (its ClickHouse has users with
# passwords; the bench's own binaries run open on loopback, docs/security.md), and
# makes a world of the run's own: topics with prefix $PREFIX, database $DB (dropped
# first, then migrated), the sample integrations. Needs ROOT, TARGET_DIR, CH, DB and
# PREFIX set; sets CH_USER and the CM_* variables cmctl reads.
deploy/stack.sh start infra >/dev/null
# shellcheck source=deploy/secrets.sh
. deploy/secrets.sh
cm_secrets "${CM_DATA_DIR:-$ROOT/.data/stack}"
CH_USER="callmatrix_writer:$CM_CLICKHOUSE_WRITER_PASSWORD"
export CM_CLICKHOUSE_USER=callmatrix_writer CM_CLICKHOUSE_PASSWORD="$CM_CLICKHOUSE_WRITER_PASSWORD"
export CM_KAFKA_BROKERS="127.0.0.1:${CM_KAFKA_PORT:-19092}" CM_TOPIC_PREFIX="$PREFIX"
export CM_CLICKHOUSE_URL="$CH" CM_DATABASE="$DB"
curl -sS -u "$CH_USER" "$CH/" --data-binary "DROP DATABASE IF EXISTS $DB" >/dev/null
"$TARGET_DIR/release/cmctl" topics >/dev/null
"$TARGET_DIR/release/cmctl" migrate >/dev/null
"$TARGET_DIR/release/cmctl" integrations publish deploy/integrations/samples.json >/dev/null
