-- The tamper-evident chain (src/store/chain.rs): each event's hash over the previous event's hash
-- and its own canonical bytes, as 64 hex digits. NULL only on events stored before this
-- migration, until the service fills them in global position order when it opens the log, under
-- the head lock (src/store/history.rs): the canonical bytes are defined once, in Rust, for the
-- writer, `verify`, `export` and `import` alike, and the same code backfills SQLite, which has no
-- SHA-256 in SQL. Adding a nullable column without a default rewrites nothing.
ALTER TABLE events ADD COLUMN chain_hash TEXT;
