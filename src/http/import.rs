//! `POST /api/tanqueos/import`: refuels as operators keep them in spreadsheets. Each valid row is
//! recorded exactly as a `POST /api/tanqueos` TANQUEO would be; each bad row is reported by
//! index, never guessed at.

use std::collections::{HashMap, HashSet};

use aggregates::fleet::PlateStatus;
use aggregates::fuel::{FuelCommand, FuelError, FuelRecord};
use aggregates::import::{fecha, money, name_key, quantity};
use aggregates::placa::Placa;
use axum::extract::State;
use axum::Json;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::error::{command_error, ApiError};
use super::extract::{CommandContext, JsonBody, Query};
use super::fields::{at_index, reject_unknown, Fields};
use super::tanqueos::{foreign_key, parse_record, reserve_ids};
use crate::queries::registry::{self, exists, Reference};
use crate::queries::{fleet, tanqueos};
use crate::state::READ_YOUR_WRITES_TIMEOUT;
use crate::AppState;
use utoipa::ToSchema;

/// Spreadsheet rows to import as TANQUEO records into one station and area.
#[derive(ToSchema)]
#[schema(example = json!({"area_operacion_id": 1, "bomba_id": 1, "records": [{"FECHA": "15/03/2024",
    "NOMBRE CONDUCTOR": "juan perez", "PLACA": "abc 123", "TIPO COMBUSTIBLE": "ACPM",
    "VALOR TANQUEO": "$150.000", "CANTIDAD GALONES": "12,5"}]}))]
pub struct ImportRequest {
    /// Required. A registered operation area.
    pub area_operacion_id: i64,
    /// Required. A registered station.
    pub bomba_id: i64,
    /// Required. At most 5,000 rows, each validated exactly as a `POST /api/tanqueos` TANQUEO.
    #[schema(value_type = Vec<Object>, max_items = 5000)]
    pub records: Vec<Value>,
}

/// A row the import refused, by its index in `records`.
#[derive(ToSchema)]
pub struct ImportRowError {
    pub index: i64,
    /// `Fecha inválida`, `Valor inválido`, `Cantidad inválida`, `Registro inválido`,
    /// `Saldo insuficiente`, `Duplicado`, …
    pub error: String,
    /// What was wrong, as `POST /api/tanqueos` would say it.
    pub detail: String,
}

/// What an import did.
#[derive(ToSchema)]
#[schema(example = json!({"imported": 1, "errors": [{"index": 1, "error": "Registro inválido",
    "detail": "Missing required field: PLACA"}], "totalProcessed": 2}))]
pub struct ImportSummary {
    pub imported: i64,
    pub errors: Vec<ImportRowError>,
    #[serde(rename = "totalProcessed")]
    pub total_processed: i64,
}

pub const RECORDS_MAX: usize = 5000;
/// The spreadsheet's columns a row may have.
const COLUMNS: [&str; 6] = [
    "FECHA",
    "NOMBRE CONDUCTOR",
    "PLACA",
    "TIPO COMBUSTIBLE",
    "VALOR TANQUEO",
    "CANTIDAD GALONES",
];
/// Largest import request accepted.
pub const BODY_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Why a row was not imported: a short label and what exactly was wrong.
struct RowError {
    error: &'static str,
    detail: String,
}

fn row_error(error: &'static str, detail: impl Into<String>) -> RowError {
    RowError {
        error,
        detail: detail.into(),
    }
}

/// Same station, date, plate and amount: the same refuel imported again.
type DuplicateKey = (NaiveDate, i64, Decimal);

struct Lookups {
    plates: HashMap<String, i64>,
    drivers: HashMap<String, Vec<i64>>,
    imported: HashSet<DuplicateKey>,
}

async fn lookups(state: &AppState, bomba_id: i64) -> Result<Lookups, ApiError> {
    let read_models = &state.read_models;
    let plates = fleet::plates(read_models, Some(PlateStatus::Activada))
        .await?
        .into_iter()
        .map(|plate| (plate.placa, plate.id))
        .collect();
    let mut drivers: HashMap<String, Vec<i64>> = HashMap::new();
    for driver in registry::drivers(read_models).await? {
        drivers
            .entry(name_key(&driver.conductor))
            .or_default()
            .push(driver.id);
    }
    let imported = tanqueos::refuels_in_force(read_models, bomba_id)
        .await?
        .into_iter()
        .map(|refuel| {
            (
                refuel.fecha,
                refuel.placa_id,
                refuel.valor_tanqueo.normalize(),
            )
        })
        .collect();
    Ok(Lookups {
        plates,
        drivers,
        imported,
    })
}

