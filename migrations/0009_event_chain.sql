-- Each event's place in its origin's journal (issue #17, docs/JOURNAL.md), as it travels through
-- sync: `chain_seq` its position in the origin's `events` chain and `chain_prev` the hash before it
-- (hex); its own hash follows from the two and the event. A master checks a pushed event's link
-- against the hash of the predecessor it holds. NULL for events made before the journal, or by
-- head office.
ALTER TABLE sync_events ADD COLUMN chain_seq INTEGER CHECK (chain_seq IS NULL OR chain_seq >= 1);
ALTER TABLE sync_events ADD COLUMN chain_prev TEXT;
