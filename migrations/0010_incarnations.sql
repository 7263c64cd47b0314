-- A data directory's incarnations (issue #27, docs/SYNC.md "Incarnations"). A device id may have
-- several incarnations over the years: a replacement with a fresh data directory, a restore from
-- a backup. Each one after the first numbers its events from a floor no earlier incarnation of the
-- id can have reached (`first_seq`, the millisecond it began × 1024), so that two incarnations never give
-- one event id to two events. Own events numbered in (`after_seq`, `first_seq`) are not this
-- database's: they are an earlier incarnation's, brought back by the master log, and are not in
-- this journal. The `events` chain jumps at `first_seq` by as many positions as numbers.
CREATE TABLE incarnations (
    first_seq    INTEGER PRIMARY KEY CHECK (first_seq >= 1),
    after_seq    INTEGER NOT NULL CHECK (after_seq >= 0 AND after_seq < first_seq),
    began_at_ms  INTEGER NOT NULL CHECK (began_at_ms >= 0),
    why          TEXT NOT NULL CHECK (why IN ('joined', 'restored'))
);

-- Set in a copy `rms-node backup` writes (never in a live database): a node started on it begins
-- a new incarnation before it makes any event.
ALTER TABLE node_state ADD COLUMN backup_copy INTEGER NOT NULL DEFAULT 0 CHECK (backup_copy IN (0, 1));
