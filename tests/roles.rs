//! The role table of README.md, walked: every route `app()` lists, with every role. A role the
//! table allows passes (a 2xx, or a 4xx other than 401/403 that only a request past the role
//! check can get, such as 404 for a missing id or 409 for a repeated name); a role it refuses
//! gets exactly 403 `Permiso denegado` in the family's format, and nothing is appended; `403†`
//! is a 403 in the route's own words (the monthly closes' `Administrador de Cierres`).

mod common;

use axum::http::{Method, StatusCode};
use common::{TestApp, ROUTES};
use fleet_ledger::auth::Role;
use serde_json::json;

on_both_stores!(every_route_answers_every_role_as_the_readme_table_says);

/// What the table says for one role on one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Passes,
    Forbidden,
    /// A 403 whose message is the route's own.
    ForbiddenOwnWords,
    NoToken,
}

/// The rows of README.md's table under `### Roles`: `(method, path, [admin, operador, auditor])`.
fn readme_table() -> Vec<(String, String, [Rule; 3])> {
    let readme = include_str!("../README.md");
    let section = readme
        .split("### Roles")
        .nth(1)
        .expect("README.md has a ### Roles section");
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
                "✓" => Rule::Passes,
                "403" => Rule::Forbidden,
                "403†" => Rule::ForbiddenOwnWords,
                "no token" => Rule::NoToken,
                other => panic!("unknown cell {other:?} in the role table"),
            };
            (
                method.to_string(),
                path.to_string(),
                [rule(cells[1]), rule(cells[2]), rule(cells[3])],
            )
        })
        .collect()
}

/// A request each route would take on the store [`TestApp::seed_fleet`] leaves.
fn request_for(method: &str, path: &str, n: usize) -> (String, Option<String>) {
    let body = match (method, path) {
        ("POST", "/api/areas-operacion") => Some(json!({ "nombre": format!("Área {n}") })),
        ("POST", "/api/placas") => Some(json!({ "placa": format!("RLS{n:03}") })),
        ("PATCH", "/api/placas/{id}") => Some(json!({ "estado": "ACTIVADA" })),
        ("POST", "/api/conductores") => Some(json!({ "conductor": format!("Conductor {n}") })),
        ("POST", "/api/bombas") => Some(json!({ "bomba": format!("Bomba {n}") })),
        ("PATCH", "/api/bombas/{id}") => Some(json!({ "permitir_saldo_negativo": true })),
        ("POST", "/api/catalogos/{catalogo}") => Some(json!({ "nombre": format!("Clase {n}") })),
        ("POST", "/api/tanqueos") => Some(json!({
            "fecha": "2024-03-15", "bomba_id": 1, "area_operacion_id": 1,
            "tipo_operacion": "ANTICIPO", "valor_anticipo": 1000 + n,
        })),
        ("PUT", "/api/tanqueos/{id}") => Some(json!({ "valor_anticipo": 2000 + n })),
        ("POST", "/api/tanqueos/{id}/anular") => Some(json!({ "motivo": "prueba de roles" })),
        ("POST", "/api/alertas/{id}/revisar") => Some(json!({ "resolucion": "confirmada" })),
        ("PUT", "/api/alertas/bandas") => Some(json!({
            "tipo_combustible": "ACPM", "desde": "2026-01-01", "minimo": 9500, "maximo": 14500,
        })),
        ("POST", "/api/tanqueos/import") => {
            Some(json!({ "bomba_id": 1, "area_operacion_id": 1, "records": [] }))
        }
        ("POST", "/api/cierres") => Some(json!({ "anio": 2026, "mes": 1 })),
        ("POST", "/api/cierres/reabrir") => {
            Some(json!({ "anio": 2026, "mes": 1, "motivo": "prueba de roles" }))
        }
        ("POST", "/api/misiones") => Some(json!({
            "vehiculo_id": 1, "conductor_id": 1, "descripcion": "Ruta", "fecha_programada": "2026-03-01",
        })),
        ("POST", "/api/misiones/{id}/iniciar") => {
            Some(json!({ "kilometraje_inicial": 10, "combustible_inicial_galones": 5 }))
        }
        ("POST", "/api/misiones/{id}/finalizar") => {
            Some(json!({ "kilometraje_final": 20, "combustible_final_galones": 1 }))
        }
        ("POST", "/api/misiones/{id}/cancelar") => Some(json!({ "motivo": "prueba de roles" })),
        ("POST", "/vehiculo") => Some(json!({
            "placa": format!("VRL{n:03}"), "idClaseVehiculo": 1, "idEstadoVehiculo": 1,
        })),
        ("PUT", "/vehiculo/{id}") => Some(json!({ "kilometrajeActual": n })),
        ("POST", "/api/empresas") => Some(json!({ "nome": format!("Empresa {n}") })),
        ("PATCH", "/api/empresas/{id}") => Some(json!({ "bloquear_placas_repetidas": true })),
        ("POST", "/api/tipos-operacao") => Some(json!({ "nome": format!("Tipo {n}") })),
        ("POST", "/api/questionarios") => {
            Some(json!({ "nome": format!("Questionário {n}"), "tipos_operacao": [1] }))
        }
        ("POST", "/api/usuarios") => Some(json!({ "nome": format!("Usuário {n}") })),
        (
            "PATCH",
            "/api/tipos-operacao/{id}" | "/api/questionarios/{id}" | "/api/usuarios/{id}",
        ) => Some(json!({ "ativo": true })),
        ("POST", "/auto-inspecao/criar-em-lote") => Some(json!([{ "token": "desconhecido" }])),
        // Company 1 does not exist here: a 400 past the role check.
        ("POST", "/api/webhooks") => Some(json!({
            "empresa_id": 1, "url": "https://203.0.113.10/hooks", "eventos": ["auto_inspecao.criada"],
        })),
        _ => None,
    };
    let path = path
        .replace("{tipo}/{id}", "vehiculo/1")
        .replace("{id}", "1")
        .replace("{catalogo}", "clases-vehiculo")
        .replace("{cuenta}", "1105-caja")
        .replace("{hash}", &"0".repeat(32))
        .replace("{entrega}", "00000000-0000-0000-0000-000000000000")
        .replace("{sub}", "ana@flota.co")
        .replace("{name}", "tanqueos");
    (path, body.map(|b| b.to_string()))
}

