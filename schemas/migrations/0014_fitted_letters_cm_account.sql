-- Dead letters that had to be cut to fit the broker's message limit keep the whole
-- record's size and SHA-256 (`DeadLetter::fit_within`); 0 and '' on whole ones.
-- CmCalls carry the account that owns their number, so a partner record is only
-- ever linked to a CallMatrix call of its own account. Columns only, added last.
ALTER TABLE dead_letters ADD COLUMN payload_bytes UInt64 DEFAULT 0;
ALTER TABLE dead_letters ADD COLUMN payload_sha256 String DEFAULT '';
ALTER TABLE cm_calls ADD COLUMN account String DEFAULT '';
