//! Checks that a referenced id exists, against the read models (which every earlier write has
//! reached: responses wait for the projections).

use super::error::ApiError;
use crate::queries::registry::{exists, Reference};
use crate::AppState;

/// How a refusal names what a reference points at.
fn describe(reference: Reference) -> &'static str {
    match reference {
        Reference::OperationArea => "el área de operación",
        Reference::Driver => "el conductor",
        Reference::Station => "la bomba",
        Reference::Catalog(_) => "la entrada de catálogo",
    }
}

/// A 400 naming `field` when `id` is set and points at nothing.
pub async fn require(
    state: &AppState,
    field: &str,
    reference: Reference,
    id: Option<i64>,
) -> Result<(), ApiError> {
    match id {
        Some(id) if !exists(&state.read_models, reference, id).await? => {
            Err(ApiError::BadRequest(format!(
                "El campo {field} no es válido: no existe {} con ID {id}",
                describe(reference)
            )))
        }
        _ => Ok(()),
    }
}

pub fn station_not_found(bomba_id: i64) -> ApiError {
    ApiError::NotFound(format!("No se encontró la bomba con ID {bomba_id}"))
}

/// A 404 naming the station when there is none with `bomba_id`.
pub async fn require_station(state: &AppState, bomba_id: i64) -> Result<(), ApiError> {
    if exists(&state.read_models, Reference::Station, bomba_id).await? {
        Ok(())
    } else {
        Err(station_not_found(bomba_id))
    }
}
