-- Checkpointed consumers of the log (src/reactor.rs): unlike a projection's, what a consumer did
-- (events it appended, calls it made) is not rebuilt from the log, so its checkpoint is not a
-- read model's and is never reset by a rebuild. One row per consumer.
CREATE TABLE consumer_checkpoints (
    name     TEXT   PRIMARY KEY,
    position BIGINT NOT NULL
);
