-- Idempotency-Key: one row per (actor, key). The row is first written in the transaction of the
-- first events the request appends (a claim: `status` NULL), so a key never outlives or precedes
-- its events; the answer is filled in right after. `epoch` is the random seed the request's event
-- ids derive from: a retry after a crash derives the same ids and finds its events in the log.
CREATE TABLE idempotency_keys (
    actor           TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    -- sha256 of method, path with query, and body: a reuse with another request is refused.
    fingerprint     TEXT    NOT NULL,
    epoch           TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    status          INTEGER,
    content_type    TEXT,
    body            BLOB,
    PRIMARY KEY (actor, idempotency_key)
);

-- The expiry sweep deletes by age.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
