//! Station balances and statements from the `saldos` rows (see [`projections::balances`]): each
//! answer is one indexed lookup or one indexed range, never a fold of the station's history.

use aggregates::fuel::TipoOperacion;
use chrono::{DateTime, NaiveDate, Utc};
use projections::balances::{
    balance_up_to, day_number, from_day_number, instant_ns, parse_instant, BalanceRow, DayTotals,
};
use projections::ledger::{Movement, StationBalance};
use rust_decimal::Decimal;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{exact_decimal, optional_decimal, QueryError};
use crate::read_store::ReadStore;

/// The balance columns of a station row and of a history row, in [`balance_row`]'s order.
const BALANCE: &str = "saldo, total_anticipos, total_tanqueos, movimientos, ultimo_movimiento, \
                       ultimo_saldo_reportado, ultima_actualizacion";

fn balance_row(row: &AnyRow, first: usize) -> Result<BalanceRow, QueryError> {
    let ultima_actualizacion: Option<String> = row.try_get(first + 6)?;
    Ok(BalanceRow {
        saldo: exact_decimal(row, first)?,
        total_anticipos: exact_decimal(row, first + 1)?,
        total_tanqueos: exact_decimal(row, first + 2)?,
        movimientos: row.try_get(first + 3)?,
        ultimo_movimiento: row.try_get(first + 4)?,
        ultimo_saldo_reportado: optional_decimal(row, first + 5)?,
        ultima_actualizacion: ultima_actualizacion
            .map(|text| {
                parse_instant(&text).ok_or_else(|| QueryError::Corrupt(format!("instant {text:?}")))
            })
            .transpose()?,
    })
}

/// The balance row `query` selects, if any.
async fn one_balance<'q>(
    read_models: &ReadStore,
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
) -> Result<Option<BalanceRow>, QueryError> {
    query
        .fetch_optional(read_models.pool())
        .await?
        .map(|row| balance_row(&row, 0))
        .transpose()
}

/// The station's balance after every movement folded; none before its first.
pub async fn now(read_models: &ReadStore, bomba_id: i64) -> Result<Option<BalanceRow>, QueryError> {
    let sql = format!("SELECT {BALANCE} FROM rm_saldos_bombas WHERE bomba_id = $1");
    one_balance(read_models, sqlx::query(&sql).bind(bomba_id)).await
}

/// Every station's balance now, by station (stations without movements have none).
pub async fn every_station_now(
    read_models: &ReadStore,
) -> Result<std::collections::HashMap<i64, BalanceRow>, QueryError> {
    let sql = format!("SELECT bomba_id, {BALANCE} FROM rm_saldos_bombas");
    let rows = sqlx::query(&sql).fetch_all(read_models.pool()).await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, balance_row(row, 1)?)))
        .collect()
}

/// The station's balance as the ledger knew it at `as_of`: the history row of the last movement
/// recorded by then. Instants never decrease along a station's history rows, so the rows at or
/// before `as_of` are exactly a prefix of its stream.
pub async fn as_of(
    read_models: &ReadStore,
    bomba_id: i64,
    as_of: DateTime<Utc>,
) -> Result<Option<BalanceRow>, QueryError> {
    let sql = format!(
        "SELECT {BALANCE} FROM rm_saldos_historial WHERE bomba_id = $1 AND instante_ns <= $2 \
         ORDER BY instante_ns DESC, version DESC LIMIT 1"
    );
    let query = sqlx::query(&sql).bind(bomba_id).bind(instant_ns(as_of));
    one_balance(read_models, query).await
}

/// The station's balance counting only the movements dated on or before `corte` (one snapshot
/// of its day totals, its latest reported balance up to then, and its last update).
pub async fn up_to(
    read_models: &ReadStore,
    bomba_id: i64,
    corte: NaiveDate,
) -> Result<StationBalance, QueryError> {
    let mut snapshot = super::snapshot(read_models).await?;
    let days = days(&mut snapshot, bomba_id, "fecha <= $2", day_number(corte)).await?;
    let reportado = reported_up_to(&mut snapshot, bomba_id, corte).await?;
    let ultima_actualizacion: Option<String> =
        sqlx::query_scalar("SELECT ultima_actualizacion FROM rm_saldos_bombas WHERE bomba_id = $1")
            .bind(bomba_id)
            .fetch_optional(&mut *snapshot)
            .await?;
    let ultima_actualizacion = ultima_actualizacion
        .map(|text| {
            parse_instant(&text).ok_or_else(|| QueryError::Corrupt(format!("instant {text:?}")))
        })
        .transpose()?;
    Ok(balance_up_to(&days, reportado, ultima_actualizacion))
}

