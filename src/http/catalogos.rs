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

fn kind(slug: &str) -> Result<CatalogKind, ApiError> {
    CatalogKind::from_slug(slug).ok_or_else(|| {
        let known: Vec<&str> = CatalogKind::ALL.iter().map(|k| k.slug()).collect();
        ApiError::NotFound(format!(
            "No existe el catálogo {slug}; los catálogos son: {}",
            known.join(", ")
        ))
    })
}

pub async fn list(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<Vec<CatalogEntry>>, ApiError> {
    let kind = kind(&slug)?;
    Ok(Json(
        registry::catalog_entries(&state.read_models, kind.slug()).await?,
    ))
}

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
