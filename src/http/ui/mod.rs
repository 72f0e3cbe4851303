//! The dashboard at `/ui`: server-rendered HTML (maud) over the same queries and domain
//! functions the API's handlers call, for people who would rather look than read JSON.
//!
//! A session is the API's own bearer token kept in a cookie (`HttpOnly`, `SameSite=Strict`,
//! `Path=/ui`), so a page enforces exactly the roles the token has on the API. One module per
//! page; this one holds the session, the layout and the error page.

pub mod auditoria;
pub mod chart;
pub mod conciliacion;
pub mod estaciones;
pub mod format;
pub mod login;
pub mod vehiculos;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::error::ApiError;
use crate::auth::Actor;
use crate::AppState;

/// The cookie that holds the session's token.
pub const SESSION_COOKIE: &str = "fleet_ledger_sesion";

/// A rendered page, or the error page that replaces it.
pub type Page = Result<Html<String>, UiError>;

/// `Set-Cookie` that keeps `token` for the dashboard: out of scripts' reach (`HttpOnly`), never
/// sent by another site's request (`SameSite=Strict`), and only to `/ui`. A session cookie: it
/// ends with the browser, or earlier when the token expires (the next page sends to login).
pub fn session_cookie(token: &str) -> HeaderValue {
    let value = format!("{SESSION_COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict");
    // A token is base64url and dots; anything else was refused before it got here.
    HeaderValue::from_str(&value).unwrap_or_else(|_| clear_cookie())
}

/// `Set-Cookie` that removes the session.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("fleet_ledger_sesion=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The token in the request's session cookie, if any.
fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Requires a session whose token the API would take for a read: without one, or with one
/// expired or refused, the browser goes back to the login page (which says why); a token
/// without a role that may read gets the 403 page. Like the API's reads, a page first waits
/// for the read models to fold every write acknowledged before it.
pub async fn require_session(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(token) = session_token(request.headers()) else {
        return Redirect::to(login::PATH).into_response();
    };
    let actor = match state.keys().verify(token) {
        Ok(actor) => actor,
        Err(reason) => {
            tracing::info!(%reason, "dashboard session refused");
            let mut response =
                Redirect::to(&format!("{}?motivo=vencida", login::PATH)).into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, clear_cookie());
            return response;
        }
    };
    if !actor.can_read() {
        return UiError::from(ApiError::Forbidden).into_response();
    }
    super::middleware::wait_for_read_models(&state, &mut request).await;
    request.extensions_mut().insert(actor);
    next.run(request).await
}

/// `GET /ui`: the stations, which sends to login first when there is no session.
pub async fn home() -> Redirect {
    Redirect::to(estaciones::PATH)
}

/// The dashboard's sections, for the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Estaciones,
    Vehiculos,
    Conciliacion,
    Auditoria,
    None,
}

const SECTIONS: [(Section, &str, &str); 4] = [
    (Section::Estaciones, estaciones::PATH, "Estaciones"),
    (Section::Vehiculos, vehiculos::PATH, "Vehículos"),
    (Section::Conciliacion, conciliacion::PATH, "Conciliación"),
    (Section::Auditoria, auditoria::PATH, "Auditoría"),
];

