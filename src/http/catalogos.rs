//! Vehicle catalogues: `GET /api/catalogos/{catalogo}` for everyone, `POST` for admins.

use aggregates::registry::{CatalogCommand, CatalogKind};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{CommandContext, JsonBody, Path};
use super::fields::Fields;
use super::run_command;
use crate::queries::registry::{self, CatalogEntry};
use crate::AppState;

use utoipa::ToSchema;

/// A catalogue entry.
#[derive(ToSchema)]
#[schema(example = json!({"nombre": "GASOLINA"}))]
pub struct CatalogoRequest {
    /// Required. The entry's name, at most 10,000 characters.
    #[schema(max_length = 10000)]
    pub nombre: String,
}

const CATALOGO: &str =
    "`combustibles`, `clases-vehiculo`, `estados-vehiculo`, `tipos-combustible` or `departamentos`";

fn kind(slug: &str) -> Result<CatalogKind, ApiError> {
    CatalogKind::from_slug(slug).ok_or_else(|| {
        let known: Vec<&str> = CatalogKind::ALL.iter().map(|k| k.slug()).collect();
        ApiError::NotFound(format!(
            "No existe el catálogo {slug}; los catálogos son: {}",
            known.join(", ")
        ))
    })
}

/// A catalogue's entries, in id order
#[utoipa::path(get, path = "/api/catalogos/{catalogo}", params(("catalogo" = String, Path, description = CATALOGO)),
    responses((status = 200, body = Vec<CatalogEntry>)))]
pub async fn list(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<Vec<CatalogEntry>>, ApiError> {
    let kind = kind(&slug)?;
    Ok(Json(
        registry::catalog_entries(&state.read_models, kind.slug()).await?,
    ))
}

/// Add a catalogue entry (admin)
#[utoipa::path(post, path = "/api/catalogos/{catalogo}", params(("catalogo" = String, Path, description = CATALOGO)),
    request_body = CatalogoRequest, responses((status = 201, body = CatalogEntry)))]
pub async fn create(
    State(state): State<AppState>,
    context: CommandContext,
    Path(slug): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !context.actor.is_admin() {
        return Err(ApiError::Forbidden);
    }
    let kind = kind(&slug)?;
    let nombre = Fields::of(&body, &["nombre"])?.required("nombre", |f, n| f.text(n, 10_000))?;
    let command = CatalogCommand::Add {
        catalogo: kind.slug().to_string(),
        nombre,
    };
    let executed = run_command(
        &state,
        &state.catalogs,
        kind.slug(),
        command,
        &context,
        ApiError::from,
    )
    .await?;
    let aggregates::registry::CatalogEvent::CatalogEntryAdded { id, nombre, .. } = executed
        .events
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("no entry added"))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "nombre": nombre })),
    ))
}