async fn every_route_answers_every_role_as_the_readme_table_says(app: TestApp) {
    let table = readme_table();
    let documented: Vec<(&str, &str)> = table
        .iter()
        .map(|(m, p, _)| (m.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        documented,
        ROUTES.to_vec(),
        "README's role table lists every route of app(), in order"
    );
    app.seed_fleet().await;
    let roles = [Role::Admin, Role::Operador, Role::Auditor];
    let mut n = 0;
    for (method, path, rules) in &table {
        // The most restricted role first, so an allowed write cannot change what it sees.
        for (role, rule) in roles.iter().zip(rules).rev() {
            n += 1;
            let (uri, body) = request_for(method, path, n);
            let token = app.token(*role);
            let token = (*rule != Rule::NoToken).then_some(token.as_str());
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let head = app.state.log.head().await.unwrap();
            let (status, answer) = app.call(method.clone(), &uri, token, body.as_deref()).await;
            let seen = format!("{method} {uri} as {role:?}: {status} {answer}");
            match rule {
                Rule::Forbidden => {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{seen}");
                    let message = if uri.starts_with("/vehiculo") {
                        &answer["message"]
                    } else {
                        &answer["error"]
                    };
                    assert_eq!(message, "Permiso denegado", "{seen}");
                    assert_eq!(app.state.log.head().await.unwrap(), head, "{seen}");
                }
                Rule::ForbiddenOwnWords => {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{seen}");
                    assert_eq!(
                        answer["error"],
                        fleet_ledger::http::cierres::NOT_CLOSE_ADMIN,
                        "{seen}"
                    );
                    assert_eq!(app.state.log.head().await.unwrap(), head, "{seen}");
                }
                Rule::Passes | Rule::NoToken => {
                    let passed = status.is_success()
                        || (status.is_client_error()
                            && status != StatusCode::UNAUTHORIZED
                            && status != StatusCode::FORBIDDEN);
                    assert!(passed, "{seen}");
                }
            }
        }
    }
}
