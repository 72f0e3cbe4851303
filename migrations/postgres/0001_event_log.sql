-- The event log. `position` is the global commit order; (stream_type, stream_id, version) is
-- each stream's own order, contiguous from 1. JSON (not JSONB) keeps payloads byte for byte,
-- exact decimals included.
CREATE TABLE events (
    position       BIGINT      PRIMARY KEY,
    event_id       UUID        NOT NULL UNIQUE,
    stream_type    TEXT        NOT NULL,
    stream_id      TEXT        NOT NULL,
    version        BIGINT      NOT NULL CHECK (version >= 1),
    event_type     TEXT        NOT NULL,
    schema_version INTEGER     NOT NULL,
    payload        JSON        NOT NULL,
    metadata       JSON        NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (stream_type, stream_id, version)
);

CREATE INDEX events_by_stream_type ON events (stream_type, position);

-- The commit-time position allocator: every appending transaction locks this one row first and
-- keeps the lock until it commits, so positions are handed out in commit order.
CREATE TABLE event_log_head (
    id       SMALLINT PRIMARY KEY CHECK (id = 1),
    position BIGINT   NOT NULL
);
INSERT INTO event_log_head (id, position) VALUES (1, 0);
