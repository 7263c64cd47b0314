-- rms schema, migration 5. Append-only, like every migration.
--
-- Issue #14: devices prove who they are. The store's trust list is the fold of the
-- `device_trust` events of the master log (rms_domain::trust); this index finds them without
-- reading the sales. Devices that connected with a certificate nobody trusts yet are kept here,
-- on the device that saw them, for the owner to approve or ignore: unauthenticated input never
-- writes to the store's log. Capped by the code (rms_storage::trust::PENDING_MAX).
CREATE INDEX sync_events_trust ON sync_events (master_seq) WHERE kind = 'device_trust';
CREATE TABLE pending_devices (
    fingerprint    TEXT PRIMARY KEY,
    device_id      INTEGER NOT NULL,
    name           TEXT NOT NULL,
    address        TEXT NOT NULL,
    first_seen_ms  INTEGER NOT NULL,
    last_seen_ms   INTEGER NOT NULL,
    attempts       INTEGER NOT NULL
);
-- When the store-key upgrade window closes (ms since the epoch); set at the first start of a
-- release that knows device certificates, on a device that has a store key.
CREATE TABLE trust_window (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    closes_at_ms   INTEGER NOT NULL
);
