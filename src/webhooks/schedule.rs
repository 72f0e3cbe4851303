//! Which deliveries an event makes (an inspection's, or an alert of the fuel checks): one per
//! webhook of the company it concerns that subscribed to it and was registered before it. Pure:
//! the inspections' processor and the fuel checks' detector answer these rows to their
//! consumers, which commit them with their checkpoints, so each delivery is scheduled exactly
//! once.

use aggregates::inspection::WebhookEvento;
use chrono::{DateTime, SecondsFormat, Utc};
use projections::{int, text, Change};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::queries::webhooks::{Subscription, PENDING};
use crate::reactor::derived_event_id;

/// The table deliveries are scheduled in.
pub const DELIVERIES: &str = "webhook_deliveries";

/// A delivery's id: derived from the event and the webhook, so a replayed step schedules the
/// same rows, and a receiver sees the same `X-Fleet-Delivery` on every retry.
pub fn delivery_id(event_id: Uuid, webhook_id: i64) -> Uuid {
    derived_event_id(event_id, &format!("webhook {webhook_id}"))
}

/// An event webhooks are told of: the company it concerns, and what it is about as it stood
/// right after it (the inspection; the alert).
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub event_id: Uuid,
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub evento: WebhookEvento,
    pub empresa_id: i64,
    pub dados: Value,
}

/// The delivery rows of `notices` for `subscriptions`, due at `now_ms`.
pub fn deliveries(notices: &[Notice], subscriptions: &[Subscription], now_ms: i64) -> Vec<Change> {
    let mut changes = Vec::new();
    for notice in notices {
        let evento = notice.evento.as_str();
        for subscription in subscriptions {
            let webhook = &subscription.webhook;
            let subscribed = webhook.empresa_id == notice.empresa_id
                && subscription.posicao < notice.position
                && webhook.eventos.iter().any(|e| e == evento);
            if !subscribed {
                continue;
            }
            let id = delivery_id(notice.event_id, webhook.id).to_string();
            let corpo = json!({
                "id": id,
                "evento": evento,
                "criado_em": notice.recorded_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                "dados": notice.dados,
            })
            .to_string();
            changes.push(Change::Upsert {
                table: DELIVERIES,
                key: vec![("id", text(id))],
                values: vec![
                    ("webhook_id", int(webhook.id)),
                    ("evento", text(evento.to_string())),
                    ("corpo", text(corpo)),
                    ("estado", text(PENDING.to_string())),
                    ("tentativas", int(0)),
                    ("criado_em_ms", int(now_ms)),
                    ("proxima_tentativa_ms", int(now_ms)),
                    ("entregue_em_ms", int(None)),
                    ("ultimo_status", int(None)),
                    ("ultimo_erro", text(None)),
                ],
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::inspections::InspectionView;
    use crate::queries::webhooks::Webhook;

    fn view(empresa_id: i64) -> InspectionView {
        InspectionView {
            hash: "ab".repeat(16),
            status: "ABERTA".into(),
            link: Some(format!("/auto-inspecao/{}", "ab".repeat(16))),
            empresa_id,
            id_tipo_operacao: 1,
            veiculo_placa: "ABC1234".into(),
            veiculo_tipo: 1,
            veiculo_nome: "Corsa".into(),
            cliente_nome: "David".into(),
            cliente_email: "david@example.com".into(),
            cliente_numero: "44999999999".into(),
            criado_por: 1,
            selecionar_galeria: "sim",
            enviar_para_usuario: "nao",
            criado_em: "2026-01-01T00:00:00Z".into(),
            atualizado_em: "2026-01-01T00:00:01Z".into(),
        }
    }

    fn subscription(id: i64, empresa_id: i64, eventos: &[&str], posicao: i64) -> Subscription {
        Subscription {
            webhook: Webhook {
                id,
                empresa_id,
                url: "https://example.com/".into(),
                eventos: eventos.iter().map(|e| e.to_string()).collect(),
            },
            posicao,
        }
    }

    #[test]
    fn one_delivery_per_subscribed_webhook_of_the_company_registered_before_the_event() {
        let event_id = Uuid::now_v7();
        let notice = Notice {
            event_id,
            position: 10,
            recorded_at: DateTime::from_timestamp(1_767_225_601, 0).unwrap(),
            evento: WebhookEvento::Criada,
            empresa_id: 1,
            dados: serde_json::to_value(view(1)).unwrap(),
        };
        let subscriptions = [
            subscription(1, 1, &["auto_inspecao.criada"], 5),
            subscription(2, 1, &["auto_inspecao.concluida"], 5), // not subscribed to it
            subscription(3, 2, &["auto_inspecao.criada"], 5),    // another company
            subscription(4, 1, &["auto_inspecao.criada"], 11),   // registered after it
            subscription(
                5,
                1,
                &["auto_inspecao.cancelada", "auto_inspecao.criada"],
                9,
            ),
        ];
        let changes = deliveries(std::slice::from_ref(&notice), &subscriptions, 42);
        let scheduled: Vec<(String, Option<i64>)> = changes
            .iter()
            .map(|change| match change {
                Change::Upsert { key, values, .. } => {
                    let projections::Cell::Text(Some(id)) = &key[0].1 else {
                        panic!("a text id")
                    };
                    let projections::Cell::Int(webhook) = values[0].1 else {
                        panic!("a webhook id")
                    };
                    (id.clone(), webhook)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            scheduled,
            vec![
                (delivery_id(event_id, 1).to_string(), Some(1)),
                (delivery_id(event_id, 5).to_string(), Some(5)),
            ]
        );
        assert_ne!(delivery_id(event_id, 1), delivery_id(event_id, 5));
        assert_eq!(
            deliveries(&[notice], &subscriptions, 42),
            changes,
            "replayed alike"
        );
        let Change::Upsert { values, .. } = &changes[0] else {
            unreachable!()
        };
        let projections::Cell::Text(Some(corpo)) = &values[2].1 else {
            panic!("a body")
        };
        let body: serde_json::Value = serde_json::from_str(corpo).unwrap();
        assert_eq!(
            body,
            json!({
                "id": delivery_id(event_id, 1).to_string(),
                "evento": "auto_inspecao.criada",
                "criado_em": "2026-01-01T00:00:01Z",
                "dados": view(1),
            })
        );
        assert!(
            corpo.starts_with(r#"{"id":"#),
            "the documented field order: {corpo}"
        );
    }
}
