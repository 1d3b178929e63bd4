CREATE TABLE IF NOT EXISTS callmatrix.schema_migrations ON CLUSTER callmatrix
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/callmatrix/tables/all/callmatrix/schema_migrations', '{replica}')
ORDER BY version;
CREATE TABLE IF NOT EXISTS callmatrix.calls_shard ON CLUSTER callmatrix
(
    id UUID,
    version UInt64,
    account String,
    client_id String,
    source Enum8('webhook' = 1, 'poll' = 2, 'csv' = 3),
    external_id String,
    caller String,
    called String,
    started_at DateTime('UTC'),
    local_tz String,
    duration_s Nullable(UInt32),
    payout Nullable(Decimal(18, 4)),
    revenue Nullable(Decimal(18, 4)),
    currency String,
    zip String,
    city String,
    state String,
    campaign String,
    publisher String,
    buyer String,
    tags Array(String),
    status String,
    is_duplicate UInt8,
    cm_call_id String,
    warnings Array(String),
    received_at DateTime('UTC'),
    processed_at DateTime('UTC'),
    raw_id UUID,
    raw_topic String,
    raw_partition Int32,
    raw_offset Int64,
    mapping_version UInt32
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/callmatrix/tables/{shard}/callmatrix/calls_shard', '{replica}', version)
ORDER BY (client_id, id);
CREATE TABLE IF NOT EXISTS callmatrix.calls ON CLUSTER callmatrix AS callmatrix.calls_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_shard, cityHash64(toString(id)));
CREATE TABLE IF NOT EXISTS callmatrix.dead_letters_shard ON CLUSTER callmatrix
(
    raw_id UUID,
    client_id String,
    source Enum8('webhook' = 1, 'poll' = 2, 'csv' = 3),
    stage String,
    reason String,
    errors Array(String),
    received_at DateTime('UTC'),
    failed_at DateTime('UTC'),
    raw_partition Int32,
    raw_offset Int64,
    payload String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/callmatrix/tables/{shard}/callmatrix/dead_letters_shard', '{replica}', failed_at)
ORDER BY (client_id, raw_id);
CREATE TABLE IF NOT EXISTS callmatrix.dead_letters ON CLUSTER callmatrix AS callmatrix.dead_letters_shard
ENGINE = Distributed(callmatrix, callmatrix, dead_letters_shard, cityHash64(client_id, toString(raw_id)));
ALTER TABLE callmatrix.calls_shard ON CLUSTER callmatrix ADD COLUMN connected_duration_s Nullable(UInt32);
DROP TABLE IF EXISTS callmatrix.calls ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls ON CLUSTER callmatrix AS callmatrix.calls_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_shard, cityHash64(toString(id)));
ALTER TABLE callmatrix.calls_shard ON CLUSTER callmatrix ADD COLUMN connected Nullable(UInt8);
DROP TABLE IF EXISTS callmatrix.calls ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls ON CLUSTER callmatrix AS callmatrix.calls_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_shard, cityHash64(toString(id)));
ALTER TABLE callmatrix.calls_shard ON CLUSTER callmatrix ADD COLUMN partner_status String;
DROP TABLE IF EXISTS callmatrix.calls ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls ON CLUSTER callmatrix AS callmatrix.calls_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_shard, cityHash64(toString(id)));
ALTER TABLE callmatrix.calls_shard ON CLUSTER callmatrix ADD COLUMN qualified UInt8;
DROP TABLE IF EXISTS callmatrix.calls ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls ON CLUSTER callmatrix AS callmatrix.calls_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_shard, cityHash64(toString(id)));
ALTER TABLE callmatrix.calls_shard ON CLUSTER callmatrix ADD COLUMN repeat_of String;
DROP TABLE IF EXISTS callmatrix.calls ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls ON CLUSTER callmatrix AS callmatrix.calls_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_shard, cityHash64(toString(id)));
ALTER TABLE callmatrix.calls_shard ON CLUSTER callmatrix ADD COLUMN repeat_of_started_at Nullable(DateTime('UTC'));
DROP TABLE IF EXISTS callmatrix.calls ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls ON CLUSTER callmatrix AS callmatrix.calls_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_shard, cityHash64(toString(id)));
ALTER TABLE callmatrix.calls_shard ON CLUSTER callmatrix ADD COLUMN match_method String;
DROP TABLE IF EXISTS callmatrix.calls ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls ON CLUSTER callmatrix AS callmatrix.calls_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_shard, cityHash64(toString(id)));
ALTER TABLE callmatrix.calls_shard ON CLUSTER callmatrix ADD COLUMN match_start_delta_s Nullable(Int32);
DROP TABLE IF EXISTS callmatrix.calls ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls ON CLUSTER callmatrix AS callmatrix.calls_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_shard, cityHash64(toString(id)));
ALTER TABLE callmatrix.calls_shard ON CLUSTER callmatrix ADD COLUMN match_duration_delta_s Nullable(Int32);
DROP TABLE IF EXISTS callmatrix.calls ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls ON CLUSTER callmatrix AS callmatrix.calls_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_shard, cityHash64(toString(id)));
ALTER TABLE callmatrix.calls_shard ON CLUSTER callmatrix ADD COLUMN tz_source String;
DROP TABLE IF EXISTS callmatrix.calls ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls ON CLUSTER callmatrix AS callmatrix.calls_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_shard, cityHash64(toString(id)));
CREATE TABLE IF NOT EXISTS callmatrix.calls_by_caller_shard ON CLUSTER callmatrix
(
    account String,
    caller String,
    id UUID,
    version UInt64,
    client_id String,
    started_at DateTime('UTC'),
    campaign String,
    buyer String,
    duration_s Nullable(UInt32),
    connected_duration_s Nullable(UInt32),
    connected Nullable(UInt8),
    qualified UInt8,
    repeat_of String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/callmatrix/tables/{shard}/callmatrix/calls_by_caller_shard', '{replica}', version)
ORDER BY (account, caller, id);
CREATE TABLE IF NOT EXISTS callmatrix.calls_by_caller ON CLUSTER callmatrix AS callmatrix.calls_by_caller_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_by_caller_shard, cityHash64(toString(id)));
CREATE MATERIALIZED VIEW IF NOT EXISTS callmatrix.calls_by_caller_feed ON CLUSTER callmatrix TO callmatrix.calls_by_caller_shard AS
SELECT account, caller, id, version, client_id, started_at, campaign, buyer, duration_s,
       connected_duration_s, connected, qualified, repeat_of
