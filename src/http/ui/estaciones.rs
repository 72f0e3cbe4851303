//! Estaciones: every station's balance, and one station's balance over time, its statement
//! and its balance "as of" a date, from the same ledger functions as `/api/saldos-bombas`,
//! `/api/bombas/{id}/saldo?as_of=` and `/api/bombas/{id}/movimientos`.

use std::collections::HashMap;

use aggregates::fuel::FuelStation;
use axum::extract::{Query, State};
use axum::Extension;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use maud::html;
use rust_decimal::Decimal;

use super::chart::{balance_chart, Point};
use super::format::{cop, fecha, instante};
use super::{layout, path_id, Page, Section, UiError};
use crate::auth::Actor;
use crate::balances;
use crate::http::error::ApiError;
use crate::http::extract::{Path, ReadHead};
use crate::http::fields::as_of_param;
use crate::queries::registry;
use crate::AppState;

pub const PATH: &str = "/ui/estaciones";
/// Most points drawn: the latest changes of a long history.
const CHART_POINTS_MAX: usize = 60;
/// Most statement lines shown: the latest.
const STATEMENT_LINES_MAX: usize = 200;

/// Why a station deserves a red mark: a negative balance, or a last reported
/// `saldo_disponible` that is not the computed balance.
fn warnings(saldo: Decimal, reportado: Option<Decimal>) -> Vec<&'static str> {
    let mut found = Vec::new();
    if saldo < Decimal::ZERO {
        found.push("Saldo negativo");
    }
    if reportado.is_some_and(|r| r != saldo) {
        found.push("El saldo reportado no coincide con el calculado");
    }
    found
}

/// `GET /ui/estaciones`.
pub async fn list(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ReadHead(head): ReadHead,
) -> Page {
    let stations = registry::stations(&state.read_models).await?;
    let ids: Vec<i64> = stations.iter().map(|s| s.id).collect();
    let balances = balances::balances_now(&state, head, &ids).await?;
    let body = html! {
        h1 { "Estaciones" }
        @if stations.is_empty() {
            p.aviso { "Todavía no hay estaciones registradas." }
        } @else {
            div.tabla {
                table #estaciones {
                    thead { tr {
                        th { "" } th { "Estación" } th.num { "Saldo" }
                        th.num { "Saldo reportado" } th { "Último movimiento" } th.num { "Movimientos" }
                    } }
                    tbody {
                        @for (station, balance) in stations.iter().zip(&balances) {
                            @let found = warnings(balance.saldo, balance.ultimo_saldo_reportado);
                            tr.alerta[!found.is_empty()] data-bomba=(station.id) {
                                td {
                                    @if !found.is_empty() {
                                        span.marca-roja title=(found.join("; ")) aria-label=(found.join("; ")) { "●" }
                                    }
                                }
                                td { a href={ (PATH) "/" (station.id) } { (station.bomba) } }
                                td.num.saldo.negativo[balance.saldo < Decimal::ZERO] { (cop(balance.saldo)) }
                                td.num { (balance.ultimo_saldo_reportado.map(cop).unwrap_or_default()) }
                                td { (balance.ultimo_movimiento.map(fecha).unwrap_or_else(|| "—".into())) }
                                td.num { (balance.movimientos) }
                            }
                        }
                    }
                }
            }
            p { span.marca-roja { "●" } " saldo negativo, o el último saldo reportado por la estación no coincide con el calculado." }
        }
    };
    Ok(layout(
        "Estaciones",
        Some(&actor),
        Section::Estaciones,
        body,
    ))
}

/// The balance as the ledger knew it after each of the station's recorded changes up to
/// `as_of` (the latest [`CHART_POINTS_MAX`]): each one the ledger's own as-of answer.
async fn history(
    state: &AppState,
    head: i64,
    bomba_id: i64,
    as_of: Option<DateTime<Utc>>,
) -> Result<Vec<Point>, UiError> {
    let events = state
        .log
        .read_stream(FuelStation::TYPE, &bomba_id.to_string(), 0)
        .await?;
    let mut instants: Vec<DateTime<Utc>> = events
        .iter()
        .map(|e| e.recorded_at)
        .filter(|at| as_of.is_none_or(|as_of| *at <= as_of))
        .collect();
    instants.dedup();
    let skip = instants.len().saturating_sub(CHART_POINTS_MAX);
    let mut points = Vec::with_capacity(instants.len() - skip);
    for at in instants.into_iter().skip(skip) {
        let balance = balances::balance(state, head, bomba_id, Some(at), None).await?;
        points.push(Point {
            at,
            saldo: balance.saldo,
        });
    }
    Ok(points)
}

