//! `/api/auditoria`: a subject's history (`bomba/7`, `vehiculo/1`, …), its state at an instant,
//! and everything one user did. Roles `auditor` and `admin`.

use std::collections::HashMap;

use aggregates::audit::{Subject, SubjectError, SubjectKind};
use axum::extract::State;
use axum::Json;
use chrono::SecondsFormat;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::error::ApiError;
use super::eventos::{event_types_param, page_body, page_params, FeedEvent};
use super::extract::{CommandContext, Path, Query};
use super::fields::{as_of_param, instant_param, DayEdge};
use crate::audit;
use crate::store::EventFilter;
use crate::AppState;

/// Longest `sub` looked up: a token's subject is an e-mail or an identity provider's id.
const SUB_LEN_MAX: usize = 256;

pub fn require_auditor(context: &CommandContext) -> Result<(), ApiError> {
    if context.actor.can_audit() {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

fn subject(tipo: &str, id: &str) -> Result<Subject, ApiError> {
    Subject::parse(tipo, id).map_err(|error| match error {
        SubjectError::UnknownKind(_) => ApiError::NotFound(format!(
            "{error}; accepted values: {}",
            SubjectKind::ALL.map(SubjectKind::name).join(", ")
        )),
        SubjectError::UnknownCatalog(_) => ApiError::NotFound(error.to_string()),
        SubjectError::NotAnId(_) | SubjectError::NotAVehicle(_) => {
            ApiError::BadRequest(error.to_string())
        }
    })
}

/// The events of the log that are the subject's history.
pub fn subject_filter(subject: &Subject) -> EventFilter {
    EventFilter {
        stream_type: Some(subject.stream_type().to_string()),
        stream_id: Some(subject.stream_id().to_string()),
        entity: subject.entity(),
        ..EventFilter::default()
    }
}

const SUBJECT_TIPO: &str =
    "`bomba`, `tanqueo`, `placa`, `vehiculo`, `mision`, `area`, `conductor`, \
    `registro-bomba`, `catalogo`, `verificacion`, …; a 404 lists them all";

/// A subject's events, a page at a time.
#[derive(serde::Serialize, ToSchema)]
#[schema(example = json!({"tipo": "bomba", "id": "1", "data": [], "desde_posicion": 1, "limite": 100,
    "siguiente_posicion": 47, "ultima_posicion": 46}))]
pub struct SubjectEvents {
    pub tipo: String,
    pub id: String,
    pub data: Vec<FeedEvent>,
    pub desde_posicion: i64,
    pub limite: i64,
    pub siguiente_posicion: i64,
    pub ultima_posicion: i64,
}

/// The last event a state folds.
#[derive(serde::Serialize, ToSchema)]
pub struct LastEvent {
    pub position: i64,
    pub version: i64,
    pub event_type: String,
    #[schema(format = DateTime)]
    pub recorded_at: String,
}

/// A subject's state at an instant.
#[derive(serde::Serialize, ToSchema)]
#[schema(example = json!({"tipo": "bomba", "id": "1", "as_of": null, "version": 5,
    "ultimo_evento": {"position": 41, "version": 5, "event_type": "TanqueoRecorded",
    "recorded_at": "2026-12-06T04:13:22.180090Z"},
    "estado": {"saldo": 350000, "permitir_saldo_negativo": null, "version": 5}}))]
pub struct SubjectState {
    pub tipo: String,
    pub id: String,
    /// The instant asked for, or null for now.
    #[schema(format = DateTime)]
    pub as_of: Option<String>,
    pub version: i64,
    pub ultimo_evento: LastEvent,
    /// The subject's fields, as its own read endpoint shows them.
    #[schema(value_type = Object)]
    pub estado: Value,
}

/// Everything one user did, a page at a time.
#[derive(serde::Serialize, ToSchema)]
#[schema(example = json!({"actor": "ana@flota.co", "desde": "2024-03-01T05:00:00Z", "hasta": null,
    "data": [], "desde_posicion": 1, "limite": 100, "siguiente_posicion": 47, "ultima_posicion": 46}))]
pub struct ActorEvents {
    pub actor: String,
    #[schema(format = DateTime)]
    pub desde: Option<String>,
    #[schema(format = DateTime)]
    pub hasta: Option<String>,
    pub data: Vec<FeedEvent>,
    pub desde_posicion: i64,
    pub limite: i64,
    pub siguiente_posicion: i64,
    pub ultima_posicion: i64,
}

