-- Calls from callers who withheld their number ("anonymous", "restricted",
-- "unavailable"): stored as calls with an empty `caller` and this flag, instead
-- of dead letters. Added columns go last; CallRow lists them in this order.
ALTER TABLE calls ADD COLUMN caller_withheld UInt8 DEFAULT 0;
