//! Vehículos: live and deleted vehicles, and one vehicle's refuels and history of events, from
//! the same queries as `/vehiculo`, `/api/tanqueos?placa_id=` and
//! `/api/auditoria/vehiculo/{id}/eventos` (whose roles the history keeps: auditor and admin).

use aggregates::audit::Subject;
use axum::extract::State;
use axum::Extension;
use maud::{html, Markup};
use projections::Cell;
use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;

use super::format::{cop, fecha, instante, quantity};
use super::{layout, path_id, Page, Section, UiError};
use crate::audit;
use crate::auth::Actor;
use crate::http::auditoria::subject_filter;
use crate::http::error::ApiError;
use crate::http::extract::Path;
use crate::queries::fleet::{self, VehicleFilter};
use crate::queries::tanqueos::{self as records, RecordFilter, RecordRow};
use crate::AppState;

pub const PATH: &str = "/ui/vehiculos";
/// Most refuels and events shown on a vehicle's page: the latest refuels, the first events.
const ROWS_MAX: i64 = 100;

fn text<'a>(vehicle: &'a Value, field: &str) -> &'a str {
    vehicle.get(field).and_then(Value::as_str).unwrap_or("—")
}

/// Brand, model and class, those the vehicle has (a synced plate has none yet).
fn description(vehicle: &Value) -> String {
    let parts: Vec<&str> = ["Marca", "Modelo", "NombreClaseVehiculo"]
        .iter()
        .filter_map(|field| vehicle.get(*field).and_then(Value::as_str))
        .filter(|text| !text.trim().is_empty())
        .collect();
    if parts.is_empty() {
        "—".to_string()
    } else {
        parts.join(" · ")
    }
}

