//! The fuel ledger's records (seed 004): `POST /api/tanqueos` exactly as the seed's service
//! answers it, reads, the list, corrections and voids. Balances are in `saldos`.

use std::collections::HashMap;

use aggregates::amount::AMOUNT_ABS_MAX;
use aggregates::codec;
use aggregates::fuel::{
    costo_por_galon, Concepto, FuelCommand, FuelError, FuelEvent, FuelRecord, FuelStation,
    RecordAsRead, TipoOperacion,
};
use aggregates::period::InheritedClosures;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use cqrs_es::Aggregate;
use projections::{Cell, Projection, Recorded};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use super::error::{command_error, ApiError};
use super::extract::{CommandContext, JsonBody, Path, Query};
use super::fields::{
    choice_list_param, date_param, id_list_param, page_and_limit, parse_date, reject_unknown,
    text_list_param, Dialect, Fields,
};
use super::openapi::Pagination;
use super::parse_id;
use super::run_command_answering_from_events;
use crate::commands::Executed;
use crate::queries::tanqueos::{self as records, Kind, RecordFilter, RecordRow, RECORD_FIELDS};
use crate::read_store::decimal_json;
use crate::references::Known;
use crate::state::READ_YOUR_WRITES_TIMEOUT;
use crate::AppState;
use utoipa::ToSchema;

/// the ledger's to write.
#[derive(ToSchema)]
#[schema(example = json!({"fecha": "2024-03-15", "conductor_id": 1, "placa_id": 1, "bomba_id": 1,
    "area_operacion_id": 1, "tipo_combustible": "ACPM", "valor_tanqueo": 150000,
    "cantidad_galones": 12.5, "horometro": 1250.5, "concepto": "OPERATIVO"}))]
pub struct TanqueoRequest {
    /// Required. The business date, `YYYY-MM-DD`.
    #[schema(format = Date, example = "2024-03-15")]
    pub fecha: String,
    /// Required. A registered station.
    #[schema(minimum = 1, example = 1)]
    pub bomba_id: i64,
    /// Required. A registered operation area.
    #[schema(minimum = 1, example = 1)]
    pub area_operacion_id: i64,
    /// `TANQUEO` (the default) or `ANTICIPO`, in any case.
    #[schema(required = false, max_length = 20, example = "TANQUEO")]
    pub tipo_operacion: Option<String>,
    /// TANQUEO: required. ANTICIPO: refused. A registered driver.
    #[schema(required = false, minimum = 1, example = 1)]
    pub conductor_id: Option<i64>,
    /// TANQUEO: required. ANTICIPO: refused. A registered plate.
    #[schema(required = false, minimum = 1, example = 1)]
    pub placa_id: Option<i64>,
    /// TANQUEO: required. ANTICIPO: refused. Amount in COP, ≥ 0.
    #[schema(required = false, value_type = Option<f64>, minimum = 0, example = 150000)]
    pub valor_tanqueo: Option<String>,
    /// TANQUEO: required. ANTICIPO: refused. Gallons, ≥ 0; `costo_por_galon` is derived from it.
    #[schema(required = false, value_type = Option<f64>, minimum = 0, example = 12.5)]
    pub cantidad_galones: Option<String>,
    /// TANQUEO: optional (default `ACPM`). ANTICIPO: refused. An entry of the `combustibles`
    /// catalogue.
    #[schema(required = false, example = "ACPM")]
    pub tipo_combustible: Option<String>,
    /// Optional. Hour meter reading, ≥ 0.
    #[schema(required = false, value_type = Option<f64>, minimum = 0, example = 1250.5)]
    pub horometro: Option<String>,
    /// ANTICIPO: required. TANQUEO: refused. Amount in COP, ≥ 0.
    #[schema(required = false, value_type = Option<f64>, minimum = 0, example = 500000)]
    pub valor_anticipo: Option<String>,
    /// Optional. The balance the station reports (may be negative); `/api/reconciliacion`
    /// compares it with the computed one.
    #[schema(required = false, value_type = Option<f64>, example = 350000)]
    pub saldo_disponible: Option<String>,
    /// Optional. `OPERATIVO` (the default) or `ADMINISTRATIVO`.
    #[schema(required = false, example = "OPERATIVO")]
    pub concepto: Option<String>,
    /// Optional. Free text, at most 2,000 characters.
    #[schema(required = false, max_length = 2000, example = "Tanqueo en ruta")]
    pub observacion: Option<String>,
}

