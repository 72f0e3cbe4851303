//! Alerts (`alertas`): what the fuel checks ([`crate::anomaly`]) found on a refuel, and how an
//! auditor worked it. One stream per alert, named by a UUID derived from the refuel and the rule
//! ([`alert_id`]), so a check that finds the same thing again on a replay lands on the same
//! alert instead of opening a second one.
//!
//! An alert is `ABIERTA` when flagged, `CONFIRMADA` or `DESCARTADA` once reviewed, and `RESUELTA`
//! when a correction of the refuel made the finding stop holding, or the refuel was voided. A
//! correction that makes the finding hold again (or hold on other figures) flags it again: it is
//! `ABIERTA` once more, its earlier review kept in the log but no longer its current one, since
//! the reviewer judged other figures.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::anomaly::{Finding, Rule, Severity};

/// The longest review note accepted, in characters.
pub const NOTA_LEN_MAX: usize = 2_000;

/// The alert that `rule` raises on the refuel `tanqueo_id`: the same on every evaluation, a
/// UUID v8 from sha256.
pub fn alert_id(tanqueo_id: i64, rule: Rule) -> Uuid {
    let mut hash = Sha256::new();
    hash.update(b"fleet-ledger alerta\0");
    hash.update(tanqueo_id.to_be_bytes());
    hash.update(rule.as_str().as_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// An auditor's verdict on an alert (`resolucion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    /// The anomaly is real.
    Confirmada,
    /// A false alarm.
    Descartada,
}

impl Resolution {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "confirmada" => Some(Self::Confirmada),
            "descartada" => Some(Self::Descartada),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmada => "confirmada",
            Self::Descartada => "descartada",
        }
    }
}

/// Why an alert stopped holding (`cierre`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClearReason {
    /// The refuel was corrected and the rule no longer finds anything on it.
    TanqueoCorregido,
    /// The refuel was voided.
    TanqueoAnulado,
}

impl ClearReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TanqueoCorregido => "TANQUEO_CORREGIDO",
            Self::TanqueoAnulado => "TANQUEO_ANULADO",
        }
    }
}

/// Where an alert stands (`estado`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertStatus {
    /// Never flagged: the stream is empty.
    #[default]
    Ninguna,
    Abierta,
    Confirmada,
    Descartada,
    Resuelta,
}

impl AlertStatus {
    /// The states an alert can be listed in (`estado=`).
    pub const LISTED: [Self; 4] = [
        Self::Abierta,
        Self::Confirmada,
        Self::Descartada,
        Self::Resuelta,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ninguna => "NINGUNA",
            Self::Abierta => "ABIERTA",
            Self::Confirmada => "CONFIRMADA",
            Self::Descartada => "DESCARTADA",
            Self::Resuelta => "RESUELTA",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::LISTED.into_iter().find(|s| s.as_str() == raw)
    }
}

/// What an alert says about its refuel: the finding and where the refuel happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flagged {
    pub regla: Rule,
    pub severidad: Severity,
    /// The values the rule was decided on.
    pub evidencia: BTreeMap<String, Decimal>,
    pub tanqueo_id: i64,
    pub bomba_id: i64,
    pub placa_id: i64,
    pub fecha: NaiveDate,
}

