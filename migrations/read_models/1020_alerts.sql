-- Alerts raised by the fuel checks (issue 16), as GET /api/alertas lists them. `evidencia` is
-- the finding's figures as a JSON object of exact decimals; `posicion` is the log position of
-- the flag that opened the alert as it stands (its listing order).
CREATE TABLE rm_alertas (
    id             TEXT   PRIMARY KEY,
    regla          TEXT   NOT NULL,
    severidad      TEXT   NOT NULL,
    estado         TEXT   NOT NULL,
    evidencia      TEXT   NOT NULL,
    tanqueo_id     BIGINT NOT NULL,
    placa_id       BIGINT NOT NULL,
    bomba_id       BIGINT NOT NULL,
    fecha          TEXT   NOT NULL,
    cierre         TEXT,
    revisado_por   TEXT,
    revisado_en    TEXT,
    resolucion     TEXT,
    nota           TEXT,
    posicion       BIGINT NOT NULL,
    actualizado_en TEXT   NOT NULL
);
CREATE INDEX rm_alertas_fecha ON rm_alertas (fecha, posicion);
CREATE INDEX rm_alertas_tanqueo ON rm_alertas (tanqueo_id);
