//! The double-entry journal: every anticipo, tanqueo, correction and void posts balanced entries.
//!
//! - An anticipo debits the station's prepaid account and credits cash.
//! - A tanqueo debits fuel expense for its plate and area and credits the station's prepaid
//!   account, so that account's balance is always the station's balance.
//! - A correction reverses the original posting and posts the corrected one; a void reverses.

use aggregates::fuel::{FuelEvent, FuelRecord, FuelStation, TipoOperacion};
use cqrs_es::Aggregate;
use rust_decimal::Decimal;

use crate::{decode, int, text, Cell, Change, FoldError, Projection, Recorded};

pub const ENTRIES: &str = "rm_asientos";
pub const CASH: &str = "1105-caja";

pub fn prepaid_account(bomba_id: i64) -> String {
    format!("1330-anticipos-bomba-{bomba_id}")
}

pub fn fuel_expense_account(placa_id: Option<i64>, area_operacion_id: i64) -> String {
    match placa_id {
        Some(placa) => format!("5195-combustible-placa-{placa}-area-{area_operacion_id}"),
        None => format!("5195-combustible-area-{area_operacion_id}"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub cuenta: String,
    pub debe: Decimal,
    pub haber: Decimal,
    pub tanqueo_id: i64,
    pub descripcion: String,
}

fn posting(record: &FuelRecord, descripcion: &str) -> Vec<Entry> {
    let entry = |cuenta: String, debe: Decimal, haber: Decimal| Entry {
        cuenta,
        debe,
        haber,
        tanqueo_id: record.id,
        descripcion: descripcion.to_string(),
    };
    match record.tipo_operacion {
        TipoOperacion::Anticipo => {
            let valor = record.valor_anticipo.unwrap_or_default();
            vec![
                entry(prepaid_account(record.bomba_id), valor, Decimal::ZERO),
                entry(CASH.to_string(), Decimal::ZERO, valor),
            ]
        }
        TipoOperacion::Tanqueo => {
            let valor = record.valor_tanqueo.unwrap_or_default();
            vec![
                entry(
                    fuel_expense_account(record.placa_id, record.area_operacion_id),
                    valor,
                    Decimal::ZERO,
                ),
                entry(prepaid_account(record.bomba_id), Decimal::ZERO, valor),
            ]
        }
    }
}

fn reversal(record: &FuelRecord, descripcion: &str) -> Vec<Entry> {
    posting(record, descripcion)
        .into_iter()
        .map(|e| Entry {
            debe: e.haber,
            haber: e.debe,
            ..e
        })
        .collect()
}

/// The entries one fuel event posts; they always balance.
pub fn entries(event: &FuelEvent) -> Vec<Entry> {
    let entries = match event {
        FuelEvent::AnticipoPaid { record } => posting(record, "Anticipo"),
        FuelEvent::TanqueoRecorded { record } => posting(record, "Tanqueo"),
        FuelEvent::TanqueoCorrected { antes, despues, .. } => {
            let mut entries = reversal(antes, "Corrección: reverso");
            entries.extend(posting(despues, "Corrección"));
            entries
        }
        FuelEvent::TanqueoVoided { record, .. } => reversal(record, "Anulación"),
        FuelEvent::OverdraftPolicyChanged { .. }
        | FuelEvent::PeriodClosed { .. }
        | FuelEvent::PeriodReopened { .. } => Vec::new(),
    };
    debug_assert_eq!(
        entries.iter().map(|e| e.debe).sum::<Decimal>(),
        entries.iter().map(|e| e.haber).sum::<Decimal>()
    );
    entries
}

pub struct JournalProjection;

impl Projection for JournalProjection {
    fn name(&self) -> &'static str {
        "contabilidad"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[ENTRIES]
    }

    fn apply(&self, event: &Recorded) -> Result<Vec<Change>, FoldError> {
        if event.stream_type != FuelStation::TYPE {
            return Ok(Vec::new());
        }
        let fuel_event: FuelEvent = decode(event)?;
        let fecha = match &fuel_event {
            FuelEvent::AnticipoPaid { record } | FuelEvent::TanqueoRecorded { record } => {
                record.fecha
            }
            FuelEvent::TanqueoCorrected { despues, .. } => despues.fecha,
            FuelEvent::TanqueoVoided { record, .. } => record.fecha,
            FuelEvent::OverdraftPolicyChanged { .. }
            | FuelEvent::PeriodClosed { .. }
            | FuelEvent::PeriodReopened { .. } => return Ok(Vec::new()),
        };
        let registrado_en = event
            .recorded_at
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        Ok(entries(&fuel_event)
            .into_iter()
            .enumerate()
            .map(|(line, entry)| Change::Upsert {
                table: ENTRIES,
                key: vec![
                    ("posicion", int(event.position)),
                    ("linea", int(line as i64)),
                ],
                values: vec![
                    ("cuenta", text(entry.cuenta)),
                    ("debe", Cell::Text(Some(entry.debe.to_string()))),
                    ("haber", Cell::Text(Some(entry.haber.to_string()))),
                    ("tanqueo_id", int(entry.tanqueo_id)),
                    ("fecha", text(fecha.format("%Y-%m-%d").to_string())),
                    ("descripcion", text(entry.descripcion)),
                    ("registrado_en", text(registrado_en.clone())),
                ],
            })
            .collect())
    }
}
