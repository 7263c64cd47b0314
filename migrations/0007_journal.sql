-- The journal (issue #17, docs/JOURNAL.md): every event this device originates (chain 'events')
-- and every row of its audit log (chain 'audit'), hash-chained: entry n's hash is
-- SHA-256(hash of entry n-1 ‖ record), entry 1's predecessor 32 zero bytes. Written in the
-- transaction that writes what it records; append-only like the audit log (the triggers are a
-- guard, not the proof: `rms-node journal verify` finds a change made without them).
CREATE TABLE journal (
    chain   TEXT NOT NULL CHECK (chain IN ('events', 'audit')),
    seq     INTEGER NOT NULL CHECK (seq >= 1),
    ref     TEXT NOT NULL,
    record  TEXT NOT NULL,
    hash    TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
) WITHOUT ROWID;

CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
BEGIN
    SELECT RAISE(ABORT, 'journal is append-only');
END;

CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN
    SELECT RAISE(ABORT, 'journal is append-only');
END;

-- What a database held before it had a journal is not in it: this device's events up to
-- `events_after` (its seq) and audit rows up to `audit_after` (their id).
CREATE TABLE journal_start (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    events_after  INTEGER NOT NULL,
    audit_after   INTEGER NOT NULL
);
INSERT INTO journal_start VALUES (
    1,
    COALESCE((SELECT last_seq FROM node_state WHERE id = 1), 0),
    COALESCE((SELECT max(id) FROM audit_log), 0)
);