FROM callmatrix.calls_shard;
INSERT INTO callmatrix.calls_by_caller
SELECT account, caller, id, version, client_id, started_at, campaign, buyer, duration_s,
       connected_duration_s, connected, qualified, repeat_of
FROM callmatrix.calls;
CREATE TABLE IF NOT EXISTS callmatrix.cm_numbers_shard ON CLUSTER callmatrix
(
    number String,
    account String,
    campaign String,
    active UInt8,
    updated_at DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/callmatrix/tables/{shard}/callmatrix/cm_numbers_shard', '{replica}', updated_at)
ORDER BY number;
CREATE TABLE IF NOT EXISTS callmatrix.cm_numbers ON CLUSTER callmatrix AS callmatrix.cm_numbers_shard
ENGINE = Distributed(callmatrix, callmatrix, cm_numbers_shard, cityHash64(number));
CREATE TABLE IF NOT EXISTS callmatrix.cm_calls_shard ON CLUSTER callmatrix
(
    cm_call_id String,
    caller String,
    called String,
    started_at DateTime('UTC'),
    duration_s UInt32,
    payout Nullable(Decimal(18, 4)),
    received_at DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/callmatrix/tables/{shard}/callmatrix/cm_calls_shard', '{replica}', received_at)
ORDER BY (called, caller, cm_call_id);
CREATE TABLE IF NOT EXISTS callmatrix.cm_calls ON CLUSTER callmatrix AS callmatrix.cm_calls_shard
ENGINE = Distributed(callmatrix, callmatrix, cm_calls_shard, cityHash64(called, caller, cm_call_id));
CREATE TABLE IF NOT EXISTS callmatrix.calls_by_time_shard ON CLUSTER callmatrix
(
    account String,
    started_at DateTime('UTC'),
    client_id String,
    id UUID,
    version UInt64,
    deleted UInt8,
    source Enum8('webhook' = 1, 'poll' = 2, 'csv' = 3),
    duration_s Nullable(UInt32),
    payout Nullable(Decimal(18, 4)),
    revenue Nullable(Decimal(18, 4)),
    campaign String,
    publisher String,
    state String,
    status String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/callmatrix/tables/{shard}/callmatrix/calls_by_time_shard', '{replica}', version)
PARTITION BY toYYYYMM(started_at)
ORDER BY (account, started_at, client_id, id);
CREATE TABLE IF NOT EXISTS callmatrix.calls_by_time ON CLUSTER callmatrix AS callmatrix.calls_by_time_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_by_time_shard, cityHash64(toString(id)));
CREATE MATERIALIZED VIEW IF NOT EXISTS callmatrix.calls_by_time_feed ON CLUSTER callmatrix TO callmatrix.calls_by_time_shard AS
SELECT account, started_at, client_id, id, version, toUInt8(0) AS deleted, source, duration_s,
       payout, revenue, campaign, publisher, state, status
FROM callmatrix.calls_shard;
INSERT INTO callmatrix.calls_by_time
SELECT account, started_at, client_id, id, version, toUInt8(0) AS deleted, source, duration_s,
       payout, revenue, campaign, publisher, state, status
FROM callmatrix.calls;
CREATE TABLE IF NOT EXISTS callmatrix.calls_hourly_shard ON CLUSTER callmatrix
(
    account String,
    hour DateTime('UTC'),
    status String,
    version UInt64,
    calls UInt64,
    payout Decimal(38, 4),
    revenue Decimal(38, 4),
    total_duration_s UInt64,
    duration_count UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/callmatrix/tables/{shard}/callmatrix/calls_hourly_shard', '{replica}', version)
ORDER BY (account, hour, status);
CREATE TABLE IF NOT EXISTS callmatrix.calls_hourly ON CLUSTER callmatrix AS callmatrix.calls_hourly_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_hourly_shard, cityHash64(account, hour));
CREATE TABLE IF NOT EXISTS callmatrix.calls_hourly_dims_shard ON CLUSTER callmatrix
(
    dimension String,
    account String,
    hour DateTime('UTC'),
    value String,
    status String,
    version UInt64,
    calls UInt64,
    payout Decimal(38, 4),
    revenue Decimal(38, 4),
    total_duration_s UInt64,
    duration_count UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/callmatrix/tables/{shard}/callmatrix/calls_hourly_dims_shard', '{replica}', version)
ORDER BY (dimension, account, hour, value, status);
CREATE TABLE IF NOT EXISTS callmatrix.calls_hourly_dims ON CLUSTER callmatrix AS callmatrix.calls_hourly_dims_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_hourly_dims_shard, cityHash64(dimension, account, hour));
INSERT INTO callmatrix.calls_hourly
SELECT account, toStartOfHour(started_at) AS hour, status, 0 AS version, count() AS calls,
       sum(ifNull(payout, toDecimal64(0, 4))) AS payout, sum(ifNull(revenue, toDecimal64(0, 4))) AS revenue,
       sum(ifNull(duration_s, 0)) AS total_duration_s, count(duration_s) AS duration_count
FROM callmatrix.calls_by_time FINAL
WHERE deleted = 0
GROUP BY account, hour, status;
INSERT INTO callmatrix.calls_hourly_dims
SELECT tupleElement(dv, 1) AS dimension, account, toStartOfHour(started_at) AS hour, tupleElement(dv, 2) AS value,
       status, 0 AS version, count() AS calls,
       sum(ifNull(payout, toDecimal64(0, 4))) AS payout, sum(ifNull(revenue, toDecimal64(0, 4))) AS revenue,
       sum(ifNull(duration_s, 0)) AS total_duration_s, count(duration_s) AS duration_count
FROM callmatrix.calls_by_time FINAL
ARRAY JOIN [('client_id', client_id), ('source', toString(source)), ('campaign', campaign), ('publisher', publisher), ('state', state)] AS dv
WHERE deleted = 0
GROUP BY dimension, account, hour, value, status;
ALTER TABLE callmatrix.dead_letters_shard ON CLUSTER callmatrix ADD COLUMN account String DEFAULT '';
DROP TABLE IF EXISTS callmatrix.dead_letters ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.dead_letters ON CLUSTER callmatrix AS callmatrix.dead_letters_shard
ENGINE = Distributed(callmatrix, callmatrix, dead_letters_shard, cityHash64(client_id, toString(raw_id)));
ALTER TABLE callmatrix.calls_shard ON CLUSTER callmatrix ADD COLUMN caller_withheld UInt8 DEFAULT 0;
DROP TABLE IF EXISTS callmatrix.calls ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls ON CLUSTER callmatrix AS callmatrix.calls_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_shard, cityHash64(toString(id)));
CREATE VIEW IF NOT EXISTS callmatrix.calls_current ON CLUSTER callmatrix AS
SELECT id, account, client_id, source, external_id, caller, caller_withheld, called,
       started_at, local_tz, tz_source, duration_s, connected, connected_duration_s,
       payout, revenue, currency, zip, city, state, campaign, publisher, buyer, tags,
       status, partner_status, qualified, is_duplicate, cm_call_id, match_method,
       match_start_delta_s, match_duration_delta_s, repeat_of, repeat_of_started_at,
       warnings, mapping_version, received_at, processed_at, raw_id
FROM callmatrix.calls FINAL;
CREATE VIEW IF NOT EXISTS callmatrix.calls_by_start ON CLUSTER callmatrix AS
SELECT account, started_at, client_id, id,
       argMax(source, version) AS source,
       tupleElement(argMax(tuple(duration_s), version), 1) AS duration_s,
       tupleElement(argMax(tuple(payout), version), 1) AS payout,
       tupleElement(argMax(tuple(revenue), version), 1) AS revenue,
       argMax(campaign, version) AS campaign,
       argMax(publisher, version) AS publisher,
       argMax(state, version) AS state,
       argMax(status, version) AS status
FROM callmatrix.calls_by_time
GROUP BY account, started_at, client_id, id
HAVING argMax(deleted, version) = 0;
CREATE VIEW IF NOT EXISTS callmatrix.hourly_totals ON CLUSTER callmatrix AS
SELECT account, hour, status, calls, payout, revenue, total_duration_s, duration_count
FROM callmatrix.calls_hourly FINAL
WHERE status != ''
  AND (account, hour, version) IN
      (SELECT account, hour, max(version) FROM callmatrix.calls_hourly GROUP BY account, hour);
CREATE VIEW IF NOT EXISTS callmatrix.hourly_totals_by_dimension ON CLUSTER callmatrix AS
SELECT dimension, account, hour, value, status, calls, payout, revenue,
       total_duration_s, duration_count
FROM callmatrix.calls_hourly_dims FINAL
WHERE status != ''
  AND (dimension, account, hour, version) IN
      (SELECT dimension, account, hour, max(version) FROM callmatrix.calls_hourly_dims
       GROUP BY dimension, account, hour);
CREATE VIEW IF NOT EXISTS callmatrix.dead_letters_current ON CLUSTER callmatrix AS
SELECT raw_id, account, client_id, source, stage, reason, errors, received_at,
       failed_at, payload
FROM callmatrix.dead_letters FINAL;
ALTER TABLE callmatrix.calls_by_time_shard ON CLUSTER callmatrix ADD COLUMN buyer String DEFAULT '';
DROP TABLE IF EXISTS callmatrix.calls_by_time ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls_by_time ON CLUSTER callmatrix AS callmatrix.calls_by_time_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_by_time_shard, cityHash64(toString(id)));
ALTER TABLE callmatrix.calls_by_time_shard ON CLUSTER callmatrix ADD COLUMN linked UInt8 DEFAULT 0;
DROP TABLE IF EXISTS callmatrix.calls_by_time ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls_by_time ON CLUSTER callmatrix AS callmatrix.calls_by_time_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_by_time_shard, cityHash64(toString(id)));
ALTER TABLE callmatrix.calls_hourly_shard ON CLUSTER callmatrix ADD COLUMN linked UInt64 DEFAULT 0;
DROP TABLE IF EXISTS callmatrix.calls_hourly ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls_hourly ON CLUSTER callmatrix AS callmatrix.calls_hourly_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_hourly_shard, cityHash64(account, hour));
ALTER TABLE callmatrix.calls_hourly_dims_shard ON CLUSTER callmatrix ADD COLUMN linked UInt64 DEFAULT 0;
DROP TABLE IF EXISTS callmatrix.calls_hourly_dims ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls_hourly_dims ON CLUSTER callmatrix AS callmatrix.calls_hourly_dims_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_hourly_dims_shard, cityHash64(dimension, account, hour));
DROP TABLE IF EXISTS callmatrix.calls_by_time_feed ON CLUSTER callmatrix;
CREATE MATERIALIZED VIEW IF NOT EXISTS callmatrix.calls_by_time_feed ON CLUSTER callmatrix TO callmatrix.calls_by_time_shard AS
SELECT account, started_at, client_id, id, version, toUInt8(0) AS deleted, source, duration_s,
       payout, revenue, campaign, publisher, state, status, buyer, toUInt8(cm_call_id != '') AS linked
