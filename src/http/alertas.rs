//! The fuel checks' alerts (issue 16): `GET /api/alertas` lists them with their evidence,
//! `POST /api/alertas/{id}/revisar` records an auditor's verdict (`AnomalyReviewed`, the
//! reviewer being the token's `sub`).
//!
//! Who may review: `admin` and `auditor`. Working alerts is the audit side's job: an `operador`
//! records the refuels the checks judge, and should not clear the alarms on their own records
//! (the middleware refuses them with 403; see [`REVIEW_ROUTE`]).

use std::collections::HashMap;

use aggregates::alert::{AlertCommand, AlertError, AlertStatus, Resolution, NOTA_LEN_MAX};
use aggregates::anomaly::{Rule, Severity};
use aggregates::band::{self, BandCommand, BandError, BANDS_STREAM};
use axum::extract::State;
use axum::Json;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{CommandContext, JsonBody, Path, Query};
use super::fields::{choice_list_param, date_param, id_list_param, page_and_limit, Fields};
use super::run_command;
use crate::queries::alertas::{self, AlertFilter, AlertRow};
use crate::AppState;

/// The review route, as axum matches it: the middleware lets `auditor` post here.
pub const REVIEW_ROUTE: &str = "/api/alertas/{id}/revisar";

impl From<AlertError> for ApiError {
    fn from(refusal: AlertError) -> Self {
        let message = refusal.to_string();
        match refusal {
            AlertError::NotFound { .. } => Self::NotFound(message),
            AlertError::AlreadyReviewed { .. } | AlertError::Resolved { .. } => {
                Self::Conflict(message)
            }
        }
    }
}

fn not_found(raw: &str) -> ApiError {
    ApiError::NotFound(format!("No se encontró la alerta {raw}"))
}

/// Alerts of the fuel checks, with their evidence, filtered, a page at a time
#[utoipa::path(get, path = "/api/alertas", params(
    ("page" = Option<i64>, Query, description = "Page number, from 1 (default 1)", minimum = 1),
    ("limit" = Option<i64>, Query, description = "Alerts per page, 1 to 500 (default 20)", minimum = 1, maximum = 500),
    ("regla" = Option<String>, Query, description = "HOROMETRO_RETROCEDE, HOROMETRO_SALTO_IMPOSIBLE, HOROMETRO_FALTANTE, \
        GALONES_SOBRE_CAPACIDAD, TANQUEO_MUY_PRONTO, COMBUSTIBLE_DISTINTO, COSTO_ATIPICO_ESTACION, \
        COSTO_FUERA_DE_BANDA, CONSUMO_ATIPICO, POSIBLE_DUPLICADO, SALDO_REPORTADO_DESVIADO (any case), comma-separated"),
    ("severidad" = Option<String>, Query, description = "BAJA, MEDIA, ALTA (any case), comma-separated"),
    ("estado" = Option<String>, Query, description = "ABIERTA, CONFIRMADA, DESCARTADA, RESUELTA (any case), comma-separated"),
    ("placa_id" = Option<String>, Query, description = "Plate ids, comma-separated"),
    ("bomba_id" = Option<String>, Query, description = "Station ids, comma-separated"),
    ("desde" = Option<String>, Query, format = Date, description = "First refuel date"),
    ("hasta" = Option<String>, Query, format = Date, description = "Last refuel date"),
), responses((status = 200, body = AlertaPage)))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (page, limit) = page_and_limit(&params)?;
    // In the order the issue names them, which is the order a refusal names them in.
    let filter = AlertFilter {
        regla: choice_list_param(&params, "regla", &Rule::ALL.map(Rule::as_str), |v| {
            Rule::parse(v).map(|r| r.as_str().to_string())
        })?,
        severidad: choice_list_param(
            &params,
            "severidad",
            &Severity::ALL.map(Severity::as_str),
            |v| Severity::parse(v).map(|s| s.as_str().to_string()),
        )?,
        estado: choice_list_param(
            &params,
            "estado",
            &AlertStatus::LISTED.map(AlertStatus::as_str),
            |v| AlertStatus::parse(v).map(|s| s.as_str().to_string()),
        )?,
        placa_id: id_list_param(&params, "placa_id")?,
        bomba_id: id_list_param(&params, "bomba_id")?,
        desde: date_param(&params, "desde")?,
        hasta: date_param(&params, "hasta")?,
    };
    let total = alertas::count(&state.read_models, &filter).await?;
    let offset = (page - 1).saturating_mul(limit);
    let data = alertas::page(&state.read_models, &filter, limit, offset).await?;
    Ok(Json(json!({
        "data": data,
        "pagination": { "page": page, "limit": limit, "total": total, "totalPages": (total + limit - 1) / limit },
    })))
}

