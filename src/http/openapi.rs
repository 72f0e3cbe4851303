//! The OpenAPI 3.1 description of the service (`GET /openapi.json`) and its Swagger UI (`/docs`).
//!
//! Every operation [`app`](crate::app) routes is listed once in [`OPERATIONS`], with its error
//! family, whether it takes a Bearer token, and its request body. The bodies' schemas are
//! `ToSchema` structs that say what the wire carries (field names byte for byte, rules in their
//! descriptions, an example each); the handlers still read and render them as they always did.
//! `tests/openapi.rs` fails when `app()` routes a path or method this table does not describe.

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder, Paths,
    Ref, RefOr, Required, ResponseBuilder, Schema, Tag,
};
use utoipa::{PartialSchema, ToSchema};

/// The name the document gives the Bearer scheme.
pub const BEARER: &str = "bearer";

/// How a family answers its refusals: each seed fixed its own error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `/api/*`, `/healthz`, `/readyz`: `{"error": "..."}`.
    Api,
    /// Seed 002's `/vehiculo`: everything in the `{success, message, data, timestamp}` envelope.
    Vehiculo,
    /// Seed 001's scraping results and lookups: `{errorType, errorDetail, message}`.
    Scraping,
    /// Seed 003's self-inspections: `{"erro": "..."}`, and no Bearer token.
    Inspecao,
}

impl Family {
    fn error_schema(self) -> &'static str {
        match self {
            Family::Api => "ErrorBody",
            Family::Vehiculo => "VehiculoEnvelope",
            Family::Scraping => "ScrapingError",
            Family::Inspecao => "InspecaoError",
        }
    }

    fn takes_token(self) -> bool {
        !matches!(self, Family::Inspecao)
    }
}

/// One routed operation.
pub struct Operation {
    pub method: HttpMethod,
    pub path: &'static str,
    pub family: Family,
    pub summary: &'static str,
    /// The schema component of its JSON body, when it takes one.
    pub body: Option<&'static str>,
    /// `false` for what answers without a token (health, the description itself).
    pub needs_token: bool,
    /// The status of its success answer.
    pub success: u16,
    /// Its query parameters: name and what it takes.
    pub query: &'static [(&'static str, &'static str)],
}

/// `GET /api/tanqueos`'s filters; list filters take comma-separated values.
const TANQUEO_FILTERS: &[(&str, &str)] = &[
    ("page", "Page number, from 1 (default 1)"),
    ("limit", "Records per page, 1 to 500 (default 20)"),
    ("desde", "First business date, YYYY-MM-DD"),
    ("hasta", "Last business date, YYYY-MM-DD"),
    ("bomba_id", "Station ids, comma-separated"),
    ("placa_id", "Plate ids, comma-separated"),
    ("conductor_id", "Driver ids, comma-separated"),
    ("area_operacion_id", "Operation area ids, comma-separated"),
    (
        "tipo_operacion",
        "TANQUEO, ANTICIPO (any case), comma-separated",
    ),
    (
        "concepto",
        "OPERATIVO, ADMINISTRATIVO (any case), comma-separated",
    ),
    (
        "tipo_combustible",
        "Entries of the combustibles catalogue, comma-separated",
    ),
];

/// `GET /api/alertas`'s filters; list filters take comma-separated values.
const ALERTA_FILTERS: &[(&str, &str)] = &[
    ("page", "Page number, from 1 (default 1)"),
    ("limit", "Alerts per page, 1 to 500 (default 20)"),
    (
        "regla",
        "HOROMETRO_RETROCEDE, HOROMETRO_SALTO_IMPOSIBLE, HOROMETRO_FALTANTE, \
         GALONES_SOBRE_CAPACIDAD, TANQUEO_MUY_PRONTO, COMBUSTIBLE_DISTINTO, \
         COSTO_ATIPICO_ESTACION, COSTO_FUERA_DE_BANDA, CONSUMO_ATIPICO, POSIBLE_DUPLICADO, \
         SALDO_REPORTADO_DESVIADO (any case), comma-separated",
    ),
    ("severidad", "BAJA, MEDIA, ALTA (any case), comma-separated"),
    (
        "estado",
        "ABIERTA, CONFIRMADA, DESCARTADA, RESUELTA (any case), comma-separated",
    ),
    ("placa_id", "Plate ids, comma-separated"),
    ("bomba_id", "Station ids, comma-separated"),
    ("desde", "First refuel date, YYYY-MM-DD"),
    ("hasta", "Last refuel date, YYYY-MM-DD"),
];

