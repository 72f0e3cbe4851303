//! The OpenAPI 3.1 description of the service (`GET /openapi.json`) and its Swagger UI (`/docs`).
//!
//! Each handler carries its own `#[utoipa::path]`, next to its code: method, path, parameters,
//! request body and success answer, whose schemas are `ToSchema` structs in the handler's module
//! that say what the wire carries (field names byte for byte, rules in their descriptions, an
//! example each). [`ApiDoc`] lists the handlers. What every operation of a family shares (its
//! error body, the refusals its router layers answer, the Bearer requirement) comes from the
//! family's layers in [`app`](crate::app), not from the handler, so [`FamilyConventions`] adds it
//! once. `tests/openapi.rs` fails when `app()` routes a path or method this document does not
//! describe, or when an operation lacks a typed answer or an example.

use serde::Serialize;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi as _, ToSchema};

use super::{
    alertas, areas, auditoria, auto_inspecao, bombas, catalogos, cierres, conciliacion,
    conductores, contabilidad, eventos, flota, health, import, inspection_registry, misiones,
    placas, saldos, scraping, tanqueos, vehiculo, webhooks,
};

/// The name the document gives the Bearer scheme.
pub const BEARER: &str = "bearer";

/// How a family answers its refusals: each seed fixed its own error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `/api/*`, `/healthz`, `/readyz`: `{"error": "..."}`.
    Api,
    /// Seed 002's `/vehiculo`: everything in the `{success, message, data, timestamp}` envelope.
    Vehiculo,
    /// Seed 001's scraping results and lookups: `{errorType, errorDetail, message}`.
    Scraping,
    /// Seed 003's self-inspections: `{"erro": "..."}`, and no Bearer token.
    Inspecao,
}

impl Family {
    /// The family a path belongs to, as `app()` nests its routers.
    pub fn of(path: &str) -> Self {
        if path.starts_with("/vehiculo") {
            Family::Vehiculo
        } else if path.starts_with("/api/scraping") || path.starts_with("/api/batch/scraping") {
            Family::Scraping
        } else if path.starts_with("/auto-inspecao") {
            Family::Inspecao
        } else {
            Family::Api
        }
    }

    fn error_schema(self) -> &'static str {
        match self {
            Family::Api => "ErrorBody",
            Family::Vehiculo => "VehiculoError",
            Family::Scraping => "ScrapingError",
            Family::Inspecao => "InspecaoError",
        }
    }

    fn tag(self, path: &str) -> &'static str {
        match self {
            Family::Vehiculo => "vehiculo (seed 002)",
            Family::Scraping => "scraping (seed 001)",
            Family::Inspecao => "auto-inspecao (seed 003)",
            Family::Api => match path.split('/').nth(2) {
                Some(
                    "tanqueos" | "saldos-bombas" | "reconciliacion" | "contabilidad" | "cierres"
                    | "alertas",
                ) => "fuel ledger",
                Some("bombas") if path.ends_with("/saldo") || path.ends_with("/movimientos") => {
                    "fuel ledger"
                }
                Some("eventos" | "auditoria" | "admin") => "log and audit",
                Some("empresas" | "tipos-operacao" | "questionarios" | "usuarios") => {
                    "inspection registry"
                }
                Some("webhooks") => "webhooks",
                _ if path.starts_with("/api/") => "fleet registry",
                _ => "service",
            },
        }
    }
}

/// What answers without a token: health, metrics and this description hold no ledger data.
/// Seed 003's family authenticates by the company token in its body instead.
const PUBLIC_PATHS: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.json"];

/// Paths `app()` routes twice, with and without a trailing slash (seed 001 writes the slash).
const TRAILING_SLASH_TWINS: [&str; 1] = ["/api/batch/scraping"];

