//! The self-inspections' webhooks (seed 003): the registered webhooks (a read model of the log),
//! and their deliveries and attempts, which the inspections' processor schedules and the
//! delivery worker ([`crate::webhooks::worker`]) moves. Instants of deliveries are Unix
//! milliseconds in the tables and RFC 3339 (milliseconds, UTC) on the wire.

use chrono::{DateTime, SecondsFormat};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{all, by_id, QueryError};
use crate::read_store::ReadStore;

/// A delivery's states, as stored and shown.
pub const PENDING: &str = "PENDENTE";
pub const DELIVERED: &str = "ENTREGUE";
pub const FAILED: &str = "FALHOU";

/// A webhook as `GET /api/webhooks` lists it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": 1, "empresa_id": 1, "url": "https://example.com/hooks/fleet", "eventos": ["auto_inspecao.criada"]}))]
pub struct Webhook {
    pub id: i64,
    pub empresa_id: i64,
    pub url: String,
    pub eventos: Vec<String>,
}

fn eventos(text: &str) -> Result<Vec<String>, QueryError> {
    serde_json::from_str(text).map_err(|e| QueryError::Corrupt(format!("eventos {text:?}: {e}")))
}

fn webhook_from(row: &AnyRow) -> Result<Webhook, QueryError> {
    Ok(Webhook {
        id: row.try_get(0)?,
        empresa_id: row.try_get(1)?,
        url: row.try_get(2)?,
        eventos: eventos(&row.try_get::<String, _>(3)?)?,
    })
}

const WEBHOOK_COLUMNS: &str = "SELECT id, empresa_id, url, eventos FROM rm_webhooks";

pub async fn webhooks(read_models: &ReadStore) -> Result<Vec<Webhook>, QueryError> {
    let sql = format!("{WEBHOOK_COLUMNS} ORDER BY id");
    all(read_models, &sql, webhook_from).await
}

pub async fn webhook(read_models: &ReadStore, id: i64) -> Result<Option<Webhook>, QueryError> {
    let sql = format!("{WEBHOOK_COLUMNS} WHERE id = $1");
    by_id(read_models, &sql, id, webhook_from).await
}

/// A webhook as deliveries are scheduled for it: registered at `posicao`, it is told of the
/// events after that position only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub webhook: Webhook,
    pub posicao: i64,
}

/// Every webhook, with where it was registered.
pub async fn subscriptions(read_models: &ReadStore) -> Result<Vec<Subscription>, QueryError> {
    all(
        read_models,
        "SELECT id, empresa_id, url, eventos, posicao FROM rm_webhooks ORDER BY id",
        |row| {
            Ok(Subscription {
                webhook: webhook_from(row)?,
                posicao: row.try_get(4)?,
            })
        },
    )
    .await
}

/// Where a delivery goes and the sealed secret it is signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub secret_sealed: String,
}

pub async fn endpoint(read_models: &ReadStore, id: i64) -> Result<Option<Endpoint>, QueryError> {
    by_id(
        read_models,
        "SELECT url, secret_sealed FROM rm_webhooks WHERE id = $1",
        id,
        |row| {
            Ok(Endpoint {
                url: row.try_get(0)?,
                secret_sealed: row.try_get(1)?,
            })
        },
    )
    .await
}

/// An instant stored as Unix milliseconds, as the wire shows it.
pub fn millis_rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One attempt at a delivery: what the receiver answered, or why there was no answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"tentativa": 1, "em": "2026-03-01T10:00:00.000Z", "status": 200, "erro": null, "duracao_ms": 35}))]
pub struct Attempt {
    pub tentativa: i64,
    pub em: String,
    pub status: Option<i64>,
    pub erro: Option<String>,
    pub duracao_ms: i64,
}

/// A delivery as `GET /api/webhooks/{id}/entregas` shows it, with its attempts in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "01a2498e-7339-7011-938c-52335b0c152b", "evento": "auto_inspecao.criada",
    "estado": "ENTREGUE", "criado_em": "2026-03-01T10:00:00.000Z", "proxima_tentativa_em": null,
    "entregue_em": "2026-03-01T10:00:00.035Z", "ultimo_status": 200, "ultimo_erro": null,
    "tentativas": [{"tentativa": 1, "em": "2026-03-01T10:00:00.000Z", "status": 200, "erro": null, "duracao_ms": 35}]}))]
pub struct Delivery {
    pub id: String,
    pub evento: String,
    /// `PENDENTE`, `ENTREGUE` or `FALHOU`.
    pub estado: String,
    pub criado_em: String,
    /// When it is tried next (`PENDENTE` only).
    pub proxima_tentativa_em: Option<String>,
    pub entregue_em: Option<String>,
    pub ultimo_status: Option<i64>,
    pub ultimo_erro: Option<String>,
    pub tentativas: Vec<Attempt>,
}

