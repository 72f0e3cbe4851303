//! `/vehiculo` (seed 002): every answer in the seed's envelope
//! `{"success","message","data","timestamp"}` with the seed's PascalCase vehicle.

use std::collections::HashMap;

use aggregates::fleet::{FleetCommand, FleetEvent, VehicleFields, FLEET_STREAM_ID};
use aggregates::placa::Placa;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use super::error::{command_error, ApiError};
use super::extract::{CommandContext, JsonBody, Path, Query};
use super::fields::{query_id, Fields};
use super::lookup::require;
use super::run_command;
use crate::queries::fleet::{self, VehicleFilter};
use crate::queries::registry::Reference;
use crate::AppState;
use utoipa::ToSchema;

/// A vehicle as seed 002 shows it (PascalCase), with the registry's names for its ids.
#[derive(ToSchema)]
#[schema(example = json!({"Id": 1, "Placa": "ABC123", "Marca": "TOYOTA", "Modelo": "HILUX", "Anio": 2020,
    "Color": "BLANCO", "NumeroMotor": "1GRFE123456", "NumeroChasis": "JT123456789012345",
    "NumeroVin": "JT123456789012345", "CapacidadPasajeros": 5, "CapacidadCombustibleGalones": 80,
    "KilometrajeActual": 18000, "FechaUltimaRevision": "2024-03-15", "FechaProximoMantenimiento": "2024-09-15",
    "FechaTarjetaCirculacion": "2023-12-01", "NumeroPolizaSeguro": "POL123456789",
    "FechaVencimientoSeguro": "2025-12-01", "Observaciones": null, "Eliminado": false,
    "FechaHoraCreacion": "2024-01-15T10:30:00Z", "FechaHoraActualizacion": "2024-03-20T11:15:00Z",
    "IdClaseVehiculo": 1, "NombreClaseVehiculo": "Pick-up", "IdEstadoVehiculo": 1,
    "NombreEstadoVehiculo": "Activo", "IdTipoCombustible": 1, "NombreTipoCombustible": "Diesel",
    "IdMotoristaPorDefecto": 1, "NombreMotoristaPorDefecto": "Juan Pérez", "IdDepartamentoAsignado": 2,
    "NombreDepartamentoAsignado": "Logística", "IdPlaca": 1, "IdEmpresa": null, "IdOperacion": null,
    "MisionesActivas": 0}))]
#[serde(rename_all = "PascalCase")]
pub struct Vehicle {
    pub id: i64,
    pub placa: String,
    pub marca: Option<String>,
    pub modelo: Option<String>,
    pub anio: Option<i64>,
    pub color: Option<String>,
    pub numero_motor: Option<String>,
    pub numero_chasis: Option<String>,
    pub numero_vin: Option<String>,
    pub capacidad_pasajeros: Option<i64>,
    #[schema(value_type = Option<f64>)]
    pub capacidad_combustible_galones: Option<String>,
    pub kilometraje_actual: Option<i64>,
    #[schema(format = Date)]
    pub fecha_ultima_revision: Option<String>,
    #[schema(format = Date)]
    pub fecha_proximo_mantenimiento: Option<String>,
    #[schema(format = Date)]
    pub fecha_tarjeta_circulacion: Option<String>,
    pub numero_poliza_seguro: Option<String>,
    #[schema(format = Date)]
    pub fecha_vencimiento_seguro: Option<String>,
    pub observaciones: Option<String>,
    /// Soft-deleted: it stays, for the audit trail.
    pub eliminado: bool,
    #[schema(format = DateTime)]
    pub fecha_hora_creacion: Option<String>,
    #[schema(format = DateTime)]
    pub fecha_hora_actualizacion: Option<String>,
    pub id_clase_vehiculo: Option<i64>,
    pub nombre_clase_vehiculo: Option<String>,
    pub id_estado_vehiculo: Option<i64>,
    pub nombre_estado_vehiculo: Option<String>,
    pub id_tipo_combustible: Option<i64>,
    pub nombre_tipo_combustible: Option<String>,
    pub id_motorista_por_defecto: Option<i64>,
    pub nombre_motorista_por_defecto: Option<String>,
    pub id_departamento_asignado: Option<i64>,
    pub nombre_departamento_asignado: Option<String>,
    pub id_placa: Option<i64>,
    pub id_empresa: Option<i64>,
    pub id_operacion: Option<i64>,
    /// Missions PROGRAMADA or EN_EJECUCION: a vehicle with any cannot be deleted (409).
    pub misiones_activas: Option<i64>,
}