/// Every handler `app()` routes, by family.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        health::healthz,
        health::readyz,
        health::metrics,
        eventos::list,
        eventos::stream,
        auditoria::actor_events,
        auditoria::subject_events,
        auditoria::subject_state,
        health::projections,
        health::rebuild,
        areas::list,
        areas::create,
        areas::get,
        placas::list,
        placas::create,
        placas::get,
        placas::update,
        conductores::list,
        conductores::create,
        conductores::get,
        bombas::list,
        bombas::create,
        bombas::get,
        bombas::update,
        catalogos::list,
        catalogos::create,
        flota::sync,
        tanqueos::list,
        tanqueos::create,
        tanqueos::get,
        tanqueos::correct,
        tanqueos::void,
        import::import,
        saldos::station_balance,
        saldos::all_balances,
        cierres::list,
        cierres::close,
        cierres::reopen,
        alertas::list,
        alertas::review,
        alertas::bands,
        alertas::set_band,
        conciliacion::movements,
        conciliacion::reconcile,
        contabilidad::trial_balance,
        contabilidad::account_movements,
        misiones::list,
        misiones::create,
        misiones::get,
        misiones::start,
        misiones::complete,
        misiones::cancel,
        inspection_registry::list_companies,
        inspection_registry::create_company,
        inspection_registry::change_company,
        inspection_registry::list_operation_types,
        inspection_registry::create_operation_type,
        inspection_registry::change_operation_type,
        inspection_registry::list_questionnaires,
        inspection_registry::create_questionnaire,
        inspection_registry::change_questionnaire,
        inspection_registry::list_users,
        inspection_registry::create_user,
        inspection_registry::change_user,
        webhooks::list,
        webhooks::create,
        webhooks::deliveries,
        webhooks::send_again,
        vehiculo::list,
        vehiculo::create,
        vehiculo::get,
        vehiculo::update,
        vehiculo::delete,
        scraping::record,
        scraping::lookup,
        auto_inspecao::create_batch,
        auto_inspecao::get,
        auto_inspecao::conclude,
        auto_inspecao::cancel,
    ),
    components(schemas(ErrorBody, VehiculoError, ScrapingError, InspecaoError)),
    modifiers(&FamilyConventions, &ThisDocument),
    tags(
        (name = "service"),
        (name = "fleet registry"),
        (name = "fuel ledger"),
        (name = "log and audit"),
        (name = "inspection registry"),
        (name = "webhooks"),
        (name = "vehiculo (seed 002)"),
        (name = "scraping (seed 001)"),
        (name = "auto-inspecao (seed 003)"),
    )
)]
pub struct ApiDoc;

/// The body of every refusal in the `/api` family (and `/healthz`, `/readyz`).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": "Missing required field: conductor_id"}))]
pub struct ErrorBody {
    pub error: String,
}

/// Seed 002's envelope for a refusal: `success: false`, no `data`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"success": false, "message": "Vehículo no encontrado", "timestamp": "2024-03-15T10:00:00.000Z"}))]
pub struct VehiculoError {
    /// Always `false` here.
    pub success: bool,
    pub message: String,
    /// When the service answered, RFC 3339 with milliseconds.
    pub timestamp: String,
}

/// Seed 001's error body.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"errorType": "unauthorize", "errorDetail": "Unauthorize", "message": "Authentication required"}))]
#[serde(rename_all = "camelCase")]
pub struct ScrapingError {
    pub error_type: String,
    pub error_detail: String,
    pub message: String,
}

/// Seed 003's error body.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"erro": "Auto inspeção não encontrada"}))]
pub struct InspecaoError {
    pub erro: String,
}

/// `{"message": "..."}`: what an operation that only acknowledges answers.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"message": "ok"}))]
pub struct MessageBody {
    pub message: String,
}

/// One entry, or an array of them: a registration answers in the form it was asked in.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

/// A page of a list: where it is and how far the list goes.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"page": 1, "limit": 20, "total": 1, "totalPages": 1}))]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub page: i64,
    pub limit: i64,
    pub total: i64,
    pub total_pages: i64,
}

