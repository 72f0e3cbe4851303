//! The HTTP layer's one error type. Each variant maps to one status and the seed's body
//! `{"error": "..."}`; a 500 never carries its cause, which is logged instead.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use aggregates::fleet::FleetError;
use aggregates::registry::RegistryError;

use crate::commands::CommandError;
use crate::queries::QueryError;
use crate::read_store::ReadStoreError;
use crate::store::StoreError;

pub const AUTHENTICATION_REQUIRED: &str = "Authentication required";
pub const PERMISSION_DENIED: &str = "Permiso denegado";
pub const SERVER_ERROR: &str = "Error en el servidor";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{AUTHENTICATION_REQUIRED}")]
    Unauthorized,
    #[error("{PERMISSION_DENIED}")]
    Forbidden,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
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
    /// A bug or an outage. The text is logged, never sent.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Overloaded | Self::TimedOut(_) => StatusCode::SERVICE_UNAVAILABLE,
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
        if let Self::Internal(cause) = &self {
            tracing::error!(%cause, "request failed");
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
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::internal(error)
    }
}

impl From<ReadStoreError> for ApiError {
    fn from(error: ReadStoreError) -> Self {
        Self::internal(error)
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        Self::internal(error)
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
        CommandError::Conflict { .. } => ApiError::Conflict(
            "El registro cambió mientras se procesaba la solicitud; intente de nuevo".to_string(),
        ),
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
