-- rms head office (issue #15). Every store's master log, keyed by (store_id, device_id, seq): the
-- event's origin and its own sequence, which a split brain never reuses (a master_seq can be).
-- Nothing here is ever deleted by rms-hq: entries a store's later master undid are flagged.

CREATE TABLE hq_stores (
    store_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- SHA-256 of the store's token: the token itself is shown once, by `rms-hq stores add`.
    token_sha256    bytea NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    -- The cursor: the last master_seq head office holds and that entry's epoch. Moved in the
    -- same transaction as the rows it covers.
    cursor_seq      bigint NOT NULL DEFAULT 0 CHECK (cursor_seq >= 0),
    cursor_epoch    jsonb,
    cursor_event    text,
    -- The greatest master epoch a batch came from: smaller ones are refused (fencing).
    max_epoch       jsonb,
    store_head      bigint NOT NULL DEFAULT 0,
    catalog_version bigint NOT NULL DEFAULT 0,
    last_contact    timestamptz,
    -- Since when head office has been behind the store's head (NULL: caught up).
    behind_since    timestamptz,
    batches         bigint NOT NULL DEFAULT 0
);

CREATE TABLE hq_log (
    store_id    bigint NOT NULL REFERENCES hq_stores,
    device_id   integer NOT NULL CHECK (device_id BETWEEN 1 AND 65535),
    seq         bigint NOT NULL CHECK (seq >= 1),
    master_seq  bigint NOT NULL CHECK (master_seq >= 1),
    epoch       jsonb NOT NULL,
    kind        text,
    status      text,
    -- A later master of the store undid this entry (split brain, restored backup). Kept; set
    -- back to false if a master logs the same event again.
    undone      boolean NOT NULL DEFAULT false,
    -- The whole entry as the store sent it: a field head office does not know never blocks.
    entry       jsonb NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, device_id, seq)
);
CREATE INDEX hq_log_by_master_seq ON hq_log (store_id, master_seq);

-- One row per sale, projected from its log entry.
CREATE TABLE hq_sale_rows (
    store_id    bigint NOT NULL,
    device_id   integer NOT NULL,
    seq         bigint NOT NULL,
    sale_id     text NOT NULL,
    user_id     text NOT NULL,
    status      text NOT NULL,
    total_cents bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (store_id, device_id, seq),
    FOREIGN KEY (store_id, device_id, seq) REFERENCES hq_log
);

CREATE TABLE hq_sale_line_rows (
    store_id    bigint NOT NULL,
    device_id   integer NOT NULL,
    seq         bigint NOT NULL,
    line_no     integer NOT NULL,
    sku         text NOT NULL,
    qty         bigint NOT NULL,
    price_cents bigint NOT NULL,
    PRIMARY KEY (store_id, device_id, seq, line_no),
    FOREIGN KEY (store_id, device_id, seq) REFERENCES hq_sale_rows
);

-- Stock per store and SKU: the latest snapshot a store's master log carried.
CREATE TABLE hq_stock (
    store_id    bigint NOT NULL REFERENCES hq_stores,
    sku         text NOT NULL,
    name        text NOT NULL,
    price_cents bigint NOT NULL,
    stock       bigint NOT NULL,
    version     bigint NOT NULL,
    master_seq  bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, sku)
);

-- What ingest could not project, a key already taken by another event, a truncation: kept for
-- people to read; never blocks the entries after it.
CREATE TABLE hq_ingest_errors (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_id   bigint NOT NULL REFERENCES hq_stores,
    at         timestamptz NOT NULL DEFAULT now(),
    kind       text NOT NULL,
    master_seq bigint,
    device_id  integer,
    seq        bigint,
    message    text NOT NULL,
    entry      jsonb
);
CREATE INDEX hq_ingest_errors_by_store ON hq_ingest_errors (store_id, id);

-- The catalogue head office owns. Versions are gapless and commit in order: each change takes
-- the next one from this single row, whose lock it holds until it commits (a sequence's values
-- can commit out of order, and a follower would skip the slower one).
CREATE TABLE hq_catalog_head (
    id      integer PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL CHECK (version >= 0)
);
INSERT INTO hq_catalog_head VALUES (1, 0);

CREATE TABLE hq_catalog_changes (
    version     bigint PRIMARY KEY CHECK (version >= 1),
    sku         text NOT NULL,
    name        text NOT NULL,
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hq_catalog_changes_by_sku ON hq_catalog_changes (sku, version);

CREATE TABLE hq_catalog (
    sku         text PRIMARY KEY,
    name        text NOT NULL,
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    version     bigint NOT NULL REFERENCES hq_catalog_changes
);

-- For analysts: what the stores sold, without the entries later masters undid.
CREATE VIEW hq_sales AS
    SELECT s.store_id, s.sale_id, s.device_id, s.user_id, s.status, s.total_cents, s.created_at
    FROM hq_sale_rows s JOIN hq_log l USING (store_id, device_id, seq)
    WHERE NOT l.undone;

CREATE VIEW hq_sale_lines AS
    SELECT r.store_id, s.sale_id, r.line_no, r.sku, r.qty, r.price_cents, s.status
    FROM hq_sale_line_rows r
    JOIN hq_sale_rows s USING (store_id, device_id, seq)
    JOIN hq_log l USING (store_id, device_id, seq)
    WHERE NOT l.undone;