/// Seed 002's envelope around one vehicle.
#[derive(ToSchema)]
#[schema(example = json!({"success": true, "message": "Vehículo obtenido exitosamente",
    "data": {"Id": 1, "Placa": "ABC123", "Eliminado": false}, "timestamp": "2024-03-20T11:15:00.000Z"}))]
pub struct VehicleEnvelope {
    pub success: bool,
    /// `Vehículo obtenido exitosamente`, `… creado …`, `… reactivado …`, `… actualizado …`,
    /// `… eliminado exitosamente`.
    pub message: String,
    pub data: Vehicle,
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// Seed 002's envelope around a list.
#[derive(ToSchema)]
#[schema(example = json!({"success": true, "message": "Vehículos obtenidos exitosamente", "data": [],
    "timestamp": "2024-03-20T11:15:00.000Z"}))]
pub struct VehiclesEnvelope {
    pub success: bool,
    pub message: String,
    pub data: Vec<Vehicle>,
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// A vehicle's writable fields, camelCase as the seed's service takes them. `POST` requires
/// `placa`, `idClaseVehiculo` and `idEstadoVehiculo`; `PUT` changes the fields it sends (the
/// plate cannot change). Ids must exist in their catalogue or registry (400 naming the field).
#[derive(ToSchema)]
#[schema(example = json!({"placa": "ABC123", "idClaseVehiculo": 1, "idEstadoVehiculo": 1, "idTipoCombustible": 1,
    "marca": "TOYOTA", "modelo": "HILUX", "anio": 2020, "capacidadCombustibleGalones": 80}))]
#[serde(rename_all = "camelCase")]
pub struct VehicleRequest {
    /// Three letters and three digits, any case and spacing. Required on `POST`.
    #[schema(required = false, max_length = 100)]
    pub placa: Option<String>,
    /// Required on `POST`. An entry of the `clases-vehiculo` catalogue.
    #[schema(required = false, minimum = 1)]
    pub id_clase_vehiculo: Option<i64>,
    /// Required on `POST`. An entry of the `estados-vehiculo` catalogue.
    #[schema(required = false, minimum = 1)]
    pub id_estado_vehiculo: Option<i64>,
    /// An entry of the `tipos-combustible` catalogue.
    #[schema(required = false, minimum = 1)]
    pub id_tipo_combustible: Option<i64>,
    /// A registered driver.
    #[schema(required = false, minimum = 1)]
    pub id_motorista_por_defecto: Option<i64>,
    /// An entry of the `departamentos` catalogue.
    #[schema(required = false, minimum = 1)]
    pub id_departamento_asignado: Option<i64>,
    #[schema(required = false, max_length = 100)]
    pub marca: Option<String>,
    #[schema(required = false, max_length = 100)]
    pub modelo: Option<String>,
    #[schema(required = false, minimum = 0)]
    pub anio: Option<i64>,
    #[schema(required = false, max_length = 50)]
    pub color: Option<String>,
    #[schema(required = false, max_length = 100)]
    pub numero_motor: Option<String>,
    #[schema(required = false, max_length = 100)]
    pub numero_chasis: Option<String>,
    #[schema(required = false, max_length = 100)]
    pub numero_vin: Option<String>,
    #[schema(required = false, minimum = 0)]
    pub capacidad_pasajeros: Option<i64>,
    /// Gallons, ≥ 0.
    #[schema(required = false, value_type = Option<f64>, minimum = 0)]
    pub capacidad_combustible_galones: Option<String>,
    #[schema(required = false, minimum = 0)]
    pub kilometraje_actual: Option<i64>,
    #[schema(required = false, format = Date)]
    pub fecha_ultima_revision: Option<String>,
    #[schema(required = false, format = Date)]
    pub fecha_proximo_mantenimiento: Option<String>,
    #[schema(required = false, format = Date)]
    pub fecha_tarjeta_circulacion: Option<String>,
    #[schema(required = false, max_length = 100)]
    pub numero_poliza_seguro: Option<String>,
    #[schema(required = false, format = Date)]
    pub fecha_vencimiento_seguro: Option<String>,
    #[schema(required = false, max_length = 2000)]
    pub observaciones: Option<String>,
    #[schema(required = false, minimum = 1)]
    pub id_empresa: Option<i64>,
    #[schema(required = false, minimum = 1)]
    pub id_operacion: Option<i64>,
}

