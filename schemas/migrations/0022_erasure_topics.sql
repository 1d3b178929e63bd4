-- When the topics hold none of an erased caller's records written before the
-- erasure: the erasure's end plus the longest retention of the topics that carry
-- calls, plus the brokers' cleanup slack (docs/privacy.md, "The topics"). The epoch
-- (the column's zero) when unknown: a topic carrying calls keeps records for ever,
-- or the broker could not be asked.
ALTER TABLE erasures ADD COLUMN topics_clear_by DateTime('UTC');