const fn op(
    method: HttpMethod,
    path: &'static str,
    family: Family,
    summary: &'static str,
    body: Option<&'static str>,
    success: u16,
) -> Operation {
    Operation {
        method,
        path,
        family,
        summary,
        body,
        needs_token: !matches!(family, Family::Inspecao),
        success,
        query: &[],
    }
}

use Family::{Api, Inspecao, Scraping, Vehiculo};
use HttpMethod::{Delete, Get, Patch, Post, Put};

/// Every operation `app()` routes, in the order it routes them.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        needs_token: false,
        ..op(
            Get,
            "/healthz",
            Api,
            "Liveness: the process answers",
            None,
            200,
        )
    },
    Operation {
        needs_token: false,
        ..op(
            Get,
            "/readyz",
            Api,
            "Readiness: stores reachable, read models caught up (503 otherwise)",
            None,
            200,
        )
    },
    Operation {
        needs_token: false,
        ..op(
            Get,
            "/metrics",
            Api,
            "Prometheus metrics in text format: requests, appends, projections, consumers, pools, RSS",
            None,
            200,
        )
    },
    Operation {
        needs_token: false,
        ..op(Get, "/openapi.json", Api, "This document", None, 200)
    },
    op(
        Get,
        "/api/eventos",
        Api,
        "The event log, oldest first (filters: tipos, stream, desde, limit)",
        None,
        200,
    ),
    op(
        Get,
        "/api/eventos/stream",
        Api,
        "The event log as Server-Sent Events, live",
        None,
        200,
    ),
    op(
        Get,
        "/api/auditoria/actores/{sub}/eventos",
        Api,
        "Events written by one actor",
        None,
        200,
    ),
    op(
        Get,
        "/api/auditoria/{tipo}/{id}/eventos",
        Api,
        "Events of one subject",
        None,
        200,
    ),
    op(
        Get,
        "/api/auditoria/{tipo}/{id}",
        Api,
        "A subject's state as the ledger knew it (as_of)",
        None,
        200,
    ),
    op(
        Get,
        "/api/admin/proyecciones",
        Api,
        "Read models: position, lag, state (admin)",
        None,
        200,
    ),
    op(
        Post,
        "/api/admin/proyecciones/{name}/reconstruir",
        Api,
        "Rebuild a read model online (admin)",
        None,
        202,
    ),
    op(
        Get,
        "/api/areas-operacion",
        Api,
        "Operation areas",
        None,
        200,
    ),
    op(
        Post,
        "/api/areas-operacion",
        Api,
        "Register an operation area",
        Some("AreaRequest"),
        201,
    ),
    op(
        Get,
        "/api/areas-operacion/{id}",
        Api,
        "One operation area",
        None,
        200,
    ),
    op(Get, "/api/placas", Api, "Plates", None, 200),
    op(
        Post,
        "/api/placas",
        Api,
        "Register a plate",
        Some("PlacaRequest"),
        201,
    ),
    op(Get, "/api/placas/{id}", Api, "One plate", None, 200),
    op(
        Patch,
        "/api/placas/{id}",
        Api,
        "Change a plate's state",
        Some("PlacaChange"),
        200,
    ),
    op(Get, "/api/conductores", Api, "Drivers", None, 200),
    op(
        Post,
        "/api/conductores",
        Api,
        "Register a driver",
        Some("ConductorRequest"),
        201,
    ),
    op(Get, "/api/conductores/{id}", Api, "One driver", None, 200),
    op(Get, "/api/bombas", Api, "Fuel stations", None, 200),
    op(
        Post,
        "/api/bombas",
        Api,
        "Register a fuel station",
        Some("BombaRequest"),
        201,
    ),
    op(Get, "/api/bombas/{id}", Api, "One fuel station", None, 200),
    op(
        Patch,
        "/api/bombas/{id}",
        Api,
        "Change a fuel station",
        Some("BombaRequest"),
        200,
    ),
    op(
        Get,
        "/api/catalogos/{catalogo}",
        Api,
        "A catalogue's entries (combustibles, …)",
        None,
        200,
    ),
    op(
        Post,
        "/api/catalogos/{catalogo}",
        Api,
        "Add a catalogue entry (admin)",
        Some("CatalogoRequest"),
        201,
    ),
    op(
        Post,
        "/api/flota/sync",
        Api,
        "Create a vehicle for every plate that has none",
        None,
        200,
    ),
    Operation {
        query: TANQUEO_FILTERS,
        ..op(
            Get,
            "/api/tanqueos",
            Api,
            "TANQUEO and ANTICIPO records (filters, pages)",
            None,
            200,
        )
    },
    op(
        Post,
        "/api/tanqueos",
        Api,
        "Record a TANQUEO (refuel) or an ANTICIPO (advance payment)",
        Some("TanqueoRequest"),
        201,
    ),
    op(Get, "/api/tanqueos/{id}", Api, "One record", None, 200),
    op(
        Put,
        "/api/tanqueos/{id}",
        Api,
        "Correct a record (any field but bomba_id and tipo_operacion)",
        Some("TanqueoRequest"),
        200,
    ),
    op(
        Post,
        "/api/tanqueos/{id}/anular",
        Api,
        "Void a record",
        None,
        200,
    ),
    Operation {
        query: ALERTA_FILTERS,
        ..op(
            Get,
            "/api/alertas",
            Api,
            "Alerts of the fuel checks, with their evidence (filters, pages); each item an Alerta",
            None,
            200,
        )
    },
    op(
        Post,
        "/api/alertas/{id}/revisar",
        Api,
        "Review an alert (admin, auditor): confirmada or descartada; answers the Alerta. \
         404 unknown alert, 409 already reviewed or resolved",
        Some("RevisionRequest"),
        200,
    ),
    op(
        Post,
        "/api/tanqueos/import",
        Api,
        "Import spreadsheet rows as TANQUEO records (at most 5,000)",
        Some("ImportRequest"),
        200,
    ),
    op(
        Get,
        "/api/bombas/{id}/saldo",
        Api,
        "A station's balance (fecha_corte, as_of)",
        None,
        200,
    ),
    op(
        Get,
        "/api/saldos-bombas",
        Api,
        "Every station's balance",
        None,
        200,
    ),
    op(
        Get,
        "/api/bombas/{id}/movimientos",
        Api,
        "A station's movements with running balance",
        None,
        200,
    ),
    op(
        Get,
        "/api/reconciliacion",
        Api,
        "Reported against computed balances",
        None,
        200,
    ),
    op(
        Get,
        "/api/contabilidad/balance-prueba",
        Api,
        "Trial balance of the journal",
        None,
        200,
    ),
    op(
        Get,
        "/api/contabilidad/cuentas/{cuenta}/movimientos",
        Api,
        "One account's journal lines",
        None,
        200,
    ),
    op(Get, "/api/misiones", Api, "Missions", None, 200),
    op(
        Post,
        "/api/misiones",
        Api,
        "Plan a mission",
        Some("MisionRequest"),
        201,
    ),
    op(Get, "/api/misiones/{id}", Api, "One mission", None, 200),
    op(
        Post,
        "/api/misiones/{id}/iniciar",
        Api,
        "Start a mission",
        Some("MisionStart"),
        200,
    ),
    op(
        Post,
        "/api/misiones/{id}/finalizar",
        Api,
        "Complete a mission",
        Some("MisionCompletion"),
        200,
    ),
    op(
        Post,
        "/api/misiones/{id}/cancelar",
        Api,
        "Cancel a mission",
        Some("MisionCancellation"),
        200,
    ),
    op(Get, "/api/empresas", Api, "Inspection companies", None, 200),
    op(
        Post,
        "/api/empresas",
        Api,
        "Register an inspection company",
        Some("AnyObject"),
        201,
    ),
    op(
        Patch,
        "/api/empresas/{id}",
        Api,
        "Change an inspection company",
        Some("AnyObject"),
        200,
    ),
    op(
        Get,
        "/api/tipos-operacao",
        Api,
        "Operation types",
        None,
        200,
    ),
    op(
        Post,
        "/api/tipos-operacao",
        Api,
        "Register an operation type",
        Some("AnyObject"),
        201,
    ),
    op(
        Patch,
        "/api/tipos-operacao/{id}",
        Api,
        "Change an operation type",
        Some("AnyObject"),
        200,
    ),
    op(Get, "/api/questionarios", Api, "Questionnaires", None, 200),
    op(
        Post,
        "/api/questionarios",
        Api,
        "Register a questionnaire",
        Some("AnyObject"),
        201,
    ),
    op(
        Patch,
        "/api/questionarios/{id}",
        Api,
        "Change a questionnaire",
        Some("AnyObject"),
        200,
    ),
    op(Get, "/api/usuarios", Api, "Inspection users", None, 200),
    op(
        Post,
        "/api/usuarios",
        Api,
        "Register an inspection user",
        Some("AnyObject"),
        201,
    ),
    op(
        Patch,
        "/api/usuarios/{id}",
        Api,
        "Change an inspection user",
        Some("AnyObject"),
        200,
    ),
    op(
        Get,
        "/api/webhooks",
        Api,
        "Webhook subscriptions",
        None,
        200,
    ),
    op(
        Post,
        "/api/webhooks",
        Api,
        "Subscribe a webhook",
        Some("AnyObject"),
        201,
    ),
    op(
        Get,
        "/api/webhooks/{id}/entregas",
        Api,
        "A webhook's deliveries",
        None,
        200,
    ),
    op(
        Post,
        "/api/webhooks/{id}/entregas/{entrega}/reenviar",
        Api,
        "Send a delivery again",
        None,
        202,
    ),
    op(Get, "/vehiculo", Vehiculo, "Vehicles (seed 002)", None, 200),
    op(
        Post,
        "/vehiculo",
        Vehiculo,
        "Register a vehicle",
        Some("AnyObject"),
        201,
    ),
    op(Get, "/vehiculo/{id}", Vehiculo, "One vehicle", None, 200),
    op(
        Put,
        "/vehiculo/{id}",
        Vehiculo,
        "Change a vehicle",
        Some("AnyObject"),
        200,
    ),
    op(
        Delete,
        "/vehiculo/{id}",
        Vehiculo,
        "Delete a vehicle",
        None,
        200,
    ),
    op(
        Post,
        "/api/scraping/resultados",
        Scraping,
        "Record vehicle check results (seed 001)",
        Some("AnyObject"),
        200,
    ),
    op(
        Get,
        "/api/batch/scraping",
        Scraping,
        "Latest check results of many vehicles",
        None,
        200,
    ),
    op(
        Post,
        "/api/batch/scraping",
        Scraping,
        "Latest check results of many vehicles (body form)",
        Some("AnyObject"),
        200,
    ),
    op(
        Get,
        "/api/batch/scraping/",
        Scraping,
        "As /api/batch/scraping",
        None,
        200,
    ),
    op(
        Post,
        "/api/batch/scraping/",
        Scraping,
        "As /api/batch/scraping",
        Some("AnyObject"),
        200,
    ),
    op(
        Post,
        "/auto-inspecao/criar-em-lote",
        Inspecao,
        "Create self-inspections in a batch (seed 003)",
        Some("AnyObject"),
        200,
    ),
    op(
        Get,
        "/auto-inspecao/{hash}",
        Inspecao,
        "One self-inspection, by its hash",
        None,
        200,
    ),
    op(
        Post,
        "/auto-inspecao/{hash}/concluir",
        Inspecao,
        "Conclude a self-inspection",
        Some("AnyObject"),
        200,
    ),
    op(
        Post,
        "/auto-inspecao/{hash}/cancelar",
        Inspecao,
        "Cancel a self-inspection",
        Some("AnyObject"),
        200,
    ),
];