const TEXT_LEN_MAX: usize = 100;
/// Longest plate text read before normalisation.
const RAW_PLACA_LEN_MAX: usize = 100;

const COLOR_LEN_MAX: usize = 50;
const OBSERVACIONES_LEN_MAX: usize = 2000;

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn envelope(status: StatusCode, message: &str, data: Value) -> Response {
    let body = json!({ "success": true, "message": message, "data": data, "timestamp": now() });
    (status, Json(body)).into_response()
}

/// Rewrites every `{"error": …}` answer of this family (401, 403, 400, 404, 409, 422, 500) into
/// the seed's envelope, so the family has one format whatever layer refused the request. An
/// answer already in the envelope passes as it is, so the layer can wrap the Idempotency-Key
/// layer (whose own refusals it must envelop) and sit inside it too (so that what is kept for a
/// key is the enveloped answer, and its replay is the same bytes).
pub async fn error_envelope(request: Request, next: Next) -> Response {
    super::middleware::rewrite_refusals(request, next, |status, parsed, bytes| {
        if parsed.is_some_and(|v| v.get("success").is_some()) {
            return None;
        }
        let message = parsed
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned());
        let message = if message.trim().is_empty() {
            status.canonical_reason().unwrap_or("Error").to_string()
        } else {
            message
        };
        Some(json!({ "success": false, "message": message, "timestamp": now() }))
    })
    .await
}

/// What `POST` and `PUT /vehiculo` take: the plate (fixed once registered) and the writable
/// fields [`read_fields`] reads, camelCase as the seed's service takes them.
const BODY_FIELDS: [&str; 24] = [
    "placa",
    "idClaseVehiculo",
    "idEstadoVehiculo",
    "idTipoCombustible",
    "idMotoristaPorDefecto",
    "idDepartamentoAsignado",
    "marca",
    "modelo",
    "anio",
    "color",
    "numeroMotor",
    "numeroChasis",
    "numeroVin",
    "capacidadPasajeros",
    "capacidadCombustibleGalones",
    "kilometrajeActual",
    "fechaUltimaRevision",
    "fechaProximoMantenimiento",
    "fechaTarjetaCirculacion",
    "numeroPolizaSeguro",
    "fechaVencimientoSeguro",
    "observaciones",
    "idEmpresa",
    "idOperacion",
];

