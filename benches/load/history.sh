# Sourced by history_scale.sh and takeover.sh: SIZE calls of ACCOUNT inserted
# straight into `calls` of database DB (its views fill `calls_by_caller`,
# `calls_by_time`, `call_ids`), callers from a pool of 5M numbers, starts spread over
# the 30 days before BASE, with the repeat decisions the processor would have
# stored; then `cmctl state build` (the migration path), timed. Needs q (a query
# to DB), ACCOUNT, BASE and TARGET_DIR.
insert_history() {
  local SIZE="$1" t from n
  t=$(date +%s.%N)
  # In slices of 1M rows (ClickHouse's memory, and progress); intHash32 spreads the
  # calls over the callers, about two each for 10M calls.
  for ((from = 0; from < SIZE; from += 1000000)); do
    n=$(( SIZE - from < 1000000 ? SIZE - from : 1000000 ))
    q "INSERT INTO calls (id, version, account, client_id, source, external_id, caller, called, started_at,
         local_tz, duration_s, payout, currency, campaign, tags, status, qualified, received_at, processed_at,
         raw_id, raw_topic, raw_partition, raw_offset, mapping_version, tz_source)
       SELECT generateUUIDv4(), 1, '$ACCOUNT', 'arroyo', 'webhook', concat('hist_', toString(number)),
         concat('+1', toString(arrayElement([212, 312, 415, 617, 713, 305, 404, 503, 602, 702], k % 10 + 1)),
                toString(220 + intDiv(intDiv(k, 10), 10000)), substring(toString(10000 + intDiv(k, 10) % 10000), 2, 4)),
         '+18885550100', toDateTime($BASE - 1 - (number * 7) % (30 * 86400)), 'America/New_York', 252,
         toDecimal64(45, 4), 'USD', 'Auto CA', ['auto'], 'qualified', 1, now(), now(), generateUUIDv4(),
         'history', 0, toInt64(number), 1, 'area_code'
       FROM (SELECT number, intHash32(number) % 5000000 AS k FROM system.numbers LIMIT $from, $n)"
    echo "  history: $((from + n)) calls inserted ($(python3 -c "print(f'{$(date +%s.%N) - $t:.0f}')") s)"
  done
  # The repeat decisions the processor would have stored (the default rule: 30 days,
  # the account, connected calls; every history call is connected and within 30
  # days of the caller's previous one): a history without them is decided again
  # the first time its caller calls, which rewrites old calls and dirties their
  # hours, a cost a real deployment does not have.
  q "INSERT INTO calls (id, version, account, client_id, source, external_id, caller, called, started_at,
       local_tz, duration_s, payout, currency, campaign, tags, status, qualified, received_at, processed_at,
       raw_id, raw_topic, raw_partition, raw_offset, mapping_version, tz_source, repeat_of, repeat_of_started_at)
     SELECT id, 2, account, client_id, source, external_id, caller, called, started_at,
       local_tz, duration_s, payout, currency, campaign, tags, status, qualified, received_at, processed_at,
       raw_id, raw_topic, raw_partition, raw_offset, mapping_version, tz_source, prev_id, prev_start
     FROM calls ANY INNER JOIN (
       SELECT tupleElement(t, 1) AS id, tupleElement(t, 2) AS prev_id, tupleElement(t, 3) AS prev_start
       FROM (SELECT arraySort(x -> (tupleElement(x, 2), tupleElement(x, 1)), groupArray((id, started_at))) AS s
             FROM calls GROUP BY caller HAVING count() > 1)
       ARRAY JOIN arrayMap(i -> (tupleElement(s[i], 1), toString(tupleElement(s[i - 1], 1)), tupleElement(s[i - 1], 2)),
                           arraySlice(arrayEnumerate(s), 2)) AS t) USING id"
  echo "  history: $(q "SELECT count() FROM calls FINAL WHERE repeat_of != ''") calls marked repeats of the caller's previous one"
  echo "  history: $(q "SELECT count() FROM calls") rows in calls, $(q "SELECT uniqExact(caller) FROM calls_by_caller") callers"
  t=$(date +%s.%N)
  "$TARGET_DIR/release/cmctl" state build 2>&1 | sed 's/^/  /'
  echo "  cmctl state build: $(python3 -c "print(f'{$(date +%s.%N) - $t:.0f}')") s"
}
