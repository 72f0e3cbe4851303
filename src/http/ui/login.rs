//! `/ui/login`: paste a token (or, with `--dev-login`, pick a role); `/ui/logout`.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;

use super::{clear_cookie, layout, session_cookie, Section};
use crate::auth::Role;
use crate::AppState;

pub const PATH: &str = "/ui/login";
pub const DEV_PATH: &str = "/ui/login/dev";
pub const LOGOUT_PATH: &str = "/ui/logout";

/// How long a role picked with `--dev-login` stays signed in.
const DEV_SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Longest token read from the form: a JWT with a few claims is well under 2 KiB.
const TOKEN_LEN_MAX: usize = 8 * 1024;

const ROLES: [Role; 3] = [Role::Admin, Role::Operador, Role::Auditor];

/// Why the login page is shown again, from `?motivo=`.
fn reason(params: &HashMap<String, String>) -> Option<&'static str> {
    match params.get("motivo").map(String::as_str) {
        Some("vencida") => {
            Some("Tu sesión venció o el token ya no es válido. Pega un token nuevo para entrar.")
        }
        Some("salida") => Some("Sesión cerrada."),
        _ => None,
    }
}

fn login_page(state: &AppState, status: StatusCode, message: Option<&str>) -> Response {
    let body = html! {
        h1 { "Ingresar al tablero" }
        @if let Some(message) = message {
            p.error #mensaje { (message) }
        }
        div.tarjeta {
            form method="post" action=(PATH) {
                label {
                    "Token (el mismo que usa la API: Authorization: Bearer …)"
                    textarea name="token" rows="4" required
                        placeholder="eyJhbGciOi…" style="width:100%" {}
                }
                p { button type="submit" { "Entrar" } }
            }
        }
        @if state.settings.dev_login {
            div.tarjeta #ingreso-desarrollo {
                p.aviso { "Ingreso de desarrollo (--dev-login): elige un rol, sin token." }
                form method="post" action=(DEV_PATH) {
                    label {
                        "Rol"
                        select name="rol" {
                            @for role in ROLES { option value=(role.as_str()) { (role.as_str()) } }
                        }
                    }
                    p { button type="submit" { "Entrar con este rol" } }
                }
            }
        }
    };
    (status, layout("Ingresar", None, Section::None, body)).into_response()
}

/// `GET /ui/login`.
pub async fn page(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    login_page(&state, StatusCode::OK, reason(&params))
}

/// To the stations, with the session cookie set.
fn signed_in(token: &str) -> Response {
    let mut response = Redirect::to(super::estaciones::PATH).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(token));
    response
}

/// `POST /ui/login` (form `token=`): the token is checked as the API checks it; a refused one
/// shows the login page again saying why.
pub async fn submit(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let token = form.get("token").map(|t| t.trim()).unwrap_or_default();
    if token.is_empty() {
        return login_page(
            &state,
            StatusCode::BAD_REQUEST,
            Some("Pega un token para entrar."),
        );
    }
    let usable = token.len() <= TOKEN_LEN_MAX
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='));
    let actor = usable.then(|| state.keys().verify(token).ok()).flatten();
    let Some(actor) = actor else {
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("Token no válido o vencido. Pide uno nuevo (fleet-ledger token) y pégalo aquí."),
        );
    };
    if !actor.can_read() {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            Some("Permiso denegado: ese token no tiene un rol (admin, operador o auditor) que pueda ver el tablero."),
        );
    }
    signed_in(token)
}

/// `POST /ui/login/dev` (form `rol=`): only with `--dev-login`; refused otherwise.
pub async fn submit_dev(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !state.settings.dev_login {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            Some(
                "El ingreso de desarrollo está apagado: el servicio no se inició con --dev-login.",
            ),
        );
    }
    let Some(role) = form
        .get("rol")
        .and_then(|name| Role::parse(name))
        .filter(|role| ROLES.contains(role))
    else {
        return login_page(
            &state,
            StatusCode::BAD_REQUEST,
            Some("Elige un rol: admin, operador o auditor."),
        );
    };
    let sub = format!("dev-{}@fleet-ledger", role.as_str());
    match state.keys().try_issue(&sub, &[role], DEV_SESSION_TTL) {
        Ok(token) => signed_in(&token),
        Err(error) => super::UiError(super::ApiError::internal(error)).into_response(),
    }
}

/// `POST /ui/logout`: the cookie is removed; back to the login page.
pub async fn logout() -> Response {
    let mut response = Redirect::to(&format!("{PATH}?motivo=salida")).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie());
    response
}
