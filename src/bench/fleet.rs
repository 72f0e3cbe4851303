//! The fleet every scenario works on, registered through the HTTP API as an operator would: areas,
//! stations that may go below zero, plates and drivers, in arrays as large as each endpoint takes.

use hyper::{Method, StatusCode};
use rand::Rng;
use serde_json::{json, Value};

use super::client::Api;
use super::{BenchError, FleetSize};
use crate::http;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Station {
    pub id: i64,
    pub area_id: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Fleet {
    /// In creation order; the first is the hottest under Zipf.
    pub stations: Vec<Station>,
    pub plates: Vec<i64>,
    pub drivers: Vec<i64>,
}

impl Fleet {
    pub fn station_ids(&self) -> Vec<i64> {
        self.stations.iter().map(|s| s.id).collect()
    }
}

/// Registers a fleet of `size`. Names and plates carry a random tag, so against a running service
/// that already has a fleet the plates never collide and the new stations start at zero.
pub(crate) async fn create(api: &Api, size: FleetSize) -> Result<Fleet, BenchError> {
    let tag = format!("{:06X}", rand::thread_rng().gen::<u32>() & 0xFF_FFFF);

    let areas: Vec<Value> = (0..size.areas)
        .map(|i| json!({ "nombre": format!("Área bench {tag} {i}") }))
        .collect();
    let area_ids = register(api, "/api/areas-operacion", areas, http::areas::BATCH_MAX).await?;

    let area_of = |i: usize| area_ids[i % area_ids.len()];
    let stations: Vec<Value> = (0..size.stations)
        .map(|i| {
            json!({
                "bomba": format!("Estación bench {tag} {i}"),
                "area_operacion_id": area_of(i),
                "permitir_saldo_negativo": true,
            })
        })
        .collect();
    let station_ids = register(api, "/api/bombas", stations, http::bombas::BATCH_MAX).await?;

    // Plates are letters and digits only, at most 20: "BN" + 6-digit tag + index.
    let plates: Vec<Value> = (0..size.plates)
        .map(|i| json!({ "placa": format!("BN{tag}{i:05}"), "estado": "ACTIVADA" }))
        .collect();
    let plates = register(api, "/api/placas", plates, http::placas::BATCH_MAX).await?;

    let drivers: Vec<Value> = (0..size.drivers)
        .map(|i| {
            json!({
                "conductor": format!("Conductor bench {tag} {i}"),
                "area_principal": area_of(i),
            })
        })
        .collect();
    let drivers = register(
        api,
        "/api/conductores",
        drivers,
        http::conductores::BATCH_MAX,
    )
    .await?;

    Ok(Fleet {
        stations: station_ids
            .iter()
            .enumerate()
            .map(|(i, &id)| Station {
                id,
                area_id: area_of(i),
            })
            .collect(),
        plates,
        drivers,
    })
}

/// POSTs `items` in arrays of at most `batch_max`; answers the ids in order.
async fn register(
    api: &Api,
    path: &str,
    items: Vec<Value>,
    batch_max: usize,
) -> Result<Vec<i64>, BenchError> {
    let mut ids = Vec::with_capacity(items.len());
    for batch in items.chunks(batch_max.max(1)) {
        let body = Value::Array(batch.to_vec()).to_string();
        let created = api
            .expect(Method::POST, path, Some(body), StatusCode::CREATED)
            .await?;
        let answered: Vec<i64> = created
            .as_array()
            .map(|records| records.iter().filter_map(|r| r["id"].as_i64()).collect())
            .unwrap_or_default();
        if answered.len() != batch.len() {
            return Err(BenchError::Http {
                request: format!("POST {path}"),
                reason: format!(
                    "registered {} of {} (the answer has no id for some)",
                    answered.len(),
                    batch.len()
                ),
            });
        }
        ids.extend(answered);
    }
    Ok(ids)
}