/// The writable fields of a request body (camelCase, as the seed's service takes them).
async fn read_fields(state: &AppState, fields: &Fields<'_>) -> Result<VehicleFields, ApiError> {
    let vehicle = VehicleFields {
        id_clase_vehiculo: fields.id("idClaseVehiculo")?,
        id_estado_vehiculo: fields.id("idEstadoVehiculo")?,
        id_tipo_combustible: fields.id("idTipoCombustible")?,
        id_motorista_por_defecto: fields.id("idMotoristaPorDefecto")?,
        id_departamento_asignado: fields.id("idDepartamentoAsignado")?,
        marca: fields.text("marca", TEXT_LEN_MAX)?,
        modelo: fields.text("modelo", TEXT_LEN_MAX)?,
        anio: fields.count("anio")?,
        color: fields.text("color", COLOR_LEN_MAX)?,
        numero_motor: fields.text("numeroMotor", TEXT_LEN_MAX)?,
        numero_chasis: fields.text("numeroChasis", TEXT_LEN_MAX)?,
        numero_vin: fields.text("numeroVin", TEXT_LEN_MAX)?,
        capacidad_pasajeros: fields.count("capacidadPasajeros")?,
        capacidad_combustible_galones: fields.quantity("capacidadCombustibleGalones")?,
        kilometraje_actual: fields.count("kilometrajeActual")?,
        fecha_ultima_revision: fields.date("fechaUltimaRevision")?,
        fecha_proximo_mantenimiento: fields.date("fechaProximoMantenimiento")?,
        fecha_tarjeta_circulacion: fields.date("fechaTarjetaCirculacion")?,
        numero_poliza_seguro: fields.text("numeroPolizaSeguro", TEXT_LEN_MAX)?,
        fecha_vencimiento_seguro: fields.date("fechaVencimientoSeguro")?,
        observaciones: fields.text("observaciones", OBSERVACIONES_LEN_MAX)?,
        id_empresa: fields.id("idEmpresa")?,
        id_operacion: fields.id("idOperacion")?,
    };
    let references = [
        (
            "idClaseVehiculo",
            Reference::Catalog("clases-vehiculo"),
            vehicle.id_clase_vehiculo,
        ),
        (
            "idEstadoVehiculo",
            Reference::Catalog("estados-vehiculo"),
            vehicle.id_estado_vehiculo,
        ),
        (
            "idTipoCombustible",
            Reference::Catalog("tipos-combustible"),
            vehicle.id_tipo_combustible,
        ),
        (
            "idMotoristaPorDefecto",
            Reference::Driver,
            vehicle.id_motorista_por_defecto,
        ),
        (
            "idDepartamentoAsignado",
            Reference::Catalog("departamentos"),
            vehicle.id_departamento_asignado,
        ),
    ];
    for (field, reference, id) in references {
        require(state, field, reference, id).await?;
    }
    Ok(vehicle)
}

fn vehicle_id(raw: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::BadRequest("El ID del vehículo debe ser un número entero positivo".into())
        })
}

/// Register a vehicle, or bring back the deleted one with the same plate
#[utoipa::path(post, path = "/vehiculo", request_body = VehicleRequest, responses(
    (status = 201, body = VehicleEnvelope, description = "Vehículo creado exitosamente"),
    (status = 200, body = VehicleEnvelope, description = "Vehículo reactivado exitosamente: the plate's deleted vehicle is back"),
))]
pub async fn create(
    State(state): State<AppState>,
    context: CommandContext,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let fields = Fields::of(&body, &BODY_FIELDS)?;
    // The 20-character limit is the normalised plate's (`Placa::parse`); the raw text may carry
    // spaces and hyphens.
    let raw_placa = fields.required("placa", |f, n| f.text(n, RAW_PLACA_LEN_MAX))?;
    let placa = Placa::parse(&raw_placa).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    for required in ["idClaseVehiculo", "idEstadoVehiculo"] {
        if !fields.has(required) {
            return Err(ApiError::BadRequest(format!(
                "Missing required field: {required}"
            )));
        }
    }
    let vehicle = read_fields(&state, &fields).await?;
    let executed = run_command(
        &state,
        &state.fleet,
        FLEET_STREAM_ID,
        FleetCommand::CreateVehicle {
            placa,
            fields: vehicle,
        },
        &context,
        ApiError::from,
    )
    .await?;
    let (vehicle_id, reactivated) = executed
        .events
        .iter()
        .find_map(|event| match event {
            FleetEvent::VehicleRegistered { vehicle_id, .. } => Some((*vehicle_id, false)),
            FleetEvent::VehicleReactivated { vehicle_id, .. } => Some((*vehicle_id, true)),
            _ => None,
        })
        .ok_or_else(|| ApiError::internal("vehicle creation appended no vehicle event"))?;
    let data = read_vehicle(&state, vehicle_id).await?;
    Ok(if reactivated {
        envelope(StatusCode::OK, "Vehículo reactivado exitosamente", data)
    } else {
        envelope(StatusCode::CREATED, "Vehículo creado exitosamente", data)
    })
}

