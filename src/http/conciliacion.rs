//! Station statements and reconciliation against the balances stations report.

use std::collections::HashMap;

use super::extract::{Path, Query, ReadHead};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use projections::ledger::StatementLine;
use serde_json::{json, Value};

use super::error::ApiError;
use super::fields::date_param;
use super::fields::query_id;
use super::lookup::{require_station, station_not_found};
use super::parse_id;
use crate::balances::statement;
use crate::queries::registry;
use crate::AppState;

fn line_json(line: &StatementLine) -> Value {
    let movement = &line.movement;
    json!({
        "id": movement.id,
        "fecha": movement.fecha.to_string(),
        "tipo_operacion": movement.tipo_operacion.as_str(),
        "valor": movement.valor,
        "saldo_calculado": line.saldo_calculado,
        "saldo_disponible": movement.saldo_disponible,
        "diferencia": line.diferencia,
    })
}

/// `GET /api/bombas/{id}/movimientos?desde=&hasta=`: the running balance is computed over the
/// whole history, so the first line of a range already carries what came before it.
pub async fn movements(
    State(state): State<AppState>,
    ReadHead(head): ReadHead,
    Path(raw_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let bomba_id = parse_id(&raw_id, "la bomba")?;
    require_station(&state, bomba_id).await?;
    let (desde, hasta) = (date_param(&params, "desde")?, date_param(&params, "hasta")?);
    let statement = statement(&state, head, bomba_id, desde, hasta).await?;
    let movimientos: Vec<Value> = statement.lines.iter().map(line_json).collect();
    Ok(Json(
        json!({ "bomba_id": bomba_id, "movimientos": movimientos }),
    ))
}

struct Reconciliation {
    bomba_id: i64,
    nombre_bomba: String,
    saldo_calculado: rust_decimal::Decimal,
    saldo_reportado: Option<rust_decimal::Decimal>,
    discrepancias: Vec<StatementLine>,
}

impl Reconciliation {
    fn diferencia(&self) -> Option<rust_decimal::Decimal> {
        self.saldo_reportado
            .map(|reported| (reported - self.saldo_calculado).normalize())
    }
}

/// `GET /api/reconciliacion?bomba_id=&desde=&hasta=`, as JSON or, with `Accept: text/csv`, CSV.
pub async fn reconcile(
    State(state): State<AppState>,
    ReadHead(head): ReadHead,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let only = query_id(params.get("bomba_id"), "bomba_id")?;
    let (desde, hasta) = (date_param(&params, "desde")?, date_param(&params, "hasta")?);
    let stations = registry::stations(&state.read_models).await?;
    let mut report = Vec::new();
    for station in stations {
        let bomba_id = station.id;
        if only.is_some_and(|id| id != bomba_id) {
            continue;
        }
        // Balances are as of the end of the range (everything before it counts); only the
        // discrepancies are limited to the range itself.
        let statement = statement(&state, head, bomba_id, desde, hasta).await?;
        report.push(Reconciliation {
            bomba_id,
            nombre_bomba: station.bomba,
            saldo_calculado: statement.saldo_calculado(),
            saldo_reportado: statement.reportado,
            discrepancias: statement
                .lines
                .into_iter()
                .filter(|l| l.diferencia.is_some_and(|d| !d.is_zero()))
                .collect(),
        });
    }
    if let (Some(bomba_id), true) = (only, report.is_empty()) {
        return Err(station_not_found(bomba_id));
    }
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"));
    if wants_csv {
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            csv(&report),
        )
            .into_response());
    }
    let stations: Vec<Value> = report
        .iter()
        .map(|r| {
            json!({
                "bomba_id": r.bomba_id,
                "nombre_bomba": r.nombre_bomba,
                "saldo_calculado": r.saldo_calculado,
                "saldo_reportado": r.saldo_reportado,
                "diferencia": r.diferencia(),
                "discrepancias": r.discrepancias.iter().map(line_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "bombas": stations })).into_response())
}

/// One line per discrepancy (a station without any still gets its summary line), so the
/// accountant can filter and sum in a spreadsheet.
fn csv(report: &[Reconciliation]) -> String {
    let text =
        |value: Option<rust_decimal::Decimal>| value.map(|d| d.to_string()).unwrap_or_default();
    let quoted = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let mut out = String::from(
        "bomba_id,nombre_bomba,saldo_calculado,saldo_reportado,diferencia,\
         movimiento_id,fecha,saldo_calculado_movimiento,saldo_reportado_movimiento,diferencia_movimiento\n",
    );
    for station in report {
        let summary = format!(
            "{},{},{},{},{}",
            station.bomba_id,
            quoted(&station.nombre_bomba),
            station.saldo_calculado,
            text(station.saldo_reportado),
            text(station.diferencia())
        );
        if station.discrepancias.is_empty() {
            out.push_str(&format!("{summary},,,,,\n"));
        }
        for line in &station.discrepancias {
            out.push_str(&format!(
                "{summary},{},{},{},{},{}\n",
                line.movement.id,
                line.movement.fecha,
                line.saldo_calculado,
                text(line.movement.saldo_disponible),
                text(line.diferencia)
            ));
        }
    }
    out
}