/// `GET /ui/estaciones/{id}?as_of=`: the balance now or as of a date (or instant), its chart
/// and the statement with its running balance.
pub async fn detail(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ReadHead(head): ReadHead,
    Path(raw_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Page {
    let bomba_id = path_id(&raw_id, "la estación")?;
    let Some(station) = registry::station(&state.read_models, bomba_id).await? else {
        return Err(UiError(ApiError::NotFound(format!(
            "No existe la estación {bomba_id}"
        ))));
    };
    let zone = &state.settings.time_zone;
    let as_of = as_of_param(&params, zone)?;
    let balance = balances::balance(&state, head, bomba_id, as_of, None).await?;
    let points = history(&state, head, bomba_id, as_of).await?;
    let statement = balances::statement(&state, head, bomba_id, None, None).await?;
    let skip = statement.lines.len().saturating_sub(STATEMENT_LINES_MAX);
    let as_of_date = as_of.map(|t| zone.local(t).date());
    let found = warnings(balance.saldo, balance.ultimo_saldo_reportado);
    let body = html! {
        p { a href=(PATH) { "← Estaciones" } }
        h1 { (station.bomba) }
        form.filtros method="get" action={ (PATH) "/" (bomba_id) } {
            label {
                "Saldo a la fecha (as of)"
                input #as-of type="date" name="as_of" value=[as_of_date.map(|d| d.to_string())];
            }
            button type="submit" { "Ver" }
            @if as_of.is_some() { a.boton href={ (PATH) "/" (bomba_id) } { "Hoy" } }
        }
        div.tarjeta {
            div {
                @match as_of_date {
                    Some(date) => { "Saldo al " (fecha(date)) }
                    None => { "Saldo actual" }
                }
            }
            div.cifra.negativo[balance.saldo < Decimal::ZERO] #saldo data-saldo=(balance.saldo.normalize()) {
                (cop(balance.saldo))
            }
            @for warning in &found { div.marca-roja { "● " (warning) } }
            div {
                "Anticipos " (cop(balance.total_anticipos)) " · Tanqueos " (cop(balance.total_tanqueos))
                " · " (balance.movimientos) " movimientos"
                @if let Some(reportado) = balance.ultimo_saldo_reportado { " · Último saldo reportado " (cop(reportado)) }
                @if let Some(at) = balance.ultima_actualizacion { " · Actualizado " (instante(at, zone)) }
            }
        }
        h2 { "Saldo en el tiempo" }
        div.tarjeta { (balance_chart(&points, zone)) }
        h2 { "Extracto" }
        @if statement.lines.is_empty() {
            p.aviso { "Sin movimientos." }
        } @else {
            @if skip > 0 { p { "Los últimos " (STATEMENT_LINES_MAX) " movimientos." } }
            div.tabla {
                table #extracto {
                    thead { tr {
                        th { "Fecha" } th { "Registro" } th { "Tipo" } th.num { "Valor" }
                        th.num { "Saldo calculado" } th.num { "Saldo reportado" } th.num { "Diferencia" }
                    } }
                    tbody {
                        @for line in &statement.lines[skip..] {
                            @let differs = line.diferencia.is_some_and(|d| !d.is_zero());
                            tr.alerta[differs] {
                                td { (fecha(line.movement.fecha)) }
                                td { (line.movement.id) }
                                td { (line.movement.tipo_operacion.as_str()) }
                                td.num { (line.movement.valor.map(cop).unwrap_or_default()) }
                                td.num { (cop(line.saldo_calculado)) }
                                td.num { (line.movement.saldo_disponible.map(cop).unwrap_or_default()) }
                                td.num { (line.diferencia.map(cop).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(
        &station.bomba,
        Some(&actor),
        Section::Estaciones,
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_station_is_marked_when_negative_or_when_its_report_disagrees() {
        assert!(warnings(Decimal::from(100), Some(Decimal::from(100))).is_empty());
        assert!(warnings(Decimal::from(100), None).is_empty());
        assert_eq!(warnings(Decimal::from(-1), None), ["Saldo negativo"]);
        assert_eq!(
            warnings(Decimal::from(100), Some(Decimal::from(90))),
            ["El saldo reportado no coincide con el calculado"]
        );
    }
}
