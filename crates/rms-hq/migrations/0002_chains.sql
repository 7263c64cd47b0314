-- Each store device's chain as head office last verified it (issue #17, docs/JOURNAL.md): the
-- position and hash of the latest linked event of `device_id` ingested from `store_id`. The next
-- one must continue it; one that does not is an ingest error of kind `chain_broken`, and the
-- store is flagged in /hq/v1/stores.
CREATE TABLE hq_chains (
    store_id   bigint NOT NULL REFERENCES hq_stores,
    device_id  integer NOT NULL CHECK (device_id BETWEEN 1 AND 65535),
    chain_seq  bigint NOT NULL CHECK (chain_seq >= 1),
    chain_hash bytea NOT NULL CHECK (length(chain_hash) = 32),
    PRIMARY KEY (store_id, device_id)
);
