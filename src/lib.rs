//! fleet-ledger: an event-sourced ledger for fleet operators.
//!
//! [`app`] is the one place routes are listed. Everything a request needs lives in [`AppState`].

pub mod auth;
pub mod bench;
pub mod cli;
pub mod commands;
pub mod http;
pub mod read_store;
pub mod runner;
pub mod state;
pub mod store;

use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

pub use state::{AppState, StoreLocation};

/// The whole HTTP API over `state`.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/eventos", get(http::eventos::list))
        .route(
            "/api/areas-operacion",
            get(http::areas::list).post(http::areas::create),
        )
        .route("/api/areas-operacion/{id}", get(http::areas::get))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::middleware::require_token,
        ));
    Router::new()
        .route("/healthz", get(http::health::healthz))
        .route("/readyz", get(http::health::readyz))
        .merge(api)
        .fallback(not_found)
        .layer(CatchPanicLayer::custom(http::middleware::panic_response))
        .layer(axum::middleware::from_fn(http::middleware::request_id))
        .with_state(state)
}

async fn not_found() -> http::error::ApiError {
    http::error::ApiError::NotFound("Recurso no encontrado".to_string())
}