fn cell<'a>(row: &'a Value, name: &str) -> &'a Value {
    row.get(name).unwrap_or(&Value::Null)
}

/// Turns one spreadsheet row into the body `POST /api/tanqueos` would take.
fn row_body(
    row: &Value,
    lookups: &Lookups,
    bomba_id: i64,
    area_operacion_id: i64,
) -> Result<(Value, DuplicateKey), RowError> {
    if !row.is_object() {
        return Err(row_error(
            "Fila inválida",
            "cada registro debe ser un objeto",
        ));
    }
    let fecha =
        fecha(cell(row, "FECHA")).map_err(|e| row_error("Fecha inválida", e.to_string()))?;
    let placa_text = cell(row, "PLACA").as_str().unwrap_or_default();
    let placa_id = Placa::parse(placa_text)
        .ok()
        .and_then(|placa| lookups.plates.get(placa.as_str()).copied())
        .ok_or_else(|| {
            row_error(
                "Placa no encontrada",
                format!("no hay una placa ACTIVADA {placa_text:?}"),
            )
        })?;
    let conductor = cell(row, "NOMBRE CONDUCTOR").as_str().unwrap_or_default();
    let conductor_id = match lookups.drivers.get(&name_key(conductor)).map(Vec::as_slice) {
        Some([only]) => *only,
        Some([_, _, ..]) => {
            return Err(row_error(
                "Conductor ambiguo",
                format!("hay varios conductores llamados {conductor:?}"),
            ))
        }
        _ => {
            return Err(row_error(
                "Conductor no encontrado",
                format!("no hay un conductor {conductor:?}"),
            ))
        }
    };
    let valor = money(cell(row, "VALOR TANQUEO"))
        .map_err(|e| row_error("Valor inválido", e.to_string()))?;
    let galones = quantity(cell(row, "CANTIDAD GALONES"))
        .map_err(|e| row_error("Cantidad inválida", e.to_string()))?;
    let mut body = json!({
        "fecha": fecha.to_string(),
        "conductor_id": conductor_id,
        "placa_id": placa_id,
        "bomba_id": bomba_id,
        "area_operacion_id": area_operacion_id,
        "valor_tanqueo": valor,
        "cantidad_galones": galones,
        "tipo_operacion": "TANQUEO",
    });
    if let Some(tipo) = cell(row, "TIPO COMBUSTIBLE")
        .as_str()
        .filter(|t| !t.trim().is_empty())
    {
        body["tipo_combustible"] = json!(tipo);
    }
    Ok((body, (fecha, placa_id, valor.normalize())))
}

