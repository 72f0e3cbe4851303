//! Monthly closes (issue 16): `POST /api/cierres` closes a month for every station,
//! `POST /api/cierres/reabrir` reopens it, `GET /api/cierres` lists every month's state.
//!
//! A close runs in steps, because the log appends to one stream at a time (see
//! `aggregates::period`): first the registry's stream records the close for every station,
//! naming the stations registered now; then each of them records it in its own stream with its
//! closing balance. Each step is idempotent, so a close that stopped half way (an outage, a
//! crash) shows as `PARCIAL` and is completed by sending it again; only a month already closed
//! on every station it names is a 409. Reopening mirrors it.

use aggregates::fuel::{FuelCommand, FuelStation};
use aggregates::period::Periodo;
use aggregates::registry::{StationCommand, Stations, REGISTRY_STREAM_ID};
use axum::extract::State;
use axum::Json;
use chrono::Utc;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{CommandContext, JsonBody};
use super::fields::reject_unknown;
use crate::commands::Executed;
use crate::queries::cierres::{self as closes, Closes};
use crate::AppState;

/// The origin system's refusal of anyone but an administrator, for a close and a reopening.
pub const NOT_CLOSE_ADMIN: &str =
    "No tienes permisos de Administrador de Cierres para realizar esta acción.";
/// The origin system's refusal of a body without a real year and month.
pub const BAD_PERIOD: &str = "Se requiere año y mes válidos.";
const MOTIVO_LEN_MAX: usize = 2000;
/// The longest run of months `GET /api/cierres` lists back from the latest (a century): a
/// record dated in year 1 must not make the list 24,000 months long. Months with records or
/// closes before it are still listed.
pub const MONTHS_LISTED_MAX: usize = 1200;

/// Paths whose handlers refuse a role themselves, in the origin system's words, instead of the
/// token check's generic 403 (see `middleware::require_token`).
pub const ROLE_CHECKED_BY_HANDLER: [&str; 2] = ["/api/cierres", "/api/cierres/reabrir"];

/// A month to close.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"anio": 2026, "mes": 1}))]
pub struct CierreRequest {
    /// Required. The year, 1 to 9999.
    #[schema(minimum = 1, maximum = 9999)]
    pub anio: i64,
    /// Required. The month, 1 to 12.
    #[schema(minimum = 1, maximum = 12)]
    pub mes: i64,
}

/// A month to reopen, and why.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"anio": 2026, "mes": 1, "motivo": "Factura de enero recibida tarde"}))]
pub struct ReaperturaRequest {
    /// Required. The year, 1 to 9999.
    #[schema(minimum = 1, maximum = 9999)]
    pub anio: i64,
    /// Required. The month, 1 to 12.
    #[schema(minimum = 1, maximum = 12)]
    pub mes: i64,
    /// Required. Why the month is reopened, at most 2,000 characters; kept in the log.
    #[schema(max_length = 2000)]
    pub motivo: String,
}

/// What a close or a reopening did.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"message": "Mes 01/2026 cerrado exitosamente.", "registrosAfectados": 42}))]
pub struct CierreAnswer {
    /// `Mes MM/AAAA cerrado exitosamente.` or `Mes MM/AAAA reabierto exitosamente.`
    pub message: String,
    /// Live records (TANQUEO and ANTICIPO) dated in the month on the stations this request
    /// closed or reopened.
    #[serde(rename = "registrosAfectados")]
    pub registros_afectados: i64,
}

/// One month of `GET /api/cierres`, oldest first.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"anio": 2026, "mes": 1, "estado": "CERRADO", "registros": 42,
    "total_tanqueos": 1500000, "total_anticipos": 2000000, "saldo_cierre": 500000,
    "bombas_cerradas": 3, "bombas_pendientes": 0, "cerrado_por": "contadora@flota.co",
    "cerrado_en": "2026-02-03T14:00:00Z", "reabierto_por": null, "reabierto_en": null,
    "motivo_reapertura": null}))]
