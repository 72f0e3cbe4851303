//! What a fuel record may point at, known in memory: which drivers, plates, stations, operation
//! areas and fuel products exist, and the overdraft policy each station was registered with.
//!
//! Checking a refuel's references against the read models costs several database round trips per
//! request; this index answers from memory. It is fed by the log itself (the registry streams,
//! not the read models), so it never lags behind a projection, and it refreshes itself on a miss
//! (a record another process has just created is found).
//!
//! Nothing here goes stale: what it holds never changes once recorded. A station's policy
//! *changes* are recorded in the station's own stream, where the command deciding a refuel reads
//! them (`aggregates::fuel`); the registered policy only applies until the first change. (Policy
//! changes recorded in the registry by earlier versions are still folded here, as the registered
//! policy they replaced.)

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use aggregates::codec;
use aggregates::fleet::{Fleet, FleetEvent, FLEET_STREAM_ID};
use aggregates::operation_area::OPERATION_AREAS_STREAM_ID;
use aggregates::period::{InheritedClosures, Periodo};
use aggregates::registry::{
    Catalog, CatalogEvent, DriverEvent, Drivers, StationEvent, Stations, REGISTRY_STREAM_ID,
};
use aggregates::{OperationAreaEvent, OperationAreas};
use cqrs_es::Aggregate;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, RwLock};

use crate::store::{SharedLog, StoreError};

/// The `tipo_combustible` catalogue's stream (`CatalogKind::FuelProduct.slug()`).
const FUEL_PRODUCTS_STREAM_ID: &str = "combustibles";

/// The registry streams the index follows: `(stream type, stream id)`.
const FOLLOWED: [(&str, &str); 5] = [
    (OperationAreas::TYPE, OPERATION_AREAS_STREAM_ID),
    (Drivers::TYPE, REGISTRY_STREAM_ID),
    (Stations::TYPE, REGISTRY_STREAM_ID),
    (Catalog::TYPE, FUEL_PRODUCTS_STREAM_ID),
    (Fleet::TYPE, FLEET_STREAM_ID),
];

#[derive(Debug, Default)]
struct Index {
    /// Version read so far of each followed stream, in [`FOLLOWED`] order.
    versions: [i64; FOLLOWED.len()],
    areas: HashSet<i64>,
    drivers: HashSet<i64>,
    plates: HashSet<i64>,
    /// Station id → may it go below zero.
    stations: HashMap<i64, bool>,
    /// Station id → the months closed for every station when it was registered. Fixed once
    /// folded: later closes and reopens reach the station through its own stream.
    inherited: HashMap<i64, Arc<InheritedClosures>>,
    /// The months closed for every station as far as the registry's stream is folded.
    closed: InheritedClosures,
    /// Shared by the stations registered while the same months were closed (nearly all).
    closed_shared: Arc<InheritedClosures>,
    fuel_products: Vec<String>,
    refreshed: Option<Instant>,
}

/// A reference the index can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    OperationArea(i64),
    Driver(i64),
    Plate(i64),
    Station(i64),
}

pub struct References {
    log: SharedLog,
    index: RwLock<Index>,
    /// One refresh at a time; the others wait for it and then read its result.
    refreshing: Mutex<()>,
}

impl References {
    pub fn new(log: SharedLog) -> Self {
        Self {
            log,
            index: RwLock::new(Index::default()),
            refreshing: Mutex::new(()),
        }
    }

    /// Whether `reference` exists, refreshing from the log once if the index does not know it.
    pub async fn exists(&self, reference: Known) -> Result<bool, StoreError> {
        if self.index.read().await.knows(reference) {
            return Ok(true);
        }
        self.refresh().await?;
        Ok(self.index.read().await.knows(reference))
    }

    /// The overdraft policy the station was registered with (`None`: no such station),
    /// refreshing from the log once if the index does not know the station.
    pub async fn registered_policy(&self, bomba_id: i64) -> Result<Option<bool>, StoreError> {
        if let Some(policy) = self.index.read().await.stations.get(&bomba_id) {
            return Ok(Some(*policy));
        }
        self.refresh().await?;
        Ok(self.index.read().await.stations.get(&bomba_id).copied())
    }

    /// The months closed on `bomba_id` by inheritance (see `aggregates::period`); `None`: no
    /// such station. What a known station inherited never changes, so the index answers it.
    pub async fn inherited_closures(
        &self,
        bomba_id: i64,
    ) -> Result<Option<Arc<InheritedClosures>>, StoreError> {
        if let Some(inherited) = self.index.read().await.inherited.get(&bomba_id) {
            return Ok(Some(inherited.clone()));
        }
        self.refresh().await?;
        Ok(self.index.read().await.inherited.get(&bomba_id).cloned())
    }