/// A record as the ledger holds it, in the seed's field order. Amounts are JSON numbers, exact.
#[derive(ToSchema)]
#[schema(example = json!({"id": 2, "fecha": "2024-03-15", "conductor_id": 1, "placa_id": 1, "bomba_id": 1,
    "area_operacion_id": 1, "tipo_combustible": "ACPM", "valor_tanqueo": 150000, "cantidad_galones": 12.5,
    "costo_por_galon": 12000, "horometro": 1250.5, "valor_anticipo": null, "saldo_disponible": 350000,
    "concepto": "OPERATIVO", "tipo_operacion": "TANQUEO", "observacion": null, "creado_por": "ana@flota.co",
    "actualizado_por": null, "actualizado_en": null, "anulado": false}))]
pub struct TanqueoRecord {
    pub id: i64,
    #[schema(format = Date)]
    pub fecha: String,
    pub conductor_id: Option<i64>,
    pub placa_id: Option<i64>,
    pub bomba_id: i64,
    pub area_operacion_id: i64,
    pub tipo_combustible: Option<String>,
    #[schema(value_type = Option<f64>)]
    pub valor_tanqueo: Option<String>,
    #[schema(value_type = Option<f64>)]
    pub cantidad_galones: Option<String>,
    /// `valor_tanqueo / cantidad_galones`, rounded half-even to 2 places; null without gallons.
    #[schema(value_type = Option<f64>)]
    pub costo_por_galon: Option<String>,
    #[schema(value_type = Option<f64>)]
    pub horometro: Option<String>,
    #[schema(value_type = Option<f64>)]
    pub valor_anticipo: Option<String>,
    #[schema(value_type = Option<f64>)]
    pub saldo_disponible: Option<String>,
    /// `OPERATIVO` or `ADMINISTRATIVO`.
    pub concepto: String,
    /// `TANQUEO` or `ANTICIPO`.
    pub tipo_operacion: String,
    pub observacion: Option<String>,
    /// The token's `sub` that recorded it.
    pub creado_por: Option<String>,
    pub actualizado_por: Option<String>,
    #[schema(format = DateTime)]
    pub actualizado_en: Option<String>,
    /// Whether it was voided. Reads and voids show it; the seed's create and correct answers
    /// do not.
    #[schema(required = false)]
    pub anulado: bool,
}

/// A record of a list, with the names of what it refers to.
#[derive(ToSchema)]
pub struct ListedTanqueo {
    #[serde(flatten)]
    pub record: TanqueoRecord,
    pub placa: Option<String>,
    pub nombre_conductor: Option<String>,
    pub nombre_bomba: Option<String>,
    pub nombre_area_operacion: Option<String>,
}

/// Totals over every record the filters select, not only this page.
#[derive(ToSchema)]
pub struct TanqueoTotals {
    #[schema(value_type = f64)]
    pub total_galones: String,
    #[schema(value_type = f64)]
    pub total_valor: String,
}

/// A page of records.
#[derive(ToSchema)]
#[schema(example = json!({"data": [], "pagination": {"page": 1, "limit": 20, "total": 0, "totalPages": 0},
    "summary": {"total_galones": 0, "total_valor": 0}}))]
pub struct TanqueoPage {
    pub data: Vec<ListedTanqueo>,
    pub pagination: Pagination,
    pub summary: TanqueoTotals,
}

/// Why a record is voided.
#[derive(ToSchema)]
#[schema(example = json!({"motivo": "Registrado dos veces"}))]
pub struct VoidRequest {
    /// Required. At most 2,000 characters.
    #[schema(max_length = 2000)]
    pub motivo: String,
}

const OBSERVACION_LEN_MAX: usize = 2000;
const MOTIVO_LEN_MAX: usize = 2000;