pub struct CierreMes {
    pub anio: i32,
    pub mes: u32,
    /// `CERRADO`: closed for every station and on each station the close named.
    /// `PARCIAL`: a close or a reopening reached only some of its stations (send it again).
    /// `ABIERTO`: open everywhere.
    pub estado: String,
    /// Live records (TANQUEO and ANTICIPO) dated in the month.
    pub registros: i64,
    #[schema(value_type = f64)]
    pub total_tanqueos: Value,
    #[schema(value_type = f64)]
    pub total_anticipos: Value,
    /// Sum of the closing balances of the stations that have the month closed (each one's
    /// balance at the end of the month); `null` when none has.
    #[schema(value_type = Option<f64>)]
    pub saldo_cierre: Value,
    /// Stations that have the month closed in their own ledger.
    pub bombas_cerradas: i64,
    /// Stations the latest close or reopening still has to reach.
    pub bombas_pendientes: i64,
    pub cerrado_por: Option<String>,
    pub cerrado_en: Option<String>,
    pub reabierto_por: Option<String>,
    pub reabierto_en: Option<String>,
    pub motivo_reapertura: Option<String>,
}

fn require_close_admin(context: &CommandContext) -> Result<(), ApiError> {
    if context.actor.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Denied(NOT_CLOSE_ADMIN.to_string()))
    }
}

/// The body's month. Permission is checked first, so a non-administrator learns nothing about
/// the body: the body is taken as a result, and its own refusal is given only to an admin.
fn period_of(body: &Value) -> Result<Periodo, ApiError> {
    let field = |name: &str| body.get(name).and_then(Value::as_i64);
    match (field("anio"), field("mes")) {
        (Some(anio), Some(mes)) => {
            Periodo::new(anio, mes).ok_or_else(|| ApiError::BadRequest(BAD_PERIOD.into()))
        }
        _ => Err(ApiError::BadRequest(BAD_PERIOD.into())),
    }
}

fn motivo_of(body: &Value) -> Result<String, ApiError> {
    let motivo = match body.get("motivo") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.trim().to_string(),
        _ => {
            return Err(ApiError::BadRequest(
                "Missing required field: motivo".into(),
            ))
        }
    };
    if motivo.chars().count() > MOTIVO_LEN_MAX {
        return Err(ApiError::BadRequest(format!(
            "Invalid value for motivo: at most {MOTIVO_LEN_MAX} characters"
        )));
    }
    Ok(motivo)
}

/// Records a change of the month for every station, then on each station registered now, and
/// answers how many records those stations hold in the month and whether anything changed.
async fn on_every_station(
    state: &AppState,
    context: &CommandContext,
    registry: StationCommand,
    station: impl Fn(i64, aggregates::period::InheritedClosures) -> FuelCommand,
    periodo: Periodo,
) -> Result<(i64, bool), ApiError> {
    let (executed, bombas) = super::execute(
        state,
        &state.stations,
        REGISTRY_STREAM_ID,
        registry,
        context,
        ApiError::from,
        |stations: &Stations| stations.ids(),
    )
    .await?;
    let mut changed = executed.appended.is_some();
    let mut last: Option<Executed<FuelStation>> = None;
    let mut registros = 0;
    for bomba_id in bombas {
        let inherited = state
            .references
            .inherited_closures(bomba_id)
            .await?
            .ok_or_else(|| ApiError::internal(format!("station {bomba_id} is not indexed")))?;
        let (executed, in_month) = super::execute(
            state,
            &state.fuel_stations,
            &bomba_id.to_string(),
            station(bomba_id, (*inherited).clone()),
            context,
            super::tanqueos::refusal,
            |station: &FuelStation| station.month(periodo).registros,
        )
        .await?;
        if executed.appended.is_some() {
            changed = true;
            registros += in_month;
            last = Some(executed);
        }
    }
    // The answer comes from the commands; the list is read after it, so wait for it once.
    if let Some(last) = last {
        if !state.settle(last.position(), &last.touched).await {
            context.lag.mark();
        }
    }
    Ok((registros, changed))
}

/// Close a month for every station (admin)
///
/// `POST /api/cierres` (admin): closes `anio`/`mes` for every station.
#[utoipa::path(post, path = "/api/cierres", request_body = CierreRequest,
    responses((status = 200, body = CierreAnswer)))]
