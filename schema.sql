-- rms schema, migration 1 of rms-storage (crates/rms-storage/src/db.rs applies it).
-- Append-only: a change to the schema is a new migration, never an edit of this file once released.
-- PRAGMAs (WAL, synchronous, foreign_keys, busy_timeout) are set per connection, not here.

-- This device: who it is and the counters it must never reuse. Exactly one row.
CREATE TABLE node_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    device_id     INTEGER NOT NULL CHECK (device_id BETWEEN 1 AND 65535),
    -- Last per-device event sequence issued; event ids are "<device_id>-<seq>".
    last_seq      INTEGER NOT NULL CHECK (last_seq >= 0),
    -- Last hybrid logical clock value issued or merged; never goes backwards.
    hlc_wall_ms   INTEGER NOT NULL CHECK (hlc_wall_ms >= 0),
    hlc_counter   INTEGER NOT NULL CHECK (hlc_counter >= 0),
    -- The newest epoch known: its term, its master and that master's priority (rank).
    -- term 0 with no master: this device has not yet joined or formed a store.
    term             INTEGER NOT NULL CHECK (term >= 0),
    master_id        INTEGER,
    master_priority  INTEGER,
    -- Highest master_seq in this device's copy of the master log (gapless from 1).
    log_head      INTEGER NOT NULL CHECK (log_head >= 0)
);

-- Products as this device shows them: the master's state (products_base) with this device's own
-- not-yet-logged events replayed on top.
CREATE TABLE products (
    sku          TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    price_cents  INTEGER NOT NULL CHECK (price_cents >= 0),
    stock        INTEGER NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    updated_at   TEXT NOT NULL
);

-- The master's products as of this device's log head (set from the log entries' snapshots).
CREATE TABLE products_base (
    sku          TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    price_cents  INTEGER NOT NULL CHECK (price_cents >= 0),
    stock        INTEGER NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    updated_at   TEXT NOT NULL
);

-- The outbox and the master log in one table: a row is an event; master_seq orders the log.
CREATE TABLE sync_events (
    event_id       TEXT PRIMARY KEY,
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
    status         TEXT NOT NULL CHECK (status IN ('pending', 'synced', 'rejected')),
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
    UNIQUE (device_id, seq),
    CHECK ((master_seq IS NULL) = (epoch_term IS NULL))
);
CREATE INDEX sync_events_pending ON sync_events (device_id, seq) WHERE status = 'pending';

-- Sales as tills see them; a sale's status is its event's status.
CREATE TABLE sales (
    sale_id      TEXT PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE REFERENCES sync_events (event_id),
    device_id    INTEGER NOT NULL,
    user_id      TEXT NOT NULL,
    total_cents  INTEGER NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE TABLE sale_lines (
    sale_id      TEXT NOT NULL REFERENCES sales (sale_id),
    line_no      INTEGER NOT NULL,
    sku          TEXT NOT NULL,
    qty          INTEGER NOT NULL CHECK (qty >= 1),
    price_cents  INTEGER NOT NULL,
    PRIMARY KEY (sale_id, line_no)
);
CREATE INDEX sale_lines_sku ON sale_lines (sku);

CREATE TABLE stock_adjustments (
    event_id    TEXT PRIMARY KEY REFERENCES sync_events (event_id),
    sku         TEXT NOT NULL,
    delta       INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    device_id   INTEGER NOT NULL,
    user_id     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- The store's roster as this device knows it.
CREATE TABLE devices (
    device_id   INTEGER PRIMARY KEY CHECK (device_id BETWEEN 1 AND 65535),
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('master', 'client')),
    advertise   TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    last_seen   TEXT
);

-- SyncAuditLog: append-only, enforced below.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    operation   TEXT NOT NULL,
    device_id   INTEGER,
    user_id     TEXT,
    event_id    TEXT,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'error', 'conflict', 'rejected')),
    details     TEXT NOT NULL
);
CREATE INDEX audit_log_operation ON audit_log (operation, id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