/// The body of every refusal in the `/api` family (and `/healthz`, `/readyz`).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": "Missing required field: conductor_id"}))]
pub struct ErrorBody {
    pub error: String,
}

/// Seed 002's envelope, for successes (`data`) and refusals (`success: false`, no `data`).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"success": false, "message": "Vehículo no encontrado", "timestamp": "2024-03-15T10:00:00.000Z"}))]
pub struct VehiculoEnvelope {
    pub success: bool,
    pub message: String,
    /// Present on success.
    #[schema(required = false)]
    pub data: Option<Value>,
    pub timestamp: String,
}

/// Seed 001's error body.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"errorType": "unauthorize", "errorDetail": "Unauthorize", "message": "Authentication required"}))]
#[serde(rename_all = "camelCase")]
pub struct ScrapingError {
    pub error_type: String,
    pub error_detail: String,
    pub message: String,
}

/// Seed 003's error body.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"erro": "Inspeção não encontrada"}))]
pub struct InspecaoError {
    pub erro: String,
}

/// A JSON object; the handler names each field it refuses in its 400.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({}))]
pub struct AnyObject {}

/// A TANQUEO (refuel) or an ANTICIPO (advance payment to a station). Numbers are JSON numbers
/// or numeric strings, exact decimals of at most 6 decimal places and at most 10^15 in absolute
/// value. A field another type refuses is a 400 naming it (`Field not allowed for ANTICIPO:
/// conductor_id`); `id`, `costo_por_galon`, `creado_por`, `actualizado_por`, `actualizado_en` are
/// the ledger's to write.
#[derive(Serialize, ToSchema)]
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

