-- Dead letters carry the account their client id belongs to, so an account's
-- reads filter on the account itself, not only on a list of client ids.
-- Added columns go last; DeadLetterRow lists them in this order.
ALTER TABLE dead_letters ADD COLUMN account String DEFAULT '';
