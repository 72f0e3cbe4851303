//! The double-entry journal (`rm_asientos`): totals per account and one account's entries.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use sqlx::Row;

use super::{exact_decimal, QueryError};
use crate::read_store::ReadStore;

/// One account's totals over the journal.
#[derive(Debug)]
pub struct AccountTotals {
    pub cuenta: String,
    pub debe: Decimal,
    pub haber: Decimal,
}

/// Totals per account, in account order, of every entry the ledger had recorded by `as_of`.
pub async fn trial_balance(
    read_models: &ReadStore,
    as_of: DateTime<Utc>,
) -> Result<Vec<AccountTotals>, QueryError> {
    // `registrado_en` is stored with nine fractional digits, so text order is time order.
    let rows = sqlx::query("SELECT cuenta, debe, haber FROM rm_asientos WHERE registrado_en <= $1")
        .bind(as_of.to_rfc3339_opts(SecondsFormat::Nanos, true))
        .fetch_all(read_models.pool())
        .await?;
    // Summed here, not in SQL: amounts are exact decimal text, which SQLite would sum as floats
    // and PostgreSQL not at all.
    let mut accounts: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for row in &rows {
        let totals = accounts.entry(row.try_get(0)?).or_default();
        totals.0 += exact_decimal(row, 1)?;
        totals.1 += exact_decimal(row, 2)?;
    }
    Ok(accounts
        .into_iter()
        .map(|(cuenta, (debe, haber))| AccountTotals {
            cuenta,
            debe,
            haber,
        })
        .collect())
}

/// One line of the journal.
#[derive(Debug)]
pub struct JournalEntry {
    pub posicion: i64,
    pub tanqueo_id: i64,
    pub fecha: String,
    pub descripcion: String,
    pub debe: Decimal,
    pub haber: Decimal,
    pub registrado_en: String,
}

/// The account's entries in posting order.
pub async fn account_entries(
    read_models: &ReadStore,
    cuenta: &str,
) -> Result<Vec<JournalEntry>, QueryError> {
    let rows = sqlx::query(
        "SELECT posicion, tanqueo_id, fecha, descripcion, debe, haber, registrado_en FROM rm_asientos \
         WHERE cuenta = $1 ORDER BY posicion, linea",
    )
    .bind(cuenta)
    .fetch_all(read_models.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(JournalEntry {
                posicion: row.try_get(0)?,
                tanqueo_id: row.try_get(1)?,
                fecha: row.try_get(2)?,
                descripcion: row.try_get(3)?,
                debe: exact_decimal(row, 4)?,
                haber: exact_decimal(row, 5)?,
                registrado_en: row.try_get(6)?,
            })
        })
        .collect()
}