/// Spreadsheet rows to import as TANQUEO records into one station and area.
#[derive(Serialize, ToSchema)]
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

/// An operation area, or (`POST` only) an array of at most 5,000 of them.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"nombre": "Zona Norte"}))]
pub struct AreaRequest {
    /// Required. The area's name, at most 10,000 characters.
    #[schema(max_length = 10000)]
    pub nombre: String,
}

/// A plate, or an array of at most 5,000 of them.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"placa": "ABC123", "estado": "ACTIVADA"}))]
pub struct PlacaRequest {
    /// Required. Three letters and three digits, in any case and spacing (`abc 123`); kept as
    /// `ABC123`. At most 100 characters.
    #[schema(max_length = 100)]
    pub placa: String,
    /// Optional. `ACTIVADA` (the default) or `DESACTIVADA`.
    #[schema(required = false, max_length = 20)]
    pub estado: Option<String>,
}

/// A plate's change: only its state changes.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"estado": "DESACTIVADA"}))]
pub struct PlacaChange {
    /// Required. `ACTIVADA` or `DESACTIVADA`.
    #[schema(max_length = 20)]
    pub estado: String,
}

/// A driver, or an array of at most 5,000 of them.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"conductor": "Juan Pérez", "area_principal": 1}))]
pub struct ConductorRequest {
    /// Required. The driver's name, at most 10,000 characters.
    #[schema(max_length = 10000)]
    pub conductor: String,
    /// Optional. A registered operation area.
    #[schema(required = false, minimum = 1)]
    pub area_principal: Option<i64>,
}