pub async fn close(
    State(state): State<AppState>,
    context: CommandContext,
    body: Result<JsonBody<Value>, ApiError>,
) -> Result<Json<CierreAnswer>, ApiError> {
    require_close_admin(&context)?;
    let JsonBody(body) = body?;
    let periodo = period_of(&body)?;
    reject_unknown(&body, &["anio", "mes"])?;
    let (registros, changed) = on_every_station(
        &state,
        &context,
        StationCommand::ClosePeriod { periodo },
        |bomba_id, inherited| FuelCommand::ClosePeriod {
            bomba_id,
            periodo,
            inherited,
        },
        periodo,
    )
    .await?;
    if !changed {
        return Err(ApiError::Conflict(format!(
            "El mes {periodo} ya se encuentra cerrado."
        )));
    }
    Ok(Json(CierreAnswer {
        message: format!("Mes {periodo} cerrado exitosamente."),
        registros_afectados: registros,
    }))
}

/// Reopen a closed month, with a reason (admin)
///
/// `POST /api/cierres/reabrir` (admin): reopens `anio`/`mes` for every station, for `motivo`.
#[utoipa::path(post, path = "/api/cierres/reabrir", request_body = ReaperturaRequest,
    responses((status = 200, body = CierreAnswer)))]
pub async fn reopen(
    State(state): State<AppState>,
    context: CommandContext,
    body: Result<JsonBody<Value>, ApiError>,
) -> Result<Json<CierreAnswer>, ApiError> {
    require_close_admin(&context)?;
    let JsonBody(body) = body?;
    let periodo = period_of(&body)?;
    let motivo = motivo_of(&body)?;
    reject_unknown(&body, &["anio", "mes", "motivo"])?;
    let (registros, changed) = on_every_station(
        &state,
        &context,
        StationCommand::ReopenPeriod {
            periodo,
            motivo: motivo.clone(),
        },
        |bomba_id, inherited| FuelCommand::ReopenPeriod {
            bomba_id,
            periodo,
            motivo: motivo.clone(),
            inherited,
        },
        periodo,
    )
    .await?;
    if !changed {
        return Err(ApiError::Conflict(format!(
            "El mes {periodo} no se encuentra cerrado."
        )));
    }
    Ok(Json(CierreAnswer {
        message: format!("Mes {periodo} reabierto exitosamente."),
        registros_afectados: registros,
    }))
}

/// Every month: CERRADO, PARCIAL or ABIERTO, with its records and totals
///
/// `GET /api/cierres` (any role): every month from the first with records (or closed) to the
/// current one, and any later month with records or closed, oldest first.
#[utoipa::path(get, path = "/api/cierres", responses((status = 200, body = Vec<CierreMes>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<CierreMes>>, ApiError> {
    let closes = closes::closes(&state.read_models).await?;
    let current = Periodo::of(Utc::now().date_naive());
    Ok(Json(
        months_listed(&closes, current)
            .into_iter()
            .map(|periodo| month_view(&closes, periodo))
            .collect(),
    ))
}

/// The months [`list`] shows: a run of consecutive months up to the current one (or the latest
/// with records or a close), at most [`MONTHS_LISTED_MAX`] long, plus every month with records
/// or a close.
fn months_listed(closes: &Closes, current: Periodo) -> Vec<Periodo> {
    let mut known: std::collections::BTreeSet<Periodo> = closes
        .records
        .keys()
        .chain(closes.months.keys())
        .chain(closes.stations.keys())
        .copied()
        .collect();
    let Some(first) = known.first().copied() else {
        return Vec::new();
    };
    let last = known.last().copied().map_or(current, |l| l.max(current));
    let mut run = Vec::new();
    let mut month = last;
    // Walk back from the latest month; stop at the first one known or the cap.
    loop {
        run.push(month);
        if month <= first || run.len() >= MONTHS_LISTED_MAX {
            break;
        }
        month = previous(month);
    }
    known.extend(run);
    known.into_iter().collect()
}

fn previous(periodo: Periodo) -> Periodo {
    if periodo.mes == 1 {
        Periodo {
            anio: periodo.anio - 1,
            mes: 12,
        }
    } else {
        Periodo {
            anio: periodo.anio,
            mes: periodo.mes - 1,
        }
    }
}

