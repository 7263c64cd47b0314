-- Each event's place in its origin's journal (issue #17, docs/JOURNAL.md), as it travels through
-- sync: `chain_seq` its position in the origin's `events` chain, `chain_prev` the hash before it
-- (hex), and `chain_hash` its own hash, computed from the two and the event when the row is
-- written. A master checks a pushed event's link against its predecessor's `chain_hash` here.
-- NULL for events made before the journal, or by head office.
ALTER TABLE sync_events ADD COLUMN chain_seq INTEGER CHECK (chain_seq IS NULL OR chain_seq >= 1);
ALTER TABLE sync_events ADD COLUMN chain_prev TEXT;
ALTER TABLE sync_events ADD COLUMN chain_hash TEXT;
