-- Read models. Portable SQL: it runs unchanged on SQLite and PostgreSQL through sqlx's Any driver.
-- Every table here is a projection of the event log and can be dropped and rebuilt from it.

-- One row per projection: the last log position whose changes are in the tables.
CREATE TABLE projection_checkpoints (
    name     TEXT   PRIMARY KEY,
    position BIGINT NOT NULL
);

CREATE TABLE rm_areas_operacion (
    id         BIGINT PRIMARY KEY,
    nombre     TEXT   NOT NULL,
    creado_por TEXT,
    creado_en  TEXT   NOT NULL
);