FROM callmatrix.calls_shard;
INSERT INTO callmatrix.calls_by_time
SELECT account, started_at, client_id, id, version, toUInt8(0) AS deleted, source, duration_s,
       payout, revenue, campaign, publisher, state, status, buyer, toUInt8(cm_call_id != '') AS linked
FROM callmatrix.calls;
INSERT INTO callmatrix.calls_hourly
SELECT account, hour, status, v.version, calls, payout, revenue, total_duration_s, duration_count, linked
FROM
(
    SELECT account, toStartOfHour(started_at) AS hour, status, count() AS calls,
           sum(ifNull(payout, toDecimal64(0, 4))) AS payout, sum(ifNull(revenue, toDecimal64(0, 4))) AS revenue,
           sum(ifNull(duration_s, 0)) AS total_duration_s, count(duration_s) AS duration_count, sum(linked) AS linked
    FROM callmatrix.calls_by_time FINAL
    WHERE deleted = 0
    GROUP BY account, hour, status
) AS r
ANY LEFT JOIN
(
    SELECT account, hour, max(version) AS version FROM callmatrix.calls_hourly GROUP BY account, hour
) AS v USING (account, hour);
INSERT INTO callmatrix.calls_hourly_dims
SELECT dimension, account, hour, value, status, v.version, calls, payout, revenue, total_duration_s, duration_count, linked
FROM
(
    SELECT tupleElement(dv, 1) AS dimension, account, toStartOfHour(started_at) AS hour, tupleElement(dv, 2) AS value,
           status, count() AS calls,
           sum(ifNull(payout, toDecimal64(0, 4))) AS payout, sum(ifNull(revenue, toDecimal64(0, 4))) AS revenue,
           sum(ifNull(duration_s, 0)) AS total_duration_s, count(duration_s) AS duration_count, sum(linked) AS linked
    FROM callmatrix.calls_by_time FINAL
    ARRAY JOIN [('client_id', client_id), ('source', toString(source)), ('campaign', campaign), ('publisher', publisher), ('state', state), ('buyer', buyer)] AS dv
    WHERE deleted = 0
    GROUP BY dimension, account, hour, value, status
) AS r
ANY LEFT JOIN
(
    SELECT dimension, account, hour, max(version) AS version FROM callmatrix.calls_hourly_dims GROUP BY dimension, account, hour
) AS v USING (dimension, account, hour);
CREATE TABLE IF NOT EXISTS callmatrix.call_ids_shard ON CLUSTER callmatrix
(
    client_id String,
    id UUID
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/callmatrix/tables/{shard}/callmatrix/call_ids_shard', '{replica}')
ORDER BY (client_id, id)
SETTINGS index_granularity = 256;
CREATE TABLE IF NOT EXISTS callmatrix.call_ids ON CLUSTER callmatrix AS callmatrix.call_ids_shard
ENGINE = Distributed(callmatrix, callmatrix, call_ids_shard, cityHash64(toString(id)));
CREATE MATERIALIZED VIEW IF NOT EXISTS callmatrix.call_ids_feed ON CLUSTER callmatrix TO callmatrix.call_ids_shard AS
SELECT client_id, id
FROM callmatrix.calls_shard;
INSERT INTO callmatrix.call_ids
SELECT client_id, id
FROM callmatrix.calls;
ALTER TABLE callmatrix.dead_letters_shard ON CLUSTER callmatrix ADD COLUMN payload_bytes UInt64 DEFAULT 0;
DROP TABLE IF EXISTS callmatrix.dead_letters ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.dead_letters ON CLUSTER callmatrix AS callmatrix.dead_letters_shard
ENGINE = Distributed(callmatrix, callmatrix, dead_letters_shard, cityHash64(client_id, toString(raw_id)));
ALTER TABLE callmatrix.dead_letters_shard ON CLUSTER callmatrix ADD COLUMN payload_sha256 String DEFAULT '';
DROP TABLE IF EXISTS callmatrix.dead_letters ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.dead_letters ON CLUSTER callmatrix AS callmatrix.dead_letters_shard
ENGINE = Distributed(callmatrix, callmatrix, dead_letters_shard, cityHash64(client_id, toString(raw_id)));
ALTER TABLE callmatrix.cm_calls_shard ON CLUSTER callmatrix ADD COLUMN account String DEFAULT '';
DROP TABLE IF EXISTS callmatrix.cm_calls ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.cm_calls ON CLUSTER callmatrix AS callmatrix.cm_calls_shard
ENGINE = Distributed(callmatrix, callmatrix, cm_calls_shard, cityHash64(called, caller, cm_call_id));
CREATE TABLE IF NOT EXISTS callmatrix.filtered_records_shard ON CLUSTER callmatrix
(
    account String,
    client_id String,
    reason String,
    raw_id UUID,
    received_at DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/callmatrix/tables/{shard}/callmatrix/filtered_records_shard', '{replica}')
PARTITION BY toYYYYMM(received_at)
ORDER BY (account, client_id, reason, raw_id);
CREATE TABLE IF NOT EXISTS callmatrix.filtered_records ON CLUSTER callmatrix AS callmatrix.filtered_records_shard
ENGINE = Distributed(callmatrix, callmatrix, filtered_records_shard, cityHash64(client_id, toString(raw_id)));
ALTER TABLE callmatrix.calls_shard ON CLUSTER callmatrix ADD COLUMN attr_keys Array(String);
DROP TABLE IF EXISTS callmatrix.calls ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls ON CLUSTER callmatrix AS callmatrix.calls_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_shard, cityHash64(toString(id)));
ALTER TABLE callmatrix.calls_shard ON CLUSTER callmatrix ADD COLUMN attr_types Array(Enum8('string' = 1, 'number' = 2, 'boolean' = 3, 'time' = 4));
DROP TABLE IF EXISTS callmatrix.calls ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls ON CLUSTER callmatrix AS callmatrix.calls_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_shard, cityHash64(toString(id)));
ALTER TABLE callmatrix.calls_shard ON CLUSTER callmatrix ADD COLUMN attr_values Array(String);
DROP TABLE IF EXISTS callmatrix.calls ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls ON CLUSTER callmatrix AS callmatrix.calls_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_shard, cityHash64(toString(id)));
ALTER TABLE callmatrix.calls_by_time_shard ON CLUSTER callmatrix ADD COLUMN attr_keys Array(String);
DROP TABLE IF EXISTS callmatrix.calls_by_time ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls_by_time ON CLUSTER callmatrix AS callmatrix.calls_by_time_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_by_time_shard, cityHash64(toString(id)));
ALTER TABLE callmatrix.calls_by_time_shard ON CLUSTER callmatrix ADD COLUMN attr_values Array(String);
DROP TABLE IF EXISTS callmatrix.calls_by_time ON CLUSTER callmatrix;
CREATE TABLE IF NOT EXISTS callmatrix.calls_by_time ON CLUSTER callmatrix AS callmatrix.calls_by_time_shard
ENGINE = Distributed(callmatrix, callmatrix, calls_by_time_shard, cityHash64(toString(id)));
DROP TABLE IF EXISTS callmatrix.calls_by_time_feed ON CLUSTER callmatrix;
CREATE MATERIALIZED VIEW IF NOT EXISTS callmatrix.calls_by_time_feed ON CLUSTER callmatrix TO callmatrix.calls_by_time_shard AS
SELECT account, started_at, client_id, id, version, toUInt8(0) AS deleted, source, duration_s,
       payout, revenue, campaign, publisher, state, status, buyer, toUInt8(cm_call_id != '') AS linked,
       attr_keys, attr_values
