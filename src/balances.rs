//! Station balances and statements as the handlers answer them: from the `saldos` rows
//! ([`crate::queries::balances`]) when those show every write acknowledged before the request,
//! otherwise by folding the station's stream ([`projections::ledger`]), so the answer is exact
//! either way. The fold is the rare path: the projection is stalled, or still rebuilding from
//! position 0 after an upgrade.
//!
//! One combination always folds: `as_of` together with `fecha_corte`. It asks for the records
//! dated up to a day as they stood at an earlier instant, and the rows keep records only as
//! they stand now (and balances, not records, per instant).

use aggregates::fuel::FuelStation;
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use projections::balances::NAME;
use projections::ledger::{self, StatementLine, StationBalance};
use projections::{FoldError, Recorded};
use rust_decimal::Decimal;

use crate::queries::{self, QueryError};
use crate::store::StoreError;
use crate::AppState;

#[derive(Debug, thiserror::Error)]
pub enum BalanceError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Fold(#[from] FoldError),
}

/// How a read is answered: `head` is the log's head the read waited for (see
/// [`AppState::read_barrier`]).
fn from_rows(state: &AppState, head: i64) -> bool {
    state.runner.has_folded(NAME, head)
}

/// Every event of a station's ledger stream, as its folds take them.
async fn station_events(state: &AppState, bomba_id: i64) -> Result<Vec<Recorded>, StoreError> {
    let stored = state
        .log
        .read_stream(FuelStation::TYPE, &bomba_id.to_string(), 0)
        .await?;
    Ok(stored.iter().map(|e| e.to_recorded()).collect())
}

/// The station's balance now, or as the ledger knew it at `as_of`, counting only the movements
/// dated on or before `fecha_corte`.
pub async fn balance(
    state: &AppState,
    head: i64,
    bomba_id: i64,
    as_of: Option<DateTime<Utc>>,
    fecha_corte: Option<NaiveDate>,
) -> Result<StationBalance, BalanceError> {
    if from_rows(state, head) {
        let rows = &state.read_models;
        match (as_of, fecha_corte) {
            (None, None) => {
                let row = queries::balances::now(rows, bomba_id).await?;
                return Ok(row.map(|row| row.balance()).unwrap_or_default());
            }
            (Some(as_of), None) => {
                let row = queries::balances::as_of(rows, bomba_id, as_of).await?;
                return Ok(row.map(|row| row.balance()).unwrap_or_default());
            }
            (None, Some(corte)) => {
                return Ok(queries::balances::up_to(rows, bomba_id, corte).await?)
            }
            (Some(_), Some(_)) => {}
        }
    }
    let events = station_events(state, bomba_id).await?;
    Ok(ledger::station_balance(&events, as_of, fecha_corte)?)
}

/// Every station's balance now, in the order of `stations`.
pub async fn balances_now(
    state: &AppState,
    head: i64,
    stations: &[i64],
) -> Result<Vec<StationBalance>, BalanceError> {
    if from_rows(state, head) {
        let mut rows = queries::balances::every_station_now(&state.read_models).await?;
        return Ok(stations
            .iter()
            .map(|id| rows.remove(id).map(|row| row.balance()).unwrap_or_default())
            .collect());
    }
    let mut balances = Vec::with_capacity(stations.len());
    for &bomba_id in stations {
        let events = station_events(state, bomba_id).await?;
        balances.push(ledger::station_balance(&events, None, None)?);
    }
    Ok(balances)
}

/// The part of a station's statement dated from `desde` to `hasta` (both included, either
/// open), with the running balance over its whole history.
#[derive(Debug)]
pub struct Statement {
    /// The lines in the range, in statement order.
    pub lines: Vec<StatementLine>,
    /// The balance of every line before the range.
    pub opening: Decimal,
    /// The balance reported by the latest line up to `hasta`.
    pub reportado: Option<Decimal>,
}

impl Statement {
    /// The computed balance at the end of the range (of every line up to `hasta`).
    pub fn saldo_calculado(&self) -> Decimal {
        self.lines
            .last()
            .map_or(self.opening.normalize(), |line| line.saldo_calculado)
    }
}

pub async fn statement(
    state: &AppState,
    head: i64,
    bomba_id: i64,
    desde: Option<NaiveDate>,
    hasta: Option<NaiveDate>,
) -> Result<Statement, BalanceError> {
    // A range that ends before it starts holds no line, and opens with every line up to its end.
    let desde = match (desde, hasta) {
        (Some(desde), Some(hasta)) if desde > hasta => hasta.succ_opt().or(Some(desde)),
        _ => desde,
    };
    if from_rows(state, head) {
        let rows = queries::balances::statement(&state.read_models, bomba_id, desde, hasta).await?;
        return Ok(Statement {
            lines: ledger::statement_lines(rows.opening, rows.movements),
            opening: rows.opening,
            reportado: rows.reportado,
        });
    }
    let events = station_events(state, bomba_id).await?;
    let lines = ledger::station_statement(&events)?;
    let until_end = lines
        .iter()
        .filter(|l| hasta.is_none_or(|hasta| l.movement.fecha <= hasta));
    let reportado = until_end
        .clone()
        .rev()
        .find_map(|l| l.movement.saldo_disponible);
    let opening = until_end
        .clone()
        .filter(|l| desde.is_some_and(|desde| l.movement.fecha < desde))
        .map(|l| l.movement.effect())
        .sum();
    let lines = until_end
        .filter(|l| desde.is_none_or(|desde| l.movement.fecha >= desde))
        .cloned()
        .collect();
    Ok(Statement {
        lines,
        opening,
        reportado,
    })
}
