//! `/api/auditoria`: a subject's history (`bomba/7`, `vehiculo/1`, …), its state at an instant,
//! and everything one user did. Roles `auditor` and `admin`.

use std::collections::HashMap;

use aggregates::audit::{Subject, SubjectError, SubjectKind};
use axum::extract::State;
use axum::Json;
use chrono::SecondsFormat;
use serde_json::{json, Value};

use super::error::ApiError;
use super::eventos::{event_types_param, page_body, page_params};
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

/// `GET /api/auditoria/{tipo}/{id}/eventos`: the subject's events in order, paged like the feed.
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

/// `GET /api/auditoria/{tipo}/{id}?as_of=`: the subject's state as it stood at `as_of` (now
/// without it), folded from its events; 404 before its first event.
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

/// `GET /api/auditoria/actores/{sub}/eventos?desde=&hasta=&tipos=`: every event one user
/// caused, in order, paged like the feed. `desde`/`hasta` are instants (a date is its first or
/// last instant in the service's zone), both included.
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