/// Review an alert (admin, auditor): confirmada or descartada
///
/// An `AnomalyReviewed` event whose reviewer is the token's `sub`. 404 for an unknown alert,
/// 409 for one already reviewed or resolved.
#[utoipa::path(post, path = "/api/alertas/{id}/revisar", params(("id" = String, Path, description = "The alert's id (a UUID)")),
    request_body = RevisionRequest, responses((status = 200, body = Alerta)))]
pub async fn review(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<AlertRow>, ApiError> {
    let alerta_id = Uuid::parse_str(raw_id.trim()).map_err(|_| not_found(&raw_id))?;
    let fields = Fields::of(&body, &["resolucion", "nota"])?;
    let raw = fields.required("resolucion", |f, n| f.text(n, usize::MAX))?;
    let resolucion = Resolution::parse(&raw.trim().to_lowercase()).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "Invalid value for resolucion: {raw}; accepted values: confirmada, descartada"
        ))
    })?;
    let nota = fields
        .text("nota", NOTA_LEN_MAX)?
        .filter(|n| !n.trim().is_empty());
    let command = AlertCommand::Review {
        alerta_id,
        resolucion,
        nota,
        revisor: context.actor.sub.clone(),
    };
    run_command(
        &state,
        &state.alerts,
        &alerta_id.to_string(),
        command,
        &context,
        ApiError::from,
    )
    .await?;
    let row = alertas::alert(&state.read_models, &alerta_id.to_string())
        .await?
        .ok_or_else(|| not_found(&raw_id))?;
    Ok(Json(row))
}

const BAND_FIELDS: [&str; 5] = ["tipo_combustible", "desde", "hasta", "minimo", "maximo"];

impl From<BandError> for ApiError {
    fn from(refusal: BandError) -> Self {
        Self::BadRequest(refusal.to_string())
    }
}

/// The bands in force, in the order the checks consult them (first covering the refuel's fuel
/// and date wins): the bands set, the latest first, then the defaults.
async fn bands_in_force(state: &AppState) -> Result<BandasReferencia, ApiError> {
    let (bands, _) = state
        .bands
        .load(BANDS_STREAM)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let set = bands.set().len();
    let data = band::in_force(bands.set())
        .into_iter()
        .enumerate()
        .map(|(n, b)| BandaReferencia {
            tipo_combustible: b.tipo_combustible,
            desde: b.desde.map(|d| d.to_string()),
            hasta: b.hasta.map(|d| d.to_string()),
            minimo: b.minimo,
            maximo: b.maximo,
            por_defecto: n >= set,
        })
        .collect();
    Ok(BandasReferencia { data })
}

/// Reference bands of cost per gallon in force, the defaults included
///
/// Listed in the order the `COSTO_FUERA_DE_BANDA` check consults them: the first band of the
/// refuel's fuel covering its date decides. Bands set by an admin come first, the latest set
/// first; the original service's defaults (`por_defecto`) decide any date no set band covers.
#[utoipa::path(get, path = "/api/alertas/bandas", responses((status = 200, body = BandasReferencia)))]
pub async fn bands(State(state): State<AppState>) -> Result<Json<BandasReferencia>, ApiError> {
    Ok(Json(bands_in_force(&state).await?))
}

/// Set a reference band of cost per gallon for a fuel and a date range (admin)
///
/// A `ReferenceBandSet` event. It wins over every band set before it on the dates it covers
/// (no overlap is refused), and judges the refuels recorded after it; refuels already judged
/// keep their alerts.
#[utoipa::path(put, path = "/api/alertas/bandas", request_body = BandaRequest,
    responses((status = 200, body = BandasReferencia)))]
