//! The fuel ledger's records (`rm_tanqueos`): one record, a filtered page with its totals, and
//! what an import checks for duplicates.

use chrono::NaiveDate;
use projections::Cell;
use rust_decimal::Decimal;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{by_id, optional_decimal, query_with, where_clause, QueryError};
use crate::read_store::ReadStore;

const RECORD_COLUMNS: &str = "t.id, t.fecha, t.conductor_id, t.placa_id, t.bomba_id, t.area_operacion_id, \
     t.tipo_combustible, t.valor_tanqueo, t.cantidad_galones, t.costo_por_galon, t.horometro, \
     t.valor_anticipo, t.saldo_disponible, t.concepto, t.tipo_operacion, t.observacion, t.creado_por, \
     t.actualizado_por, t.actualizado_en, t.anulado";

/// How a column of the record is stored, and so read and rendered.
#[derive(Clone, Copy)]
pub enum Kind {
    Int,
    Text,
    /// Exact decimal text, rendered as a JSON number.
    Decimal,
    /// 0 or 1.
    Flag,
}

/// The seed's record in the seed's field order (`anulado` last), as [`RECORD_COLUMNS`] selects it.
pub const RECORD_FIELDS: [(&str, Kind); 20] = [
    ("id", Kind::Int),
    ("fecha", Kind::Text),
    ("conductor_id", Kind::Int),
    ("placa_id", Kind::Int),
    ("bomba_id", Kind::Int),
    ("area_operacion_id", Kind::Int),
    ("tipo_combustible", Kind::Text),
    ("valor_tanqueo", Kind::Decimal),
    ("cantidad_galones", Kind::Decimal),
    ("costo_por_galon", Kind::Decimal),
    ("horometro", Kind::Decimal),
    ("valor_anticipo", Kind::Decimal),
    ("saldo_disponible", Kind::Decimal),
    ("concepto", Kind::Text),
    ("tipo_operacion", Kind::Text),
    ("observacion", Kind::Text),
    ("creado_por", Kind::Text),
    ("actualizado_por", Kind::Text),
    ("actualizado_en", Kind::Text),
    ("anulado", Kind::Flag),
];

/// One record's columns, as the read model holds them. The projection's in-memory model holds
/// the same shape, so a command's answer can fold its own events into a stored row.
pub type RecordRow = std::collections::BTreeMap<&'static str, Cell>;

fn record_row_from(row: &AnyRow) -> Result<RecordRow, QueryError> {
    let mut cells = RecordRow::new();
    for (index, (name, kind)) in RECORD_FIELDS.iter().enumerate() {
        let cell = match kind {
            Kind::Int | Kind::Flag => Cell::Int(row.try_get::<Option<i64>, _>(index)?),
            Kind::Text | Kind::Decimal => Cell::Text(row.try_get::<Option<String>, _>(index)?),
        };
        cells.insert(name, cell);
    }
    Ok(cells)
}

pub async fn record(read_models: &ReadStore, id: i64) -> Result<Option<RecordRow>, QueryError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM rm_tanqueos t WHERE t.id = $1");
    by_id(read_models, &sql, id, record_row_from).await
}

/// Which records a list covers. Each list is "any of these"; every given field narrows it.
#[derive(Debug, Default)]
pub struct RecordFilter {
    pub desde: Option<NaiveDate>,
    pub hasta: Option<NaiveDate>,
    pub bomba_id: Option<Vec<i64>>,
    pub placa_id: Option<Vec<i64>>,
    pub conductor_id: Option<Vec<i64>>,
    pub area_operacion_id: Option<Vec<i64>>,
    pub tipo_operacion: Option<Vec<String>>,
    pub concepto: Option<Vec<String>>,
    pub tipo_combustible: Option<Vec<String>>,
}

impl RecordFilter {
    /// The filter as ` WHERE …` over `rm_tanqueos t`, and the values of its placeholders.
    fn to_sql(&self) -> (String, Vec<Cell>) {
        let mut conditions: Vec<String> = Vec::new();
        let mut binds: Vec<Cell> = Vec::new();
        let mut bind = |cell: Cell| {
            binds.push(cell);
            format!("${}", binds.len())
        };
        if let Some(desde) = self.desde {
            conditions.push(format!(
                "t.fecha >= {}",
                bind(Cell::Text(Some(desde.to_string())))
            ));
        }
        if let Some(hasta) = self.hasta {
            conditions.push(format!(
                "t.fecha <= {}",
                bind(Cell::Text(Some(hasta.to_string())))
            ));
        }
        let integers = [
            ("bomba_id", &self.bomba_id),
            ("placa_id", &self.placa_id),
            ("conductor_id", &self.conductor_id),
            ("area_operacion_id", &self.area_operacion_id),
        ];
        for (column, values) in integers {
            if let Some(values) = values {
                let placeholders: Vec<String> =
                    values.iter().map(|v| bind(Cell::Int(Some(*v)))).collect();
                conditions.push(format!("t.{column} IN ({})", placeholders.join(", ")));
            }
        }
        let texts = [
            ("tipo_operacion", &self.tipo_operacion),
            ("concepto", &self.concepto),
            ("tipo_combustible", &self.tipo_combustible),
        ];
        for (column, values) in texts {
            if let Some(values) = values {
                // Enum-like columns are stored canonical (uppercase), as POST writes them.
                let placeholders: Vec<String> = values
                    .iter()
                    .map(|v| bind(Cell::Text(Some(v.to_uppercase()))))
                    .collect();
                conditions.push(format!("t.{column} IN ({})", placeholders.join(", ")));
            }
        }
        (where_clause(&conditions), binds)
    }
}