/// A fuel station, or (`POST` only) an array of at most 5,000 of them. `PATCH` takes any
/// subset of the fields.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"bomba": "Bomba Central", "area_operacion_id": 1, "permitir_saldo_negativo": false}))]
pub struct BombaRequest {
    /// Required on `POST`. The station's name, at most 10,000 characters.
    #[schema(max_length = 10000)]
    pub bomba: String,
    /// Optional. A registered operation area.
    #[schema(required = false, minimum = 1)]
    pub area_operacion_id: Option<i64>,
    /// Optional (default `true`). Whether a TANQUEO may take the balance below zero.
    #[schema(required = false)]
    pub permitir_saldo_negativo: Option<bool>,
}

/// A mission to plan.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"vehiculo_id": 1, "conductor_id": 1, "descripcion": "Ruta Bogotá-Tunja", "fecha_programada": "2026-03-01"}))]
pub struct MisionRequest {
    /// Required. A registered vehicle.
    #[schema(minimum = 1)]
    pub vehiculo_id: i64,
    /// Required. A registered driver.
    #[schema(minimum = 1)]
    pub conductor_id: i64,
    /// Required. At most 2,000 characters.
    #[schema(max_length = 2000)]
    pub descripcion: String,
    /// Required. `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub fecha_programada: String,
}

