//! The dashboard (`/ui`) as a browser sees it over HTTP: its session cookie, the role rules of
//! the API, pesos and dates as the operators write them, the `as_of` date, the 404 page and the
//! CSV download. tests/browser drives the same pages in headless Chromium.

mod common;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use common::{respond, Backend, TestApp, TEST_SECRET};
use fleet_ledger::auth::Role;
use fleet_ledger::settings::LedgerSettings;
use serde_json::json;

on_both_stores!(
    logging_in_sets_an_httponly_strict_cookie_for_ui_and_logging_out_clears_it,
    a_refused_or_expired_token_is_sent_back_to_login_with_a_spanish_message,
    the_dev_login_is_absent_and_refused_without_the_flag,
    pages_enforce_the_apis_roles,
    balances_are_pesos_with_dots_and_match_the_api,
    an_unknown_station_or_vehicle_is_a_404_page,
    as_of_shows_the_balance_the_ledger_knew_on_that_date,
    the_reconciliation_page_highlights_differences_and_downloads_the_apis_csv,
);

/// A GET of the dashboard with the session cookie holding `token`.
async fn page(app: &TestApp, path: &str, token: Option<&str>) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::builder().method(Method::GET).uri(path);
    if let Some(token) = token {
        request = request.header(header::COOKIE, format!("fleet_ledger_sesion={token}"));
    }
    let (status, headers, bytes) = respond(&app.router, request.body(Body::empty()).unwrap()).await;
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// A form POST, as the login page sends it.
async fn form(app: &TestApp, path: &str, body: &str) -> (StatusCode, HeaderMap, String) {
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, headers, bytes) = respond(&app.router, request).await;
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn location(headers: &HeaderMap) -> &str {
    headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn set_cookie(headers: &HeaderMap) -> &str {
    headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// A token signed with the test secret carrying `claims` as they are.
fn token_with(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// seed_fleet's history, and a TANQUEO at station 1 whose reported balance (300.000) is not
/// the computed one (500.000 − 150.000 = 350.000).
async fn seed(app: &TestApp) {
    app.seed_fleet().await;
    let (status, answer) = app
        .post(
            "/api/tanqueos",
            r#"{"fecha":"2024-03-16","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":150000,"cantidad_galones":12.5,"saldo_disponible":300000}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

async fn logging_in_sets_an_httponly_strict_cookie_for_ui_and_logging_out_clears_it(app: TestApp) {
    let (status, headers, _) = page(&app, "/ui", None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/ui/estaciones");
    let (status, headers, _) = page(&app, "/ui/estaciones", None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/ui/login");
    let (status, headers, body) = page(&app, "/ui/login", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(body.contains("<textarea name=\"token\""), "{body}");

    let token = app.token(Role::Auditor);
    let (status, headers, _) = form(&app, "/ui/login", &format!("token={token}")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/ui/estaciones");
    assert_eq!(
        set_cookie(&headers),
        format!("fleet_ledger_sesion={token}; Path=/ui; HttpOnly; SameSite=Strict")
    );
    let (status, _, body) = page(&app, "/ui/estaciones", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("ana@flota.co (auditor)"), "{body}");

    let (status, headers, _) = form(&app, "/ui/logout", "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/ui/login?motivo=salida");
    assert_eq!(
        set_cookie(&headers),
        "fleet_ledger_sesion=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"
    );
    let (_, _, body) = page(&app, "/ui/login?motivo=salida", None).await;
    assert!(body.contains("Sesión cerrada."), "{body}");
}

async fn a_refused_or_expired_token_is_sent_back_to_login_with_a_spanish_message(app: TestApp) {
    let long = "x".repeat(20_000);
    for bad in ["no-es-un-token", "a.b.c", long.as_str()] {
        let (status, headers, body) = form(&app, "/ui/login", &format!("token={bad}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(set_cookie(&headers).is_empty());
        assert!(body.contains("Token no válido o vencido."), "{body}");
    }
    let (status, _, body) = form(&app, "/ui/login", "token=").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Pega un token para entrar."), "{body}");

    let expired =
        token_with(json!({ "sub": "ana@flota.co", "exp": now_s() - 3600, "roles": ["admin"] }));
    let (status, headers, body) = form(&app, "/ui/login", &format!("token={expired}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("Token no válido o vencido."), "{body}");
    assert!(set_cookie(&headers).is_empty());
    // A session whose token expired since: back to login, the cookie removed, and told why.
    let (status, headers, _) = page(&app, "/ui/estaciones/1", Some(&expired)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/ui/login?motivo=vencida");
    assert!(set_cookie(&headers).ends_with("Max-Age=0"));
    let (status, _, body) = page(&app, "/ui/login?motivo=vencida", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("Tu sesión venció o el token ya no es válido."),
        "{body}"
    );
}

async fn the_dev_login_is_absent_and_refused_without_the_flag(app: TestApp) {
    let (_, _, body) = page(&app, "/ui/login", None).await;
    assert!(!body.contains("ingreso-desarrollo"), "{body}");
    assert!(!body.contains("/ui/login/dev"), "{body}");
    let (status, headers, body) = form(&app, "/ui/login/dev", "rol=admin").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&headers).is_empty());
    assert!(
        body.contains(
            "El ingreso de desarrollo está apagado: el servicio no se inició con --dev-login."
        ),
        "{body}"
    );
}

async fn pages_enforce_the_apis_roles(app: TestApp) {
    seed(&app).await;
    // A valid token without any role the API knows reads nothing there, and nothing here.
    let no_role =
        token_with(json!({ "sub": "eva@flota.co", "exp": now_s() + 600, "roles": ["invitado"] }));
    let (status, _) = app
        .call(Method::GET, "/api/saldos-bombas", Some(&no_role), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for path in ["/ui/estaciones", "/ui/estaciones/1", "/ui/auditoria/stream"] {
        let (status, _, body) = page(&app, path, Some(&no_role)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(body.contains("Permiso denegado"), "{path}: {body}");
    }
    let (status, headers, body) = form(&app, "/ui/login", &format!("token={no_role}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&headers).is_empty());
    assert!(body.contains("Permiso denegado"), "{body}");

    // A vehicle's history is the API's /api/auditoria: auditor and admin only.
    let (status, _) = app
        .call(
            Method::GET,
            "/api/auditoria/vehiculo/1/eventos",
            Some(&app.operador()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = page(&app, "/ui/vehiculos/1", Some(&app.operador())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("El historial de eventos es para los roles auditor y admin."),
        "{body}"
    );
    assert!(!body.contains("id=\"historial\""), "{body}");
    for role in [Role::Auditor, Role::Admin] {
        let (status, _, body) = page(&app, "/ui/vehiculos/1", Some(&app.token(role))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("id=\"historial\""), "{role:?}: {body}");
        assert!(body.contains("VehicleSynced"), "{role:?}: {body}");
    }
    // The live feed is every role's, as /api/eventos/stream is.
    for role in [Role::Operador, Role::Auditor, Role::Admin] {
        let (status, headers, _) = page(&app, "/ui/auditoria/stream", Some(&app.token(role))).await;
        assert_eq!(status, StatusCode::OK, "{role:?}");
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
    }
}

async fn balances_are_pesos_with_dots_and_match_the_api(app: TestApp) {
    seed(&app).await;
    let token = app.operador();
    let (_, api) = app.get("/api/bombas/1/saldo").await;
    assert_eq!(api["saldo"], json!(350000));
    let (status, _, body) = page(&app, "/ui/estaciones", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    // Station 1: 350.000 computed, 300.000 reported: marked. Station 2: nothing, not marked.
    assert!(
        body.contains("<td class=\"num saldo\">$ 350.000</td>"),
        "{body}"
    );
    assert!(body.contains("<td class=\"num\">$ 300.000</td>"), "{body}");
    assert!(body.contains("<td class=\"num saldo\">$ 0</td>"), "{body}");
    assert!(body.contains("<td>16/03/2024</td>"), "{body}");
    assert_eq!(body.matches("<tr class=\"alerta\"").count(), 1, "{body}");
    let (status, _, body) = page(&app, "/ui/estaciones/1", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("data-saldo=\"350000\""), "{body}");
    assert!(body.contains(">$ 350.000</div>"), "{body}");
    assert!(
        body.contains("Anticipos $ 500.000 · Tanqueos $ 150.000"),
        "{body}"
    );
    assert!(body.contains("id=\"grafica-saldo\""), "{body}");
    assert!(
        body.contains("-$ 50.000"),
        "the statement's difference: {body}"
    );
}

async fn an_unknown_station_or_vehicle_is_a_404_page(app: TestApp) {
    seed(&app).await;
    let token = app.operador();
    for (path, message) in [
        ("/ui/estaciones/999", "No existe la estación 999"),
        ("/ui/estaciones/abc", "No existe la estación abc"),
        ("/ui/vehiculos/999", "No existe el vehículo 999"),
    ] {
        let (status, headers, body) = page(&app, path, Some(&token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(body.contains(message), "{path}: {body}");
        assert!(body.contains("<h1>No encontrado</h1>"), "{path}: {body}");
    }
}

async fn as_of_shows_the_balance_the_ledger_knew_on_that_date(app: TestApp) {
    seed(&app).await;
    let token = app.operador();
    // Everything was recorded today: on 1 January 2000 the ledger knew of no movement.
    let (_, api) = app.get("/api/bombas/1/saldo?as_of=2000-01-01").await;
    assert_eq!(api["saldo"], json!(0));
    let (status, _, body) = page(&app, "/ui/estaciones/1?as_of=2000-01-01", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Saldo al 01/01/2000"), "{body}");
    assert!(body.contains("data-saldo=\"0\""), "{body}");
    assert!(body.contains(">$ 0</div>"), "{body}");
    assert!(body.contains("value=\"2000-01-01\""), "{body}");
    assert!(!body.contains("<svg"), "{body}");
    assert!(
        body.contains("no tiene movimientos hasta esta fecha"),
        "{body}"
    );
    // Tomorrow it knows everything.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).date_naive();
    let (_, _, body) = page(
        &app,
        &format!("/ui/estaciones/1?as_of={tomorrow}"),
        Some(&token),
    )
    .await;
    assert!(body.contains("data-saldo=\"350000\""), "{body}");
    assert_eq!(
        body.matches("<circle").count(),
        2,
        "one point per recorded change: {body}"
    );
    // A date that is none: the API's 400, as a page.
    let (status, _, body) = page(&app, "/ui/estaciones/1?as_of=ayer", Some(&token)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("as_of"), "{body}");
}

async fn the_reconciliation_page_highlights_differences_and_downloads_the_apis_csv(app: TestApp) {
    seed(&app).await;
    let token = app.token(Role::Auditor);
    let (status, _, body) = page(&app, "/ui/conciliacion", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body.matches("<tr class=\"alerta discrepancia\">").count(),
        1,
        "{body}"
    );
    assert!(
        body.contains("Diferencia <strong class=\"negativo\">-$ 50.000</strong>"),
        "{body}"
    );
    assert!(body.contains("href=\"/ui/conciliacion.csv\""), "{body}");
    let (_, _, filtered) = page(
        &app,
        "/ui/conciliacion?bomba_id=1&desde=&hasta=2024-12-31",
        Some(&token),
    )
    .await;
    assert!(
        filtered.contains("href=\"/ui/conciliacion.csv?bomba_id=1&amp;hasta=2024-12-31\""),
        "{filtered}"
    );

    let (status, headers, csv) = page(&app, "/ui/conciliacion.csv", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"conciliacion.csv\""
    );
    let request = Request::builder()
        .uri("/api/reconciliacion")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::ACCEPT, "text/csv")
        .body(Body::empty())
        .unwrap();
    let (_, _, api_csv) = respond(&app.router, request).await;
    assert_eq!(csv.as_bytes(), &api_csv[..]);
    assert!(csv.contains("1,Central,350000,300000,-50000,"), "{csv}");
    let (status, _, body) = page(&app, "/ui/conciliacion.csv?bomba_id=999", Some(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

/// What README's dashboard table says for a role on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// 200 (or the redirect a form answers) with the role's session.
    Passes,
    /// Answered without a session.
    NoSession,
}

/// The rows of the table under README's `### Dashboard (/ui)`.
fn readme_table() -> Vec<(String, String, [Rule; 3])> {
    let readme = include_str!("../README.md");
    let section = readme
        .split("### Dashboard (/ui)")
        .nth(1)
        .expect("README.md has a ### Dashboard (/ui) section");
    section
        .lines()
        .skip_while(|line| !line.starts_with("| `"))
        .take_while(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let (method, path) = cells[0]
                .trim_matches('`')
                .split_once(' ')
                .expect("`METHOD /path`");
            let rule = |cell: &str| match cell {
                "✓" | "✓ sin historial" => Rule::Passes,
                "sin sesión" => Rule::NoSession,
                other => panic!("unknown cell {other:?} in the dashboard's role table"),
            };
            (
                method.to_string(),
                path.to_string(),
                [rule(cells[1]), rule(cells[2]), rule(cells[3])],
            )
        })
        .collect()
}

/// The dashboard's routes as src/lib.rs lists them (tests/openapi.rs keeps them out of the
/// OpenAPI document by the same list).
const UI_ROUTES: &[(&str, &str)] = &[
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

/// Walks README's dashboard table on a service started with `--dev-login` (so that its form
/// is a route that answers): every route, every role.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_dashboard_route_answers_every_role_as_the_readme_table_says() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let settings = LedgerSettings {
            dev_login: true,
            ..LedgerSettings::default()
        };
        let Some(app) = TestApp::start_with(backend, settings).await else {
            continue;
        };
        seed(&app).await;
        let table = readme_table();
        let documented: Vec<(&str, &str)> = table
            .iter()
            .map(|(m, p, _)| (m.as_str(), p.as_str()))
            .collect();
        assert_eq!(
            documented,
            UI_ROUTES.to_vec(),
            "README's dashboard table lists every /ui route, in order"
        );
        let lib = include_str!("../src/lib.rs");
        for (_, path) in UI_ROUTES {
            assert!(
                lib.contains(&format!("\"{path}\"")),
                "{path} is routed in src/lib.rs"
            );
        }
        for (method, path, rules) in &table {
            for (role, rule) in [Role::Admin, Role::Operador, Role::Auditor]
                .iter()
                .zip(rules)
            {
                let uri = path.replace("{id}", "1");
                let seen = format!("{method} {uri} as {role:?} ({backend:?})");
                let (status, headers, body) = match (method.as_str(), *rule) {
                    ("GET", Rule::Passes) => page(&app, &uri, Some(&app.token(*role))).await,
                    ("GET", Rule::NoSession) => page(&app, &uri, None).await,
                    ("POST", _) => {
                        let body = match uri.as_str() {
                            "/ui/login" => format!("token={}", app.token(*role)),
                            "/ui/login/dev" => format!("rol={}", role.as_str()),
                            _ => String::new(),
                        };
                        form(&app, &uri, &body).await
                    }
                    _ => panic!("{seen}: no such method in the table"),
                };
                match (method.as_str(), *rule) {
                    ("GET", Rule::Passes) => assert_eq!(status, StatusCode::OK, "{seen}: {body}"),
                    ("GET", Rule::NoSession) => assert!(
                        status == StatusCode::OK || status == StatusCode::SEE_OTHER,
                        "{seen}: {status} {body}"
                    ),
                    _ => {
                        assert_eq!(status, StatusCode::SEE_OTHER, "{seen}: {body}");
                        if uri.starts_with("/ui/login") {
                            assert!(
                                set_cookie(&headers).contains("HttpOnly; SameSite=Strict"),
                                "{seen}"
                            );
                        }
                    }
                }
            }
        }
        let (status, headers, _) = form(&app, "/ui/login/dev", "rol=auditor").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let cookie = set_cookie(&headers);
        let token = cookie
            .strip_prefix("fleet_ledger_sesion=")
            .and_then(|rest| rest.split(';').next())
            .unwrap();
        let actor = app.keys.verify(token).unwrap();
        assert_eq!(actor.roles, vec![Role::Auditor]);
        let (_, _, body) = page(&app, "/ui/login", None).await;
        assert!(body.contains("id=\"ingreso-desarrollo\""), "{body}");
        let (status, _, _) = form(&app, "/ui/login/dev", "rol=root").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
