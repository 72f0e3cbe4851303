-- The tamper-evident chain (src/store/chain.rs): each event's hash over the previous event's hash
-- and its own canonical bytes, as 64 hex digits. NULL only on events stored before this
-- migration, until the service fills them in position order when it opens the log
-- (src/store/history.rs): SQLite has no SHA-256 in SQL, and the canonical bytes are defined once,
-- in Rust, for the writer, `verify`, `export` and `import` alike.
ALTER TABLE events ADD COLUMN chain_hash TEXT;
