-- Whether a call connected, and for how long after connecting: trackers measure
-- qualification on the connected duration (the caller's wait and IVR excluded).
-- Added columns go last; CallRow lists them in this order.
ALTER TABLE calls ADD COLUMN connected_duration_s Nullable(UInt32);
ALTER TABLE calls ADD COLUMN connected Nullable(UInt8);
