-- Snapshots of aggregates on long streams (src/store/snapshots.rs): a stream's aggregate
-- serialized at `version`, so that a load folds only the events after it. Kept beside the log
-- but apart from it: a snapshot is not an event, so it is never in the chain, an export or the
-- feed, and dropping every row loses nothing (streams are then folded from their events).
--   position:       the position of the event at `version`.
--   schema_version: the aggregate's snapshot schema; rows of another one are ignored.
--   recorded_at:    the latest `recorded_at` of the events it covers (the event at `version`'s
--                   unless the clock stepped back), so an `as_of` at or after it may start here.
CREATE TABLE snapshots (
    stream_type    TEXT    NOT NULL,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 1),
    position       INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    recorded_at    TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    PRIMARY KEY (stream_type, stream_id, version)
);