FROM callmatrix.calls_shard;
INSERT INTO callmatrix.calls_by_time
SELECT account, started_at, client_id, id, version, toUInt8(0) AS deleted, source, duration_s,
       payout, revenue, campaign, publisher, state, status, buyer, toUInt8(cm_call_id != '') AS linked,
       attr_keys, attr_values
FROM callmatrix.calls
WHERE processed_at >= now() - INTERVAL 1 DAY;
DROP TABLE IF EXISTS callmatrix.calls_current ON CLUSTER callmatrix;
CREATE VIEW IF NOT EXISTS callmatrix.calls_current ON CLUSTER callmatrix AS
SELECT id, account, client_id, source, external_id, caller, caller_withheld, called,
       started_at, local_tz, tz_source, duration_s, connected, connected_duration_s,
       payout, revenue, currency, zip, city, state, campaign, publisher, buyer, tags,
       status, partner_status, qualified, is_duplicate, cm_call_id, match_method,
       match_start_delta_s, match_duration_delta_s, repeat_of, repeat_of_started_at,
       warnings, mapping_version, received_at, processed_at, raw_id,
       attr_keys, attr_types, attr_values
FROM callmatrix.calls FINAL;
DROP TABLE IF EXISTS callmatrix.calls_by_start ON CLUSTER callmatrix;
CREATE VIEW IF NOT EXISTS callmatrix.calls_by_start ON CLUSTER callmatrix AS
SELECT account, started_at, client_id, id,
       argMax(source, version) AS source,
       tupleElement(argMax(tuple(duration_s), version), 1) AS duration_s,
       tupleElement(argMax(tuple(payout), version), 1) AS payout,
       tupleElement(argMax(tuple(revenue), version), 1) AS revenue,
       argMax(campaign, version) AS campaign,
       argMax(publisher, version) AS publisher,
       argMax(state, version) AS state,
       argMax(status, version) AS status,
       argMax(buyer, version) AS buyer,
       argMax(attr_keys, version) AS attr_keys,
       argMax(attr_values, version) AS attr_values
