-- Station balances as rows (the `saldos` projection, projections/src/balances.rs). Amounts are
-- exact decimal text written without trailing zeros; dates are day numbers (days from
-- 0001-01-01) and instants nanoseconds since the epoch, so integer order is time order on both
-- databases whatever their collation; `ultima_actualizacion` is RFC 3339 with nine digits.

-- One row per station: its balance after every movement so far.
CREATE TABLE rm_saldos_bombas (
    bomba_id               BIGINT PRIMARY KEY,
    saldo                  TEXT   NOT NULL,
    total_anticipos        TEXT   NOT NULL,
    total_tanqueos         TEXT   NOT NULL,
    movimientos            BIGINT NOT NULL,
    ultimo_movimiento      BIGINT,
    ultimo_saldo_reportado TEXT,
    ultima_actualizacion   TEXT   NOT NULL,
    instante_ns            BIGINT NOT NULL,
    reportado_fecha        BIGINT,
    reportado_id           BIGINT,
    version                BIGINT NOT NULL
);

-- One row per movement event: the balance right after it. `instante_ns` never decreases along
-- a station's versions, so `as_of` is the last row at or before an instant.
CREATE TABLE rm_saldos_historial (
    bomba_id               BIGINT NOT NULL,
    version                BIGINT NOT NULL,
    saldo                  TEXT   NOT NULL,
    total_anticipos        TEXT   NOT NULL,
    total_tanqueos         TEXT   NOT NULL,
    movimientos            BIGINT NOT NULL,
    ultimo_movimiento      BIGINT,
    ultimo_saldo_reportado TEXT,
    ultima_actualizacion   TEXT   NOT NULL,
    instante_ns            BIGINT NOT NULL,
    PRIMARY KEY (bomba_id, version)
);
CREATE INDEX rm_saldos_historial_instante ON rm_saldos_historial (bomba_id, instante_ns, version);

-- Totals of the live movements per station and date (a date whose movements were all voided
-- keeps its row, with zeros).
CREATE TABLE rm_saldos_dias (
    bomba_id        BIGINT NOT NULL,
    fecha           BIGINT NOT NULL,
    total_anticipos TEXT   NOT NULL,
    total_tanqueos  TEXT   NOT NULL,
    movimientos     BIGINT NOT NULL,
    PRIMARY KEY (bomba_id, fecha)
);

-- The live movements, in statement order by the index.
CREATE TABLE rm_saldos_movimientos (
    bomba_id         BIGINT NOT NULL,
    id               BIGINT NOT NULL,
    fecha            BIGINT NOT NULL,
    tipo_operacion   TEXT   NOT NULL,
    valor            TEXT,
    saldo_disponible TEXT,
    PRIMARY KEY (bomba_id, id)
);
CREATE INDEX rm_saldos_movimientos_orden ON rm_saldos_movimientos (bomba_id, fecha, id);
-- The latest reported balance up to a date, without walking the records that report none.
CREATE INDEX rm_saldos_movimientos_reportados ON rm_saldos_movimientos (bomba_id, fecha, id)
    WHERE saldo_disponible IS NOT NULL;