/// A mission's start.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"kilometraje_inicial": 120500, "combustible_inicial_galones": 30.5}))]
pub struct MisionStart {
    /// Required. The odometer, a whole number ≥ 0.
    #[schema(minimum = 0)]
    pub kilometraje_inicial: i64,
    /// Required. Gallons in the tank, ≥ 0.
    #[schema(value_type = f64, minimum = 0)]
    pub combustible_inicial_galones: String,
}

/// A mission's completion.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"kilometraje_final": 120800, "combustible_final_galones": 12.25}))]
pub struct MisionCompletion {
    /// Required. The odometer, a whole number ≥ 0.
    #[schema(minimum = 0)]
    pub kilometraje_final: i64,
    /// Required. Gallons in the tank, ≥ 0.
    #[schema(value_type = f64, minimum = 0)]
    pub combustible_final_galones: String,
}

/// A mission's cancellation.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"motivo": "Vehículo en taller"}))]
pub struct MisionCancellation {
    /// Required. Why, at most 2,000 characters.
    #[schema(max_length = 2000)]
    pub motivo: String,
}

/// A catalogue entry.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"nombre": "GASOLINA"}))]
pub struct CatalogoRequest {
    /// Required. The entry's name, at most 10,000 characters.
    #[schema(max_length = 10000)]
    pub nombre: String,
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn path_parameters(path: &str) -> Vec<utoipa::openapi::path::Parameter> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(String::schema()))
                .build()
        })
        .collect()
}

