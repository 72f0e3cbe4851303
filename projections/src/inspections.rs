//! Self-inspections (seed 003) as read-model rows: the reference data the admin lists show, and
//! one row per inspection with its current status.

use aggregates::inspection::{InspectionEvent, InspectionHash, InspectionStatus, Inspections};
use cqrs_es::Aggregate;

use crate::{decode, flag, instant, int, text, Change, FoldError, Projection, Recorded, Row};

pub const COMPANIES: &str = "rm_empresas";
pub const OPERATION_TYPES: &str = "rm_tipos_operacao";
pub const QUESTIONNAIRES: &str = "rm_questionarios";
pub const USERS: &str = "rm_usuarios";
pub const INSPECTIONS: &str = "rm_auto_inspecoes";
pub const WEBHOOKS: &str = "rm_webhooks";

pub struct InspectionsProjection;

fn active(table: &'static str, id: i64, ativo: bool) -> Change {
    Change::Update {
        table,
        key: vec![("id", int(id))],
        values: vec![("ativo", flag(ativo))],
    }
}

/// An inspection concluded or cancelled.
fn closed(event: &Recorded, hash: InspectionHash, status: InspectionStatus) -> Change {
    Change::Update {
        table: INSPECTIONS,
        key: vec![("hash", text(hash.as_str().to_string()))],
        values: vec![
            ("status", text(status.as_str().to_string())),
            ("atualizado_em", instant(&event.recorded_at)),
        ],
    }
}

impl Projection for InspectionsProjection {
    fn name(&self) -> &'static str {
        "auto_inspecao"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            COMPANIES,
            OPERATION_TYPES,
            QUESTIONNAIRES,
            USERS,
            INSPECTIONS,
            WEBHOOKS,
        ]
    }

    fn apply(&self, event: &Recorded) -> Result<Vec<Change>, FoldError> {
        if event.stream_type != Inspections::TYPE {
            return Ok(Vec::new());
        }
        use InspectionEvent as E;
        let change = match decode(event)? {
            E::CompanyRegistered {
                id,
                nome,
                bloquear_placas_repetidas,
                ..
            } => Change::Upsert {
                table: COMPANIES,
                key: vec![("id", int(id))],
                values: vec![
                    ("nome", text(nome)),
                    ("bloquear_placas_repetidas", flag(bloquear_placas_repetidas)),
                    ("ativo", flag(true)),
                ],
            },
            E::CompanyChanged {
                id,
                ativo,
                bloquear_placas_repetidas,
            } => {
                let mut values: Row = Vec::new();
                if let Some(ativo) = ativo {
                    values.push(("ativo", flag(ativo)));
                }
                if let Some(bloquear) = bloquear_placas_repetidas {
                    values.push(("bloquear_placas_repetidas", flag(bloquear)));
                }
                if values.is_empty() {
                    return Ok(Vec::new());
                }
                Change::Update {
                    table: COMPANIES,
                    key: vec![("id", int(id))],
                    values,
                }
            }
            E::OperationTypeRegistered { id, nome, ativo } => Change::Upsert {
                table: OPERATION_TYPES,
                key: vec![("id", int(id))],
                values: vec![("nome", text(nome)), ("ativo", flag(ativo))],
            },
            E::OperationTypeChanged { id, ativo } => active(OPERATION_TYPES, id, ativo),
            E::QuestionnaireRegistered {
                id,
                nome,
                ativo,
                tipos_operacao,
            } => Change::Upsert {
                table: QUESTIONNAIRES,
                key: vec![("id", int(id))],
                values: vec![
                    ("nome", text(nome)),
                    ("ativo", flag(ativo)),
                    (
                        "tipos_operacao",
                        text(serde_json::Value::from(tipos_operacao).to_string()),
                    ),
                ],
            },
            E::QuestionnaireChanged { id, ativo } => active(QUESTIONNAIRES, id, ativo),
            E::UserRegistered { id, nome } => Change::Upsert {
                table: USERS,
                key: vec![("id", int(id))],
                values: vec![("nome", text(nome)), ("ativo", flag(true))],
            },
            E::UserChanged { id, ativo } => active(USERS, id, ativo),
            E::WebhookRegistered {
                id,
                empresa_id,
                url,
                eventos,
                secret_sealed,
            } => Change::Upsert {
                table: WEBHOOKS,
                key: vec![("id", int(id))],
                values: vec![
                    ("empresa_id", int(empresa_id)),
                    ("url", text(url)),
                    (
                        "eventos",
                        text(serde_json::Value::from(eventos).to_string()),
                    ),
                    ("secret_sealed", text(secret_sealed)),
                    // Deliveries are scheduled for the webhooks registered before an event.
                    ("posicao", int(event.position)),
                ],
            },
            E::InspectionRequested { inspection: i } => Change::Upsert {
                table: INSPECTIONS,
                key: vec![("hash", text(i.hash.as_str().to_string()))],
                values: vec![
                    ("empresa_id", int(i.empresa_id)),
                    ("id_tipo_operacao", int(i.id_tipo_operacao)),
                    ("veiculo_placa", text(i.veiculo_placa.as_str().to_string())),
                    ("veiculo_tipo", int(i.veiculo_tipo)),
                    ("veiculo_nome", text(i.veiculo_nome)),
                    ("cliente_nome", text(i.cliente_nome)),
                    ("cliente_email", text(i.cliente_email)),
                    (
                        "cliente_numero",
                        text(i.cliente_numero.as_str().to_string()),
                    ),
                    ("criado_por", int(i.criado_por)),
                    ("selecionar_galeria", flag(i.selecionar_galeria)),
                    ("enviar_para_usuario", flag(i.enviar_para_usuario)),
                    (
                        "status",
                        text(InspectionStatus::Pendente.as_str().to_string()),
                    ),
                    ("link", text(None)),
                    ("criado_em", instant(&event.recorded_at)),
                    ("atualizado_em", instant(&event.recorded_at)),
                ],
            },
            E::InspectionCreated { hash, status, link } => Change::Update {
                table: INSPECTIONS,
                key: vec![("hash", text(hash.as_str().to_string()))],
                values: vec![
                    ("status", text(status.as_str().to_string())),
                    ("link", text(link)),
                    ("atualizado_em", instant(&event.recorded_at)),
                ],
            },
            E::InspectionConcluded { hash, .. } => closed(event, hash, InspectionStatus::Concluida),
            E::InspectionCancelled { hash, .. } => closed(event, hash, InspectionStatus::Cancelada),
        };
        Ok(vec![change])
    }
}
