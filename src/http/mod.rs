//! HTTP: one module per resource family. Handlers extract, call the domain, render.

pub mod areas;
pub mod bombas;
pub mod catalogos;
pub mod conciliacion;
pub mod conductores;
pub mod contabilidad;
pub mod error;
pub mod eventos;
pub mod extract;
pub mod fields;
pub mod flota;
pub mod health;
pub mod import;
pub mod lookup;
pub mod middleware;
pub mod misiones;
pub mod placas;
pub mod tanqueos;
pub mod vehiculo;

use error::ApiError;

/// Parses a numeric path id; anything else is a 400 naming what was expected.
pub fn parse_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "El ID de {what} debe ser un número entero positivo"
            ))
        })
}
