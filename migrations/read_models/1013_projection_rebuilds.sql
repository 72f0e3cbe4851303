-- Online rebuilds (`fleet-ledger replay`, `POST /api/admin/proyecciones/{name}/reconstruir`): a
-- rebuild folds the log into shadow tables beside a projection's live ones, then swaps them in.
-- One row per projection, for its latest rebuild, so that every instance (and the admin endpoint)
-- sees a rebuild whichever process runs it. Which process that is, is the lease
-- `rebuild:{name}` in `projection_leases`: a row still `rebuilding` whose lease has expired
-- belongs to a process that died.
CREATE TABLE projection_rebuilds (
    name        TEXT   PRIMARY KEY,
    -- rebuilding, swapped or failed
    state       TEXT   NOT NULL,
    -- The last log position folded into the shadow tables (after the swap: the checkpoint set).
    position    BIGINT NOT NULL,
    -- The log's head when last looked at: what the shadow is catching up to.
    target      BIGINT NOT NULL,
    -- RFC 3339 UTC.
    started_at  TEXT   NOT NULL,
    finished_at TEXT,
    error       TEXT
);