fn operation(entry: &Operation) -> utoipa::openapi::path::Operation {
    // Answers are rendered by each handler (see its module); the document promises JSON.
    let any_json = ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .build();
    let success_content = if entry.path == "/api/eventos/stream" {
        ("text/event-stream", ContentBuilder::new().build())
    } else {
        (
            "application/json",
            ContentBuilder::new().schema(Some(any_json)).build(),
        )
    };
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(schema_ref(entry.family.error_schema())))
                    .build(),
            )
            .build()
    };
    let mut builder = OperationBuilder::new()
        .tag(tag_of(entry))
        .summary(Some(entry.summary))
        .parameters(Some(path_parameters(entry.path).into_iter().chain(
            entry.query.iter().map(|(name, description)| {
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(*description))
                    .schema(Some(String::schema()))
                    .build()
            }),
        )))
        .response(
            entry.success.to_string(),
            ResponseBuilder::new()
                .description("Done")
                .content(success_content.0, success_content.1)
                .build(),
        )
        .response("400", error("Bad input, named in the message"))
        .response("404", error("No such resource"))
        .response("409", error("Conflicts with the current state"))
        .response("413", error("Body over the limit"))
        .response("415", error("Not a JSON body"))
        .response(
            "422",
            error("Refused by a business rule, or an Idempotency-Key reused"),
        )
        .response(
            "503",
            error("Overloaded, timed out, or the store is out of reach"),
        );
    if entry.needs_token && entry.family.takes_token() {
        builder = builder
            .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
            .response("401", error("No token, or a token refused"))
            .response("403", error("The token's role may not do this"));
    }
    if let Some(body) = entry.body {
        builder = builder.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(schema_ref(body))).build(),
                )
                .build(),
        ));
    }
    builder.build()
}

fn tag_of(entry: &Operation) -> &'static str {
    match entry.family {
        Vehiculo => "vehiculo (seed 002)",
        Scraping => "scraping (seed 001)",
        Inspecao => "auto-inspecao (seed 003)",
        Api => match entry.path.split('/').nth(2) {
            Some("tanqueos" | "saldos-bombas" | "reconciliacion" | "contabilidad" | "alertas") => {
                "fuel ledger"
            }
            Some("eventos" | "auditoria" | "admin") => "log and audit",
            Some("empresas" | "tipos-operacao" | "questionarios" | "usuarios") => {
                "inspection registry"
            }
            Some("webhooks") => "webhooks",
            None | Some("json") => "service",
            _ if entry.path.starts_with("/api/") => "fleet registry",
            _ => "service",
        },
    }
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    for entry in OPERATIONS {
        paths.add_path_operation(entry.path, vec![entry.method.clone()], operation(entry));
    }
    let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
    macro_rules! schema {
        ($($t:ty),*) => {$(
            schemas.push((<$t as ToSchema>::name().into_owned(), <$t as PartialSchema>::schema()));
        )*};
    }
    schema!(
        ErrorBody,
        VehiculoEnvelope,
        ScrapingError,
        InspecaoError,
        AnyObject,
        TanqueoRequest,
        ImportRequest,
        AreaRequest,
        PlacaRequest,
        PlacaChange,
        ConductorRequest,
        BombaRequest,
        CatalogoRequest,
        MisionRequest,
        MisionStart,
        MisionCompletion,
        MisionCancellation,
        super::alertas::RevisionRequest,
        super::alertas::Alerta
    );
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "`fleet-ledger token --sub NAME --role ROLE` with the server's --data-dir",
                    ))
                    .build(),
            ),
        )
        .build();
    let tags = [
        "service",
        "fleet registry",
        "fuel ledger",
        "log and audit",
        "inspection registry",
        "webhooks",
        "vehiculo (seed 002)",
        "scraping (seed 001)",
        "auto-inspecao (seed 003)",
    ]
    .map(Tag::new);
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("fleet-ledger")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(env!("CARGO_PKG_DESCRIPTION")))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .tags(Some(tags))
        .build()
}

/// `/openapi.json` and `/docs`, both answering without a token: they describe, they hold no data.
pub fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::from(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", document()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for entry in OPERATIONS {
            let method = serde_json::to_string(&entry.method).unwrap();
            assert!(
                seen.insert((method.clone(), entry.path)),
                "{method} {} listed twice",
                entry.path
            );
        }
    }

    #[test]
    fn the_request_schemas_the_operations_name_exist() {
        let document = serde_json::to_value(document()).unwrap();
        for entry in OPERATIONS {
            for name in entry.body.into_iter().chain([entry.family.error_schema()]) {
                assert!(
                    document["components"]["schemas"][name].is_object(),
                    "{name} is not a component"
                );
            }
        }
    }
}