/// What `POST` takes and `PUT` may change: the record's own fields. Its id and the derived and
/// audit columns (`costo_por_galon`, `creado_por`, …) are the ledger's to write.
const WRITABLE_FIELDS: [&str; 14] = [
    "fecha",
    "bomba_id",
    "area_operacion_id",
    "tipo_operacion",
    "concepto",
    "observacion",
    "saldo_disponible",
    "conductor_id",
    "placa_id",
    "tipo_combustible",
    "valor_tanqueo",
    "cantidad_galones",
    "horometro",
    "valor_anticipo",
];

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

/// What seed 004 says an ANTICIPO must leave out: the vehicle and driver fields.
const TANQUEO_ONLY: [&str; 5] = [
    "conductor_id",
    "placa_id",
    "tipo_combustible",
    "valor_tanqueo",
    "cantidad_galones",
];

/// Validates a body into a record (id 0 until one is reserved), in the order the seed's service
/// refuses: presence, then types and values, then references.
pub(super) async fn parse_record(
    state: &AppState,
    body: &Value,
) -> Result<(FuelRecord, bool), ApiError> {
    let map = body
        .as_object()
        .ok_or_else(|| bad("Request body must be a JSON object"))?;
    // Read the way the seed's service (Node over PostgreSQL) reads them.
    let body = Fields::among(map, &WRITABLE_FIELDS, Dialect::Postgres);
    for name in ["fecha", "bomba_id", "area_operacion_id"] {
        body.require(name)?;
    }
    let tipo = body.choice(
        "tipo_operacion",
        TipoOperacion::Tanqueo,
        TipoOperacion::parse,
    )?;
    match tipo {
        TipoOperacion::Tanqueo => {
            body.forbid("valor_anticipo", tipo.as_str())?;
            for name in [
                "conductor_id",
                "placa_id",
                "valor_tanqueo",
                "cantidad_galones",
            ] {
                body.require(name)?;
            }
        }
        TipoOperacion::Anticipo => {
            for name in TANQUEO_ONLY {
                body.forbid(name, tipo.as_str())?;
            }
            body.require("valor_anticipo")?;
        }
    }
    let fecha = body.required("fecha", |f, n| f.date(n))?;
    let bomba_id = body.int("bomba_id")?.unwrap_or_default();
    let area_operacion_id = body.int("area_operacion_id")?.unwrap_or_default();
    let concepto = body.choice("concepto", Concepto::Operativo, Concepto::parse)?;
    let observacion = body.text("observacion", OBSERVACION_LEN_MAX)?;
    // The balance a station reports may be below zero (the operator owes it), unlike amounts.
    let saldo_disponible = body.decimal("saldo_disponible")?;
    let conductor_id = body.int("conductor_id")?;
    let placa_id = body.int("placa_id")?;
    let valor_tanqueo = body.quantity("valor_tanqueo")?;
    let cantidad_galones = body.quantity("cantidad_galones")?;
    let horometro = body.quantity("horometro")?;
    let valor_anticipo = body.quantity("valor_anticipo")?;
    let tipo_combustible = match tipo {
        TipoOperacion::Anticipo => None,
        TipoOperacion::Tanqueo => {
            Some(fuel_product(state, body.text("tipo_combustible", usize::MAX)?).await?)
        }
    };
    // A derived amount is bounded like the amounts it comes from: a tiny quantity must not make
    // a cost per gallon no sum or column downstream can hold.
    let costo = match (valor_tanqueo, cantidad_galones) {
        (Some(valor), Some(galones)) if !galones.is_zero() => Some(
            costo_por_galon(valor, galones)
                .filter(|costo| costo.abs() <= Decimal::from(AMOUNT_ABS_MAX))
                .ok_or_else(|| {
                    bad(format!(
                        "Invalid value for cantidad_galones: out of range (costo_por_galon = valor_tanqueo / cantidad_galones must be at most {AMOUNT_ABS_MAX})"
                    ))
                })?,
        ),
        _ => None,
    };

    // Checked in the order the seed's table declares its foreign keys, from memory (see
    // `references`): no read-model round trip per request.
    let references = &state.references;
    if let Some(conductor_id) = conductor_id {
        if !references.exists(Known::Driver(conductor_id)).await? {
            return Err(foreign_key("conductor_id"));
        }
    }
    if let Some(placa_id) = placa_id {
        if !references.exists(Known::Plate(placa_id)).await? {
            return Err(foreign_key("placa_id"));
        }
    }
    let registered_policy = match references.registered_policy(bomba_id).await? {
        Some(permitir) => permitir,
        None => return Err(foreign_key("bomba_id")),
    };
    if !references
        .exists(Known::OperationArea(area_operacion_id))
        .await?
    {
        return Err(foreign_key("area_operacion_id"));
    }
    let record = FuelRecord {
        id: 0,
        fecha,
        bomba_id,
        area_operacion_id,
        concepto,
        tipo_operacion: tipo,
        observacion,
        saldo_disponible,
        conductor_id,
        placa_id,
        tipo_combustible,
        valor_tanqueo,
        cantidad_galones,
        costo_por_galon: costo,
        horometro,
        valor_anticipo,
    };
    Ok((record, registered_policy))
}

