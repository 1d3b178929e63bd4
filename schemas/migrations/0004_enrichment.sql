-- Enrichment decisions on every call, so a row can say why it has its status: the
-- partner's own word, base qualification, the earlier call that makes it a repeat,
-- how it was linked to a CallMatrix call, and where its local zone came from.
-- Added columns go last; CallRow lists them in this order.
ALTER TABLE calls ADD COLUMN partner_status String;
ALTER TABLE calls ADD COLUMN qualified UInt8;
ALTER TABLE calls ADD COLUMN repeat_of String;
ALTER TABLE calls ADD COLUMN repeat_of_started_at Nullable(DateTime('UTC'));
ALTER TABLE calls ADD COLUMN match_method String;
ALTER TABLE calls ADD COLUMN match_start_delta_s Nullable(Int32);
ALTER TABLE calls ADD COLUMN match_duration_delta_s Nullable(Int32);
ALTER TABLE calls ADD COLUMN tz_source String;
-- A caller's calls, sorted for the processor's repeat-caller lookups: `calls` is
-- sorted by (client_id, id), which cannot find one caller's calls without a scan.
-- Filled by the view below on every insert into `calls`; read with FINAL.
CREATE TABLE IF NOT EXISTS calls_by_caller
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
ENGINE = ReplacingMergeTree(version)
ORDER BY (account, caller, id);
CREATE MATERIALIZED VIEW IF NOT EXISTS calls_by_caller_feed TO calls_by_caller AS
SELECT account, caller, id, version, client_id, started_at, campaign, buyer, duration_s,
       connected_duration_s, connected, qualified, repeat_of
FROM calls;
INSERT INTO calls_by_caller
SELECT account, caller, id, version, client_id, started_at, campaign, buyer, duration_s,
       connected_duration_s, connected, qualified, repeat_of
FROM calls;
-- The numbers CallMatrix manages (latest state per number).
CREATE TABLE IF NOT EXISTS cm_numbers
(
    number String,
    account String,
    campaign String,
    active UInt8,
    updated_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY number;
-- The calls CallMatrix routed itself, sorted for matching partner records on the
-- same number.
CREATE TABLE IF NOT EXISTS cm_calls
(
    cm_call_id String,
    caller String,
    called String,
    started_at DateTime('UTC'),
    duration_s UInt32,
    payout Nullable(Decimal(18, 4)),
    received_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(received_at)
ORDER BY (called, caller, cm_call_id);
