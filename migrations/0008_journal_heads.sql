-- Signed journal heads (issue #17, docs/JOURNAL.md): every few seconds, the head of each chain
-- that moved, signed by this device's key (the key of its certificate, ECDSA P-256). The
-- statement is the signed text, as signed; `key` the raw public key (65 bytes, hex), and
-- `certificate` the device certificate (DER, hex) that holds it: its SHA-256 is the fingerprint
-- the store's trust list binds to the device.
CREATE TABLE journal_heads (
    chain        TEXT NOT NULL CHECK (chain IN ('events', 'audit')),
    seq          INTEGER NOT NULL CHECK (seq >= 1),
    statement    TEXT NOT NULL,
    key          TEXT NOT NULL,
    certificate  TEXT NOT NULL,
    signature    TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
) WITHOUT ROWID;

CREATE TRIGGER journal_heads_no_update BEFORE UPDATE ON journal_heads
BEGIN
    SELECT RAISE(ABORT, 'journal_heads is append-only');
END;

CREATE TRIGGER journal_heads_no_delete BEFORE DELETE ON journal_heads
BEGIN
    SELECT RAISE(ABORT, 'journal_heads is append-only');
END;