/// The months `bomba_id` inherited closed from the registry (see `aggregates::period`).
pub(super) async fn inherited_closures(
    state: &AppState,
    bomba_id: i64,
) -> Result<InheritedClosures, ApiError> {
    let inherited = state
        .references
        .inherited_closures(bomba_id)
        .await?
        .ok_or_else(|| ApiError::internal(format!("station {bomba_id} is not indexed")))?;
    Ok((*inherited).clone())
}

async fn station_registered_policy(state: &AppState, bomba_id: i64) -> Result<bool, ApiError> {
    state
        .references
        .registered_policy(bomba_id)
        .await?
        .ok_or_else(|| {
            ApiError::internal(format!("station {bomba_id} of a stored record is unknown"))
        })
}

pub(super) fn foreign_key(column: &str) -> ApiError {
    bad(format!(
        "insert or update on table \"tanqueo\" violates foreign key constraint \"tanqueo_{column}_fkey\""
    ))
}

/// `tipo_combustible`, checked against the `combustibles` catalogue (default ACPM).
async fn fuel_product(state: &AppState, raw: Option<String>) -> Result<String, ApiError> {
    let Some(raw) = raw else {
        return Ok("ACPM".to_string());
    };
    state
        .references
        .fuel_product(&raw)
        .await?
        .ok_or_else(|| bad(format!("Invalid value for tipo_combustible: {raw}")))
}

/// The `tipo_combustible` filter: products of the `combustibles` catalogue, or a 400 listing
/// them.
async fn fuel_products_param(
    state: &AppState,
    params: &HashMap<String, String>,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(values) = text_list_param(params, "tipo_combustible")? else {
        return Ok(None);
    };
    let mut products = Vec::with_capacity(values.len());
    for value in values {
        match state.references.fuel_product(&value).await? {
            Some(product) => products.push(product),
            None => {
                let known = crate::queries::registry::catalog_entries(
                    &state.read_models,
                    aggregates::registry::CatalogKind::FuelProduct.slug(),
                )
                .await?;
                let names: Vec<String> = known.into_iter().map(|entry| entry.nombre).collect();
                return Err(bad(format!(
                    "Invalid value for tipo_combustible: {}; accepted values: {}",
                    super::extract::echo(&value),
                    names.join(", ")
                )));
            }
        }
    }
    Ok(Some(products))
}

pub(super) fn refusal(error: FuelError) -> ApiError {
    match error {
        FuelError::InBatch { reason, .. } => refusal(*reason),

        FuelError::NotFound { .. } => ApiError::NotFound(error.to_string()),
        // The origin system answers a closed period with a 403 (issue 16).
        FuelError::PeriodoCerrado { .. }
        | FuelError::FechaEnPeriodoCerrado { .. }
        | FuelError::RegistroEnPeriodoCerrado { .. } => ApiError::Denied(error.to_string()),
        FuelError::SaldoInsuficiente { .. }
        | FuelError::AlreadyVoided { .. }
        | FuelError::Voided { .. }
        | FuelError::Stale { .. } => ApiError::Conflict(error.to_string()),
    }
}

/// Runs `command` on the station's aggregate. Its answer is built from the command's events, so
/// it does not wait for the read models (the next read does).
async fn on_station(
    state: &AppState,
    context: &CommandContext,
    bomba_id: i64,
    command: FuelCommand,
) -> Result<Executed<FuelStation>, ApiError> {
    run_command_answering_from_events(
        state,
        &state.fuel_stations,
        &bomba_id.to_string(),
        command,
        context,
        refusal,
    )
    .await
}

