-- Self-inspections (seed 003): the reference data the admin endpoints list, and one row per
-- inspection with its status. Company tokens are never here (the log keeps only their sha256).
-- Flags are 0/1; instants RFC 3339 UTC; `tipos_operacao` is a JSON array of ids.
CREATE TABLE rm_empresas (
    id                        BIGINT PRIMARY KEY,
    nome                      TEXT   NOT NULL,
    bloquear_placas_repetidas BIGINT NOT NULL,
    ativo                     BIGINT NOT NULL
);

CREATE TABLE rm_tipos_operacao (
    id    BIGINT PRIMARY KEY,
    nome  TEXT   NOT NULL,
    ativo BIGINT NOT NULL
);

CREATE TABLE rm_questionarios (
    id             BIGINT PRIMARY KEY,
    nome           TEXT   NOT NULL,
    ativo          BIGINT NOT NULL,
    tipos_operacao TEXT   NOT NULL
);

CREATE TABLE rm_usuarios (
    id    BIGINT PRIMARY KEY,
    nome  TEXT   NOT NULL,
    ativo BIGINT NOT NULL
);

CREATE TABLE rm_auto_inspecoes (
    hash                TEXT   PRIMARY KEY,
    empresa_id          BIGINT NOT NULL,
    id_tipo_operacao    BIGINT NOT NULL,
    veiculo_placa       TEXT   NOT NULL,
    veiculo_tipo        BIGINT NOT NULL,
    veiculo_nome        TEXT   NOT NULL,
    cliente_nome        TEXT   NOT NULL,
    cliente_email       TEXT   NOT NULL,
    cliente_numero      TEXT   NOT NULL,
    criado_por          BIGINT NOT NULL,
    selecionar_galeria  BIGINT NOT NULL,
    enviar_para_usuario BIGINT NOT NULL,
    status              TEXT   NOT NULL,
    link                TEXT,
    criado_em           TEXT   NOT NULL,
    atualizado_em       TEXT   NOT NULL
);
CREATE INDEX rm_auto_inspecoes_empresa ON rm_auto_inspecoes (empresa_id, veiculo_placa);
