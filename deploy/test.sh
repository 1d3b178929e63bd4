#!/usr/bin/env bash
# The whole test suite, on a machine that may have none of its services:
# installs tansu and ClickHouse if missing, starts a throwaway broker and ClickHouse
# on test ports (data under .data/test, wiped each run), builds the workspace, runs
# the SQL portability check against current ClickHouse, then every test (unit,
# property, and integration against the real stack), then stops
# the stack, then the short fault matrix on a stack of its own, then the cluster's
# fault test on a cluster of its own. Extra arguments go to `cargo test` (e.g. `deploy/test.sh -p processor`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=deploy/progress.sh
. deploy/progress.sh
export CM_DATA_DIR="${CM_TEST_DATA_DIR:-$ROOT/.data/test}"
export CM_KAFKA_PORT="${CM_TEST_KAFKA_PORT:-29092}"
export CM_CLICKHOUSE_HTTP_PORT="${CM_TEST_CLICKHOUSE_HTTP_PORT:-28123}"
export CM_CLICKHOUSE_TCP_PORT="${CM_TEST_CLICKHOUSE_TCP_PORT:-29000}"

deploy/stack.sh stop infra >/dev/null 2>&1 || true
rm -rf "$CM_DATA_DIR"
trap 'deploy/stack.sh stop infra >/dev/null 2>&1' EXIT
deploy/stack.sh start infra

# Every shipped SQL statement must also run on current ClickHouse (chdb 26.9);
# the integration tests below run them on 18.16.
if ! python3 -c "import chdb" >/dev/null 2>&1; then
  echo "[test] installing chdb-core (ClickHouse 26.9 embedded in Python, one large wheel)"
  python3 -m pip install --progress-bar off --disable-pip-version-check --root-user-action=ignore "chdb-core==26.9.0"
fi
python3 tests/sql/check_current_clickhouse.py

# The webhook tests sign requests with the official Standard Webhooks library.
if ! python3 -c "import standardwebhooks" >/dev/null 2>&1; then
  echo "[test] installing standardwebhooks (the official signing library)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "standardwebhooks==1.1.0"
fi

# The dashboard's browser test: Debian's chromium, driven by playwright-core.
if ! command -v chromium >/dev/null 2>&1; then
  echo "[test] installing chromium (Debian) for the dashboard's browser test"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
fi
# And a standard SSE client library (eventsource) for the event stream's resume test.
if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/eventsource ]; then
  echo "[test] installing playwright-core and eventsource (npm, no browser download)"
  npm ci --prefix tests/browser --no-audit --no-fund
fi

# Alert rules: promtool (Debian's prometheus package) checks them and runs their
# unit tests (deploy/prometheus/rules_test.yml; runbooks in docs/operations.md).
if ! command -v promtool >/dev/null 2>&1; then
  echo "[test] installing prometheus (Debian) for promtool"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus
fi
echo "[test] promtool check rules and test rules (deploy/prometheus)"
promtool check rules deploy/prometheus/rules.yml
promtool test rules deploy/prometheus/rules_test.yml
# Every query of the Grafana dashboard parses as PromQL: each becomes a recording
# rule of a throwaway rules file that promtool checks.
dashboard_rules="$(mktemp --suffix=.yml)"
python3 - deploy/grafana/callmatrix-pipeline.json > "$dashboard_rules" <<'PY'
import json, sys
panels = json.load(open(sys.argv[1]))["panels"]
print("groups:\n  - name: grafana_dashboard\n    rules:")
for n, panel in enumerate(p for p in panels if p["type"] != "row"):
    for target in panel["targets"]:
        print(f"      - record: grafana:panel_{n}\n        expr: {json.dumps(target['expr'])}")
PY
promtool check rules "$dashboard_rules"
rm -f "$dashboard_rules"

echo "[test] cargo fmt --check"
cargo fmt --all --check
echo "[test] the engine's dependency tree has no async runtime, Kafka, HTTP or ClickHouse client"
if cargo tree -p engine -e normal --prefix none | grep -E '^(tokio|rdkafka|hyper|reqwest|clickhouse) v'; then
  echo "[test] engine depends on an IO crate (above); it must stay pure" >&2
  exit 1
fi
echo "[test] building the workspace (binaries and tests)"
heartbeat "cargo build" cargo build --workspace --bins --tests
echo "[test] cargo clippy --workspace --all-targets -- -D warnings"
heartbeat "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings

export CM_TEST_BROKERS="127.0.0.1:$CM_KAFKA_PORT"
export CM_TEST_CLICKHOUSE_URL="http://127.0.0.1:$CM_CLICKHOUSE_HTTP_PORT"
# The test ClickHouse has users with passwords, as the stack does (deploy/secrets.sh).
# shellcheck source=deploy/secrets.sh
. deploy/secrets.sh
cm_secrets "$CM_DATA_DIR"
export CM_TEST_CLICKHOUSE_WRITER_PASSWORD="$CM_CLICKHOUSE_WRITER_PASSWORD"
export CM_TEST_CLICKHOUSE_READER_PASSWORD="$CM_CLICKHOUSE_READER_PASSWORD"
export CM_TEST_CLICKHOUSE_ANALYST_PASSWORD="$CM_CLICKHOUSE_ANALYST_PASSWORD"
# Library, binary and integration-test targets (the crates carry no doc tests);
# every test binary runs even after a failure, so one run shows every failure.
log="$CM_DATA_DIR/cargo-test.log"
set +e
cargo test --no-fail-fast --workspace --lib --bins --tests "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, summed from cargo's per-binary results.
awk '/^test result:/ { for (i = 2; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "workspace: %d passed, %d failed\n", p, f }' "$log"

# long_test TITLE NAME LOG PATTERN COMMAND...: runs a scripted fault test into LOG,
# prints its summary lines (PATTERN), and on failure its last lines; the suite's
# status keeps the first failure.
long_test() {
  local title="$1" name="$2" log="$3" pattern="$4"; shift 4
  echo "[test] $title"
  set +e
  "$@" >"$log" 2>&1
  local code=$?
  set -e
  grep -E "$pattern" "$log" || true
  if [ "$code" -ne 0 ]; then
    echo "[test] $name failed (exit $code); last lines of $log:" >&2
    { grep -v '^ \+\(at\|[0-9]\+:\)' "$log" || true; } | tail -20 >&2
    [ "$status" -ne 0 ] || status=$code
  else
    echo "[test] $name passed"
  fi
}

# The fault matrix, short: one kill -9 of each of the five parts (and a processor
# crash point) under webhook load, on a stack of its own, then the check
# (tests/chaos/fault_matrix.sh; the long run, 20+ cycles, is in docs/reliability.md).
# Only with the whole suite (no cargo test arguments).
if [ "$#" -eq 0 ]; then
  long_test "fault matrix, short (5 cycles; tests/chaos/fault_matrix.sh)" "fault matrix" \
    "$CM_DATA_DIR/fault-matrix.log" '^\[fault\]|^\|' tests/chaos/fault_matrix.sh 5 6
  # The cluster: ZooKeeper, ClickHouse 2 shards x 2 replicas, two of each binary;
  # load through both ingests while a replica and a processor are killed
  # (tests/cluster/kill_test.sh; docs/deploy.md, "Cluster mode").
  long_test "cluster fault test (tests/cluster/kill_test.sh)" "cluster fault test" \
    "$CM_DATA_DIR/cluster-test.log" '^\[cluster-test\]|^\| (acknowledged calls|stored|lost|doubled)' \
    tests/cluster/kill_test.sh
fi
exit "$status"