/// Adds to each operation what its family's layers answer: the family's error body for each
/// refusal, the Bearer requirement with its 401 and 403 where a token is needed, the tag, and an
/// operation id made of the method and the path (handlers of different families share names
/// such as `list`, and ids must be unique).
struct FamilyConventions;

impl Modify for FamilyConventions {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "`fleet-ledger token --sub NAME --role ROLE` with the server's --data-dir",
                    ))
                    .build(),
            ),
        );
        for twin in TRAILING_SLASH_TWINS {
            if let Some(item) = openapi.paths.paths.get(twin).cloned() {
                openapi.paths.paths.insert(format!("{twin}/"), item);
            }
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, operation) in operations_mut(item) {
                follow_family(path, method, operation);
            }
        }
    }
}

fn operations_mut(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("patch", item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| Some((method, operation?)))
    .collect()
}

fn follow_family(path: &str, method: &str, operation: &mut Operation) {
    let family = Family::of(path);
    operation.operation_id = Some(format!(
        "{method}{}",
        path.replace(['{', '}'], "").replace(['/', '-', '.'], "_")
    ));
    operation.tags = Some(vec![family.tag(path).to_string()]);
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(Ref::from_schema_name(
                        family.error_schema(),
                    ))))
                    .build(),
            )
            .build()
    };
    let reads = method == "get";
    let mut refusals = vec![
        ("400", "Bad input, named in the message"),
        ("404", "No such resource"),
        ("503", "Overloaded, timed out, or the store is out of reach"),
    ];
    if !reads {
        refusals.extend([
            ("409", "Conflicts with the current state"),
            ("413", "Body over the limit"),
            ("415", "Not a JSON body"),
            (
                "422",
                "Refused by a business rule, or an Idempotency-Key reused",
            ),
        ]);
    }
    let needs_token = family != Family::Inspecao && !PUBLIC_PATHS.contains(&path);
    if needs_token {
        operation
            .security
            .get_or_insert_with(Vec::new)
            .push(SecurityRequirement::new(BEARER, Vec::<String>::new()));
        refusals.extend([
            ("401", "No token, or a token refused"),
            ("403", "The token's role may not do this"),
        ]);
    }
    for (status, description) in refusals {
        // A handler that documents a refusal of its own (seed 003's 422 body) keeps it.
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(error(description)));
    }
}

/// `/openapi.json` is served by the Swagger UI router, not by a handler of ours.
struct ThisDocument;

impl Modify for ThisDocument {
    fn modify(&self, openapi: &mut OpenApi) {
        let operation = OperationBuilder::new()
            .tag("service")
            .operation_id(Some("get_openapi_json"))
            .summary(Some("This document"))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The OpenAPI 3.1 description of every operation")
                    .content("application/json", ContentBuilder::new().build())
                    .build(),
            )
            .build();
        openapi
            .paths
            .add_path_operation("/openapi.json", vec![HttpMethod::Get], operation);
    }
}

/// The whole document.
pub fn document() -> OpenApi {
    ApiDoc::openapi()
}

/// `/openapi.json` and `/docs`, both answering without a token: they describe, they hold no data.
pub fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::from(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", document()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_unique() {
        let document = serde_json::to_value(document()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let id = operation["operationId"].as_str().unwrap().to_string();
                assert!(seen.insert(id.clone()), "{method} {path}: {id} twice");
            }
        }
    }

    #[test]
    fn a_path_belongs_to_the_family_whose_router_serves_it() {
        assert_eq!(Family::of("/vehiculo/{id}"), Family::Vehiculo);
        assert_eq!(Family::of("/api/batch/scraping/"), Family::Scraping);
        assert_eq!(Family::of("/api/scraping/resultados"), Family::Scraping);
        assert_eq!(Family::of("/auto-inspecao/{hash}"), Family::Inspecao);
        assert_eq!(Family::of("/api/tanqueos"), Family::Api);
        assert_eq!(Family::of("/healthz"), Family::Api);
    }
}