/// Reserves `count` consecutive record ids and answers the first.
pub(super) async fn reserve_ids(
    state: &AppState,
    count: i64,
    context: &CommandContext,
) -> Result<i64, ApiError> {
    state
        .fuel_record_ids
        .take(count, &context.metadata)
        .await
        .map_err(|e| command_error(e, ApiError::internal))
}

/// Record a TANQUEO (refuel) or an ANTICIPO (advance payment to a station)
///
/// A TANQUEO takes the station's balance down; one past zero is refused (422) unless the
/// station allows overdraft. An `Idempotency-Key` header makes a retry answer the first result.
#[utoipa::path(post, path = "/api/tanqueos", request_body = TanqueoRequest,
    responses((status = 201, body = TanqueoRecord)))]
pub async fn create(
    State(state): State<AppState>,
    context: CommandContext,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    reject_unknown(&body, &WRITABLE_FIELDS)?;
    let (mut record, registered_policy) = parse_record(&state, &body).await?;
    let id = reserve_ids(&state, 1, &context).await?;
    record.id = id;
    let bomba_id = record.bomba_id;
    let inherited = inherited_closures(&state, bomba_id).await?;
    let executed = on_station(
        &state,
        &context,
        bomba_id,
        FuelCommand::Record {
            record,
            registered_policy,
            inherited,
        },
    )
    .await?;
    // A resumed keyed request answers the record its first run appended, under that run's id.
    let id = executed
        .events
        .iter()
        .find_map(|event| match event {
            FuelEvent::TanqueoRecorded { record } | FuelEvent::AnticipoPaid { record } => {
                Some(record.id)
            }
            _ => None,
        })
        .unwrap_or(id);
    let events = decided_events(&executed, &context, bomba_id)?;
    let row = row_after(RecordRow::new(), id, &events)?;
    Ok((
        StatusCode::CREATED,
        Json(Value::Object(record_json(&row, false))),
    ))
}

/// Correct a record
///
/// Any writable field but `bomba_id` and `tipo_operacion`; the fields sent replace the record's,
/// the rest stay. A voided record cannot be corrected (409).
#[utoipa::path(put, path = "/api/tanqueos/{id}", params(("id" = i64, Path)), request_body = TanqueoRequest,
    responses((status = 200, body = TanqueoRecord)))]
pub async fn correct(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw_id, "el tanqueo")?;
    let changes = body
        .as_object()
        .ok_or_else(|| bad("Request body must be a JSON object"))?;
    reject_unknown(&body, &WRITABLE_FIELDS)?;
    let (current_row, folded_through) = record_to_change(&state, id).await?;
    let current = Value::Object(record_json(&current_row, true));
    if current["anulado"] == true {
        return Err(ApiError::Conflict(FuelError::Voided { id }.to_string()));
    }
    for fixed in ["bomba_id", "tipo_operacion"] {
        if changes.get(fixed).is_some_and(|v| *v != current[fixed]) {
            return Err(bad(format!(
                "{fixed} cannot be corrected: void the record and record it again"
            )));
        }
    }
    // The corrected record is the stored one with the given fields replaced, and it must pass
    // exactly the validation of a new one.
    let mut merged = current.as_object().cloned().unwrap_or_default();
    for (key, value) in changes {
        merged.insert(key.clone(), value.clone());
    }
    if merged.get("tipo_operacion") == Some(&json!("ANTICIPO")) {
        for name in TANQUEO_ONLY {
            if !changes.contains_key(name) {
                merged.remove(name);
            }
        }
    } else if !changes.contains_key("valor_anticipo") {
        merged.remove("valor_anticipo");
    }
    let (mut corrected, registered_policy) = parse_record(&state, &Value::Object(merged)).await?;
    corrected.id = id;
    let bomba_id = corrected.bomba_id;
    let inherited = inherited_closures(&state, bomba_id).await?;
    let executed = on_station(
        &state,
        &context,
        bomba_id,
        FuelCommand::Correct {
            antes: record_as_read(&current_row, folded_through)?,
            corrected,
            registered_policy,
            inherited,
        },
    )
    .await?;
    let row = row_after(current_row, id, &appended_events(&state, &executed).await?)?;
    Ok(Json(Value::Object(record_json(&row, false))))
}

