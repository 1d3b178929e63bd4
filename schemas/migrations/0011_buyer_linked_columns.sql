-- The buyer as an aggregate dimension, and calls linked to a CallMatrix call as a
-- measure (the dashboard's side-by-side tables): columns only. 18.16 has no
-- `ADD COLUMN IF NOT EXISTS`, so the ALTERs are a migration of their own and the
-- slow part (migration 12) can be run again after a failure. Added columns go last:
-- the rollup statements insert by position.
ALTER TABLE calls_by_time ADD COLUMN buyer String DEFAULT '';
ALTER TABLE calls_by_time ADD COLUMN linked UInt8 DEFAULT 0;
ALTER TABLE calls_hourly ADD COLUMN linked UInt64 DEFAULT 0;
ALTER TABLE calls_hourly_dims ADD COLUMN linked UInt64 DEFAULT 0;
