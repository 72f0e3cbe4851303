//! Conciliación: the reconciliation report of `/api/reconciliacion` with the differing
//! movements highlighted, and the same report as CSV.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::NaiveDate;
use maud::html;
use rust_decimal::Decimal;

use super::format::{cop, fecha};
use super::{layout, Page, Section, UiError};
use crate::auth::Actor;
use crate::http::conciliacion::{csv, report};
use crate::http::extract::ReadHead;
use crate::http::fields::{date_param, query_id};
use crate::AppState;

pub const PATH: &str = "/ui/conciliacion";
pub const CSV_PATH: &str = "/ui/conciliacion.csv";

/// Which report: one station or all, over a range of dates (either end open).
struct Filters {
    only: Option<i64>,
    desde: Option<NaiveDate>,
    hasta: Option<NaiveDate>,
}

/// The report's filters as the API reads them (`bomba_id`, `desde`, `hasta`), an empty field
/// (as a form sends it) meaning none.
fn filters(params: &HashMap<String, String>) -> Result<Filters, UiError> {
    let mut params = params.clone();
    params.retain(|_, v| !v.trim().is_empty());
    Ok(Filters {
        only: query_id(params.get("bomba_id"), "bomba_id")?,
        desde: date_param(&params, "desde")?,
        hasta: date_param(&params, "hasta")?,
    })
}

/// The query string that asks the CSV for the same report.
fn same_query(params: &HashMap<String, String>) -> String {
    let pairs: Vec<String> = ["bomba_id", "desde", "hasta"]
        .iter()
        .filter_map(|name| {
            let value = params
                .get(*name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())?;
            // Ids are digits and dates digits and dashes: anything else was refused already.
            Some(format!("{name}={value}"))
        })
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// `GET /ui/conciliacion?bomba_id=&desde=&hasta=`.
pub async fn page(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ReadHead(head): ReadHead,
    Query(params): Query<HashMap<String, String>>,
) -> Page {
    let Filters { only, desde, hasta } = filters(&params)?;
    let report = report(&state, head, only, desde, hasta).await?;
    let value = |name: &str| params.get(name).cloned().unwrap_or_default();
    let body = html! {
        h1 { "Conciliación" }
        form.filtros method="get" action=(PATH) {
            label { "Estación (id)" input type="number" min="1" name="bomba_id" value=(value("bomba_id")); }
            label { "Desde" input type="date" name="desde" value=(value("desde")); }
            label { "Hasta" input type="date" name="hasta" value=(value("hasta")); }
            button type="submit" { "Ver" }
            a.boton #descargar-csv href={ (CSV_PATH) (same_query(&params)) } download="conciliacion.csv" { "Descargar CSV" }
        }
        @if report.is_empty() { p.aviso { "No hay estaciones." } }
        @for station in &report {
            @let diferencia = station.diferencia().filter(|d| !d.is_zero());
            div.tarjeta.conciliacion data-bomba=(station.bomba_id) {
                h2 {
                    @if diferencia.is_some() || !station.discrepancias.is_empty() { span.marca-roja { "● " } }
                    (station.nombre_bomba)
                }
                div {
                    "Calculado " strong { (cop(station.saldo_calculado)) }
                    " · Reportado " strong { (station.saldo_reportado.map(cop).unwrap_or_else(|| "—".into())) }
                    @if let Some(diferencia) = diferencia { " · Diferencia " strong.negativo { (cop(diferencia)) } }
                }
                @if station.discrepancias.is_empty() {
                    p { "Sin movimientos con diferencias." }
                } @else {
                    div.tabla {
                        table {
                            thead { tr {
                                th { "Fecha" } th { "Registro" } th.num { "Saldo calculado" }
                                th.num { "Saldo reportado" } th.num { "Diferencia" }
                            } }
                            tbody {
                                @for line in &station.discrepancias {
                                    tr.alerta.discrepancia {
                                        td { (fecha(line.movement.fecha)) }
                                        td { (line.movement.id) }
                                        td.num { (cop(line.saldo_calculado)) }
                                        td.num { (line.movement.saldo_disponible.map(cop).unwrap_or_default()) }
                                        td.num { (cop(line.diferencia.unwrap_or(Decimal::ZERO))) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(
        "Conciliación",
        Some(&actor),
        Section::Conciliacion,
        body,
    ))
}

/// `GET /ui/conciliacion.csv?bomba_id=&desde=&hasta=`: the API's CSV, as a download.
pub async fn download(
    State(state): State<AppState>,
    ReadHead(head): ReadHead,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, UiError> {
    let Filters { only, desde, hasta } = filters(&params)?;
    let report = report(&state, head, only, desde, hasta).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"conciliacion.csv\"",
            ),
        ],
        csv(&report)?,
    )
        .into_response())
}
