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
        "#/components/schemas/VehiculoError"
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
        "VehiculoError",
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

/// A validator of `component` (a schema of the document) whose `$ref`s resolve inside the
/// document, as JSON Schema 2020-12 (what OpenAPI 3.1 schemas are).
fn validator_for(document: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    root["components"] = document["components"].clone();
    jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("{schema}: {e}"))
}

/// The schema the document gives the answer `status` of `method template`, if it gives one.
fn answer_schema(document: &Value, method: &str, template: &str, status: u16) -> Option<Value> {
    let responses = &document["paths"][template][method.to_lowercase()]["responses"];
    let response = &responses[status.to_string()];
    assert!(
        response.is_object(),
        "{method} {template}: {status} is not documented"
    );
    response["content"]["application/json"]
        .get("schema")
        .cloned()
}

/// One request of the tour: its method, the path as the document writes it, the path sent,
/// and its JSON body.
struct Step {
    method: &'static str,
    template: &'static str,
    path: String,
    body: Option<Value>,
}

fn step(method: &'static str, template: &'static str, path: &str, body: Option<Value>) -> Step {
    Step {
        method,
        template,
        path: path.to_string(),
        body,
    }
}

/// Drift between a handler and its `#[utoipa::path]` is caught here: every JSON answer of a
/// tour through every operation (successes and each family's refusals) must match the schema
/// the document gives it, and every operation must have answered a success at least once.
#[tokio::test]
async fn every_answer_of_a_tour_through_the_api_matches_its_documented_schema() {
    let settings = fleet_ledger::settings::LedgerSettings {
        webhooks: fleet_ledger::settings::WebhookSettings {
            allow_private: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let app = TestApp::start_with(Backend::Sqlite, settings)
        .await
        .expect("SQLite");
    let document = document(&app).await;
    app.seed_fleet().await;
    let company_token = common::inspection_fixture(&app).await;
    let admin = app.token(fleet_ledger::auth::Role::Admin);
    let entry = common::entry(&company_token, "ABC1234");
    let mut other_entry = common::entry(&company_token, "XYZ9876");
    other_entry["cliente_numero"] = json!("44988887777");
    let check = json!({"vin": "JT123456789012345", "plate": "ABC123", "resourceId": 7, "status": "OK",
        "result": [{"multa": "F-1"}], "creationDateTime": "2024-03-15T10:00:00Z"});
    let lookup = json!({"vehicles": [{"vin": "JT123456789012345", "plate": "ABC123"}]});
    let tanqueo = json!({"fecha": "2024-03-16", "conductor_id": 1, "placa_id": 1, "bomba_id": 1,
        "area_operacion_id": 1, "valor_tanqueo": 150000, "cantidad_galones": 12.5, "horometro": 10,
        "saldo_disponible": 349000});
    let import = json!({"area_operacion_id": 1, "bomba_id": 1, "records": [{"FECHA": "17/03/2024",
        "NOMBRE CONDUCTOR": "juan pérez", "PLACA": "abc 123", "TIPO COMBUSTIBLE": "ACPM",
        "VALOR TANQUEO": "$100.000", "CANTIDAD GALONES": "8,5"}, {"FECHA": "no"}]});
    let vehicle =
        json!({"placa": "GHI789", "idClaseVehiculo": 1, "idEstadoVehiculo": 1, "marca": "KIA"});
    let tour = [
        step("GET", "/healthz", "/healthz", None),
        step("GET", "/readyz", "/readyz", None),
        step(
            "GET",
            "/api/eventos",
            "/api/eventos?limite=3&tipos=AnticipoPaid",
            None,
        ),
        step(
            "GET",
            "/api/auditoria/{tipo}/{id}",
            "/api/auditoria/bomba/1",
            None,
        ),
        step(
            "GET",
            "/api/auditoria/{tipo}/{id}/eventos",
            "/api/auditoria/bomba/1/eventos?limite=2",
            None,
        ),
        step(
            "GET",
            "/api/auditoria/actores/{sub}/eventos",
            "/api/auditoria/actores/ana@flota.co/eventos?limite=2&desde=2020-01-01",
            None,
        ),
        step(
            "GET",
            "/api/admin/proyecciones",
            "/api/admin/proyecciones",
            None,
        ),
        step(
            "POST",
            "/api/areas-operacion",
            "/api/areas-operacion",
            Some(json!({"nombre": "Sur"})),
        ),
        step(
            "POST",
            "/api/areas-operacion",
            "/api/areas-operacion",
            Some(json!([{"nombre": "Este"}, {"nombre": "Oeste"}])),
        ),
        step("GET", "/api/areas-operacion", "/api/areas-operacion", None),
        step(
            "GET",
            "/api/areas-operacion/{id}",
            "/api/areas-operacion/1",
            None,
        ),
        step(
            "POST",
            "/api/placas",
            "/api/placas",
            Some(json!({"placa": "xyz 987"})),
        ),
        step(
            "POST",
            "/api/placas",
            "/api/placas",
            Some(json!([{"placa": "DEF456", "estado": "DESACTIVADA"}])),
        ),
        step("GET", "/api/placas", "/api/placas?estado=activada", None),
        step("GET", "/api/placas/{id}", "/api/placas/1", None),
        step(
            "PATCH",
            "/api/placas/{id}",
            "/api/placas/3",
            Some(json!({"estado": "ACTIVADA"})),
        ),
        step(
            "POST",
            "/api/conductores",
            "/api/conductores",
            Some(json!({"conductor": "Ana"})),
        ),
        step("GET", "/api/conductores", "/api/conductores", None),
        step("GET", "/api/conductores/{id}", "/api/conductores/1", None),
        step(
            "POST",
            "/api/bombas",
            "/api/bombas",
            Some(json!({"bomba": "Norte"})),
        ),
        step("GET", "/api/bombas", "/api/bombas", None),
        step("GET", "/api/bombas/{id}", "/api/bombas/1", None),
        step(
            "PATCH",
            "/api/bombas/{id}",
            "/api/bombas/3",
            Some(json!({"permitir_saldo_negativo": false})),
        ),
        step(
            "GET",
            "/api/catalogos/{catalogo}",
            "/api/catalogos/combustibles",
            None,
        ),
        step(
            "POST",
            "/api/catalogos/{catalogo}",
            "/api/catalogos/departamentos",
            Some(json!({"nombre": "Finanzas"})),
        ),
        step("POST", "/api/flota/sync", "/api/flota/sync", None),
        step("POST", "/api/tanqueos", "/api/tanqueos", Some(tanqueo)),
        step("GET", "/api/tanqueos/{id}", "/api/tanqueos/2", None),
        step(
            "PUT",
            "/api/tanqueos/{id}",
            "/api/tanqueos/2",
            Some(json!({"observacion": "revisado"})),
        ),
        step(
            "GET",
            "/api/tanqueos",
            "/api/tanqueos?limit=5&tipo_operacion=tanqueo,anticipo",
            None,
        ),
        step(
            "POST",
            "/api/tanqueos/import",
            "/api/tanqueos/import",
            Some(import),
        ),
        step(
            "POST",
            "/api/tanqueos/{id}/anular",
            "/api/tanqueos/2/anular",
            Some(json!({"motivo": "duplicado"})),
        ),
        step(
            "GET",
            "/api/bombas/{id}/saldo",
            "/api/bombas/1/saldo?fecha_corte=2024-03-16",
            None,
        ),
        step("GET", "/api/saldos-bombas", "/api/saldos-bombas", None),
        step(
            "GET",
            "/api/bombas/{id}/movimientos",
            "/api/bombas/1/movimientos",
            None,
        ),
        step("GET", "/api/reconciliacion", "/api/reconciliacion", None),
        step(
            "GET",
            "/api/contabilidad/balance-prueba",
            "/api/contabilidad/balance-prueba",
            None,
        ),
        step(
            "GET",
            "/api/contabilidad/cuentas/{cuenta}/movimientos",
            "/api/contabilidad/cuentas/1330-anticipos-bomba-1/movimientos",
            None,
        ),
        step(
            "POST",
            "/api/misiones/{id}/iniciar",
            "/api/misiones/1/iniciar",
            Some(json!({"kilometraje_inicial": 100, "combustible_inicial_galones": 30})),
        ),
        step(
            "POST",
            "/api/misiones/{id}/finalizar",
            "/api/misiones/1/finalizar",
            Some(json!({"kilometraje_final": 250, "combustible_final_galones": 12.5})),
        ),
        step(
            "POST",
            "/api/misiones",
            "/api/misiones",
            Some(
                json!({"vehiculo_id": 1, "conductor_id": 1, "descripcion": "Otra", "fecha_programada": "2026-04-01"}),
            ),
        ),
        step(
            "POST",
            "/api/misiones/{id}/cancelar",
            "/api/misiones/2/cancelar",
            Some(json!({"motivo": "lluvia"})),
        ),
        step("GET", "/api/misiones", "/api/misiones?vehiculo_id=1", None),
        step("GET", "/api/misiones/{id}", "/api/misiones/1", None),
        step(
            "POST",
            "/api/empresas",
            "/api/empresas",
            Some(json!({"nome": "Outra", "bloquear_placas_repetidas": true})),
        ),
        step("GET", "/api/empresas", "/api/empresas", None),
        step(
            "PATCH",
            "/api/empresas/{id}",
            "/api/empresas/2",
            Some(json!({"ativo": false})),
        ),
        step(
            "POST",
            "/api/tipos-operacao",
            "/api/tipos-operacao",
            Some(json!({"nome": "Compra"})),
        ),
        step("GET", "/api/tipos-operacao", "/api/tipos-operacao", None),
        step(
            "PATCH",
            "/api/tipos-operacao/{id}",
            "/api/tipos-operacao/2",
            Some(json!({"ativo": false})),
        ),
        step(
            "POST",
            "/api/questionarios",
            "/api/questionarios",
            Some(json!({"nome": "Moto", "tipos_operacao": [1, 2]})),
        ),
        step("GET", "/api/questionarios", "/api/questionarios", None),
        step(
            "PATCH",
            "/api/questionarios/{id}",
            "/api/questionarios/2",
            Some(json!({"ativo": false})),
        ),
        step(
            "POST",
            "/api/usuarios",
            "/api/usuarios",
            Some(json!({"nome": "Bia"})),
        ),
        step("GET", "/api/usuarios", "/api/usuarios", None),
        step(
            "PATCH",
            "/api/usuarios/{id}",
            "/api/usuarios/2",
            Some(json!({"ativo": false})),
        ),
        step(
            "POST",
            "/api/webhooks",
            "/api/webhooks",
            Some(
                json!({"empresa_id": 1, "url": "http://127.0.0.1:9/hook", "eventos": ["auto_inspecao.criada"]}),
            ),
        ),
        step("GET", "/api/webhooks", "/api/webhooks", None),
        step(
            "POST",
            "/auto-inspecao/criar-em-lote",
            "/auto-inspecao/criar-em-lote",
            Some(json!([entry, other_entry])),
        ),
        step(
            "POST",
            "/auto-inspecao/criar-em-lote",
            "/auto-inspecao/criar-em-lote",
            Some(json!([{"token": company_token}])),
        ),
        step(
            "GET",
            "/api/webhooks/{id}/entregas",
            "/api/webhooks/1/entregas?limite=5",
            None,
        ),
        step(
            "GET",
            "/vehiculo",
            "/vehiculo?incluir_eliminados=true",
            None,
        ),
        step("GET", "/vehiculo/{id}", "/vehiculo/1", None),
        step(
            "PUT",
            "/vehiculo/{id}",
            "/vehiculo/1",
            Some(json!({"marca": "TOYOTA", "capacidadCombustibleGalones": 80})),
        ),
        step("POST", "/vehiculo", "/vehiculo", Some(vehicle)),
        step("DELETE", "/vehiculo/{id}", "/vehiculo/2", None),
        step("GET", "/vehiculo/{id}", "/vehiculo/999", None),
        step(
            "POST",
            "/api/scraping/resultados",
            "/api/scraping/resultados",
            Some(check.clone()),
        ),
        step(
            "POST",
            "/api/scraping/resultados",
            "/api/scraping/resultados",
            Some(json!([check])),
        ),
        step(
            "POST",
            "/api/batch/scraping",
            "/api/batch/scraping",
            Some(lookup.clone()),
        ),
        step(
            "GET",
            "/api/batch/scraping",
            "/api/batch/scraping",
            Some(lookup.clone()),
        ),
        step(
            "POST",
            "/api/batch/scraping/",
            "/api/batch/scraping/",
            Some(lookup.clone()),
        ),
        step(
            "GET",
            "/api/batch/scraping/",
            "/api/batch/scraping/",
            Some(lookup.clone()),
        ),
        step(
            "POST",
            "/api/batch/scraping",
            "/api/batch/scraping",
            Some(json!({"vehicles": []})),
        ),
        step("GET", "/api/cierres", "/api/cierres", None),
        step(
            "POST",
            "/api/cierres",
            "/api/cierres",
            Some(json!({"anio": 2024, "mes": 1})),
        ),
        step(
            "POST",
            "/api/cierres/reabrir",
            "/api/cierres/reabrir",
            Some(json!({"anio": 2024, "mes": 1, "motivo": "Factura tardía"})),
        ),
        step("POST", "/api/tanqueos", "/api/tanqueos", Some(json!({}))),
        step(
            "GET",
            "/api/admin/proyecciones",
            "/api/admin/proyecciones",
            None,
        ),
        step(
            "POST",
            "/api/admin/proyecciones/{name}/reconstruir",
            "/api/admin/proyecciones/saldos/reconstruir",
            None,
        ),
    ];
    let mut succeeded = BTreeSet::new();
    let mut hashes = Vec::new();
    for step in &tour {
        let body = step.body.as_ref().map(Value::to_string);
        let (status, answer) = app
            .call(
                step.method.parse().unwrap(),
                &step.path,
                Some(&admin),
                body.as_deref(),
            )
            .await;
        check_answer(&document, step.method, step.template, status, &answer);
        if status.is_success() {
            succeeded.insert((step.method.to_string(), step.template.to_string()));
        }
        if step.template == "/auto-inspecao/criar-em-lote" && status.is_success() {
            hashes.extend(
                answer
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["hash"].as_str().unwrap().to_string()),
            );
        }
    }
    // The self-inspections, once the processor has opened them (only an open one concludes).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    for hash in &hashes {
        loop {
            let (_, inspection) = app
                .call(Method::GET, &format!("/auto-inspecao/{hash}"), None, None)
                .await;
            if inspection["status"] == "ABERTA" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never opened: {inspection}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    for (method, template, path) in [
        (
            "GET",
            "/auto-inspecao/{hash}",
            format!("/auto-inspecao/{}", hashes[0]),
        ),
        (
            "POST",
            "/auto-inspecao/{hash}/concluir",
            format!("/auto-inspecao/{}/concluir", hashes[0]),
        ),
        (
            "POST",
            "/auto-inspecao/{hash}/cancelar",
            format!("/auto-inspecao/{}/cancelar", hashes[1]),
        ),
        (
            "GET",
            "/auto-inspecao/{hash}",
            "/auto-inspecao/nohash".to_string(),
        ),
    ] {
        let (status, answer) = app.call(method.parse().unwrap(), &path, None, None).await;
        check_answer(&document, method, template, status, &answer);
        if status.is_success() {
            succeeded.insert((method.to_string(), template.to_string()));
        }
    }
    // An alert: a refuel past vehicle 1's tank (80 gallons, set above), flagged by the detector.
    let over_capacity = json!({"fecha": "2024-03-20", "conductor_id": 1, "placa_id": 1, "bomba_id": 1,
        "area_operacion_id": 1, "valor_tanqueo": 1200000, "cantidad_galones": 100});
    let (status, answer) = app
        .call(
            Method::POST,
            "/api/tanqueos",
            Some(&admin),
            Some(&over_capacity.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let alert_id = loop {
        let (status, page) = app
            .call(
                Method::GET,
                "/api/alertas?regla=galones_sobre_capacidad",
                Some(&admin),
                None,
            )
            .await;
        check_answer(&document, "GET", "/api/alertas", status, &page);
        succeeded.insert(("GET".to_string(), "/api/alertas".to_string()));
        if let Some(id) = page["data"][0]["id"].as_str() {
            break id.to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline + std::time::Duration::from_secs(10),
            "no alert: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let review = json!({"resolucion": "confirmada", "nota": "bidón aparte"}).to_string();
    let (status, answer) = app
        .call(
            Method::POST,
            &format!("/api/alertas/{alert_id}/revisar"),
            Some(&admin),
            Some(&review),
        )
        .await;
    check_answer(
        &document,
        "POST",
        "/api/alertas/{id}/revisar",
        status,
        &answer,
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    succeeded.insert(("POST".to_string(), "/api/alertas/{id}/revisar".to_string()));
    // The reference bands: one set, then listed with the defaults.
    let band = json!({"tipo_combustible": "ACPM", "desde": "2024-01-01", "hasta": "2024-12-31",
        "minimo": 9500, "maximo": 14500})
    .to_string();
    for (method, body) in [("PUT", Some(band.as_str())), ("GET", None)] {
        let (status, answer) = app
            .call(
                method.parse().unwrap(),
                "/api/alertas/bandas",
                Some(&admin),
                body,
            )
            .await;
        check_answer(&document, method, "/api/alertas/bandas", status, &answer);
        assert_eq!(status, StatusCode::OK, "{answer}");
        succeeded.insert((method.to_string(), "/api/alertas/bandas".to_string()));
    }
    // Every operation answered a success the document describes, except those whose answer
    // is not JSON (the live feed, the metrics, this document) and the deliveries sent again,
    // which need a receiver.
    let mut unexercised: Vec<_> = routed_operations()
        .difference(&succeeded)
        .filter(|(_, path)| {
            !["/api/eventos/stream", "/metrics", "/openapi.json"].contains(&path.as_str())
        })
        .filter(|(_, path)| *path != "/api/webhooks/{id}/entregas/{entrega}/reenviar")
        .cloned()
        .collect();
    unexercised.sort();
    assert!(
        unexercised.is_empty(),
        "no success seen for {unexercised:?}"
    );
}

fn check_answer(
    document: &Value,
    method: &str,
    template: &str,
    status: StatusCode,
    answer: &Value,
) {
    assert!(
        !status.is_server_error(),
        "{method} {template}: {status} {answer}"
    );
    let Some(schema) = answer_schema(document, method, template, status.as_u16()) else {
        panic!("{method} {template}: {status} has no JSON schema; answered {answer}");
    };
    let validator = validator_for(document, &schema);
    let errors: Vec<String> = validator
        .iter_errors(answer)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {template} answered {status} {answer}\nwhich breaks {schema}: {errors:#?}"
    );
}

/// Every request body and every JSON success names a schema that carries an example (for a
/// list or a "one or many", the schema of its entries).
#[tokio::test]
async fn every_body_and_success_has_an_example() {
    let app = app().await;
    let document = document(&app).await;
    let schemas = &document["components"]["schemas"];
    let example_of = |schema: &Value| -> bool {
        let reference = schema["$ref"]
            .as_str()
            .or_else(|| schema["items"]["$ref"].as_str());
        let Some(name) = reference.map(|r| r.trim_start_matches("#/components/schemas/")) else {
            return !schema["example"].is_null();
        };
        let component = &schemas[name];
        if !component["example"].is_null() {
            return true;
        }
        // `OneOrMany_X`: its first alternative is X, inlined.
        !component["oneOf"][0]["example"].is_null()
    };
    let mut missing = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let mut bodies: Vec<&Value> = Vec::new();
            if let Some(content) = operation["requestBody"]["content"].as_object() {
                bodies.extend(content.values().map(|c| &c["schema"]));
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('2') {
                    if let Some(json) = response["content"].get("application/json") {
                        bodies.push(&json["schema"]);
                    }
                }
            }
            for schema in bodies {
                if schema.is_object() && !example_of(schema) {
                    missing.push(format!("{method} {path}: {schema}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "without an example: {missing:#?}");
}