/// Void a record
///
/// The record stays in the ledger, marked `anulado`; its amount no longer counts in the balance.
#[utoipa::path(post, path = "/api/tanqueos/{id}/anular", params(("id" = i64, Path)), request_body = VoidRequest,
    responses((status = 200, body = TanqueoRecord)))]
pub async fn void(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw_id, "el tanqueo")?;
    reject_unknown(&body, &["motivo"])?;
    let motivo = match body.get("motivo") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.trim().to_string(),
        _ => return Err(bad("Missing required field: motivo")),
    };
    if motivo.chars().count() > MOTIVO_LEN_MAX {
        return Err(bad(format!(
            "Invalid value for motivo: at most {MOTIVO_LEN_MAX} characters"
        )));
    }
    let (current, folded_through) = record_to_change(&state, id).await?;
    let bomba_id = row_station(&current)?;
    let registered_policy = station_registered_policy(&state, bomba_id).await?;
    let inherited = inherited_closures(&state, bomba_id).await?;
    let executed = on_station(
        &state,
        &context,
        bomba_id,
        FuelCommand::Void {
            antes: record_as_read(&current, folded_through)?,
            motivo,
            registered_policy,
            inherited,
        },
    )
    .await?;
    let row = row_after(current, id, &appended_events(&state, &executed).await?)?;
    Ok(Json(Value::Object(record_json(&row, true))))
}

/// The seed's record, in the seed's field order; `anulado` added where the caller asks for it.
fn record_json(cells: &RecordRow, with_status: bool) -> Map<String, Value> {
    let mut record = Map::new();
    for (name, kind) in RECORD_FIELDS {
        let cell = cells.get(name);
        let value = match (kind, cell) {
            (Kind::Flag, _) if !with_status => continue,
            (Kind::Flag, Some(Cell::Int(flag))) => Value::Bool(flag.unwrap_or(0) != 0),
            (Kind::Flag, _) => Value::Bool(false),
            (Kind::Int, Some(Cell::Int(Some(n)))) => Value::from(*n),
            (Kind::Text, Some(Cell::Text(Some(t)))) => Value::from(t.clone()),
            (Kind::Decimal, Some(Cell::Text(text))) => decimal_json(text.clone()),
            _ => Value::Null,
        };
        record.insert(name.into(), value);
    }
    record
}

/// The domain record a read-model row holds (what a correction or a void starts from).
fn record_from_row(row: &RecordRow) -> Result<FuelRecord, ApiError> {
    let corrupt = |column: &str| ApiError::internal(format!("stored record: bad {column}"));
    let int = |column: &'static str| match row.get(column) {
        Some(Cell::Int(value)) => Ok(*value),
        _ => Err(corrupt(column)),
    };
    let text = |column: &'static str| match row.get(column) {
        Some(Cell::Text(value)) => Ok(value.clone()),
        _ => Err(corrupt(column)),
    };
    let decimal = |column: &'static str| -> Result<Option<Decimal>, ApiError> {
        text(column)?
            .map(|digits| Decimal::from_str_exact(&digits).map_err(|_| corrupt(column)))
            .transpose()
    };
    let required = |value: Option<i64>, column: &str| value.ok_or_else(|| corrupt(column));
    let fecha = text("fecha")?
        .and_then(|fecha| parse_date(&fecha))
        .ok_or_else(|| corrupt("fecha"))?;
    Ok(FuelRecord {
        id: required(int("id")?, "id")?,
        fecha,
        bomba_id: required(int("bomba_id")?, "bomba_id")?,
        area_operacion_id: required(int("area_operacion_id")?, "area_operacion_id")?,
        concepto: text("concepto")?
            .as_deref()
            .and_then(Concepto::parse)
            .ok_or_else(|| corrupt("concepto"))?,
        tipo_operacion: text("tipo_operacion")?
            .as_deref()
            .and_then(TipoOperacion::parse)
            .ok_or_else(|| corrupt("tipo_operacion"))?,
        observacion: text("observacion")?,
        saldo_disponible: decimal("saldo_disponible")?,
        conductor_id: int("conductor_id")?,
        placa_id: int("placa_id")?,
        tipo_combustible: text("tipo_combustible")?,
        valor_tanqueo: decimal("valor_tanqueo")?,
        cantidad_galones: decimal("cantidad_galones")?,
        costo_por_galon: decimal("costo_por_galon")?,
        horometro: decimal("horometro")?,
        valor_anticipo: decimal("valor_anticipo")?,
    })
}