    /// The catalogue's spelling of a fuel product, matched without regard to case.
    pub async fn fuel_product(&self, wanted: &str) -> Result<Option<String>, StoreError> {
        let find = |index: &Index| {
            let wanted = wanted.trim().to_uppercase();
            index
                .fuel_products
                .iter()
                .find(|name| name.to_uppercase() == wanted)
                .cloned()
        };
        if let Some(found) = find(&*self.index.read().await) {
            return Ok(Some(found));
        }
        self.refresh().await?;
        Ok(find(&*self.index.read().await))
    }

    /// Called after this process appended to `stream_type`: if the index follows it, the next
    /// lookup reads the log first, so a process always sees its own writes at once.
    pub async fn appended_to(&self, stream_type: &str) {
        if FOLLOWED
            .iter()
            .any(|(followed, _)| *followed == stream_type)
        {
            self.index.write().await.refreshed = None;
        }
    }

    /// Reads what the followed streams gained since the last refresh. Callers that arrive while
    /// one runs wait for it instead of repeating it.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let _only_one = self.refreshing.lock().await;
        if self
            .index
            .read()
            .await
            .refreshed
            .is_some_and(|at| at >= started)
        {
            return Ok(());
        }
        let versions = self.index.read().await.versions;
        let mut gained = Vec::with_capacity(FOLLOWED.len());
        for ((stream_type, stream_id), after) in FOLLOWED.iter().zip(versions) {
            gained.push(self.log.read_stream(stream_type, stream_id, after).await?);
        }
        let mut index = self.index.write().await;
        for (slot, events) in gained.into_iter().enumerate() {
            for stored in events {
                index.fold(slot, &stored.event_type, &stored.payload)?;
                index.versions[slot] = stored.version;
            }
        }
        index.refreshed = Some(started);
        Ok(())
    }
}

fn decoded<E: DeserializeOwned>(
    event_type: &str,
    payload: &serde_json::Value,
) -> Result<E, StoreError> {
    codec::decode(event_type, payload).map_err(|e| StoreError::Corrupt {
        position: 0,
        reason: format!("{event_type}: {e}"),
    })
}

impl Index {
    fn knows(&self, reference: Known) -> bool {
        match reference {
            Known::OperationArea(id) => self.areas.contains(&id),
            Known::Driver(id) => self.drivers.contains(&id),
            Known::Plate(id) => self.plates.contains(&id),
            Known::Station(id) => self.stations.contains_key(&id),
        }
    }

    fn fold(
        &mut self,
        slot: usize,
        event_type: &str,
        payload: &serde_json::Value,
    ) -> Result<(), StoreError> {
        match FOLLOWED[slot].0 {
            OperationAreas::TYPE => {
                let OperationAreaEvent::OperationAreaRegistered { id, .. } =
                    decoded(event_type, payload)?;
                self.areas.insert(id);
            }
            Drivers::TYPE => {
                let DriverEvent::DriverRegistered { id, .. } = decoded(event_type, payload)?;
                self.drivers.insert(id);
            }
            Stations::TYPE => match decoded(event_type, payload)? {
                StationEvent::StationRegistered {
                    id,
                    permitir_saldo_negativo,
                    ..
                } => {
                    self.stations.insert(id, permitir_saldo_negativo);
                    self.inherited.insert(id, self.closed_shared.clone());
                }
                StationEvent::StationUpdated { id, changes } => {
                    if let Some(permitir) = changes.permitir_saldo_negativo {
                        self.stations.insert(id, permitir);
                    }
                }
                StationEvent::AccountingPeriodClosed { anio, mes, .. } => {
                    self.closed.insert(Periodo { anio, mes });
                    self.closed_shared = Arc::new(self.closed.clone());
                }
                StationEvent::AccountingPeriodReopened { anio, mes, .. } => {
                    self.closed.remove(&Periodo { anio, mes });
                    self.closed_shared = Arc::new(self.closed.clone());
                }
            },
            Catalog::TYPE => {
                let CatalogEvent::CatalogEntryAdded { nombre, .. } = decoded(event_type, payload)?;
                self.fuel_products.push(nombre);
            }
            // Only plates matter here; the fleet stream's other events are skipped unread.
            _ if event_type == "PlateRegistered" => {
                if let FleetEvent::PlateRegistered { plate_id, .. } = decoded(event_type, payload)?
                {
                    self.plates.insert(plate_id);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuel_products_stream_is_the_catalogue_tipo_combustible_names() {
        use aggregates::registry::CatalogKind;
        assert_eq!(FUEL_PRODUCTS_STREAM_ID, CatalogKind::FuelProduct.slug());
    }
}
