-- Webhooks of the self-inspections (seed 003). `rm_webhooks` is a read model of the log
-- (`WebhookRegistered`); the secret is kept sealed (encrypted with the service's key).
CREATE TABLE rm_webhooks (
    id            BIGINT PRIMARY KEY,
    empresa_id    BIGINT NOT NULL,
    url           TEXT   NOT NULL,
    eventos       TEXT   NOT NULL,
    secret_sealed TEXT   NOT NULL,
    posicao       BIGINT NOT NULL
);
CREATE INDEX rm_webhooks_empresa ON rm_webhooks (empresa_id);

-- Delivery state: written by the inspections' processor together with its checkpoint (so each
-- delivery is scheduled exactly once), then moved by the delivery worker. Not a read model: a
-- rebuild never touches it. Instants are Unix milliseconds.
CREATE TABLE webhook_deliveries (
    id                   TEXT   PRIMARY KEY,
    webhook_id           BIGINT NOT NULL,
    evento               TEXT   NOT NULL,
    corpo                TEXT   NOT NULL,
    estado               TEXT   NOT NULL,
    tentativas           BIGINT NOT NULL,
    criado_em_ms         BIGINT NOT NULL,
    proxima_tentativa_ms BIGINT NOT NULL,
    entregue_em_ms       BIGINT,
    ultimo_status        BIGINT,
    ultimo_erro          TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (estado, proxima_tentativa_ms);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, criado_em_ms);

-- One row per attempt, with what the receiver answered (or why there was no answer).
CREATE TABLE webhook_attempts (
    delivery_id  TEXT   NOT NULL,
    tentativa    BIGINT NOT NULL,
    em_ms        BIGINT NOT NULL,
    status       BIGINT,
    erro         TEXT,
    duracao_ms   BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, tentativa)
);
