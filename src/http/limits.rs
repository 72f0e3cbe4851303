//! Admission: how many requests the service works on at once, and for how long each.
//!
//! Past the cap a request is shed at once with a 503 (and `Retry-After: 1`) instead of waiting
//! in an unbounded queue that only makes every answer late; a request that runs past the
//! timeout is abandoned with a 503 instead of holding its connection forever (a body that never
//! finishes arriving included). Health probes are not counted: they must answer under load.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::ApiError;

/// Requests worked on at once by default: far above what the bench's 64 connections ever have
/// in flight, far below what exhausts memory or file descriptors.
pub const IN_FLIGHT_MAX_DEFAULT: u32 = 1024;
/// Longest a request runs by default. A command waits at most 5 s for the read models, and an
/// import of 5,000 rows takes a few seconds; anything near this is stuck.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// The HTTP limits `serve` is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub in_flight_max: u32,
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            in_flight_max: IN_FLIGHT_MAX_DEFAULT,
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
        }
    }
}

/// The admission state one router shares across its families.
#[derive(Debug, Clone)]
pub struct Admission {
    in_flight: Arc<Semaphore>,
    request_timeout: Duration,
}

impl Admission {
    pub fn new(limits: HttpLimits) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(limits.in_flight_max.max(1) as usize)),
            request_timeout: limits.request_timeout,
        }
    }
}

/// Admits the request if fewer than the cap are in flight, and bounds how long it runs.
pub async fn admit(State(admission): State<Admission>, request: Request, next: Next) -> Response {
    let Ok(_permit) = admission.in_flight.clone().try_acquire_owned() else {
        tracing::warn!("too many requests in flight; shedding this one");
        return ApiError::Overloaded.into_response();
    };
    match tokio::time::timeout(admission.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout = ?admission.request_timeout, "request timed out; abandoned");
            ApiError::TimedOut(admission.request_timeout).into_response()
        }
    }
}