const DELIVERY_COLUMNS: &str = "SELECT id, evento, estado, criado_em_ms, proxima_tentativa_ms, \
     entregue_em_ms, ultimo_status, ultimo_erro FROM webhook_deliveries";

fn delivery_from(row: &AnyRow) -> Result<Delivery, QueryError> {
    let estado: String = row.try_get(2)?;
    let next: i64 = row.try_get(4)?;
    Ok(Delivery {
        id: row.try_get(0)?,
        evento: row.try_get(1)?,
        proxima_tentativa_em: (estado == PENDING).then(|| millis_rfc3339(next)),
        estado,
        criado_em: millis_rfc3339(row.try_get(3)?),
        entregue_em: row.try_get::<Option<i64>, _>(5)?.map(millis_rfc3339),
        ultimo_status: row.try_get(6)?,
        ultimo_erro: row.try_get(7)?,
        tentativas: Vec::new(),
    })
}

/// The newest `limit` deliveries of webhook `webhook_id`, newest first, each with its attempts.
pub async fn deliveries(
    read_models: &ReadStore,
    webhook_id: i64,
    limit: i64,
) -> Result<Vec<Delivery>, QueryError> {
    let sql = format!(
        "{DELIVERY_COLUMNS} WHERE webhook_id = $1 ORDER BY criado_em_ms DESC, id DESC LIMIT $2"
    );
    let rows = sqlx::query(&sql)
        .bind(webhook_id)
        .bind(limit)
        .fetch_all(read_models.pool())
        .await?;
    let mut listed = rows
        .iter()
        .map(delivery_from)
        .collect::<Result<Vec<_>, _>>()?;
    with_attempts(read_models, &mut listed).await?;
    Ok(listed)
}

/// The delivery `id` of webhook `webhook_id`, with its attempts.
pub async fn delivery(
    read_models: &ReadStore,
    webhook_id: i64,
    id: &str,
) -> Result<Option<Delivery>, QueryError> {
    let sql = format!("{DELIVERY_COLUMNS} WHERE id = $1 AND webhook_id = $2");
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(webhook_id)
        .fetch_optional(read_models.pool())
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut found = vec![delivery_from(&row)?];
    with_attempts(read_models, &mut found).await?;
    Ok(found.pop())
}

/// Fills in each delivery's attempts, a bounded number of ids per statement.
async fn with_attempts(
    read_models: &ReadStore,
    deliveries: &mut [Delivery],
) -> Result<(), QueryError> {
    const IDS_PER_STATEMENT: usize = 100;
    for chunk in deliveries.chunks_mut(IDS_PER_STATEMENT) {
        let sql = format!(
            "SELECT delivery_id, tentativa, em_ms, status, erro, duracao_ms \
             FROM webhook_attempts WHERE delivery_id IN ({}) ORDER BY delivery_id, tentativa",
            read_models.placeholders(1, chunk.len()).join(", ")
        );
        let mut query = sqlx::query(&sql);
        for delivery in chunk.iter() {
            query = query.bind(delivery.id.clone());
        }
        for row in query.fetch_all(read_models.pool()).await? {
            let delivery_id: String = row.try_get(0)?;
            let attempt = Attempt {
                tentativa: row.try_get(1)?,
                em: millis_rfc3339(row.try_get(2)?),
                status: row.try_get(3)?,
                erro: row.try_get(4)?,
                duracao_ms: row.try_get(5)?,
            };
            if let Some(delivery) = chunk.iter_mut().find(|d| d.id == delivery_id) {
                delivery.tentativas.push(attempt);
            }
        }
    }
    Ok(())
}

/// Makes the delivery `id` of webhook `webhook_id` due now, whatever its state (a retry by
/// hand); `false` when there is no such delivery.
pub async fn send_again(
    read_models: &ReadStore,
    webhook_id: i64,
    id: &str,
    now_ms: i64,
) -> Result<bool, QueryError> {
    let _turn = read_models.write_turn().await;
    let moved = sqlx::query(
        "UPDATE webhook_deliveries SET estado = $1, proxima_tentativa_ms = $2 \
         WHERE id = $3 AND webhook_id = $4",
    )
    .bind(PENDING)
    .bind(now_ms)
    .bind(id)
    .bind(webhook_id)
    .execute(read_models.pool())
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// A delivery the worker claimed for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: String,
    pub webhook_id: i64,
    pub corpo: String,
    /// This attempt's number (1 for the first).
    pub tentativa: i64,
    pub criado_em_ms: i64,
}

