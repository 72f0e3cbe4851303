-- Fleet registry read models: plates, vehicles, missions, drivers, stations, catalogues.
-- Decimals are exact text; flags are 0/1; dates are YYYY-MM-DD; instants RFC 3339 UTC.

CREATE TABLE rm_placas (
    id          BIGINT PRIMARY KEY,
    placa       TEXT   NOT NULL UNIQUE,
    estado      TEXT   NOT NULL,
    vehiculo_id BIGINT
);
CREATE INDEX rm_placas_estado ON rm_placas (estado);

CREATE TABLE rm_vehiculos (
    id                            BIGINT PRIMARY KEY,
    placa_id                      BIGINT NOT NULL,
    placa                         TEXT   NOT NULL,
    eliminado                     BIGINT NOT NULL,
    id_clase_vehiculo             BIGINT,
    id_estado_vehiculo            BIGINT,
    id_tipo_combustible           BIGINT,
    id_motorista_por_defecto      BIGINT,
    id_departamento_asignado      BIGINT,
    marca                         TEXT,
    modelo                        TEXT,
    anio                          BIGINT,
    color                         TEXT,
    numero_motor                  TEXT,
    numero_chasis                 TEXT,
    numero_vin                    TEXT,
    capacidad_pasajeros           BIGINT,
    capacidad_combustible_galones TEXT,
    kilometraje_actual            BIGINT,
    fecha_ultima_revision         TEXT,
    fecha_proximo_mantenimiento   TEXT,
    fecha_tarjeta_circulacion     TEXT,
    numero_poliza_seguro          TEXT,
    fecha_vencimiento_seguro      TEXT,
    observaciones                 TEXT,
    id_empresa                    BIGINT,
    id_operacion                  BIGINT,
    creado_en                     TEXT   NOT NULL,
    actualizado_en                TEXT   NOT NULL
);

CREATE TABLE rm_misiones (
    id                            BIGINT PRIMARY KEY,
    vehiculo_id                   BIGINT NOT NULL,
    conductor_id                  BIGINT NOT NULL,
    descripcion                   TEXT   NOT NULL,
    fecha_programada              TEXT   NOT NULL,
    estado                        TEXT   NOT NULL,
    kilometraje_inicial           BIGINT,
    combustible_inicial_galones   TEXT,
    kilometraje_final             BIGINT,
    combustible_final_galones     TEXT,
    kilometraje_recorrido         BIGINT,
    combustible_consumido_galones TEXT,
    motivo_cancelacion            TEXT,
    creado_en                     TEXT   NOT NULL,
    actualizado_en                TEXT   NOT NULL
);
CREATE INDEX rm_misiones_vehiculo ON rm_misiones (vehiculo_id, estado);

CREATE TABLE rm_conductores (
    id             BIGINT PRIMARY KEY,
    conductor      TEXT   NOT NULL,
    area_principal BIGINT,
    creado_en      TEXT   NOT NULL
);

CREATE TABLE rm_bombas (
    id                      BIGINT PRIMARY KEY,
    bomba                   TEXT   NOT NULL,
    area_operacion_id       BIGINT,
    permitir_saldo_negativo BIGINT NOT NULL,
    creado_en               TEXT   NOT NULL,
    actualizado_en          TEXT   NOT NULL
);

CREATE TABLE rm_catalogos (
    catalogo TEXT   NOT NULL,
    id       BIGINT NOT NULL,
    nombre   TEXT   NOT NULL,
    PRIMARY KEY (catalogo, id)
);
