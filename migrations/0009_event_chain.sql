-- Each event's place in its origin's journal (issue #17, docs/JOURNAL.md), as it travels through
-- sync: `chain_seq` its position in the origin's `events` chain and `chain_prev` the hash before it
-- (hex); its own hash follows from the two and the event. A master checks a pushed event's link
-- against the hash of the predecessor it holds. NULL for events made before the journal, or by
-- head office.
ALTER TABLE sync_events ADD COLUMN chain_seq INTEGER CHECK (chain_seq IS NULL OR chain_seq >= 1);
ALTER TABLE sync_events ADD COLUMN chain_prev TEXT;

-- The events this device made under migrations 7 and 8 (journaled, not yet linked) get their
-- links from the journal, so that their successors continue them at the master. Entry n of the
-- `events` chain is this device's event `events_after + n` (`journal_start`); the `ref` check
-- skips any that is not. Primary-key lookups only: linear in the device's events.
UPDATE sync_events
SET chain_seq = seq - (SELECT events_after FROM journal_start WHERE id = 1),
    chain_prev = COALESCE(
        (SELECT p.hash FROM journal p WHERE p.chain = 'events'
         AND p.seq = sync_events.seq - (SELECT events_after FROM journal_start WHERE id = 1) - 1),
        '0000000000000000000000000000000000000000000000000000000000000000')
WHERE device_id = (SELECT device_id FROM node_state WHERE id = 1)
  AND seq > (SELECT events_after FROM journal_start WHERE id = 1)
  AND EXISTS (SELECT 1 FROM journal j WHERE j.chain = 'events'
              AND j.seq = sync_events.seq - (SELECT events_after FROM journal_start WHERE id = 1)
              AND j.ref = sync_events.event_id);
