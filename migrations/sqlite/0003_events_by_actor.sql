-- Audit by actor: what one user did, of which type, when (`GET /api/auditoria/actores/{sub}/eventos`).
-- The actor is the `actor` field of the JSON metadata; an index on that expression (a query must
-- name exactly `json_extract(metadata, '$.actor')` to use it) leaves the table's columns as they
-- are. Every SQLite index ends with the rowid, which is `position`, so a page after a position is
-- read from the index too. EXPLAIN QUERY PLAN of the actor query (tests/audit.rs
-- `the_actor_query_reads_the_actor_index`):
--   SEARCH events USING INDEX events_by_actor (<expr>=? AND event_type=? AND recorded_at>? AND recorded_at<?)
CREATE INDEX events_by_actor ON events (json_extract(metadata, '$.actor'), event_type, recorded_at);