/// Events of one subject (auditor, admin)
///
/// The subject's events in order, paged like the feed.
#[utoipa::path(get, path = "/api/auditoria/{tipo}/{id}/eventos", params(
    ("tipo" = String, Path, description = SUBJECT_TIPO),
    ("id" = String, Path, description = "Its id; `verificacion` takes `VIN-PLATE`"),
    ("desde_posicion" = Option<i64>, Query, description = "First position, inclusive (default 1)", minimum = 0),
    ("limite" = Option<i64>, Query, description = "Events per page, 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
), responses((status = 200, body = SubjectEvents)))]
pub async fn subject_events(
    State(state): State<AppState>,
    context: CommandContext,
    Path((tipo, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    require_auditor(&context)?;
    let subject = subject(&tipo, &id)?;
    let (desde, limite) = page_params(&params)?;
    let page = audit::page(state.log.as_ref(), &subject_filter(&subject), desde, limite).await?;
    let mut body = json!({ "tipo": tipo, "id": id });
    extend(&mut body, page_body(page, desde, limite));
    Ok(Json(body))
}

/// A subject's state as the ledger knew it (auditor, admin)
///
/// The subject's state as it stood at `as_of` (now
/// without it), folded from its events; 404 before its first event.
#[utoipa::path(get, path = "/api/auditoria/{tipo}/{id}", params(
    ("tipo" = String, Path, description = SUBJECT_TIPO),
    ("id" = String, Path, description = "Its id; `verificacion` takes `VIN-PLATE`"),
    ("as_of" = Option<String>, Query, description = "When the ledger knew it: an RFC 3339 instant, or a date (its last instant in the service's zone). Not the business date: that is `fecha_corte` of the balance"),
), responses((status = 200, body = SubjectState)))]
pub async fn subject_state(
    State(state): State<AppState>,
    context: CommandContext,
    Path((tipo, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    require_auditor(&context)?;
    let subject = subject(&tipo, &id)?;
    let as_of = as_of_param(&params, &state.settings.time_zone)?;
    let as_of_text = as_of.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    let Some(found) = audit::subject_state(state.log.as_ref(), &subject, as_of).await? else {
        return Err(ApiError::NotFound(match &as_of_text {
            Some(as_of) => format!("No hay eventos de {tipo}/{id} hasta {as_of}"),
            None => format!("No hay eventos de {tipo}/{id}"),
        }));
    };
    let last = &found.last_event;
    Ok(Json(json!({
        "tipo": tipo,
        "id": id,
        "as_of": as_of_text,
        "version": found.version,
        "ultimo_evento": {
            "position": last.position,
            "version": last.version,
            "event_type": last.event_type,
            "recorded_at": last.recorded_at,
        },
        "estado": found.state,
    })))
}

/// Events written by one actor (auditor, admin)
///
/// Every event one user
/// caused, in order, paged like the feed. `desde`/`hasta` are instants (a date is its first or
/// last instant in the service's zone), both included.
#[utoipa::path(get, path = "/api/auditoria/actores/{sub}/eventos", params(
    ("sub" = String, Path, description = "A token's subject, 1 to 256 characters"),
    ("desde" = Option<String>, Query, description = "First instant (RFC 3339), or a date: its first instant in the service's zone"),
    ("hasta" = Option<String>, Query, description = "Last instant, or a date: its last instant"),
    ("tipos" = Option<String>, Query, description = "Event types, comma-separated"),
    ("desde_posicion" = Option<i64>, Query, description = "First position, inclusive (default 1)", minimum = 0),
    ("limite" = Option<i64>, Query, description = "Events per page, 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
), responses((status = 200, body = ActorEvents)))]
pub async fn actor_events(
    State(state): State<AppState>,
    context: CommandContext,
    Path(sub): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    require_auditor(&context)?;
    // No token's subject holds a control character (PostgreSQL refuses a NUL in text).
    if sub.trim().is_empty()
        || sub.chars().count() > SUB_LEN_MAX
        || sub.chars().any(char::is_control)
    {
        return Err(ApiError::BadRequest(format!(
            "Invalid value for sub: expected 1 to {SUB_LEN_MAX} characters without control characters"
        )));
    }
    let zone = &state.settings.time_zone;
    let desde_instant = instant_param(&params, "desde", zone, DayEdge::Start)?;
    let hasta_instant = instant_param(&params, "hasta", zone, DayEdge::End)?;
    if let (Some(desde), Some(hasta)) = (desde_instant, hasta_instant) {
        if desde > hasta {
            return Err(ApiError::BadRequest(
                "Invalid range: desde is after hasta".to_string(),
            ));
        }
    }
    let (desde, limite) = page_params(&params)?;
    let filter = EventFilter {
        actor: Some(sub.clone()),
        event_types: event_types_param(&params)?,
        recorded_from: desde_instant,
        recorded_to: hasta_instant,
        ..EventFilter::default()
    };
    let page = audit::page(state.log.as_ref(), &filter, desde, limite).await?;
    let instant = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    };
    let mut body = json!({
        "actor": sub,
        "desde": instant(desde_instant),
        "hasta": instant(hasta_instant),
    });
    extend(&mut body, page_body(page, desde, limite));
    Ok(Json(body))
}

/// `body` with `more`'s fields after its own.
fn extend(body: &mut Value, more: Value) {
    if let (Value::Object(body), Value::Object(more)) = (body, more) {
        body.extend(more);
    }
}
