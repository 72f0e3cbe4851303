-- The double-entry journal: one row per entry line. `registrado_en` is RFC 3339 UTC with a fixed
-- nine fractional digits, so text order is time order.
CREATE TABLE rm_asientos (
    posicion      BIGINT NOT NULL,
    linea         BIGINT NOT NULL,
    cuenta        TEXT   NOT NULL,
    debe          TEXT   NOT NULL,
    haber         TEXT   NOT NULL,
    tanqueo_id    BIGINT NOT NULL,
    fecha         TEXT   NOT NULL,
    descripcion   TEXT   NOT NULL,
    registrado_en TEXT   NOT NULL,
    PRIMARY KEY (posicion, linea)
);
CREATE INDEX rm_asientos_cuenta ON rm_asientos (cuenta, posicion);
