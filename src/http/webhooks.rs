//! The self-inspections' webhooks (seed 003), admin only, in the `/api` family's format:
//! `POST /api/webhooks` registers one and shows its signing secret this once, `GET` lists them
//! (never the secret), `GET /api/webhooks/{id}/entregas` shows the deliveries with every
//! attempt, and `POST …/entregas/{entrega}/reenviar` makes one due again.

use std::collections::HashMap;

use aggregates::inspection::{
    InspectionCommand, InspectionEvent, WebhookEvento, INSPECTIONS_STREAM_ID,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{CommandContext, JsonBody, Path, Query};
use super::fields::Fields;
use super::idempotency::HoldsSecret;
use super::inspection_registry::{admin_only, random_hex, refusal};
use super::{parse_id, run_command};
use crate::queries::webhooks::{self as queries, Delivery, Webhook};
use crate::webhooks::target::{TargetRefusal, WebhookUrl, URL_LEN_MAX};
use crate::AppState;
use utoipa::ToSchema;

/// A webhook to subscribe.
#[derive(ToSchema)]
#[schema(example = json!({"empresa_id": 1, "url": "https://example.com/hooks/fleet",
    "eventos": ["auto_inspecao.criada", "auto_inspecao.concluida"]}))]
pub struct WebhookRequest {
    /// Required. A registered company: its self-inspections are what is sent.
    #[schema(minimum = 1)]
    pub empresa_id: i64,
    /// Required. `http` or `https`; its host must resolve, and only to addresses the service may
    /// call (not loopback, link-local or private ones unless `--webhook-allow-private`).
    pub url: String,
    /// Required. One to 16 of `auto_inspecao.criada`, `auto_inspecao.concluida`,
    /// `auto_inspecao.cancelada` (repeats are folded).
    #[schema(min_items = 1, max_items = 16)]
    pub eventos: Vec<String>,
}

/// A subscribed webhook with its signing secret, shown this once (the log keeps it sealed).
/// Each delivery carries `X-Fleet-Signature: t=<unix>,v1=<hex>`, an HMAC-SHA256 with it of
/// `<t>.<body>`, and `X-Fleet-Delivery`, the delivery's id.
#[derive(ToSchema)]
#[schema(example = json!({"id": 1, "empresa_id": 1, "url": "https://example.com/hooks/fleet",
    "eventos": ["auto_inspecao.criada"], "secret": "c0ffee…64 hex characters"}))]
pub struct SubscribedWebhook {
    pub id: i64,
    pub empresa_id: i64,
    pub url: String,
    pub eventos: Vec<String>,
    pub secret: String,
}

const WEBHOOK_FIELDS: [&str; 3] = ["empresa_id", "url", "eventos"];
/// Bytes of a signing secret: 256 bits from the operating system's CSPRNG.
const SECRET_BYTES: usize = 32;
/// Entries `eventos` may list (there are three events; repeats are folded).
const EVENTOS_MAX: usize = 16;
pub const DELIVERIES_DEFAULT: i64 = 100;
pub const DELIVERIES_MAX: i64 = 1000;

fn url_refusal(refusal: TargetRefusal) -> ApiError {
    ApiError::BadRequest(format!("El campo url no es válido: {refusal}"))
}

/// `eventos`: a non-empty list of the webhook events.
fn eventos(body: &Value) -> Result<Vec<WebhookEvento>, ApiError> {
    let known: Vec<&str> = WebhookEvento::ALL.iter().map(|e| e.as_str()).collect();
    let invalid = || {
        ApiError::BadRequest(format!(
            "El campo eventos debe ser una lista de: {}",
            known.join(", ")
        ))
    };
    match body.get("eventos") {
        None | Some(Value::Null) => Err(ApiError::BadRequest(
            "Missing required field: eventos".to_string(),
        )),
        Some(Value::Array(items)) if items.is_empty() || items.len() > EVENTOS_MAX => {
            Err(invalid())
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let name = item.as_str().ok_or_else(invalid)?;
                WebhookEvento::parse(name).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "El campo eventos no es válido: evento desconocido {}; use {}",
                        super::extract::echo(name),
                        known.join(", ")
                    ))
                })
            })
            .collect(),
        Some(_) => Err(invalid()),
    }
}

/// A webhook's deliveries, newest first, with every attempt (admin)
///
/// Subscribe a webhook (admin); its signing secret is shown this once
#[utoipa::path(post, path = "/api/webhooks", request_body = WebhookRequest,
    responses((status = 201, body = SubscribedWebhook)))]