impl Flagged {
    pub fn of(finding: Finding, bomba_id: i64, placa_id: i64, fecha: NaiveDate) -> Self {
        Self {
            regla: finding.rule,
            severidad: finding.severity,
            evidencia: finding.evidence,
            tanqueo_id: finding.tanqueo_id,
            bomba_id,
            placa_id,
            fecha,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertEvent {
    AnomalyFlagged {
        alerta_id: Uuid,
        hallazgo: Flagged,
    },
    AnomalyCleared {
        alerta_id: Uuid,
        cierre: ClearReason,
    },
    AnomalyReviewed {
        alerta_id: Uuid,
        resolucion: Resolution,
        nota: Option<String>,
        /// The token's subject.
        revisor: String,
    },
}

impl DomainEvent for AlertEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AnomalyFlagged { .. } => "AnomalyFlagged",
            Self::AnomalyCleared { .. } => "AnomalyCleared",
            Self::AnomalyReviewed { .. } => "AnomalyReviewed",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        crate::upcast::REGISTRY
            .current_version(&self.event_type())
            .to_string()
    }
}

#[derive(Debug, Clone)]
pub enum AlertCommand {
    /// The rule holds on the refuel with these figures.
    Flag { alerta_id: Uuid, flagged: Flagged },
    /// The rule no longer holds on the refuel.
    Clear {
        alerta_id: Uuid,
        cierre: ClearReason,
    },
    Review {
        alerta_id: Uuid,
        resolucion: Resolution,
        nota: Option<String>,
        revisor: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    #[error("No se encontró la alerta {id}")]
    NotFound { id: Uuid },
    #[error("La alerta {id} ya fue revisada ({resolucion})")]
    AlreadyReviewed { id: Uuid, resolucion: &'static str },
    #[error("La alerta {id} está resuelta: el tanqueo fue corregido o anulado")]
    Resolved { id: Uuid },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    status: AlertStatus,
    flagged: Option<Flagged>,
}

impl Alert {
    pub fn status(&self) -> AlertStatus {
        self.status
    }
}

impl Aggregate for Alert {
    const TYPE: &'static str = "alerta";
    type Command = AlertCommand;
    type Event = AlertEvent;
    type Error = AlertError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            AlertCommand::Flag { alerta_id, flagged } => {
                let holds = matches!(
                    self.status,
                    AlertStatus::Abierta | AlertStatus::Confirmada | AlertStatus::Descartada
                );
                // The same figures again (a replayed batch, a correction of another field):
                // nothing new to say.
                if holds && self.flagged.as_ref() == Some(&flagged) {
                    return Ok(());
                }
                sink.write(
                    AlertEvent::AnomalyFlagged {
                        alerta_id,
                        hallazgo: flagged,
                    },
                    self,
                )
                .await;
            }
            AlertCommand::Clear { alerta_id, cierre } => {
                if matches!(self.status, AlertStatus::Ninguna | AlertStatus::Resuelta) {
                    return Ok(());
                }
                sink.write(AlertEvent::AnomalyCleared { alerta_id, cierre }, self)
                    .await;
            }
            AlertCommand::Review {
                alerta_id,
                resolucion,
                nota,
                revisor,
            } => match self.status {
                AlertStatus::Ninguna => return Err(AlertError::NotFound { id: alerta_id }),
                AlertStatus::Resuelta => return Err(AlertError::Resolved { id: alerta_id }),
                AlertStatus::Confirmada | AlertStatus::Descartada => {
                    return Err(AlertError::AlreadyReviewed {
                        id: alerta_id,
                        resolucion: if self.status == AlertStatus::Confirmada {
                            Resolution::Confirmada.as_str()
                        } else {
                            Resolution::Descartada.as_str()
                        },
                    })
                }
                AlertStatus::Abierta => {
                    sink.write(
                        AlertEvent::AnomalyReviewed {
                            alerta_id,
                            resolucion,
                            nota,
                            revisor,
                        },
                        self,
                    )
                    .await;
                }
            },
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AlertEvent::AnomalyFlagged { hallazgo, .. } => {
                self.status = AlertStatus::Abierta;
                self.flagged = Some(hallazgo);
            }
            AlertEvent::AnomalyCleared { .. } => self.status = AlertStatus::Resuelta,
            AlertEvent::AnomalyReviewed { resolucion, .. } => {
                self.status = match resolucion {
                    Resolution::Confirmada => AlertStatus::Confirmada,
                    Resolution::Descartada => AlertStatus::Descartada,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagged(galones: i64) -> Flagged {
        Flagged {
            regla: Rule::GalonesSobreCapacidad,
            severidad: Severity::Alta,
            evidencia: [("cantidad_galones".to_string(), Decimal::from(galones))].into(),
            tanqueo_id: 7,
            bomba_id: 1,
            placa_id: 2,
            fecha: NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(),
        }
    }

    async fn run(alert: &mut Alert, command: AlertCommand) -> Result<Vec<AlertEvent>, AlertError> {
        let sink = EventSink::default();
        alert.handle(command, &(), &sink).await?;
        let events = sink.collect().await;
        Ok(events)
    }

    fn id() -> Uuid {
        alert_id(7, Rule::GalonesSobreCapacidad)
    }

    #[tokio::test]
    async fn the_same_finding_twice_flags_once_and_new_figures_flag_again() {
        let mut alert = Alert::default();
        let flag = |g| AlertCommand::Flag {
            alerta_id: id(),
            flagged: flagged(g),
        };
        assert_eq!(run(&mut alert, flag(60)).await.unwrap().len(), 1);
        assert_eq!(run(&mut alert, flag(60)).await.unwrap(), vec![]);
        assert_eq!(run(&mut alert, flag(70)).await.unwrap().len(), 1);
        assert_eq!(alert.status(), AlertStatus::Abierta);
    }

    #[tokio::test]
    async fn a_review_is_refused_when_unknown_reviewed_or_resolved() {
        let review = || AlertCommand::Review {
            alerta_id: id(),
            resolucion: Resolution::Confirmada,
            nota: None,
            revisor: "auditor".into(),
        };
        let mut alert = Alert::default();
        assert_eq!(
            run(&mut alert, review()).await,
            Err(AlertError::NotFound { id: id() })
        );
        let flag = AlertCommand::Flag {
            alerta_id: id(),
            flagged: flagged(60),
        };
        run(&mut alert, flag.clone()).await.unwrap();
        assert_eq!(run(&mut alert, review()).await.unwrap().len(), 1);
        assert_eq!(alert.status(), AlertStatus::Confirmada);
        assert_eq!(
            run(&mut alert, review()).await,
            Err(AlertError::AlreadyReviewed {
                id: id(),
                resolucion: "confirmada"
            })
        );
        let clear = AlertCommand::Clear {
            alerta_id: id(),
            cierre: ClearReason::TanqueoAnulado,
        };
        assert_eq!(run(&mut alert, clear.clone()).await.unwrap().len(), 1);
        assert_eq!(run(&mut alert, clear).await.unwrap(), vec![]);
        assert_eq!(
            run(&mut alert, review()).await,
            Err(AlertError::Resolved { id: id() })
        );
        // Flagged again after a correction: open, to be reviewed anew.
        run(&mut alert, flag).await.unwrap();
        assert_eq!(alert.status(), AlertStatus::Abierta);
    }

    #[test]
    fn alert_ids_differ_by_refuel_and_rule() {
        assert_eq!(id(), alert_id(7, Rule::GalonesSobreCapacidad));
        assert_ne!(id(), alert_id(8, Rule::GalonesSobreCapacidad));
        assert_ne!(id(), alert_id(7, Rule::TanqueoMuyPronto));
    }
}