/// Change a vehicle's fields
#[utoipa::path(put, path = "/vehiculo/{id}", params(("id" = i64, Path)), request_body = VehicleRequest,
    responses((status = 200, body = VehicleEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let vehicle_id = vehicle_id(&raw_id)?;
    let fields = Fields::of(&body, &BODY_FIELDS)?;
    // Clients often send the whole vehicle back: its own plate is fine, another one is not.
    if let Some(raw) = fields.text("placa", RAW_PLACA_LEN_MAX)? {
        let placa = Placa::parse(&raw).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let (fleet, _) = state
            .fleet
            .load(FLEET_STREAM_ID)
            .await
            .map_err(|e| command_error(e, ApiError::from))?;
        let current = fleet.vehicle(vehicle_id).ok_or_else(|| {
            ApiError::from(aggregates::fleet::FleetError::VehicleNotFound { vehicle_id })
        })?;
        if current.placa != placa {
            return Err(ApiError::BadRequest(
                "La placa no se puede cambiar; registre el vehículo con la nueva placa".into(),
            ));
        }
    }
    let changes = read_fields(&state, &fields).await?;
    run_command(
        &state,
        &state.fleet,
        FLEET_STREAM_ID,
        FleetCommand::UpdateVehicle {
            vehicle_id,
            changes,
        },
        &context,
        ApiError::from,
    )
    .await?;
    let data = read_vehicle(&state, vehicle_id).await?;
    Ok(envelope(
        StatusCode::OK,
        "Vehículo actualizado exitosamente",
        data,
    ))
}

/// Soft-delete a vehicle (seed 002)
///
/// It stays in the ledger, `Eliminado: true`. One with active missions is a 409; one not found
/// or already deleted, a 404.
#[utoipa::path(delete, path = "/vehiculo/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = VehicleEnvelope, description = "Vehículo eliminado exitosamente, with `Eliminado: true`")))]
pub async fn delete(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let vehicle_id = vehicle_id(&raw_id)?;
    run_command(
        &state,
        &state.fleet,
        FLEET_STREAM_ID,
        FleetCommand::DeleteVehicle { vehicle_id },
        &context,
        ApiError::from,
    )
    .await?;
    let data = read_vehicle(&state, vehicle_id).await?;
    Ok(envelope(
        StatusCode::OK,
        "Vehículo eliminado exitosamente",
        data,
    ))
}

/// One vehicle, deleted or not
#[utoipa::path(get, path = "/vehiculo/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = VehicleEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let vehicle_id = vehicle_id(&raw_id)?;
    let data = read_vehicle(&state, vehicle_id).await?;
    Ok(envelope(
        StatusCode::OK,
        "Vehículo obtenido exitosamente",
        data,
    ))
}

/// Vehicles, in id order
#[utoipa::path(get, path = "/vehiculo", params(
    ("incluir_eliminados" = Option<bool>, Query, description = "`true` lists deleted vehicles too (default `false`)"),
    ("empresa_id" = Option<i64>, Query, description = "Only this company's"),
    ("operacion_id" = Option<i64>, Query, description = "Only this operation's"),
), responses((status = 200, body = VehiclesEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let incluir_eliminados = match params.get("incluir_eliminados").map(|v| v.trim()) {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "El parámetro incluir_eliminados debe ser true o false".into(),
            ))
        }
    };
    let filter = VehicleFilter {
        incluir_eliminados,
        id_empresa: query_id(params.get("empresa_id"), "empresa_id")?,
        id_operacion: query_id(params.get("operacion_id"), "operacion_id")?,
    };
    let vehicles = fleet::vehicles(&state.read_models, &filter).await?;
    Ok(envelope(
        StatusCode::OK,
        "Vehículos obtenidos exitosamente",
        Value::Array(vehicles),
    ))
}

async fn read_vehicle(state: &AppState, vehicle_id: i64) -> Result<Value, ApiError> {
    fleet::vehicle(&state.read_models, vehicle_id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("No se encontró el vehículo con ID {vehicle_id}"))
        })
}