/// The state an accountant reads: `CERRADO` only when the month is closed for every station
/// and each station the close named has it closed in its own ledger; `PARCIAL` while a close or
/// a reopening has reached only some; `ABIERTO` otherwise.
pub fn estado(closed_for_all: bool, cerradas: i64, pendientes: i64) -> &'static str {
    match (closed_for_all, pendientes, cerradas) {
        (true, 0, _) => "CERRADO",
        (true, _, _) => "PARCIAL",
        (false, _, 0) => "ABIERTO",
        (false, _, _) => "PARCIAL",
    }
}

fn money(amount: Decimal) -> Value {
    crate::read_store::decimal_json(Some(amount.normalize().to_string()))
}

fn month_view(closes: &Closes, periodo: Periodo) -> CierreMes {
    let close = closes.months.get(&periodo).cloned().unwrap_or_default();
    let stations = closes
        .stations
        .get(&periodo)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let cerradas = stations.iter().filter(|s| s.cerrado).count() as i64;
    // Closing: the named stations not closed yet. Reopened: the stations still closed.
    let pendientes = if close.cerrado {
        stations
            .iter()
            .filter(|s| s.en_cierre && !s.cerrado)
            .count() as i64
    } else {
        cerradas
    };
    let saldo_cierre = (cerradas > 0).then(|| {
        stations
            .iter()
            .filter(|s| s.cerrado)
            .filter_map(|s| s.saldo_cierre)
            .sum::<Decimal>()
    });
    let records = closes.records.get(&periodo).cloned().unwrap_or_default();
    CierreMes {
        anio: periodo.anio,
        mes: periodo.mes,
        estado: estado(close.cerrado, cerradas, pendientes).to_string(),
        registros: records.registros,
        total_tanqueos: money(records.total_tanqueos),
        total_anticipos: money(records.total_anticipos),
        saldo_cierre: saldo_cierre.map_or(Value::Null, money),
        bombas_cerradas: cerradas,
        bombas_pendientes: pendientes,
        cerrado_por: close.cerrado_por,
        cerrado_en: close.cerrado_en,
        reabierto_por: close.reabierto_por,
        reabierto_en: close.reabierto_en,
        motivo_reapertura: close.motivo_reapertura,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::cierres::{MonthClose, MonthRecords};

    fn p(anio: i32, mes: u32) -> Periodo {
        Periodo { anio, mes }
    }

    #[test]
    fn a_month_is_closed_only_once_every_station_the_close_named_has_it_closed() {
        assert_eq!(estado(true, 3, 0), "CERRADO");
        assert_eq!(
            estado(true, 0, 0),
            "CERRADO",
            "a close with no stations yet"
        );
        assert_eq!(estado(true, 2, 1), "PARCIAL");
        assert_eq!(estado(false, 0, 0), "ABIERTO");
        assert_eq!(estado(false, 1, 1), "PARCIAL", "a reopening half way");
    }

    #[test]
    fn the_list_runs_from_the_first_known_month_to_the_current_one() {
        let mut closes = Closes::default();
        closes.records.insert(p(2025, 11), MonthRecords::default());
        closes.months.insert(p(2026, 5), MonthClose::default());
        let listed = months_listed(&closes, p(2026, 2));
        assert_eq!(listed.first(), Some(&p(2025, 11)));
        assert_eq!(listed.last(), Some(&p(2026, 5)), "a later closed month too");
        assert_eq!(listed.len(), 7);
        assert!(months_listed(&Closes::default(), p(2026, 2)).is_empty());
    }

    #[test]
    fn a_record_in_year_one_does_not_list_twenty_thousand_months() {
        let mut closes = Closes::default();
        closes.records.insert(p(1, 1), MonthRecords::default());
        let listed = months_listed(&closes, p(2026, 2));
        assert_eq!(listed.len(), MONTHS_LISTED_MAX + 1);
        assert_eq!(listed[0], p(1, 1));
        assert_eq!(listed[MONTHS_LISTED_MAX], p(2026, 2));
    }
}
