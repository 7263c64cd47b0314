-- rms schema, migration 4. Append-only, like every migration.
--
-- A client learns an accepted event's place in the master log (its master_seq) from the master's
-- answer to its push, long before the log entry itself reaches it (the next broadcast or pull).
-- Until then the place was dropped: the column master_seq is set only with the entry's epoch.
-- If that master dies first, the next master must decide such events again, and it must do so
-- in the order the dead master did (a sale after the creation of its product). accepted_seq
-- keeps the place from the answer (or from an entry a truncation undid) for that purpose only.
-- Existing rows get NULL: they are ordered by their sequence, as before.
ALTER TABLE sync_events ADD COLUMN accepted_seq INTEGER;
