//! Checks that a referenced id exists, against the read models (which every earlier write has
//! reached: responses wait for the projections).

use super::error::ApiError;
use crate::AppState;

/// What a reference points at: its table and how a refusal names it.
#[derive(Debug, Clone, Copy)]
pub enum Reference {
    OperationArea,
    Driver,
    Station,
    Catalog(&'static str),
}

impl Reference {
    fn describe(self) -> &'static str {
        match self {
            Self::OperationArea => "el área de operación",
            Self::Driver => "el conductor",
            Self::Station => "la bomba",
            Self::Catalog(_) => "la entrada de catálogo",
        }
    }
}

pub async fn exists(state: &AppState, reference: Reference, id: i64) -> Result<bool, ApiError> {
    let pool = state.read_models.pool();
    let found: Option<i64> = match reference {
        Reference::OperationArea => {
            sqlx::query_scalar("SELECT id FROM rm_areas_operacion WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }
        Reference::Driver => {
            sqlx::query_scalar("SELECT id FROM rm_conductores WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }
        Reference::Station => {
            sqlx::query_scalar("SELECT id FROM rm_bombas WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }
        Reference::Catalog(catalogo) => {
            sqlx::query_scalar("SELECT id FROM rm_catalogos WHERE catalogo = $1 AND id = $2")
                .bind(catalogo)
                .bind(id)
                .fetch_optional(pool)
                .await?
        }
    };
    Ok(found.is_some())
}

/// A 400 naming `field` when `id` is set and points at nothing.
pub async fn require(
    state: &AppState,
    field: &str,
    reference: Reference,
    id: Option<i64>,
) -> Result<(), ApiError> {
    match id {
        Some(id) if !exists(state, reference, id).await? => Err(ApiError::BadRequest(format!(
            "El campo {field} no es válido: no existe {} con ID {id}",
            reference.describe()
        ))),
        _ => Ok(()),
    }
}

pub fn station_not_found(bomba_id: i64) -> ApiError {
    ApiError::NotFound(format!("No se encontró la bomba con ID {bomba_id}"))
}

/// A 404 naming the station when there is none with `bomba_id`.
pub async fn require_station(state: &AppState, bomba_id: i64) -> Result<(), ApiError> {
    if exists(state, Reference::Station, bomba_id).await? {
        Ok(())
    } else {
        Err(station_not_found(bomba_id))
    }
}

/// Every event of a station's ledger stream, as its folds take them.
pub async fn station_events(
    state: &AppState,
    bomba_id: i64,
) -> Result<Vec<projections::Recorded>, ApiError> {
    use aggregates::fuel::FuelStation;
    use cqrs_es::Aggregate;
    let stored = state
        .log
        .read_stream(FuelStation::TYPE, &bomba_id.to_string(), 0)
        .await?;
    Ok(stored.iter().map(|e| e.to_recorded()).collect())
}
