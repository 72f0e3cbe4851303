//! The HTTP layer's one error type. Each variant maps to one status and the seed's body
//! `{"error": "..."}`; a 500 never carries its cause, which is logged instead.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use aggregates::fleet::FleetError;
use aggregates::registry::RegistryError;

use crate::balances::BalanceError;
use crate::commands::CommandError;
use crate::idempotency::IdempotencyError;
use crate::queries::QueryError;
use crate::read_store::ReadStoreError;
use crate::rebuild::RebuildError;
use crate::store::StoreError;

pub const AUTHENTICATION_REQUIRED: &str = "Authentication required";
pub const PERMISSION_DENIED: &str = "Permiso denegado";
pub const SERVER_ERROR: &str = "Error en el servidor";
pub const SERVICE_UNAVAILABLE: &str = "Servicio no disponible";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{AUTHENTICATION_REQUIRED}")]
    Unauthorized,
    #[error("{PERMISSION_DENIED}")]
    Forbidden,
    /// A 403 in the words of the rule that refuses it (a closed accounting period, a role a
    /// route names itself), rather than the token check's generic one.
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A 409 that says nothing about the request itself: it collided with another one, and the
    /// same request sent again may succeed. Its answer is never kept for an Idempotency-Key.
    #[error("{0}")]
    Contended(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("Método no permitido")]
    MethodNotAllowed,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Load shedding: more requests in flight than the service takes at once.
    #[error("Servicio sobrecargado; intente de nuevo en un momento")]
    Overloaded,
    /// The request ran longer than the configured timeout and was abandoned.
    #[error("La solicitud superó el tiempo límite ({0:?})")]
    TimedOut(std::time::Duration),
    /// The store is out of reach: nothing was done, and the request may be retried. The cause
    /// is logged, never sent.
    #[error("{SERVICE_UNAVAILABLE}")]
    Unavailable(String),
    /// A bug. The text is logged, never sent.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::Denied(_) => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) | Self::Contended(_) => StatusCode::CONFLICT,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Overloaded | Self::TimedOut(_) | Self::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the caller is told.
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => SERVER_ERROR.to_string(),
            other => other.to_string(),
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) => tracing::error!(%cause, "request failed"),
            Self::Unavailable(cause) => tracing::warn!(%cause, "store unavailable"),
            _ => {}
        }
        let mut response = (
            self.status(),
            Json(json!({ "error": self.public_message() })),
        )
            .into_response();
        if matches!(self, Self::Overloaded) {
            // Shed load is over in moments; a client that honours this spreads its retries.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(self, Self::Contended(_)) {
            response.extensions_mut().insert(Retryable);
        }
        response
    }
}

/// Marks an answer that a retry of the same request may not get: it is not kept for replay.
#[derive(Debug, Clone, Copy)]
pub struct Retryable;

impl From<IdempotencyError> for ApiError {
    fn from(error: IdempotencyError) -> Self {
        match error {
            IdempotencyError::Reused => Self::Unprocessable(error.to_string()),
            IdempotencyError::InFlight => Self::Contended(error.to_string()),
            IdempotencyError::Store(error) => error.into(),
        }
    }
}

impl ApiError {
    /// 503 when `outage`, else 500: both logged with `cause`, neither sends it.
    fn server_side(outage: bool, cause: impl std::fmt::Display) -> Self {
        if outage {
            Self::Unavailable(cause.to_string())
        } else {
            Self::internal(cause)
        }
    }
}

/// The answer to an Idempotency-Key on a log that keeps no keys.
pub const IDEMPOTENCY_KEY_NOT_KEPT: &str =
    "Este despliegue guarda el log de eventos en KurrentDB, \
     que no conserva Idempotency-Key; envíe la solicitud sin ese encabezado";

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if let StoreError::KeyClaimed { .. } = error {
            // Another instance runs a request with this Idempotency-Key.
            return IdempotencyError::InFlight.into();
        }
        if let StoreError::NotSupported { .. } = error {
            // Only a keyed request reaches a part the log lacks (a KurrentDB log keeps no
            // Idempotency-Key records): the same request without the header succeeds.
            return Self::Unprocessable(IDEMPOTENCY_KEY_NOT_KEPT.to_string());
        }
        Self::server_side(error.is_outage(), error)
    }
}

