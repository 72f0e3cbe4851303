-- Audit by actor: what one user did, of which type, when (`GET /api/auditoria/actores/{sub}/eventos`).
-- The actor is the `actor` field of the JSON metadata; an index on that expression (a query must
-- name exactly `(metadata->>'actor')` to use it) leaves the table's columns as they are.
-- `position` ends the key as the rowid ends SQLite's, so a page after a position is bounded in
-- the index. EXPLAIN of the actor query (tests/audit.rs `the_actor_query_reads_the_actor_index`):
--   Index Scan using events_by_actor on events
--     Index Cond: (((metadata ->> 'actor') = 'ana@flota.co') AND (event_type = 'VehicleDeleted')
--                  AND (recorded_at >= …) AND (recorded_at <= …) AND (position > 0) AND …)
CREATE INDEX events_by_actor ON events ((metadata->>'actor'), event_type, recorded_at, position);