/// The record a correction or void starts from, and the station's version the read models had
/// folded when it was read (`None` if they lagged). Writes do not wait for the read models, so
/// this waits for them to show every write acknowledged before it (the record may have been
/// created a moment ago).
///
/// The station's aggregate remembers only its latest changes, and decides on this read for a
/// record changed before them: so the read must be known to have folded the station up to a
/// version read first. A record's station never changes, so the first read finds it.
async fn record_to_change(state: &AppState, id: i64) -> Result<(RecordRow, Option<u64>), ApiError> {
    state.read_barrier(READ_YOUR_WRITES_TIMEOUT).await;
    let bomba_id = row_station(&read_row(state, id).await?)?;
    let (_, version) = state
        .fuel_stations
        .load(&bomba_id.to_string())
        .await
        .map_err(|e| command_error(e, refusal))?;
    let settled = state.read_barrier(READ_YOUR_WRITES_TIMEOUT).await;
    let row = read_row(state, id).await?;
    Ok((row, settled.then(|| u64::try_from(version).ok()).flatten()))
}

fn row_station(row: &RecordRow) -> Result<i64, ApiError> {
    match row.get("bomba_id") {
        Some(Cell::Int(Some(bomba_id))) => Ok(*bomba_id),
        _ => Err(ApiError::internal("record without station")),
    }
}

/// The record as read, for the station's aggregate to decide on.
fn record_as_read(row: &RecordRow, folded_through: Option<u64>) -> Result<RecordAsRead, ApiError> {
    Ok(RecordAsRead {
        record: record_from_row(row)?,
        voided: matches!(row.get("anulado"), Some(Cell::Int(Some(flag))) if *flag != 0),
        folded_through,
    })
}

async fn read_row(state: &AppState, id: i64) -> Result<RecordRow, ApiError> {
    records::record(&state.read_models, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(FuelError::NotFound { id }.to_string()))
}

async fn read_record(state: &AppState, id: i64, with_status: bool) -> Result<Value, ApiError> {
    Ok(Value::Object(record_json(
        &read_row(state, id).await?,
        with_status,
    )))
}

/// The record's row as the read model holds it once the command's own events are folded into
/// `before` (the row as it was; empty for a new record). The answer to a command is built from
/// what it decided, so it holds even while the read models lag behind the write.
fn row_after(before: RecordRow, id: i64, events: &[Recorded]) -> Result<RecordRow, ApiError> {
    let key = vec![Cell::Int(Some(id))];
    let mut model = projections::MemoryModel::default();
    model
        .tables
        .entry(projections::ledger::TANQUEOS)
        .or_default()
        .insert(key.clone(), before);
    for event in events {
        let changes = projections::ledger::FuelLedgerProjection
            .apply(event)
            .map_err(ApiError::internal)?;
        for change in changes {
            model.apply(change);
        }
    }
    model
        .tables
        .get(projections::ledger::TANQUEOS)
        .and_then(|rows| rows.get(&key))
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("record {id} is not in its own events")))
}

/// The events `executed` appended, as the log stored them (with their commit time).
async fn appended_events(
    state: &AppState,
    executed: &Executed<FuelStation>,
) -> Result<Vec<Recorded>, ApiError> {
    let Some(appended) = executed.appended else {
        return Ok(Vec::new());
    };
    let count = appended.last_position - appended.first_position + 1;
    let stored = state
        .log
        .read_all(appended.first_position - 1, count)
        .await?;
    Ok(stored.iter().map(|event| event.to_recorded()).collect())
}