/// How many records a filter covers, voided ones included, and the totals of those in force.
#[derive(Debug, Default)]
pub struct RecordSummary {
    pub total: i64,
    pub total_galones: Decimal,
    pub total_valor: Decimal,
}

pub async fn summary(
    read_models: &ReadStore,
    filter: &RecordFilter,
) -> Result<RecordSummary, QueryError> {
    let (filter, binds) = filter.to_sql();
    let sql = format!("SELECT t.cantidad_galones, t.valor_tanqueo, t.valor_anticipo, t.anulado FROM rm_tanqueos t{filter}");
    let rows = query_with(&sql, &binds)
        .fetch_all(read_models.pool())
        .await?;
    let mut summary = RecordSummary {
        total: rows.len() as i64,
        ..RecordSummary::default()
    };
    for row in &rows {
        if row.try_get::<i64, _>(3)? != 0 {
            continue;
        }
        summary.total_galones += optional_decimal(row, 0)?.unwrap_or_default();
        summary.total_valor += optional_decimal(row, 1)?.unwrap_or_default();
    }
    Ok(summary)
}

/// A record of a list, with the names of what it points at.
#[derive(Debug)]
pub struct ListedRecord {
    pub record: RecordRow,
    pub placa: Option<String>,
    pub nombre_conductor: Option<String>,
    pub nombre_bomba: Option<String>,
    pub nombre_area_operacion: Option<String>,
}

/// Up to `limit` records after skipping `offset`, newest date first (then newest id).
pub async fn page(
    read_models: &ReadStore,
    filter: &RecordFilter,
    limit: i64,
    offset: i64,
) -> Result<Vec<ListedRecord>, QueryError> {
    let (filter, binds) = filter.to_sql();
    let sql = format!(
        "SELECT {RECORD_COLUMNS}, p.placa, c.conductor, b.bomba, a.nombre FROM rm_tanqueos t \
         LEFT JOIN rm_placas p ON p.id = t.placa_id \
         LEFT JOIN rm_conductores c ON c.id = t.conductor_id \
         LEFT JOIN rm_bombas b ON b.id = t.bomba_id \
         LEFT JOIN rm_areas_operacion a ON a.id = t.area_operacion_id{filter} \
         ORDER BY t.fecha DESC, t.id DESC LIMIT {limit} OFFSET {offset}"
    );
    let rows = query_with(&sql, &binds)
        .fetch_all(read_models.pool())
        .await?;
    let names = RECORD_FIELDS.len();
    rows.iter()
        .map(|row| {
            Ok(ListedRecord {
                record: record_row_from(row)?,
                placa: row.try_get(names)?,
                nombre_conductor: row.try_get(names + 1)?,
                nombre_bomba: row.try_get(names + 2)?,
                nombre_area_operacion: row.try_get(names + 3)?,
            })
        })
        .collect()
}

/// A refuel in force, by what makes an imported row its duplicate.
#[derive(Debug)]
pub struct RefuelKey {
    pub fecha: NaiveDate,
    pub placa_id: i64,
    pub valor_tanqueo: Decimal,
}

/// The station's refuels (not advances, not voided); rows lacking a part of the key are left out,
/// since no import can repeat them.
pub async fn refuels_in_force(
    read_models: &ReadStore,
    bomba_id: i64,
) -> Result<Vec<RefuelKey>, QueryError> {
    let rows = sqlx::query(
        "SELECT fecha, placa_id, valor_tanqueo FROM rm_tanqueos \
         WHERE bomba_id = $1 AND anulado = 0 AND tipo_operacion = 'TANQUEO'",
    )
    .bind(bomba_id)
    .fetch_all(read_models.pool())
    .await?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in &rows {
        let fecha = row.try_get::<String, _>(0)?.parse::<NaiveDate>().ok();
        let placa_id = row.try_get::<Option<i64>, _>(1)?;
        let valor_tanqueo = optional_decimal(row, 2)?;
        if let (Some(fecha), Some(placa_id), Some(valor_tanqueo)) = (fecha, placa_id, valor_tanqueo)
        {
            keys.push(RefuelKey {
                fecha,
                placa_id,
                valor_tanqueo,
            });
        }
    }
    Ok(keys)
}
