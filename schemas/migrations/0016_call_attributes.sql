-- Custom attributes (schemas/src/attribute.rs): a mapping's named values beside the
-- canonical fields, as three parallel arrays sorted by name. An analyst reads one
-- with `attr_values[indexOf(attr_keys, 'publisherSubId')]` ('' when a call has
-- none) and groups by it like any column; `ARRAY JOIN attr_keys, attr_values`
-- lists them all.
--
-- Why arrays: ClickHouse 18.16 has no `Map` (21.1+), and a `Nested` column is the
-- same arrays under dotted names that the client crate's inserts do not quote; a
-- JSON text column would be parsed again on every row a query reads; a column per
-- attribute would make every partner's new key an ALTER. The arrays of a call are
-- read only by queries that name them.
--
-- Only ALTERs here: 18.16 has no `ADD COLUMN IF NOT EXISTS`, so the rest (which
-- can run again) is migration 17. Added columns go last; CallRow lists them so.
ALTER TABLE calls ADD COLUMN attr_keys Array(String);
ALTER TABLE calls ADD COLUMN attr_types Array(Enum8('string' = 1, 'number' = 2, 'boolean' = 3, 'time' = 4));
ALTER TABLE calls ADD COLUMN attr_values Array(String);
ALTER TABLE calls_by_time ADD COLUMN attr_keys Array(String);
ALTER TABLE calls_by_time ADD COLUMN attr_values Array(String);
