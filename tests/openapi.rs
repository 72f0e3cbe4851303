//! The API description: `/openapi.json` (OpenAPI 3.1, the Bearer scheme, every route `app()`
//! has) and `/docs` (Swagger UI from assets inside the binary), both without a token.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::{respond, Backend, TestApp};
use serde_json::{json, Value};

async fn app() -> TestApp {
    // The description holds no data: one store is enough.
    TestApp::start(Backend::Sqlite).await.expect("SQLite")
}

async fn unauthenticated_get(app: &TestApp, path: &str) -> (StatusCode, header::HeaderMap, String) {
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .body(Body::empty())
        .expect("request");
    let (status, headers, bytes) = respond(&app.router, request).await;
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

async fn document(app: &TestApp) -> Value {
    let (status, headers, body) = unauthenticated_get(app, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    serde_json::from_str(&body).expect("/openapi.json is JSON")
}

#[tokio::test]
async fn openapi_json_is_openapi_3_1_with_the_bearer_scheme_and_needs_no_token() {
    let app = app().await;
    let document = document(&app).await;
    let version = document["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3.1."), "openapi {version}");
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["type"],
        "http"
    );
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // A data endpoint asks for it; a health check does not.
    assert_eq!(
        document["paths"]["/api/tanqueos"]["post"]["security"],
        json!([{"bearer": []}])
    );
    assert!(document["paths"]["/healthz"]["get"]["security"].is_null());
    assert!(document["paths"]["/auto-inspecao/{hash}"]["get"]["security"].is_null());
}

#[tokio::test]
async fn docs_answer_swagger_ui_html_from_the_binary_without_a_token() {
    let app = app().await;
    let (status, headers, _) = unauthenticated_get(&app, "/docs").await;
    assert!(status.is_redirection(), "/docs answered {status}");
    assert_eq!(headers[header::LOCATION], "/docs/");

    let (status, headers, body) = unauthenticated_get(&app, "/docs/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        headers[header::CONTENT_TYPE]
    );
    assert!(body.contains("swagger-ui"), "{body}");
    // The script the page loads is served from the binary, not a CDN.
    let (status, _, script) = unauthenticated_get(&app, "/docs/swagger-ui-bundle.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(script.len() > 100_000, "{} bytes", script.len());
}

/// Every `(METHOD, path)` that `app()` in src/lib.rs routes to a handler, read from its source:
/// axum's `Router` cannot list its routes.
fn routed_operations() -> BTreeSet<(String, String)> {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs"))
        .expect("src/lib.rs");
    let body = &source[source
        .find("pub fn app_with_limits")
        .expect("app_with_limits")..];
    let mut routed = BTreeSet::new();
    for call in body.split(".route(").skip(1) {
        let path = call.split('"').nth(1).expect("a route's path literal");
        for method in ["get", "post", "put", "patch", "delete"] {
            let handler = format!("{method}(http::");
            let handled = call
                .match_indices(&handler)
                .any(|(at, _)| at == 0 || !call.as_bytes()[at - 1].is_ascii_alphanumeric());
            if handled {
                routed.insert((method.to_uppercase(), path.to_string()));
            }
        }
    }
    assert!(routed.len() > 50, "read only {} routes", routed.len());
    for route in HTML_ROUTES {
        let route = (route.0.to_string(), route.1.to_string());
        assert!(
            routed.remove(&route),
            "{route:?} is listed as HTML but not routed"
        );
    }
    routed
}

/// The dashboard's routes, left out of the OpenAPI document on purpose: they answer HTML pages
/// (and a CSV download, and the live feed again) to a browser holding a session cookie, not
/// JSON to a client holding a bearer token, so no schema or generated request describes them.
/// tests/ui.rs walks them instead, against README's dashboard role table.
const HTML_ROUTES: &[(&str, &str)] = &[
    ("GET", "/ui/estaciones"),
    ("GET", "/ui/estaciones/{id}"),
    ("GET", "/ui/vehiculos"),
    ("GET", "/ui/vehiculos/{id}"),
    ("GET", "/ui/conciliacion"),
    ("GET", "/ui/conciliacion.csv"),
    ("GET", "/ui/auditoria"),
    ("GET", "/ui/auditoria/stream"),
    ("GET", "/ui"),
    ("GET", "/ui/login"),
    ("POST", "/ui/login"),
    ("POST", "/ui/login/dev"),
    ("POST", "/ui/logout"),
];

#[tokio::test]
async fn every_route_of_the_app_is_described_and_nothing_else() {
    let app = app().await;
    let document = document(&app).await;
    let mut described = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if path != "/openapi.json" {
                described.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let routed = routed_operations();
    let undescribed: Vec<_> = routed.difference(&described).collect();
    assert!(
        undescribed.is_empty(),
        "routed, not described: {undescribed:?}"
    );
    let unrouted: Vec<_> = described.difference(&routed).collect();
    assert!(unrouted.is_empty(), "described, not routed: {unrouted:?}");
}

#[tokio::test]
async fn every_operation_names_its_familys_error_body_and_a_success() {
    let app = app().await;
    let document = document(&app).await;
    let error_of = |path: &str, method: &str, status: &str| {
        document["paths"][path][method]["responses"][status]["content"]["application/json"]
            ["schema"]["$ref"]
            .clone()
    };
    assert_eq!(
        error_of("/api/tanqueos", "post", "400"),
        "#/components/schemas/ErrorBody"
    );
    assert_eq!(
        error_of("/vehiculo/{id}", "delete", "404"),
        "#/components/schemas/VehiculoEnvelope"
    );
    assert_eq!(
        error_of("/api/batch/scraping", "get", "401"),
        "#/components/schemas/ScrapingError"
    );
    assert_eq!(
        error_of("/auto-inspecao/{hash}", "get", "404"),
        "#/components/schemas/InspecaoError"
    );
    for schema in [
        "ErrorBody",
        "VehiculoEnvelope",
        "ScrapingError",
        "InspecaoError",
    ] {
        assert!(
            document["components"]["schemas"][schema]["example"].is_object(),
            "{schema} has no example"
        );
    }
}

#[tokio::test]
async fn the_tanqueo_body_documents_its_fields_rules_and_an_example() {
    let app = app().await;
    let document = document(&app).await;
    assert_eq!(
        document["paths"]["/api/tanqueos"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/TanqueoRequest"
    );
    let tanqueo = &document["components"]["schemas"]["TanqueoRequest"];
    assert_eq!(
        tanqueo["required"],
        json!(["fecha", "bomba_id", "area_operacion_id"])
    );
    let properties = &tanqueo["properties"];
    assert_eq!(properties["observacion"]["maxLength"], 2000);
    assert!(properties["valor_anticipo"]["description"]
        .as_str()
        .unwrap()
        .contains("ANTICIPO: required"));
    assert!(properties["conductor_id"]["description"]
        .as_str()
        .unwrap()
        .contains("ANTICIPO: refused"));
    // Its list names the filters it reads.
    let filters: Vec<&str> = document["paths"]["/api/tanqueos"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for filter in [
        "page",
        "limit",
        "desde",
        "hasta",
        "bomba_id",
        "tipo_operacion",
    ] {
        assert!(filters.contains(&filter), "{filter} not in {filters:?}");
    }
    // The example is a body the service accepts.
    let example = tanqueo["example"].clone();
    app.seed_fleet().await;
    let (status, record) = app.post("/api/tanqueos", &example.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{record}");
    assert_eq!(record["valor_tanqueo"], example["valor_tanqueo"]);
}