/// Import spreadsheet rows as TANQUEO records (at most 5,000)
#[utoipa::path(post, path = "/api/tanqueos/import", request_body = ImportRequest, params(
    ("atomico" = Option<bool>, Query, description = "`true`: import every row or none (default `false`: the valid rows, each refused one listed)"),
), responses((status = 200, body = ImportSummary)))]
pub async fn import(
    State(state): State<AppState>,
    context: CommandContext,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    // Duplicates are found in the records read model: it must show every record acknowledged
    // before this import (refuels answer without waiting for it).
    state.read_barrier(READ_YOUR_WRITES_TIMEOUT).await;
    let atomic = match params.get("atomico").map(|v| v.trim()) {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Invalid value for atomico: {other}"
            )))
        }
    };
    let fields = Fields::of(&body, &["bomba_id", "area_operacion_id", "records"])?;
    let bomba_id = fields.required("bomba_id", Fields::id)?;
    let area_operacion_id = fields.required("area_operacion_id", Fields::id)?;
    // Every row would fail on these alike, so they are the request's error, as on POST.
    if !exists(&state.read_models, Reference::Station, bomba_id).await? {
        return Err(foreign_key("bomba_id"));
    }
    if !exists(
        &state.read_models,
        Reference::OperationArea,
        area_operacion_id,
    )
    .await?
    {
        return Err(foreign_key("area_operacion_id"));
    }

    let rows = match body.get("records") {
        Some(Value::Array(rows)) if rows.len() <= RECORDS_MAX => rows,
        Some(Value::Array(_)) => {
            return Err(ApiError::BadRequest(format!(
                "At most {RECORDS_MAX} records per import"
            )))
        }
        _ => {
            return Err(ApiError::BadRequest(
                "Missing required field: records".into(),
            ))
        }
    };
    // A misspelt optional column (`TIPO COMBUSTIBE`) would otherwise import every row with the
    // default product: the whole request is refused before anything is recorded.
    for (index, row) in rows.iter().enumerate() {
        reject_unknown(row, &COLUMNS).map_err(|e| at_index(true, index, e))?;
    }
    let mut lookups = lookups(&state, bomba_id).await?;
    let mut errors: Vec<(usize, RowError)> = Vec::new();
    let mut valid: Vec<(usize, FuelRecord)> = Vec::new();
    let mut registered_policy = true;
    for (index, row) in rows.iter().enumerate() {
        let (body, key) = match row_body(row, &lookups, bomba_id, area_operacion_id) {
            Ok(parsed) => parsed,
            Err(error) => {
                errors.push((index, error));
                continue;
            }
        };
        if lookups.imported.contains(&key) {
            errors.push((
                index,
                row_error(
                    "Duplicado",
                    "ya se importó un tanqueo de esta bomba con la misma fecha, placa y valor",
                ),
            ));
            continue;
        }
        match parse_record(&state, &body).await {
            Ok((record, permitir)) => {
                registered_policy = permitir;
                lookups.imported.insert(key);
                valid.push((index, record));
            }
            Err(ApiError::BadRequest(detail)) => {
                errors.push((index, row_error("Registro inválido", detail)))
            }
            Err(other) => return Err(other),
        }
    }
    let mut imported = 0;
    let refused_whole = atomic && !errors.is_empty();
    if !valid.is_empty() && !refused_whole {
        let first_id = reserve_ids(&state, valid.len() as i64, &context).await?;
        for (offset, (_, record)) in valid.iter_mut().enumerate() {
            record.id = first_id + offset as i64;
        }
        let stream = bomba_id.to_string();
        let inherited = super::tanqueos::inherited_closures(&state, bomba_id).await?;
        let scope = context.idempotency.as_deref();
        let mut last_position = None;
        let mut touched = Vec::new();
        if atomic {
            let records = valid.iter().map(|(_, r)| r.clone()).collect();
            let command = FuelCommand::RecordAll {
                records,
                registered_policy,
                inherited: inherited.clone(),
            };
            match state
                .fuel_stations
                .execute_keyed(&stream, command, &context.metadata, scope, |_| ())
                .await
            {
                Ok((executed, ())) => {
                    imported = valid.len();
                    last_position = executed.position();
                    touched = executed.touched;
                }
                Err(crate::commands::CommandError::Rejected(FuelError::InBatch {
                    index,
                    reason,
                })) => {
                    errors.push((
                        valid[index].0,
                        row_error(refusal_label(&reason), reason.to_string()),
                    ));
                }
                Err(other) => return Err(command_error(other, super::tanqueos::refusal)),
            }
        } else {
            for (index, record) in valid {
                let command = FuelCommand::Record {
                    record,
                    registered_policy,
                    inherited: inherited.clone(),
                };
                match state
                    .fuel_stations
                    .execute_keyed(&stream, command, &context.metadata, scope, |_| ())
                    .await
                {
                    Ok((executed, ())) => {
                        imported += 1;
                        last_position = executed.position().or(last_position);
                        for name in executed.touched {
                            if !touched.contains(&name) {
                                touched.push(name);
                            }
                        }
                    }
                    Err(crate::commands::CommandError::Rejected(refusal)) => {
                        errors.push((
                            index,
                            row_error(refusal_label(&refusal), refusal.to_string()),
                        ));
                    }
                    Err(crate::commands::CommandError::Unrepresentable(value)) => {
                        errors.push((index, row_error("Registro inválido", value.to_string())));
                    }
                    Err(other) => return Err(command_error(other, super::tanqueos::refusal)),
                }
            }
        }
        if !state.settle(last_position, &touched).await {
            context.lag.mark();
        }
    }
    errors.sort_by_key(|(index, _)| *index);
    let errors: Vec<Value> = errors
        .into_iter()
        .map(|(index, e)| json!({ "index": index, "error": e.error, "detail": e.detail }))
        .collect();
    Ok(Json(
        json!({ "imported": imported, "errors": errors, "totalProcessed": rows.len() }),
    ))
}

/// The heading of a row the station refused: its balance, or a closed month (issue 16).
fn refusal_label(refusal: &FuelError) -> &'static str {
    match refusal {
        FuelError::PeriodoCerrado { .. } => "Periodo cerrado",
        FuelError::InBatch { reason, .. } => refusal_label(reason),
        _ => "Saldo insuficiente",
    }
}
