//! The `alertas` read model: one row per alert, as `GET /api/alertas` lists it, folded from the
//! alerts' own streams (flagged, cleared, reviewed).

use aggregates::alert::{Alert, AlertEvent, AlertStatus, Resolution};
use cqrs_es::Aggregate;

use crate::{decode, instant, int, text, Cell, Change, FoldError, Projection, Recorded};

pub const TABLE: &str = "rm_alertas";

pub struct AlertsProjection;

fn key(alerta_id: impl std::fmt::Display) -> Vec<(&'static str, Cell)> {
    vec![("id", text(alerta_id.to_string()))]
}

impl Projection for AlertsProjection {
    fn name(&self) -> &'static str {
        "alertas"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TABLE]
    }

    fn apply(&self, event: &Recorded) -> Result<Vec<Change>, FoldError> {
        if event.stream_type != Alert::TYPE {
            return Ok(Vec::new());
        }
        let at = instant(&event.recorded_at);
        let change = match decode::<AlertEvent>(event)? {
            AlertEvent::AnomalyFlagged {
                alerta_id,
                hallazgo,
            } => {
                let evidencia =
                    serde_json::to_string(&hallazgo.evidencia).map_err(|e| FoldError {
                        position: event.position,
                        reason: e.to_string(),
                    })?;
                // A flag after a correction opens the alert anew: the earlier review and
                // closing stay in the log, not in the current row.
                Change::Upsert {
                    table: TABLE,
                    key: key(alerta_id),
                    values: vec![
                        ("regla", text(hallazgo.regla.as_str().to_string())),
                        ("severidad", text(hallazgo.severidad.as_str().to_string())),
                        ("estado", text(AlertStatus::Abierta.as_str().to_string())),
                        ("evidencia", text(evidencia)),
                        ("tanqueo_id", int(hallazgo.tanqueo_id)),
                        ("placa_id", int(hallazgo.placa_id)),
                        ("bomba_id", int(hallazgo.bomba_id)),
                        ("fecha", text(hallazgo.fecha.to_string())),
                        ("cierre", Cell::Text(None)),
                        ("revisado_por", Cell::Text(None)),
                        ("revisado_en", Cell::Text(None)),
                        ("resolucion", Cell::Text(None)),
                        ("nota", Cell::Text(None)),
                        ("posicion", int(event.position)),
                        ("actualizado_en", at),
                    ],
                }
            }
            AlertEvent::AnomalyCleared { alerta_id, cierre } => Change::Update {
                table: TABLE,
                key: key(alerta_id),
                values: vec![
                    ("estado", text(AlertStatus::Resuelta.as_str().to_string())),
                    ("cierre", text(cierre.as_str().to_string())),
                    ("actualizado_en", at),
                ],
            },
            AlertEvent::AnomalyReviewed {
                alerta_id,
                resolucion,
                nota,
                revisor,
            } => {
                let estado = match resolucion {
                    Resolution::Confirmada => AlertStatus::Confirmada,
                    Resolution::Descartada => AlertStatus::Descartada,
                };
                Change::Update {
                    table: TABLE,
                    key: key(alerta_id),
                    values: vec![
                        ("estado", text(estado.as_str().to_string())),
                        ("revisado_por", text(revisor)),
                        ("revisado_en", at.clone()),
                        ("resolucion", text(resolucion.as_str().to_string())),
                        ("nota", text(nota)),
                        ("actualizado_en", at),
                    ],
                }
            }
        };
        Ok(vec![change])
    }
}