/// Claims up to `limit` deliveries due at `now_ms`, oldest due first, for one attempt each: their
/// attempt count goes up and they are not due again before `lease_until_ms`, so no other worker
/// (on this instance or another) takes them meanwhile, and one whose worker died is taken again
/// once the lease has passed. On PostgreSQL, rows another worker is claiming are skipped, not
/// waited for. Deliveries of a webhook the read model does not show yet (a rebuild) wait.
pub async fn claim(
    read_models: &ReadStore,
    now_ms: i64,
    lease_until_ms: i64,
    limit: i64,
) -> Result<Vec<Claimed>, QueryError> {
    // The due rows are chosen once, in a materialised CTE: as a plain `IN (subquery)`,
    // PostgreSQL may run a `LIMIT … FOR UPDATE SKIP LOCKED` subquery again while it joins, and
    // skip to other rows each time, claiming more than `limit`.
    let sql = format!(
        "WITH due AS MATERIALIZED (SELECT d.id FROM webhook_deliveries d \
             WHERE d.estado = $1 AND d.proxima_tentativa_ms <= $2 \
             AND EXISTS (SELECT 1 FROM rm_webhooks w WHERE w.id = d.webhook_id) \
             ORDER BY d.proxima_tentativa_ms LIMIT $3{}) \
         UPDATE webhook_deliveries SET tentativas = tentativas + 1, proxima_tentativa_ms = $4 \
         WHERE id IN (SELECT id FROM due) AND estado = $5 AND proxima_tentativa_ms <= $6 \
         RETURNING id, webhook_id, corpo, tentativas, criado_em_ms",
        if read_models.is_postgres() {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        }
    );
    let _turn = read_models.write_turn().await;
    let rows = sqlx::query(&sql)
        .bind(PENDING)
        .bind(now_ms)
        .bind(limit)
        .bind(lease_until_ms)
        .bind(PENDING)
        .bind(now_ms)
        .fetch_all(read_models.pool())
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Claimed {
                id: row.try_get(0)?,
                webhook_id: row.try_get(1)?,
                corpo: row.try_get(2)?,
                tentativa: row.try_get(3)?,
                criado_em_ms: row.try_get(4)?,
            })
        })
        .collect()
}

/// One attempt as it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub em_ms: i64,
    pub status: Option<i64>,
    pub erro: Option<String>,
    pub duracao_ms: i64,
}

/// What a delivery becomes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered { at_ms: i64 },
    RetryAt { at_ms: i64 },
    GaveUp,
}

/// Records `attempt` of `claimed` and moves the delivery to `next`, in one transaction. A
/// failure moves it only while it is still this attempt's (a worker that outlived its lease
/// must not reschedule a delivery another one has taken); a success always marks it delivered.
pub async fn record_attempt(
    read_models: &ReadStore,
    claimed: &Claimed,
    attempt: &AttemptRecord,
    next: Next,
) -> Result<(), QueryError> {
    let _turn = read_models.write_turn().await;
    let mut tx = read_models.pool().begin().await?;
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, tentativa, em_ms, status, erro, duracao_ms) \
         VALUES ($1, $2, $3, CAST($4 AS BIGINT), CAST($5 AS TEXT), $6) \
         ON CONFLICT (delivery_id, tentativa) DO NOTHING",
    )
    .bind(&claimed.id)
    .bind(claimed.tentativa)
    .bind(attempt.em_ms)
    .bind(attempt.status)
    .bind(attempt.erro.clone())
    .bind(attempt.duracao_ms)
    .execute(&mut *tx)
    .await?;
    let update = match next {
        Next::Delivered { at_ms } => sqlx::query(
            "UPDATE webhook_deliveries SET estado = $1, entregue_em_ms = $2, \
             ultimo_status = CAST($3 AS BIGINT), ultimo_erro = NULL WHERE id = $4",
        )
        .bind(DELIVERED)
        .bind(at_ms)
        .bind(attempt.status)
        .bind(&claimed.id),
        Next::RetryAt { .. } | Next::GaveUp => {
            let (estado, next_ms) = match next {
                Next::RetryAt { at_ms } => (PENDING, at_ms),
                _ => (FAILED, attempt.em_ms),
            };
            sqlx::query(
                "UPDATE webhook_deliveries SET estado = $1, proxima_tentativa_ms = $2, \
                 ultimo_status = CAST($3 AS BIGINT), ultimo_erro = CAST($4 AS TEXT) \
                 WHERE id = $5 AND tentativas = $6 AND estado = $7",
            )
            .bind(estado)
            .bind(next_ms)
            .bind(attempt.status)
            .bind(attempt.erro.clone())
            .bind(&claimed.id)
            .bind(claimed.tentativa)
            .bind(PENDING)
        }
    };
    update.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}
