#!/usr/bin/env python3
"""Every SQL statement the project ships must run on current ClickHouse too, not only
on the 18.16 server the integration tests use. This runs them in chdb (ClickHouse
26.9 embedded in Python): each migration file in schemas/migrations, in the order the
migrator applies them, then the read queries the api sends (kept in step with
api/src/call_pages.rs and api/src/dead_letters.rs), the example queries of
docs/analysts.md, and the
statements unit tests store under tests/sql/generated (aggregates, rollup, the
processor's reads), against a
throwaway data directory; and parses (EXPLAIN AST) the migrations as cluster mode
rewrites them (tests/sql/generated/cluster).

Prints one line per statement and a closing `N passed, N failed` line; exits 1 on any
failure."""

import pathlib
import re
import sys
import tempfile

from chdb import session

ROOT = pathlib.Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "schemas" / "migrations"

# The api's queries with their `?` placeholders bound to sample values.
API_QUERIES = [
    # api/src/call_pages.rs: a page's ids from calls_by_time (in a window), the anchor
    # of the first window, a caller's ids, and the calls by (client, id) pairs.
    "SELECT client_id, toString(id) AS call_id FROM calls_by_time FINAL WHERE deleted = 0 AND client_id = 'arroyo' "
    "AND account = 'acme' AND (status = 'duplicate') = 0 "
    "AND (started_at < 1795212202 OR (started_at = 1795212202 AND toString(id) < 'ffffffff')) "
    "AND started_at >= toDateTime(1795208602) ORDER BY started_at DESC, toString(id) DESC LIMIT 51",
    "SELECT count(), toInt64(max(toUnixTimestamp(started_at))) FROM calls_by_time WHERE deleted = 0 AND account = 'acme'",
    "SELECT client_id, toString(id) AS call_id FROM calls_by_caller FINAL WHERE caller = '+14155552671'",
    "SELECT id, version, account, client_id, source, external_id, caller, called, started_at, local_tz, "
    "duration_s, payout, revenue, currency, zip, city, state, campaign, publisher, buyer, tags, status, "
    "is_duplicate, cm_call_id, warnings, received_at, processed_at, raw_id, raw_topic, raw_partition, "
    "raw_offset, mapping_version, connected_duration_s, connected FROM calls FINAL WHERE (client_id, id) IN "
    "(('arroyo', toUUID('8587d290-81f5-5ad5-ad00-8cab09568b1b'))) AND caller = '+14155552671' "
    "ORDER BY started_at DESC, toString(id) DESC LIMIT 51",
    "SELECT raw_id, client_id, source, stage, reason, errors, received_at, failed_at, raw_partition, "
    "raw_offset, payload, account, payload_bytes, payload_sha256 FROM dead_letters FINAL WHERE 1 AND client_id = 'arroyo' "
    "AND (account = 'acme' OR (account = '' AND client_id IN ('arroyo'))) "
    "ORDER BY failed_at DESC, toString(raw_id) DESC LIMIT 50",
    "SELECT raw_id, client_id, source, stage, reason, errors, received_at, failed_at, raw_partition, "
    "raw_offset, payload, account, payload_bytes, payload_sha256 FROM dead_letters FINAL WHERE 1 AND client_id = 'arroyo' "
    "AND replaceRegexpAll(replaceRegexpAll(reason, '[0-9]+', '#'), 'call [^ ,;:]+', 'call …') = "
    "'required field(s) started_at could not be mapped' ORDER BY failed_at DESC, toString(raw_id) DESC LIMIT 20",
    "SELECT count() FROM calls FINAL WHERE client_id = 'arroyo'",
    "SELECT version, name, checksum, applied_at FROM schema_migrations FINAL",
]


def statements(sql: str):
    """The same split as schemas::migrations::Migration::statements."""
    current = []
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        current.append(line)
        if stripped.endswith(";"):
            yield "\n".join(current).strip().rstrip(";").strip()
            current = []
    if current:
        yield "\n".join(current).strip()


def main() -> int:
    files = [MIGRATIONS / "ledger.sql"] + sorted(
        p for p in MIGRATIONS.glob("*.sql") if re.match(r"\d{4}_", p.name)
    ) + [MIGRATIONS / "rollup_backfill.sql"]  # migration 7 appends it
    checks = []
    for path in files:
        for i, statement in enumerate(statements(path.read_text())):
            checks.append((f"{path.name}#{i + 1}", statement))
    checks += [(f"api query #{i + 1}", q) for i, q in enumerate(API_QUERIES)]
    # The analysts' example queries (tests/tests/it/analyst_views.rs checks their
    # answers on 18.16; here they must run).
    doc = (ROOT / "docs" / "analysts.md").read_text()
    for name, query in re.findall(r"```sql\n-- example: (\S+)\n(.*?)\n```", doc, re.S):
        checks.append((f"docs/analysts.md {name}", query))
    # Statements the code generates, stored by unit tests that fail when the code
    # and the stored text differ (runtime::clickhouse::check_sql_snapshot).
    for path in sorted((ROOT / "tests" / "sql" / "generated").glob("*.sql")):
        for i, statement in enumerate(statements(path.read_text())):
            checks.append((f"generated/{path.name}#{i + 1}", statement))

    # The migrations as cluster mode rewrites them (schemas::cluster; stored by a
    # runtime unit test): chdb has no cluster or ZooKeeper to run them on, so current
    # ClickHouse parses each (EXPLAIN AST); 18.16 runs them in tests/cluster/kill_test.sh.
    for path in sorted((ROOT / "tests" / "sql" / "generated" / "cluster").glob("*.sql")):
        for i, statement in enumerate(statements(path.read_text())):
            checks.append((f"generated/cluster/{path.name}#{i + 1} (parsed)", f"EXPLAIN AST {statement}"))

    passed = failed = 0
    with tempfile.TemporaryDirectory() as data:
        s = session.Session(data)
        s.query("CREATE DATABASE IF NOT EXISTS portability")
        s.query("USE portability")
        for name, statement in checks:
            try:
                s.query(statement)
                passed += 1
                print(f"ok    {name}")
            except Exception as error:  # chdb raises its own error types
                failed += 1
                print(f"FAIL  {name}: {error}\n{statement}")
        # A row written the way the processor writes it reads back through FINAL.
        s.query("INSERT INTO calls (id, version, client_id, caller, started_at) VALUES "
                "(generateUUIDv4(), 1, 'arroyo', '+14155552671', 1795212202)")
        rows = s.query("SELECT count() FROM calls FINAL", "CSV").bytes().decode().strip()
        if rows == "1":
            passed += 1
            print("ok    insert and read back through FINAL")
        else:
            failed += 1
            print(f"FAIL  insert and read back through FINAL: got {rows!r}")
    print(f"sql-portability: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
