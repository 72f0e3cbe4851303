//! Operation areas (`areas_operacion`): `POST`, list and get by id.

use aggregates::operation_area::OPERATION_AREAS_STREAM_ID;
use aggregates::{OperationAreaCommand, OperationAreaEvent};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::error::ApiError;
use super::extract::{CommandContext, JsonBody, Path};
use super::fields::{created, read_items, registry_refusal};
use super::parse_id;
use super::run_command;
use crate::queries::registry::{self, OperationArea};
use crate::AppState;

use super::openapi::OneOrMany;
use utoipa::ToSchema;

/// An operation area, or an array of at most 1,000 of them (all registered, or none).
#[derive(ToSchema)]
#[schema(example = json!({"nombre": "Zona Norte"}))]
pub struct AreaRequest {
    /// Required. The area's name, at most 10,000 characters.
    #[schema(max_length = 10000)]
    pub nombre: String,
}

/// Entries accepted in one array registration.
pub const BATCH_MAX: usize = 1000;

/// Register an operation area, or several
///
/// One object registers one area; an array registers all of them or none.
#[utoipa::path(post, path = "/api/areas-operacion", request_body = OneOrMany<AreaRequest>,
    responses((status = 201, body = OneOrMany<OperationArea>, description = "The area, or the areas in the order sent")))]
pub async fn create(
    State(state): State<AppState>,
    context: CommandContext,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (nombres, many) = read_items(&body, BATCH_MAX, &["nombre"], |fields| {
        fields.required("nombre", |f, n| f.text(n, 10_000))
    })?;
    let executed = run_command(
        &state,
        &state.operation_areas,
        OPERATION_AREAS_STREAM_ID,
        OperationAreaCommand::Register { nombres },
        &context,
        registry_refusal(many),
    )
    .await?;
    let records: Vec<OperationArea> = executed
        .events
        .into_iter()
        .map(
            |OperationAreaEvent::OperationAreaRegistered { id, nombre }| OperationArea {
                id,
                nombre,
            },
        )
        .collect();
    created(many, records)
}

/// Operation areas, in id order
#[utoipa::path(get, path = "/api/areas-operacion", responses((status = 200, body = Vec<OperationArea>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<OperationArea>>, ApiError> {
    Ok(Json(registry::operation_areas(&state.read_models).await?))
}

/// One operation area
#[utoipa::path(get, path = "/api/areas-operacion/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = OperationArea)))]
pub async fn get(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<OperationArea>, ApiError> {
    let id = parse_id(&raw_id, "el área de operación")?;
    let area = registry::operation_area(&state.read_models, id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("No se encontró el área de operación con ID {id}"))
        })?;
    Ok(Json(area))
}