/// A new record's events as the read model will fold them. Only their commit time is unknown
/// here, and a new record's answer shows none.
fn decided_events(
    executed: &Executed<FuelStation>,
    context: &CommandContext,
    bomba_id: i64,
) -> Result<Vec<Recorded>, ApiError> {
    let first = executed.appended.map_or(0, |a| a.first_position);
    executed
        .events
        .iter()
        .enumerate()
        .map(|(offset, event)| {
            let (event_type, payload) = codec::encode(event).map_err(ApiError::internal)?;
            Ok(Recorded {
                position: first + offset as i64,
                stream_type: FuelStation::TYPE.to_string(),
                stream_id: bomba_id.to_string(),
                version: 0,
                schema_version: aggregates::upcast::REGISTRY.current_version(&event_type),
                event_type,
                payload,
                actor: context.metadata.actor.clone(),
                recorded_at: Utc::now(),
            })
        })
        .collect()
}

/// One record
#[utoipa::path(get, path = "/api/tanqueos/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = TanqueoRecord)))]
pub async fn get(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        read_record(&state, parse_id(&raw_id, "el tanqueo")?, true).await?,
    ))
}

/// TANQUEO and ANTICIPO records, filtered, a page at a time, newest first
///
/// Voided records are listed, marked `anulado`; the totals leave them out.
#[utoipa::path(get, path = "/api/tanqueos", params(
    ("page" = Option<i64>, Query, description = "Page number, from 1 (default 1)", minimum = 1),
    ("limit" = Option<i64>, Query, description = "Records per page, 1 to 500 (default 20)", minimum = 1, maximum = 500),
    ("desde" = Option<String>, Query, description = "First business date, YYYY-MM-DD", format = Date),
    ("hasta" = Option<String>, Query, description = "Last business date, YYYY-MM-DD", format = Date),
    ("bomba_id" = Option<String>, Query, description = "Station ids, comma-separated"),
    ("placa_id" = Option<String>, Query, description = "Plate ids, comma-separated"),
    ("conductor_id" = Option<String>, Query, description = "Driver ids, comma-separated"),
    ("area_operacion_id" = Option<String>, Query, description = "Operation area ids, comma-separated"),
    ("tipo_operacion" = Option<String>, Query, description = "TANQUEO, ANTICIPO (any case), comma-separated"),
    ("concepto" = Option<String>, Query, description = "OPERATIVO, ADMINISTRATIVO (any case), comma-separated"),
    ("tipo_combustible" = Option<String>, Query, description = "Entries of the combustibles catalogue, comma-separated"),
), responses((status = 200, body = TanqueoPage)))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (page, limit) = page_and_limit(&params)?;
    // Fields in the order a request's refusal names them.
    let filter = RecordFilter {
        desde: date_param(&params, "desde")?,
        hasta: date_param(&params, "hasta")?,
        bomba_id: id_list_param(&params, "bomba_id")?,
        placa_id: id_list_param(&params, "placa_id")?,
        conductor_id: id_list_param(&params, "conductor_id")?,
        area_operacion_id: id_list_param(&params, "area_operacion_id")?,
        tipo_operacion: choice_list_param(
            &params,
            "tipo_operacion",
            &TipoOperacion::ALL.map(TipoOperacion::as_str),
            |v| TipoOperacion::parse(v).map(|t| t.as_str().to_string()),
        )?,
        concepto: choice_list_param(
            &params,
            "concepto",
            &Concepto::ALL.map(Concepto::as_str),
            |v| Concepto::parse(v).map(|c| c.as_str().to_string()),
        )?,
        tipo_combustible: fuel_products_param(&state, &params).await?,
    };
    let summary = records::summary(&state.read_models, &filter).await?;
    let offset = (page - 1).saturating_mul(limit);
    let listed = records::page(&state.read_models, &filter, limit, offset).await?;
    let data: Vec<Value> = listed
        .into_iter()
        .map(|listed| {
            let mut record = record_json(&listed.record, true);
            for (name, value) in [
                ("placa", listed.placa),
                ("nombre_conductor", listed.nombre_conductor),
                ("nombre_bomba", listed.nombre_bomba),
                ("nombre_area_operacion", listed.nombre_area_operacion),
            ] {
                record.insert(name.into(), value.map_or(Value::Null, Value::from));
            }
            Value::Object(record)
        })
        .collect();
    let total = summary.total;
    Ok(Json(json!({
        "data": data,
        "pagination": { "page": page, "limit": limit, "total": total, "totalPages": (total + limit - 1) / limit },
        "summary": { "total_galones": summary.total_galones.normalize(), "total_valor": summary.total_valor.normalize() },
    })))
}
