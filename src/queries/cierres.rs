//! The monthly closes (`rm_cierres`, `rm_cierres_bombas`) and each month's live records
//! (`rm_tanqueos`), read in one snapshot so a month's state and its totals agree.

use std::collections::BTreeMap;

use aggregates::period::Periodo;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::Row;

use super::{exact_decimal, optional_decimal, snapshot, QueryError};
use crate::read_store::ReadStore;

/// What the registry's stream last said of a month closed at least once.
#[derive(Debug, Clone, Default)]
pub struct MonthClose {
    pub cerrado: bool,
    pub cerrado_por: Option<String>,
    pub cerrado_en: Option<String>,
    pub reabierto_por: Option<String>,
    pub reabierto_en: Option<String>,
    pub motivo_reapertura: Option<String>,
}

/// One station's standing in a month a close named or the station itself closed.
#[derive(Debug, Clone, Default)]
pub struct StationClose {
    /// The month's latest close for every station names this station.
    pub en_cierre: bool,
    /// The station's own stream has the month closed.
    pub cerrado: bool,
    pub saldo_cierre: Option<Decimal>,
}

/// A month's live (not voided) records across stations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonthRecords {
    pub registros: i64,
    pub total_tanqueos: Decimal,
    pub total_anticipos: Decimal,
}

/// Everything `GET /api/cierres` is built from.
#[derive(Debug, Default)]
pub struct Closes {
    pub months: BTreeMap<Periodo, MonthClose>,
    pub stations: BTreeMap<Periodo, Vec<StationClose>>,
    pub records: BTreeMap<Periodo, MonthRecords>,
}

fn periodo(anio: i64, mes: i64) -> Result<Periodo, QueryError> {
    Periodo::new(anio, mes).ok_or_else(|| QueryError::Corrupt(format!("period {anio}/{mes}")))
}

fn flag(row: &sqlx::any::AnyRow, index: usize) -> Result<bool, QueryError> {
    Ok(row.try_get::<Option<i64>, _>(index)?.unwrap_or(0) != 0)
}

/// Every close and every month's records. The records are summed here, not in SQL: amounts are
/// exact decimal text, which neither database sums exactly (`GET /api/tanqueos`'s summary
/// does the same).
pub async fn closes(read_models: &ReadStore) -> Result<Closes, QueryError> {
    let mut tx = snapshot(read_models).await?;
    let mut closes = Closes::default();
    let rows = sqlx::query(
        "SELECT anio, mes, cerrado, cerrado_por, cerrado_en, reabierto_por, reabierto_en, \
         motivo_reapertura FROM rm_cierres",
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in &rows {
        closes.months.insert(
            periodo(row.try_get(0)?, row.try_get(1)?)?,
            MonthClose {
                cerrado: flag(row, 2)?,
                cerrado_por: row.try_get(3)?,
                cerrado_en: row.try_get(4)?,
                reabierto_por: row.try_get(5)?,
                reabierto_en: row.try_get(6)?,
                motivo_reapertura: row.try_get(7)?,
            },
        );
    }
    let rows =
        sqlx::query("SELECT anio, mes, en_cierre, cerrado, saldo_cierre FROM rm_cierres_bombas")
            .fetch_all(&mut *tx)
            .await?;
    for row in &rows {
        closes
            .stations
            .entry(periodo(row.try_get(0)?, row.try_get(1)?)?)
            .or_default()
            .push(StationClose {
                en_cierre: flag(row, 2)?,
                cerrado: flag(row, 3)?,
                saldo_cierre: optional_decimal(row, 4)?,
            });
    }
    let rows = sqlx::query(
        "SELECT fecha, tipo_operacion, COALESCE(valor_tanqueo, '0'), COALESCE(valor_anticipo, '0') \
         FROM rm_tanqueos WHERE anulado = 0",
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in &rows {
        let fecha: String = row.try_get(0)?;
        let fecha = NaiveDate::parse_from_str(&fecha, "%Y-%m-%d")
            .map_err(|_| QueryError::Corrupt(format!("date {fecha:?}")))?;
        let month = closes.records.entry(Periodo::of(fecha)).or_default();
        month.registros += 1;
        let tipo: String = row.try_get(1)?;
        if tipo == "ANTICIPO" {
            month.total_anticipos += exact_decimal(row, 3)?;
        } else {
            month.total_tanqueos += exact_decimal(row, 2)?;
        }
    }
    tx.commit().await?;
    Ok(closes)
}