/// `GET /ui/vehiculos`.
pub async fn list(State(state): State<AppState>, Extension(actor): Extension<Actor>) -> Page {
    let filter = VehicleFilter {
        incluir_eliminados: true,
        ..VehicleFilter::default()
    };
    let vehicles = fleet::vehicles(&state.read_models, &filter).await?;
    let body = html! {
        h1 { "Vehículos" }
        @if vehicles.is_empty() {
            p.aviso { "Todavía no hay vehículos." }
        } @else {
            div.tabla {
                table #vehiculos {
                    thead { tr {
                        th { "Placa" } th { "Marca, modelo y clase" } th { "Estado" }
                        th { "Registro" } th.num { "Misiones activas" }
                    } }
                    tbody {
                        @for vehicle in &vehicles {
                            @let id = vehicle["Id"].as_i64().unwrap_or_default();
                            @let deleted = vehicle["Eliminado"].as_bool().unwrap_or(false);
                            tr.eliminado[deleted] {
                                td { a href={ (PATH) "/" (id) } { (text(vehicle, "Placa")) } }
                                td { (description(vehicle)) }
                                td { (text(vehicle, "NombreEstadoVehiculo")) }
                                td { @if deleted { span.negativo { "Eliminado" } } @else { "Vigente" } }
                                td.num { (vehicle["MisionesActivas"].as_i64().unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout("Vehículos", Some(&actor), Section::Vehiculos, body))
}

fn cell_text(row: &RecordRow, field: &str) -> Option<String> {
    match row.get(field) {
        Some(Cell::Text(text)) => text.clone(),
        Some(Cell::Int(number)) => number.map(|n| n.to_string()),
        None => None,
    }
}

fn cell_decimal(row: &RecordRow, field: &str) -> Option<Decimal> {
    cell_text(row, field).and_then(|t| Decimal::from_str(&t).ok())
}

/// The vehicle's refuels in force and voided, newest first (its plate's records).
async fn refuels(state: &AppState, placa_id: Option<i64>) -> Result<Markup, UiError> {
    let Some(placa_id) = placa_id else {
        return Ok(html! { p.aviso { "El vehículo no tiene placa registrada: no hay tanqueos." } });
    };
    let filter = RecordFilter {
        placa_id: Some(vec![placa_id]),
        tipo_operacion: Some(vec!["TANQUEO".to_string()]),
        ..RecordFilter::default()
    };
    let listed = records::page(&state.read_models, &filter, ROWS_MAX, 0).await?;
    Ok(html! {
        @if listed.is_empty() {
            p.aviso { "Sin tanqueos." }
        } @else {
            div.tabla {
                table #tanqueos {
                    thead { tr {
                        th { "Fecha" } th { "Registro" } th { "Estación" } th { "Combustible" }
                        th.num { "Galones" } th.num { "Valor" } th { "" }
                    } }
                    tbody {
                        @for item in &listed {
                            @let row = &item.record;
                            @let fecha_text = cell_text(row, "fecha");
                            tr {
                                td { (fecha_text.as_deref().and_then(|t| t.parse().ok()).map(fecha).or(fecha_text.clone()).unwrap_or_default()) }
                                td { (cell_text(row, "id").unwrap_or_default()) }
                                td { (item.nombre_bomba.clone().unwrap_or_default()) }
                                td { (cell_text(row, "tipo_combustible").unwrap_or_default()) }
                                td.num { (cell_decimal(row, "cantidad_galones").map(quantity).unwrap_or_default()) }
                                td.num { (cell_decimal(row, "valor_tanqueo").map(cop).unwrap_or_default()) }
                                td { @if cell_text(row, "anulado").as_deref() == Some("1") { span.negativo { "Anulado" } } }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The vehicle's history of events, for the roles that may audit (as on the API).
async fn history(state: &AppState, actor: &Actor, vehicle_id: i64) -> Result<Markup, UiError> {
    if !actor.can_audit() {
        return Ok(html! {
            p.aviso #historial-restringido { "El historial de eventos es para los roles auditor y admin." }
        });
    }
    let subject = Subject::parse("vehiculo", &vehicle_id.to_string())
        .map_err(|e| UiError(ApiError::BadRequest(e.to_string())))?;
    let page = audit::page(state.log.as_ref(), &subject_filter(&subject), 1, ROWS_MAX).await?;
    let zone = &state.settings.time_zone;
    Ok(html! {
        div.tabla {
            table #historial {
                thead { tr { th { "Posición" } th { "Cuándo" } th { "Evento" } th { "Quién" } } }
                tbody {
                    @for event in &page.events {
                        tr {
                            td { (event.position) }
                            td { (instante(event.recorded_at, zone)) }
                            td { details {
                                summary { (event.event_type) }
                                pre { (serde_json::to_string_pretty(&event.payload).unwrap_or_default()) }
                            } }
                            td { (event.metadata.actor.clone().unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    })
}

/// `GET /ui/vehiculos/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(raw_id): Path<String>,
) -> Page {
    let id = path_id(&raw_id, "el vehículo")?;
    let Some(vehicle) = fleet::vehicle(&state.read_models, id).await? else {
        return Err(UiError(ApiError::NotFound(format!(
            "No existe el vehículo {id}"
        ))));
    };
    let deleted = vehicle["Eliminado"].as_bool().unwrap_or(false);
    let placa = text(&vehicle, "Placa").to_string();
    let body = html! {
        p { a href=(PATH) { "← Vehículos" } }
        h1 { "Vehículo " (placa) }
        div.tarjeta {
            div { "Estado: " (text(&vehicle, "NombreEstadoVehiculo")) " · "
                @if deleted { span.negativo { "Eliminado" } } @else { "Vigente" } }
            div { (description(&vehicle)) }
            div { "Misiones activas: " (vehicle["MisionesActivas"].as_i64().unwrap_or_default()) }
            @if let Some(km) = vehicle["KilometrajeActual"].as_i64() { div { "Kilometraje: " (quantity(Decimal::from(km))) " km" } }
        }
        h2 { "Tanqueos" }
        (refuels(&state, vehicle["IdPlaca"].as_i64()).await?)
        h2 { "Historial de eventos" }
        (history(&state, &actor, id).await?)
    };
    Ok(layout(
        &format!("Vehículo {placa}"),
        Some(&actor),
        Section::Vehiculos,
        body,
    ))
}
