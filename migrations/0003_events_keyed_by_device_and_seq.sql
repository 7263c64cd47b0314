-- rms schema, migration 3. Append-only, like every migration.
--
-- sync_events had two keys for one thing: event_id TEXT PRIMARY KEY and UNIQUE (device_id, seq),
-- where event_id is "<device_id>-<seq>". Every logged event paid an insert into both indexes,
-- the text one with string comparisons, and status's CHECK (... IN (three values)) built a
-- temporary table per insert. The table is rebuilt with (device_id, seq) as its only key (how
-- every lookup now finds an event) and the same check written as comparisons. Same columns, same
-- rows; event_id stays as a column for display.
CREATE TABLE sync_events_v3 (
    event_id       TEXT NOT NULL,
    device_id      INTEGER NOT NULL,
    seq            INTEGER NOT NULL CHECK (seq >= 1),
    hlc_wall_ms    INTEGER NOT NULL,
    hlc_counter    INTEGER NOT NULL,
    user_id        TEXT NOT NULL,
    term           INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    entity_key     TEXT NOT NULL,
    payload        TEXT NOT NULL,
    critical       INTEGER NOT NULL CHECK (critical IN (0, 1)),
    status         TEXT NOT NULL CHECK (status = 'pending' OR status = 'synced' OR status = 'rejected'),
    reason         TEXT,
    master_seq     INTEGER UNIQUE,
    created_at_ms  INTEGER NOT NULL,
    -- Set once in the master log: the epoch that decided it and the products right after it.
    epoch_term      INTEGER,
    epoch_master    INTEGER,
    epoch_priority  INTEGER,
    products_after  TEXT,
    -- Kept although the rules refused it (another master had accepted it).
    forced          INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1)),
    -- A master had accepted it before its log entry was undone.
    accepted_before INTEGER NOT NULL DEFAULT 0 CHECK (accepted_before IN (0, 1)),
    PRIMARY KEY (device_id, seq),
    CHECK ((master_seq IS NULL) = (epoch_term IS NULL))
);
INSERT INTO sync_events_v3 (event_id, device_id, seq, hlc_wall_ms, hlc_counter, user_id, term,
    kind, entity_key, payload, critical, status, reason, master_seq, created_at_ms, epoch_term,
    epoch_master, epoch_priority, products_after, forced, accepted_before)
SELECT event_id, device_id, seq, hlc_wall_ms, hlc_counter, user_id, term,
    kind, entity_key, payload, critical, status, reason, master_seq, created_at_ms, epoch_term,
    epoch_master, epoch_priority, products_after, forced, accepted_before
FROM sync_events ORDER BY rowid;
DROP TABLE sync_events;
ALTER TABLE sync_events_v3 RENAME TO sync_events;
CREATE INDEX sync_events_pending ON sync_events (device_id, seq) WHERE status = 'pending';
