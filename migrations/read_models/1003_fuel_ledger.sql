-- The fuel ledger (seed 004's `tanqueo` table). Money and quantities are exact decimal text.
CREATE TABLE rm_tanqueos (
    id                BIGINT PRIMARY KEY,
    fecha             TEXT   NOT NULL,
    conductor_id      BIGINT,
    placa_id          BIGINT,
    bomba_id          BIGINT NOT NULL,
    area_operacion_id BIGINT NOT NULL,
    tipo_combustible  TEXT,
    valor_tanqueo     TEXT,
    cantidad_galones  TEXT,
    costo_por_galon   TEXT,
    horometro         TEXT,
    valor_anticipo    TEXT,
    saldo_disponible  TEXT,
    concepto          TEXT   NOT NULL,
    tipo_operacion    TEXT   NOT NULL,
    observacion       TEXT,
    creado_por        TEXT,
    creado_en         TEXT   NOT NULL,
    actualizado_por   TEXT,
    actualizado_en    TEXT,
    anulado           BIGINT NOT NULL,
    motivo_anulacion  TEXT
);
CREATE INDEX rm_tanqueos_fecha ON rm_tanqueos (fecha, id);
CREATE INDEX rm_tanqueos_bomba ON rm_tanqueos (bomba_id, fecha);