pub async fn set_band(
    State(state): State<AppState>,
    context: CommandContext,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<BandasReferencia>, ApiError> {
    if !context.actor.is_admin() {
        return Err(ApiError::Forbidden);
    }
    let fields = Fields::of(&body, &BAND_FIELDS)?;
    let raw = fields.required("tipo_combustible", |f, n| f.text(n, usize::MAX))?;
    let tipo_combustible = state.references.fuel_product(&raw).await?.ok_or_else(|| {
        ApiError::BadRequest(format!("Invalid value for tipo_combustible: {raw}"))
    })?;
    let desde = fields.required("desde", Fields::date)?;
    let hasta = fields.date("hasta")?;
    let minimo = fields.required("minimo", Fields::decimal)?;
    let maximo = fields.required("maximo", Fields::decimal)?;
    let command = BandCommand::Set {
        tipo_combustible,
        desde,
        hasta,
        minimo,
        maximo,
    };
    run_command(
        &state,
        &state.bands,
        BANDS_STREAM,
        command,
        &context,
        ApiError::from,
    )
    .await?;
    Ok(Json(bands_in_force(&state).await?))
}

/// A reference band to set.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"tipo_combustible": "ACPM", "desde": "2026-01-01", "hasta": null, "minimo": 9500, "maximo": 14500}))]
pub struct BandaRequest {
    /// Required. An entry of the `combustibles` catalogue.
    pub tipo_combustible: String,
    /// Required. First date the band covers.
    #[schema(format = Date)]
    pub desde: String,
    /// Optional. Last date the band covers (included); null: no end.
    #[schema(required = false, format = Date)]
    pub hasta: Option<String>,
    /// Required. Least cost per gallon (COP), greater than 0.
    #[schema(value_type = f64, exclusive_minimum = 0)]
    pub minimo: Decimal,
    /// Required. Greatest cost per gallon (COP), at least `minimo`.
    #[schema(value_type = f64)]
    pub maximo: Decimal,
}

/// The reference bands in force, in the order the check consults them.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"data": [
    {"tipo_combustible": "ACPM", "desde": "2026-01-01", "hasta": null, "minimo": 9500, "maximo": 14500, "por_defecto": false},
    {"tipo_combustible": "ACPM", "desde": null, "hasta": null, "minimo": 9000, "maximo": 15000, "por_defecto": true}]}))]
pub struct BandasReferencia {
    pub data: Vec<BandaReferencia>,
}

/// One reference band of cost per gallon (COP, both ends included).
#[derive(Serialize, ToSchema)]
pub struct BandaReferencia {
    pub tipo_combustible: String,
    /// First date covered; null: every date before `hasta`.
    #[schema(format = Date)]
    pub desde: Option<String>,
    /// Last date covered; null: no end.
    #[schema(format = Date)]
    pub hasta: Option<String>,
    #[schema(value_type = f64)]
    pub minimo: Decimal,
    #[schema(value_type = f64)]
    pub maximo: Decimal,
    /// The original service's default, not set by an admin.
    pub por_defecto: bool,
}

/// An auditor's verdict on an alert.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"resolucion": "confirmada", "nota": "El conductor cargó un bidón aparte"}))]
pub struct RevisionRequest {
    /// Required. `confirmada` (the anomaly is real) or `descartada` (a false alarm).
    #[schema(example = "confirmada")]
    pub resolucion: String,
    /// Optional. Free text, at most 2,000 characters.
    #[schema(required = false, max_length = 2000)]
    pub nota: Option<String>,
}

/// A page of alerts, newest first.
#[derive(ToSchema)]
#[schema(example = json!({"data": [], "pagination": {"page": 1, "limit": 20, "total": 0, "totalPages": 0}}))]
pub struct AlertaPage {
    pub data: Vec<Alerta>,
    pub pagination: super::openapi::Pagination,
}

/// One alert, as `GET /api/alertas` lists it and `POST /api/alertas/{id}/revisar` answers it.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "5b0e8f2a-3c1d-8e4f-9a7b-1c2d3e4f5a6b", "regla": "GALONES_SOBRE_CAPACIDAD",
    "severidad": "ALTA", "estado": "CONFIRMADA",
    "evidencia": {"cantidad_galones": 70, "capacidad_galones": 50, "tolerancia": 0.05},
    "tanqueo_id": 12, "placa_id": 3, "bomba_id": 1, "fecha": "2026-01-15", "cierre": null,
    "revision": {"revisado_por": "luz@flota.co", "revisado_en": "2026-01-16T10:00:00Z",
        "resolucion": "confirmada", "nota": "El conductor cargó un bidón aparte"},
    "actualizado_en": "2026-01-16T10:00:00Z"}))]
pub struct Alerta {
    pub id: String,
    /// The rule that found it (`HOROMETRO_RETROCEDE`, `GALONES_SOBRE_CAPACIDAD`, …).
    pub regla: String,
    /// `BAJA`, `MEDIA` or `ALTA`.
    pub severidad: String,
    /// `ABIERTA`, `CONFIRMADA`, `DESCARTADA` or `RESUELTA` (the refuel was corrected and the
    /// rule no longer holds, or it was voided).
    pub estado: String,
    /// The figures the rule was decided on, by name.
    #[schema(value_type = Object)]
    pub evidencia: Value,
    pub tanqueo_id: i64,
    pub placa_id: i64,
    pub bomba_id: i64,
    /// The refuel's business date.
    pub fecha: String,
    /// `TANQUEO_CORREGIDO` or `TANQUEO_ANULADO` when `RESUELTA`.
    pub cierre: Option<String>,
    /// Who reviewed it, when, their `resolucion` and `nota`; null until reviewed.
    #[schema(value_type = Option<Object>)]
    pub revision: Option<Value>,
    pub actualizado_en: String,
}