impl From<ReadStoreError> for ApiError {
    fn from(error: ReadStoreError) -> Self {
        Self::server_side(error.is_outage(), error)
    }
}

impl From<BalanceError> for ApiError {
    fn from(error: BalanceError) -> Self {
        match error {
            BalanceError::Query(error) => error.into(),
            BalanceError::Store(error) => error.into(),
            BalanceError::Fold(error) => Self::internal(error),
        }
    }
}

impl From<RebuildError> for ApiError {
    fn from(error: RebuildError) -> Self {
        match error {
            RebuildError::UnknownProjection { name, valid } => Self::NotFound(format!(
                "No existe la proyección {}; las proyecciones son: {}",
                super::extract::echo(&name),
                valid.join(", ")
            )),
            RebuildError::AlreadyRunning(name) => {
                Self::Conflict(format!("Ya hay una reconstrucción de {name} en curso"))
            }
            RebuildError::Log(error) => error.into(),
            RebuildError::ReadStore(error) => error.into(),
            RebuildError::Database(error) => {
                Self::server_side(crate::store::is_outage(&error), error)
            }
            other => Self::internal(other),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        Self::server_side(error.is_outage(), error)
    }
}

/// Commands refused by a rule become 4xx through `rejected`; everything else is the service's
/// fault, except a conflict that outlived every retry, which the caller may simply retry.
pub fn command_error<E: std::error::Error>(
    error: CommandError<E>,
    rejected: impl FnOnce(E) -> ApiError,
) -> ApiError {
    match error {
        CommandError::Rejected(refusal) => rejected(refusal),
        CommandError::Unrepresentable(value) if !value.field().is_empty() => {
            ApiError::BadRequest(format!(
                "Invalid value for {}: it cannot be stored and read back exactly",
                value.field()
            ))
        }
        CommandError::Unrepresentable(value) => {
            ApiError::BadRequest(format!("Invalid value: {}", value.reason))
        }
        CommandError::Conflict { .. } => ApiError::Contended(
            "El registro cambió mientras se procesaba la solicitud; intente de nuevo".to_string(),
        ),
        CommandError::Store(store) => store.into(),
        other => ApiError::internal(other),
    }
}

impl From<FleetError> for ApiError {
    fn from(refusal: FleetError) -> Self {
        let message = refusal.to_string();
        match refusal {
            FleetError::PlateNotFound { .. }
            | FleetError::VehicleNotFound { .. }
            | FleetError::MissionNotFound { .. } => Self::NotFound(message),
            FleetError::PlateAlreadyRegistered { .. }
            | FleetError::VehicleAlreadyDeleted { .. }
            | FleetError::VehicleDeleted { .. }
            | FleetError::VehicleHasActiveMissions { .. }
            | FleetError::PlateHasLiveVehicle { .. }
            | FleetError::MissionTransition { .. } => Self::Conflict(message),
            FleetError::StartBelowOdometer { .. }
            | FleetError::FinalBelowStart { .. }
            | FleetError::NothingToRegister => Self::BadRequest(message),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(refusal: RegistryError) -> Self {
        let message = refusal.to_string();
        match refusal {
            RegistryError::NotFound { .. } => Self::NotFound(message),
            RegistryError::Duplicate { .. } => Self::Conflict(message),
            RegistryError::EmptyName { .. }
            | RegistryError::NameTooLong { .. }
            | RegistryError::NothingToRegister => Self::BadRequest(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a log that keeps no keys (KurrentDB), a keyed request is the caller's to change: a 422
    /// that says how, not a 500.
    #[test]
    fn an_idempotency_key_the_log_cannot_keep_is_422_saying_to_drop_it() {
        let refused: ApiError = IdempotencyError::Store(StoreError::NotSupported {
            backend: "kurrentdb",
            what: "Idempotency-Key records",
        })
        .into();
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            refused.public_message(),
            "Este despliegue guarda el log de eventos en KurrentDB, que no conserva \
             Idempotency-Key; envíe la solicitud sin ese encabezado"
        );
    }
}