FROM callmatrix.calls_by_time
GROUP BY account, started_at, client_id, id
HAVING argMax(deleted, version) = 0;
CREATE TABLE IF NOT EXISTS callmatrix.audit_log ON CLUSTER callmatrix
(
    account String,
    at DateTime('UTC'),
    id UUID,
    at_ms UInt64,
    seq UInt64,
    client_id String,
    action String,
    actor String,
    role String,
    source String,
    version UInt32,
    changes String,
    detail String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/callmatrix/tables/all/callmatrix/audit_log', '{replica}')
PARTITION BY toYYYYMM(at)
ORDER BY (account, at, id);
CREATE TABLE IF NOT EXISTS callmatrix.retention_runs ON CLUSTER callmatrix
(
    account String,
    started_at DateTime('UTC'),
    finished_at DateTime('UTC'),
    personal_cutoff UInt32,
    dead_letter_cutoff UInt32,
    calls_changed UInt64,
    dead_letters_deleted UInt64,
    outcome String
)
ENGINE = ReplicatedMergeTree('/clickhouse/callmatrix/tables/all/callmatrix/retention_runs', '{replica}')
PARTITION BY toYYYYMM(started_at)
ORDER BY (account, started_at);
CREATE TABLE IF NOT EXISTS callmatrix.source_keys_shard ON CLUSTER callmatrix
(
    account String,
    client_id String,
    path String,
    kind String,
    hour DateTime('UTC'),
    first_seen DateTime('UTC'),
    raw_id UUID
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/callmatrix/tables/{shard}/callmatrix/source_keys_shard', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (account, client_id, path, kind, hour);
CREATE TABLE IF NOT EXISTS callmatrix.source_keys ON CLUSTER callmatrix AS callmatrix.source_keys_shard
ENGINE = Distributed(callmatrix, callmatrix, source_keys_shard, cityHash64(account, client_id));
CREATE TABLE IF NOT EXISTS callmatrix.erasures ON CLUSTER callmatrix
(
    id UUID,
    account String,
    requested_by String,
    started_at DateTime('UTC'),
    finished_at DateTime('UTC'),
    places Array(String),
    rows Array(UInt64),
    outcome String
)
ENGINE = ReplicatedMergeTree('/clickhouse/callmatrix/tables/all/callmatrix/erasures', '{replica}')
PARTITION BY toYYYYMM(started_at)
ORDER BY (account, started_at, id);
ALTER TABLE callmatrix.erasures ADD COLUMN topics_clear_by DateTime('UTC');
INSERT INTO callmatrix.calls_hourly
SELECT account, toStartOfHour(started_at) AS hour, status, 0 AS version, count() AS calls,
       sum(ifNull(payout, toDecimal64(0, 4))) AS payout, sum(ifNull(revenue, toDecimal64(0, 4))) AS revenue,
       sum(ifNull(duration_s, 0)) AS total_duration_s, count(duration_s) AS duration_count, sum(linked) AS linked
FROM callmatrix.calls_by_time FINAL
WHERE deleted = 0
GROUP BY account, hour, status;
INSERT INTO callmatrix.calls_hourly_dims
SELECT tupleElement(dv, 1) AS dimension, account, toStartOfHour(started_at) AS hour, tupleElement(dv, 2) AS value,
       status, 0 AS version, count() AS calls,
       sum(ifNull(payout, toDecimal64(0, 4))) AS payout, sum(ifNull(revenue, toDecimal64(0, 4))) AS revenue,
       sum(ifNull(duration_s, 0)) AS total_duration_s, count(duration_s) AS duration_count, sum(linked) AS linked
FROM callmatrix.calls_by_time FINAL
ARRAY JOIN [('client_id', client_id), ('source', toString(source)), ('campaign', campaign), ('publisher', publisher), ('state', state), ('buyer', buyer)] AS dv
WHERE deleted = 0
GROUP BY dimension, account, hour, value, status;