pub async fn create(
    State(state): State<AppState>,
    context: CommandContext,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    admin_only(&context)?;
    let fields = Fields::of(&body, &WEBHOOK_FIELDS)?;
    let empresa_id = fields.required("empresa_id", |f, n| f.id(n))?;
    let raw_url = fields.required("url", |f, n| f.text(n, URL_LEN_MAX))?;
    let eventos = eventos(&body)?;
    let url = WebhookUrl::parse(&raw_url).map_err(url_refusal)?;
    let settings = &state.settings.webhooks;
    url.resolve(settings.allow_private)
        .await
        .map_err(url_refusal)?;
    let command = InspectionCommand::RegisterWebhook {
        empresa_id,
        url: url.as_str().to_string(),
        eventos,
        secret_sealed: settings.key.seal(&random_hex(SECRET_BYTES)),
    };
    let executed = run_command(
        &state,
        &state.inspections,
        INSPECTIONS_STREAM_ID,
        command,
        &context,
        refusal,
    )
    .await?;
    let Some(InspectionEvent::WebhookRegistered {
        id,
        empresa_id,
        url,
        eventos,
        secret_sealed,
    }) = executed.events.into_iter().next()
    else {
        return Err(ApiError::internal("a registration appended no webhook"));
    };
    // Opened from the event, not taken from this request: a retry with the same
    // Idempotency-Key that resumes an earlier run shows that run's secret.
    let secret = settings
        .key
        .open(&secret_sealed)
        .map_err(ApiError::internal)?;
    let body = json!({
        "id": id,
        "empresa_id": empresa_id,
        "url": url,
        "eventos": eventos,
        "secret": secret,
    });
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response.extensions_mut().insert(HoldsSecret);
    Ok(response)
}

/// Webhook subscriptions, in id order, without secrets (admin)
#[utoipa::path(get, path = "/api/webhooks", responses((status = 200, body = Vec<Webhook>)))]
pub async fn list(
    State(state): State<AppState>,
    context: CommandContext,
) -> Result<Json<Vec<Webhook>>, ApiError> {
    admin_only(&context)?;
    Ok(Json(queries::webhooks(&state.read_models).await?))
}

fn webhook_not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("No se encontró el webhook con ID {id}"))
}

async fn existing_webhook(state: &AppState, raw_id: &str) -> Result<i64, ApiError> {
    let id = parse_id(raw_id, "el webhook")?;
    match queries::webhook(&state.read_models, id).await? {
        Some(_) => Ok(id),
        None => Err(webhook_not_found(id)),
    }
}

/// `GET /api/webhooks/{id}/entregas?limite=100`: the newest deliveries (1 to 1000), newest
/// first, each with its attempts and what the receiver answered.
#[utoipa::path(get, path = "/api/webhooks/{id}/entregas", params(("id" = i64, Path),
    ("limite" = Option<i64>, Query, description = "Newest deliveries, 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
), responses((status = 200, body = Vec<Delivery>)))]
pub async fn deliveries(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Delivery>>, ApiError> {
    admin_only(&context)?;
    let limite = match params.get("limite").map(|v| v.trim()) {
        None | Some("") => DELIVERIES_DEFAULT,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=DELIVERIES_MAX).contains(l))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "limite debe ser un entero entre 1 y {DELIVERIES_MAX}"
                ))
            })?,
    };
    let id = existing_webhook(&state, &raw_id).await?;
    Ok(Json(
        queries::deliveries(&state.read_models, id, limite).await?,
    ))
}

/// Send a delivery again now, whatever its state (admin)
///
/// `POST /api/webhooks/{id}/entregas/{entrega}/reenviar`: the delivery is due again now,
/// whatever its state → 202 with it; the worker sends it (with the same id) within moments.
#[utoipa::path(post, path = "/api/webhooks/{id}/entregas/{entrega}/reenviar", params(("id" = i64, Path),
    ("entrega" = String, Path, description = "A delivery's id (a UUID)")),
    responses((status = 202, body = Delivery)))]
pub async fn send_again(
    State(state): State<AppState>,
    context: CommandContext,
    Path((raw_id, entrega)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    admin_only(&context)?;
    let id = existing_webhook(&state, &raw_id).await?;
    let not_found = || {
        ApiError::NotFound(format!(
            "No se encontró la entrega {} del webhook {id}",
            super::extract::echo(&entrega)
        ))
    };
    // Delivery ids are UUIDs: anything else names none (and is not looked up).
    let entrega_id = uuid::Uuid::parse_str(&entrega)
        .map_err(|_| not_found())?
        .to_string();
    let now_ms = chrono::Utc::now().timestamp_millis();
    if !queries::send_again(&state.read_models, id, &entrega_id, now_ms).await? {
        return Err(not_found());
    }
    state.deliveries.wake();
    let delivery = queries::delivery(&state.read_models, id, &entrega_id)
        .await?
        .ok_or_else(not_found)?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}