/// Small, phone-first styles; everything is in the page, nothing is fetched.
const STYLE: &str = "
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2733;background:#f4f6f8}
header{background:#17324d;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center}
header a{color:#fff;text-decoration:none;padding:.25rem .5rem;border-radius:4px}
header a.activo{background:#2f5d8a}
header .marca{font-weight:700;margin-right:auto}
header form{margin:0}
header .quien{font-size:.85rem;opacity:.85}
main{padding:1rem;max-width:1100px;margin:0 auto}
h1{font-size:1.4rem;margin:.2rem 0 1rem}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
.tabla{overflow-x:auto;background:#fff;border-radius:6px;box-shadow:0 1px 2px #0002}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{padding:.45rem .6rem;border-bottom:1px solid #e3e7ec;text-align:left;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.alerta td{background:#fdecea}
.marca-roja{color:#c62828;font-weight:700}
.negativo{color:#c62828}
.tarjeta{background:#fff;border-radius:6px;box-shadow:0 1px 2px #0002;padding:1rem;margin-bottom:1rem}
.cifra{font-size:1.8rem;font-weight:700}
.aviso{background:#fff4e5;border-left:4px solid #f59e0b;padding:.6rem .8rem;margin:0 0 1rem}
.error{background:#fdecea;border-left:4px solid #c62828;padding:.6rem .8rem;margin:0 0 1rem}
form.filtros{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin-bottom:1rem}
label{display:flex;flex-direction:column;font-size:.85rem;gap:.2rem}
input,select,button,textarea{font:inherit;padding:.4rem .5rem;border:1px solid #b8c2cc;border-radius:4px}
button,.boton{background:#2f5d8a;color:#fff;border:0;cursor:pointer;text-decoration:none;padding:.45rem .8rem;border-radius:4px;display:inline-block}
svg.grafica{width:100%;height:auto;background:#fff}
pre{background:#0f1720;color:#d7e3ef;padding:.8rem;border-radius:6px;overflow-x:auto;font-size:.85rem}
tr.evento{cursor:pointer}
tr.evento:hover td,tr.evento.elegido td{background:#e8f0f8}
@media (max-width:600px){main{padding:.6rem}.cifra{font-size:1.4rem}th,td{padding:.35rem .4rem}}
";

/// The page around `body`: title, navigation (with who is signed in), styles.
pub fn layout(title: &str, actor: Option<&Actor>, section: Section, body: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="es" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · fleet-ledger" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    span.marca { "fleet-ledger" }
                    @if let Some(actor) = actor {
                        @for (each, path, label) in SECTIONS {
                            a.activo[each == section] href=(path) { (label) }
                        }
                        span.quien { (actor.sub) " (" (roles(actor)) ")" }
                        form method="post" action=(login::LOGOUT_PATH) {
                            button type="submit" { "Salir" }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    Html(markup.into_string())
}

fn roles(actor: &Actor) -> String {
    let names: Vec<&str> = actor.roles.iter().map(|r| r.as_str()).collect();
    names.join(", ")
}

/// What a page could not show: the API's refusal, as an HTML page with the same status and
/// the same words (a 500 never says its cause, which is logged).
#[derive(Debug)]
pub struct UiError(pub ApiError);

impl From<ApiError> for UiError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<crate::balances::BalanceError> for UiError {
    fn from(error: crate::balances::BalanceError) -> Self {
        Self(error.into())
    }
}

impl From<crate::queries::QueryError> for UiError {
    fn from(error: crate::queries::QueryError) -> Self {
        Self(error.into())
    }
}

impl From<crate::store::StoreError> for UiError {
    fn from(error: crate::store::StoreError) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let error = self.0;
        match &error {
            ApiError::Unauthorized => return Redirect::to(login::PATH).into_response(),
            ApiError::Internal(cause) => tracing::error!(%cause, "dashboard page failed"),
            ApiError::Unavailable(cause) => tracing::warn!(%cause, "store unavailable"),
            _ => {}
        }
        let status = error.status();
        let title = match status {
            StatusCode::NOT_FOUND => "No encontrado",
            StatusCode::FORBIDDEN => "Permiso denegado",
            StatusCode::BAD_REQUEST => "Solicitud no válida",
            s if s.is_server_error() => "Error en el servidor",
            _ => "No se pudo mostrar",
        };
        let body = html! {
            h1 { (title) }
            p.error { (error.public_message()) }
            p { a.boton href=(estaciones::PATH) { "Volver a Estaciones" } }
        };
        (status, layout(title, None, Section::None, body)).into_response()
    }
}

/// `raw` read as a station's or vehicle's id from a page's path: a 404 page otherwise (a path
/// that names nothing), never a 400.
pub fn path_id(raw: &str, what: &str) -> Result<i64, UiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| UiError(ApiError::NotFound(format!("No existe {what} {raw}"))))
}
