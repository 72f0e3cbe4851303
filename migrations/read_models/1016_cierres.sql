-- Monthly closes (issue 16; the `cierres` projection, projections/src/periods.rs). Amounts are
-- exact decimal text; flags 0/1; instants RFC 3339. Columns a fold has not written yet are NULL.

-- One row per month ever closed for every station (by the registry's `AccountingPeriodClosed`).
CREATE TABLE rm_cierres (
    anio              BIGINT NOT NULL,
    mes               BIGINT NOT NULL,
    cerrado           BIGINT,
    bombas            BIGINT,
    cerrado_por       TEXT,
    cerrado_en        TEXT,
    reabierto_por     TEXT,
    reabierto_en      TEXT,
    motivo_reapertura TEXT,
    PRIMARY KEY (anio, mes)
);

-- One row per month and station: `en_cierre` while the month's latest close names the station,
-- `cerrado` as the station's own stream last said, with its figures at its latest close.
CREATE TABLE rm_cierres_bombas (
    anio            BIGINT NOT NULL,
    mes             BIGINT NOT NULL,
    bomba_id        BIGINT NOT NULL,
    en_cierre       BIGINT,
    cerrado         BIGINT,
    saldo_cierre    TEXT,
    registros       BIGINT,
    total_tanqueos  TEXT,
    total_anticipos TEXT,
    cerrado_por     TEXT,
    cerrado_en      TEXT,
    PRIMARY KEY (anio, mes, bomba_id)
);
