//! fleet-ledger: an event-sourced ledger for fleet operators.
//!
//! [`app`] is the one place routes are listed. Everything a request needs lives in [`AppState`].

pub mod alert_detector;
pub mod anomalies;
pub mod audit;
pub mod auth;
pub mod balances;
pub mod bench;
pub mod cli;
pub mod commands;
pub mod config;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod inspection_processor;
pub mod integrity;
pub mod lease;
pub mod memory;
pub mod queries;
pub mod reactor;
pub mod read_store;
pub mod rebuild;
pub mod references;
pub mod runner;
pub mod secret_file;
pub mod settings;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod webhooks;

use axum::routing::{get, patch, post};
use axum::Extension;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

pub use http::limits::HttpLimits;
pub use state::{AppState, StoreLocation};

/// The whole HTTP API over `state`, with the default [`HttpLimits`].
pub fn app(state: AppState) -> Router {
    app_with_limits(state, HttpLimits::default())
}

/// The whole HTTP API over `state`, admitting requests within `limits`.
pub fn app_with_limits(state: AppState, limits: HttpLimits) -> Router {
    let admission = http::limits::Admission::new(limits);
    let api = Router::new()
        .route("/api/eventos", get(http::eventos::list))
        .route("/api/eventos/stream", get(http::eventos::stream))
        .route(
            "/api/auditoria/actores/{sub}/eventos",
            get(http::auditoria::actor_events),
        )
        .route(
            "/api/auditoria/{tipo}/{id}/eventos",
            get(http::auditoria::subject_events),
        )
        .route(
            "/api/auditoria/{tipo}/{id}",
            get(http::auditoria::subject_state),
        )
        .route("/api/admin/proyecciones", get(http::health::projections))
        .route(
            "/api/admin/proyecciones/{name}/reconstruir",
            post(http::health::rebuild),
        )
        .route(
            "/api/areas-operacion",
            get(http::areas::list).post(http::areas::create),
        )
        .route("/api/areas-operacion/{id}", get(http::areas::get))
        .route(
            "/api/placas",
            get(http::placas::list).post(http::placas::create),
        )
        .route(
            "/api/placas/{id}",
            get(http::placas::get).patch(http::placas::update),
        )
        .route(
            "/api/conductores",
            get(http::conductores::list).post(http::conductores::create),
        )
        .route("/api/conductores/{id}", get(http::conductores::get))
        .route(
            "/api/bombas",
            get(http::bombas::list).post(http::bombas::create),
        )
        .route(
            "/api/bombas/{id}",
            get(http::bombas::get).patch(http::bombas::update),
        )
        .route(
            "/api/catalogos/{catalogo}",
            get(http::catalogos::list).post(http::catalogos::create),
        )
        .route("/api/flota/sync", post(http::flota::sync))
        .route(
            "/api/tanqueos",
            get(http::tanqueos::list).post(http::tanqueos::create),
        )
        .route(
            "/api/tanqueos/{id}",
            get(http::tanqueos::get).put(http::tanqueos::correct),
        )
        .route("/api/tanqueos/{id}/anular", post(http::tanqueos::void))
        .route("/api/alertas", get(http::alertas::list))
        .route(
            "/api/alertas/bandas",
            get(http::alertas::bands).put(http::alertas::set_band),
        )
        .route("/api/alertas/{id}/revisar", post(http::alertas::review))
        .route(
            "/api/tanqueos/import",
            // 5,000 spreadsheet rows of wide text cells need more than the 1 MiB of the rest.
            post(http::import::import).layer(Extension(http::extract::BodyLimit(
                http::import::BODY_BYTES_MAX,
            ))),
        )
        .route(
            "/api/cierres",
            get(http::cierres::list).post(http::cierres::close),
        )
        .route("/api/cierres/reabrir", post(http::cierres::reopen))
        .route("/api/bombas/{id}/saldo", get(http::saldos::station_balance))
        .route("/api/saldos-bombas", get(http::saldos::all_balances))
        .route(
            "/api/bombas/{id}/movimientos",
            get(http::conciliacion::movements),
        )
        .route("/api/reconciliacion", get(http::conciliacion::reconcile))
        .route(
            "/api/contabilidad/balance-prueba",
            get(http::contabilidad::trial_balance),
        )
        .route(
            "/api/contabilidad/cuentas/{cuenta}/movimientos",
            get(http::contabilidad::account_movements),
        )
        .route(
            "/api/misiones",
            get(http::misiones::list).post(http::misiones::create),
        )
        .route("/api/misiones/{id}", get(http::misiones::get))
        .route("/api/misiones/{id}/iniciar", post(http::misiones::start))
        .route(
            "/api/misiones/{id}/finalizar",
            post(http::misiones::complete),
        )
        .route("/api/misiones/{id}/cancelar", post(http::misiones::cancel))
        .route(
            "/api/empresas",
            get(http::inspection_registry::list_companies)
                .post(http::inspection_registry::create_company),
        )
        .route(
            "/api/empresas/{id}",
            patch(http::inspection_registry::change_company),
        )
        .route(
            "/api/tipos-operacao",
            get(http::inspection_registry::list_operation_types)
                .post(http::inspection_registry::create_operation_type),
        )
        .route(
            "/api/tipos-operacao/{id}",
            patch(http::inspection_registry::change_operation_type),
        )
        .route(
            "/api/questionarios",
            get(http::inspection_registry::list_questionnaires)
                .post(http::inspection_registry::create_questionnaire),
        )
        .route(
            "/api/questionarios/{id}",
            patch(http::inspection_registry::change_questionnaire),
        )
        .route(
            "/api/usuarios",
            get(http::inspection_registry::list_users).post(http::inspection_registry::create_user),
        )
        .route(
            "/api/usuarios/{id}",
            patch(http::inspection_registry::change_user),
        )
        .route(
            "/api/webhooks",
            get(http::webhooks::list).post(http::webhooks::create),
        )
        .route(
            "/api/webhooks/{id}/entregas",
            get(http::webhooks::deliveries),
        )
        .route(
            "/api/webhooks/{id}/entregas/{entrega}/reenviar",
            post(http::webhooks::send_again),
        )
        // Keys belong to the token's `sub`: the key layer runs right inside authentication.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::idempotency::idempotency_key,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::middleware::require_token,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            admission.clone(),
            http::limits::admit,
        ));
    // Seed 002's family answers everything, refusals included, in its own envelope.
    let vehiculo = Router::new()
        .route(
            "/vehiculo",
            get(http::vehiculo::list).post(http::vehiculo::create),
        )
        .route(
            "/vehiculo/{id}",
            get(http::vehiculo::get)
                .put(http::vehiculo::update)
                .delete(http::vehiculo::delete),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(CatchPanicLayer::custom(http::middleware::panic_response))
        // The envelope twice: inside the key layer, so that a key keeps (and replays) the
        // enveloped answer byte for byte; outside it, for what authentication and the key layer
        // refuse themselves. An answer already enveloped passes the outer one unchanged.
        .route_layer(axum::middleware::from_fn(http::vehiculo::error_envelope))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::idempotency::idempotency_key,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::middleware::require_token,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            admission.clone(),
            http::limits::admit,
        ))
        .route_layer(axum::middleware::from_fn(http::vehiculo::error_envelope));
    // Seed 001's family answers every refusal, authentication's included, in its own error
    // format, and a lookup is a read whatever its method: it has its own authentication.
    let scraping = Router::new()
        .route(
            "/api/scraping/resultados",
            // Keys belong to the token's `sub`: the key layer runs inside authentication. A
            // lookup sent as POST is a read, and is not keyed.
            post(http::scraping::record).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                http::idempotency::idempotency_key,
            )),
        )
        .route(
            "/api/batch/scraping",
            get(http::scraping::lookup).post(http::scraping::lookup),
        )
        .route(
            "/api/batch/scraping/",
            get(http::scraping::lookup).post(http::scraping::lookup),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(CatchPanicLayer::custom(http::middleware::panic_response))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::scraping::require_token,
        ))
        // Outermost, so it formats what every layer refuses. It has no timestamp: a kept answer
        // replayed for an Idempotency-Key is formatted into the same bytes again.
        .route_layer(axum::middleware::from_fn(http::scraping::error_format));
    // Seed 003's family takes no Bearer token (a batch names its company by the entry's token,
    // an inspection's hash is the capability to it) and answers its own error format.
    let inspecoes = Router::new()
        .route(
            "/auto-inspecao/criar-em-lote",
            post(http::auto_inspecao::create_batch),
        )
        .route("/auto-inspecao/{hash}", get(http::auto_inspecao::get))
        .route(
            "/auto-inspecao/{hash}/concluir",
            post(http::auto_inspecao::conclude),
        )
        .route(
            "/auto-inspecao/{hash}/cancelar",
            post(http::auto_inspecao::cancel),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(CatchPanicLayer::custom(http::middleware::panic_response))
        .route_layer(axum::middleware::from_fn_with_state(
            admission.clone(),
            http::limits::admit,
        ))
        .route_layer(axum::middleware::from_fn(http::auto_inspecao::error_format));
    // The dashboard (src/http/ui): HTML for people, its session the API's token kept in a
    // cookie. Its pages require the session; login and logout cannot.
    let ui_pages = Router::new()
        .route("/ui/estaciones", get(http::ui::estaciones::list))
        .route("/ui/estaciones/{id}", get(http::ui::estaciones::detail))
        .route("/ui/vehiculos", get(http::ui::vehiculos::list))
        .route("/ui/vehiculos/{id}", get(http::ui::vehiculos::detail))
        .route("/ui/conciliacion", get(http::ui::conciliacion::page))
        .route(
            "/ui/conciliacion.csv",
            get(http::ui::conciliacion::download),
        )
        .route("/ui/auditoria", get(http::ui::auditoria::page))
        // The API's live feed itself, behind the cookie: `EventSource` sends no header.
        .route("/ui/auditoria/stream", get(http::eventos::stream))
        .route_layer(CatchPanicLayer::custom(http::middleware::panic_response))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::ui::require_session,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            admission.clone(),
            http::limits::admit,
        ));
    let ui_login = Router::new()
        .route("/ui", get(http::ui::home))
        .route(
            "/ui/login",
            get(http::ui::login::page).post(http::ui::login::submit),
        )
        .route("/ui/login/dev", post(http::ui::login::submit_dev))
        .route("/ui/logout", post(http::ui::login::logout))
        .route_layer(axum::middleware::from_fn_with_state(
            admission.clone(),
            http::limits::admit,
        ));
    // Installed before the first request or append is counted.
    telemetry::handle();
    Router::new()
        .route("/healthz", get(http::health::healthz))
        .route("/readyz", get(http::health::readyz))
        .route("/metrics", get(http::health::metrics))
        // `/openapi.json` and `/docs` take no token: they describe the API, they hold no data.
        .merge(http::openapi::routes())
        .merge(api)
        .merge(vehiculo)
        .merge(scraping)
        .merge(inspecoes)
        .merge(ui_pages)
        .merge(ui_login)
        .route_layer(axum::middleware::from_fn(http::middleware::matched_route))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(CatchPanicLayer::custom(http::middleware::panic_response))
        .layer(axum::middleware::from_fn(http::middleware::request_id))
        .with_state(state)
}

async fn not_found() -> http::error::ApiError {
    http::error::ApiError::NotFound("Recurso no encontrado".to_string())
}

async fn method_not_allowed() -> http::error::ApiError {
    http::error::ApiError::MethodNotAllowed
}
