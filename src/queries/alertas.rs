//! Alerts of the fuel checks (`rm_alertas`), as `GET /api/alertas` lists them.

use chrono::NaiveDate;
use projections::Cell;
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{query_with, where_clause, QueryError};
use crate::read_store::ReadStore;

/// What `GET /api/alertas` filters on; each list holds the accepted values, canonical.
#[derive(Debug, Default)]
pub struct AlertFilter {
    pub regla: Option<Vec<String>>,
    pub severidad: Option<Vec<String>>,
    pub estado: Option<Vec<String>>,
    pub placa_id: Option<Vec<i64>>,
    pub bomba_id: Option<Vec<i64>>,
    pub desde: Option<NaiveDate>,
    pub hasta: Option<NaiveDate>,
}

impl AlertFilter {
    fn to_sql(&self) -> (String, Vec<Cell>) {
        let mut conditions: Vec<String> = Vec::new();
        let mut binds: Vec<Cell> = Vec::new();
        let mut bind = |cell: Cell| {
            binds.push(cell);
            format!("${}", binds.len())
        };
        for (column, values) in [
            ("regla", &self.regla),
            ("severidad", &self.severidad),
            ("estado", &self.estado),
        ] {
            if let Some(values) = values {
                let placeholders: Vec<String> = values
                    .iter()
                    .map(|v| bind(Cell::Text(Some(v.clone()))))
                    .collect();
                conditions.push(format!("{column} IN ({})", placeholders.join(", ")));
            }
        }
        for (column, values) in [("placa_id", &self.placa_id), ("bomba_id", &self.bomba_id)] {
            if let Some(values) = values {
                let placeholders: Vec<String> =
                    values.iter().map(|v| bind(Cell::Int(Some(*v)))).collect();
                conditions.push(format!("{column} IN ({})", placeholders.join(", ")));
            }
        }
        if let Some(desde) = self.desde {
            conditions.push(format!(
                "fecha >= {}",
                bind(Cell::Text(Some(desde.to_string())))
            ));
        }
        if let Some(hasta) = self.hasta {
            conditions.push(format!(
                "fecha <= {}",
                bind(Cell::Text(Some(hasta.to_string())))
            ));
        }
        (where_clause(&conditions), binds)
    }
}

/// Who reviewed an alert, when, and what they concluded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Revision {
    pub revisado_por: String,
    pub revisado_en: String,
    pub resolucion: String,
    pub nota: Option<String>,
}

/// One alert as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRow {
    pub id: String,
    pub regla: String,
    pub severidad: String,
    pub estado: String,
    /// The figures the rule was decided on, exact decimals.
    pub evidencia: Value,
    pub tanqueo_id: i64,
    pub placa_id: i64,
    pub bomba_id: i64,
    pub fecha: String,
    /// Why it stopped holding (`TANQUEO_CORREGIDO`, `TANQUEO_ANULADO`), when `RESUELTA`.
    pub cierre: Option<String>,
    pub revision: Option<Revision>,
    pub actualizado_en: String,
}

const COLUMNS: &str = "id, regla, severidad, estado, evidencia, tanqueo_id, placa_id, bomba_id, \
     fecha, cierre, revisado_por, revisado_en, resolucion, nota, actualizado_en";

fn alert_from(row: &AnyRow) -> Result<AlertRow, QueryError> {
    let evidencia: String = row.try_get(4)?;
    let revisado_por: Option<String> = row.try_get(10)?;
    let revisado_en: Option<String> = row.try_get(11)?;
    let resolucion: Option<String> = row.try_get(12)?;
    let revision = match (revisado_por, revisado_en, resolucion) {
        (Some(revisado_por), Some(revisado_en), Some(resolucion)) => Some(Revision {
            revisado_por,
            revisado_en,
            resolucion,
            nota: row.try_get(13)?,
        }),
        _ => None,
    };
    Ok(AlertRow {
        id: row.try_get(0)?,
        regla: row.try_get(1)?,
        severidad: row.try_get(2)?,
        estado: row.try_get(3)?,
        evidencia: serde_json::from_str(&evidencia)
            .map_err(|e| QueryError::Corrupt(format!("evidencia: {e}")))?,
        tanqueo_id: row.try_get(5)?,
        placa_id: row.try_get(6)?,
        bomba_id: row.try_get(7)?,
        fecha: row.try_get(8)?,
        cierre: row.try_get(9)?,
        revision,
        actualizado_en: row.try_get(14)?,
    })
}

/// How many alerts the filter covers.
pub async fn count(read_models: &ReadStore, filter: &AlertFilter) -> Result<i64, QueryError> {
    let (filter, binds) = filter.to_sql();
    let sql = format!("SELECT COUNT(*) FROM rm_alertas{filter}");
    let row = query_with(&sql, &binds)
        .fetch_one(read_models.pool())
        .await?;
    Ok(row.try_get(0)?)
}

/// Up to `limit` alerts after skipping `offset`: the newest refuel date first, then the newest
/// flag.
pub async fn page(
    read_models: &ReadStore,
    filter: &AlertFilter,
    limit: i64,
    offset: i64,
) -> Result<Vec<AlertRow>, QueryError> {
    let (filter, binds) = filter.to_sql();
    let sql = format!(
        "SELECT {COLUMNS} FROM rm_alertas{filter} \
         ORDER BY fecha DESC, posicion DESC, id LIMIT {limit} OFFSET {offset}"
    );
    let rows = query_with(&sql, &binds)
        .fetch_all(read_models.pool())
        .await?;
    rows.iter().map(alert_from).collect()
}

pub async fn alert(read_models: &ReadStore, id: &str) -> Result<Option<AlertRow>, QueryError> {
    let sql = format!("SELECT {COLUMNS} FROM rm_alertas WHERE id = $1");
    sqlx::query(&sql)
        .bind(id)
        .fetch_optional(read_models.pool())
        .await?
        .as_ref()
        .map(alert_from)
        .transpose()
}