/// The station's day totals whose date satisfies `condition` on `$2` (a day number).
async fn days(
    snapshot: &mut Transaction<'static, Any>,
    bomba_id: i64,
    condition: &str,
    day: i64,
) -> Result<Vec<DayTotals>, QueryError> {
    let sql = format!(
        "SELECT fecha, total_anticipos, total_tanqueos, movimientos FROM rm_saldos_dias \
         WHERE bomba_id = $1 AND {condition}"
    );
    let rows = sqlx::query(&sql)
        .bind(bomba_id)
        .bind(day)
        .fetch_all(&mut **snapshot)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(DayTotals {
                fecha: row.try_get(0)?,
                total_anticipos: exact_decimal(row, 1)?,
                total_tanqueos: exact_decimal(row, 2)?,
                movimientos: row.try_get(3)?,
            })
        })
        .collect()
}

/// The balance reported by the latest live movement (by date, then id) dated on or before
/// `corte`.
async fn reported_up_to(
    snapshot: &mut Transaction<'static, Any>,
    bomba_id: i64,
    corte: NaiveDate,
) -> Result<Option<Decimal>, QueryError> {
    let row = sqlx::query(
        "SELECT saldo_disponible FROM rm_saldos_movimientos \
         WHERE bomba_id = $1 AND fecha <= $2 AND saldo_disponible IS NOT NULL \
         ORDER BY fecha DESC, id DESC LIMIT 1",
    )
    .bind(bomba_id)
    .bind(day_number(corte))
    .fetch_optional(&mut **snapshot)
    .await?;
    Ok(match row {
        Some(row) => optional_decimal(&row, 0)?,
        None => None,
    })
}

/// Part of a station's statement, as one snapshot reads it.
#[derive(Debug)]
pub struct StatementRows {
    /// The balance of every live movement dated before the first of `movements`' range.
    pub opening: Decimal,
    /// The live movements in the range, in statement order (date, then id).
    pub movements: Vec<Movement>,
    /// The balance reported by the latest live movement up to the range's end.
    pub reportado: Option<Decimal>,
}

/// The station's live movements dated from `desde` to `hasta` (both included, either open).
pub async fn statement(
    read_models: &ReadStore,
    bomba_id: i64,
    desde: Option<NaiveDate>,
    hasta: Option<NaiveDate>,
) -> Result<StatementRows, QueryError> {
    let mut snapshot = super::snapshot(read_models).await?;
    let opening = match desde {
        Some(desde) => {
            let before = days(&mut snapshot, bomba_id, "fecha < $2", day_number(desde)).await?;
            balance_up_to(&before, None, None).saldo
        }
        None => Decimal::ZERO,
    };
    let (from, to) = (
        desde.map_or(i64::MIN, day_number),
        hasta.map_or(i64::MAX, day_number),
    );
    let rows = sqlx::query(
        "SELECT id, fecha, tipo_operacion, valor, saldo_disponible FROM rm_saldos_movimientos \
         WHERE bomba_id = $1 AND fecha >= $2 AND fecha <= $3 ORDER BY fecha, id",
    )
    .bind(bomba_id)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *snapshot)
    .await?;
    let movements = rows.iter().map(movement).collect::<Result<Vec<_>, _>>()?;
    let reportado = match hasta {
        Some(hasta) => reported_up_to(&mut snapshot, bomba_id, hasta).await?,
        None => {
            let row = sqlx::query(
                "SELECT ultimo_saldo_reportado FROM rm_saldos_bombas WHERE bomba_id = $1",
            )
            .bind(bomba_id)
            .fetch_optional(&mut *snapshot)
            .await?;
            match row {
                Some(row) => optional_decimal(&row, 0)?,
                None => None,
            }
        }
    };
    Ok(StatementRows {
        opening,
        movements,
        reportado,
    })
}

fn movement(row: &AnyRow) -> Result<Movement, QueryError> {
    let day: i64 = row.try_get(1)?;
    let tipo: String = row.try_get(2)?;
    Ok(Movement {
        id: row.try_get(0)?,
        fecha: from_day_number(day)
            .ok_or_else(|| QueryError::Corrupt(format!("day number {day}")))?,
        tipo_operacion: TipoOperacion::parse(&tipo)
            .ok_or_else(|| QueryError::Corrupt(format!("tipo_operacion {tipo:?}")))?,
        valor: optional_decimal(row, 3)?,
        saldo_disponible: optional_decimal(row, 4)?,
    })
}
