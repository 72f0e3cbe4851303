//! A long history written fast: realistic fuel events appended straight to the log, many per
//! append, as years of refuels would have left them. Only the rebuild, as-of and startup
//! scenarios use it; they measure what the service does with a history, not how it got there.
//!
//! The events are the ones the service itself would write: `TanqueoRecorded` / `AnticipoPaid`
//! encoded by the domain's codec on each station's `fuel-station` stream, with their ids reserved
//! on the `fuel-record-ids` stream, so later API writes never reuse an id.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregates::codec;
use aggregates::fuel::{
    costo_por_galon, Concepto, FuelEvent, FuelRecord, FuelRecordIdEvent, FuelRecordIds,
    FuelStation, TipoOperacion,
};
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use futures_util::future::try_join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

use super::fleet::Fleet;
use super::load::Acknowledged;
use super::progress::Ticker;
use super::verify::{Expected, READ_BACK_MAX};
use super::zipf::Zipf;
use super::BenchError;
use crate::store::{AppendRequest, EventMetadata, NewEvent, SharedLog};

/// The id stream's one stream id (as the service's id blocks use it).
const ID_STREAM_ID: &str = "all";
/// Events generated and appended together when they spread over many stations: one append per
/// station touched, all committed by the group-commit writer in as few transactions as it can.
const SPREAD_CHUNK_EVENTS: usize = 20_000;
/// Events per append on a single stream. The SQLite log stamps `recorded_at` once per insert
/// statement of at most 3,000 rows (30,000 parameters, 10 columns), PostgreSQL once per
/// transaction; below that every append has one instant, and an `as_of` at an append's instant
/// covers exactly the appends up to it.
const ONE_STREAM_APPEND_EVENTS: usize = 2_500;

/// How the events spread over the fleet's stations.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Layout {
    /// Each event at a station chosen by Zipf with this exponent, as the live traffic would.
    Spread { skew: f64 },
    /// Every event on the first station: the longest history one station can have.
    OneStation,
}

/// An instant in the middle of a one-station history, and the balance the ledger knew then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Midpoint {
    pub bomba_id: i64,
    pub instant: DateTime<Utc>,
    pub saldo: Decimal,
}

pub(crate) struct Seeded {
    pub expected: Expected,
    pub events: usize,
    pub elapsed: Duration,
    /// Only for [`Layout::OneStation`].
    pub midpoint: Option<Midpoint>,
}

/// Appends `events` fuel events for `fleet` to `log`, which only this bench writes to now.
pub(crate) async fn seed(
    log: &SharedLog,
    fleet: &Fleet,
    events: usize,
    layout: Layout,
    progress: bool,
) -> Result<Seeded, BenchError> {
    let appended = Arc::new(AtomicU64::new(0));
    let ticker = {
        let appended = appended.clone();
        Ticker::start("seed", progress, move |elapsed| {
            let done = appended.load(Ordering::Relaxed);
            format!(
                "{:6.1} s  {done:>9} of {events} events appended  {:>8.0} events/s",
                elapsed.as_secs_f64(),
                done as f64 / elapsed.as_secs_f64().max(1e-9)
            )
        })
    };
    let started = Instant::now();
    let mut writer = HistoryWriter::open(log.clone(), fleet.clone(), events).await?;
    let midpoint = match layout {
        Layout::Spread { skew } => {
            let zipf = Zipf::new(fleet.stations.len(), skew);
            let mut left = events;
            while left > 0 {
                let chunk = left.min(SPREAD_CHUNK_EVENTS);
                let stations: Vec<usize> =
                    (0..chunk).map(|_| zipf.sample(&mut writer.rng)).collect();
                writer.append_chunk(&stations).await?;
                left -= chunk;
                appended.fetch_add(chunk as u64, Ordering::Relaxed);
            }
            None
        }
        Layout::OneStation => {
            let middle = events / 2;
            let mut written = 0;
            let mut midpoint = None;
            while written < events {
                let chunk = (events - written).min(ONE_STREAM_APPEND_EVENTS);
                let last_position = writer.append_chunk(&vec![0; chunk]).await?;
                written += chunk;
                appended.fetch_add(chunk as u64, Ordering::Relaxed);
                if midpoint.is_none() && written > middle {
                    midpoint = Some((last_position, writer.balance_of(0)));
                }
            }
            match midpoint {
                Some((position, saldo)) => Some(Midpoint {
                    bomba_id: fleet.stations[0].id,
                    instant: recorded_at(log, position).await?,
                    saldo,
                }),
                None => None,
            }
        }
    };
    let elapsed = started.elapsed();
    ticker.finish().await;
    Ok(Seeded {
        expected: writer.expected,
        events,
        elapsed,
        midpoint,
    })
}

async fn recorded_at(log: &SharedLog, position: i64) -> Result<DateTime<Utc>, BenchError> {
    log.read_all(position - 1, 1)
        .await?
        .first()
        .map(|event| event.recorded_at)
        .ok_or_else(|| BenchError::NotCaughtUp(format!("position {position} is not in the log")))
}

struct HistoryWriter {
    log: SharedLog,
    fleet: Fleet,
    rng: StdRng,
    metadata: EventMetadata,
    /// The id stream's version and the last id reserved on it.
    id_stream_version: i64,
    last_id: i64,
    /// Each station's stream version, by the station's index in the fleet.
    versions: Vec<i64>,
    expected: Expected,
    /// Every how many records one is kept for reading back.
    read_back_every: usize,
    records: usize,
}

impl HistoryWriter {
    async fn open(log: SharedLog, fleet: Fleet, events: usize) -> Result<Self, BenchError> {
        let ids = log
            .read_stream(FuelRecordIds::TYPE, ID_STREAM_ID, 0)
            .await?;
        let mut last_id = 0;
        for event in &ids {
            let FuelRecordIdEvent::FuelRecordIdsReserved { last, .. } =
                codec::decode(&event.event_type, &event.payload)?;
            last_id = last_id.max(last);
        }
        let mut versions = Vec::with_capacity(fleet.stations.len());
        for station in &fleet.stations {
            let stored = log
                .read_stream(FuelStation::TYPE, &station.id.to_string(), 0)
                .await?;
            versions.push(stored.last().map_or(0, |event| event.version));
        }
        Ok(Self {
            log,
            fleet,
            rng: StdRng::from_entropy(),
            metadata: EventMetadata {
                actor: Some("bench@fleet-ledger".to_string()),
                ..Default::default()
            },
            id_stream_version: ids.last().map_or(0, |event| event.version),
            last_id,
            versions,
            expected: Expected::default(),
            read_back_every: (events / READ_BACK_MAX).max(1),
            records: 0,
        })
    }

    fn balance_of(&self, station_index: usize) -> Decimal {
        let id = self.fleet.stations[station_index].id;
        self.expected.balances.get(&id).copied().unwrap_or_default()
    }

    /// One event per entry of `stations` (indexes into the fleet), with ids reserved for them
    /// first. Answers the last position written.
    async fn append_chunk(&mut self, stations: &[usize]) -> Result<i64, BenchError> {
        let first = self.last_id + 1;
        let last = self.last_id + stations.len() as i64;
        let (event_type, payload) =
            codec::encode(&FuelRecordIdEvent::FuelRecordIdsReserved { first, last })?;
        self.log
            .append(AppendRequest {
                stream_type: FuelRecordIds::TYPE.to_string(),
                stream_id: ID_STREAM_ID.to_string(),
                expected_version: self.id_stream_version,
                events: vec![NewEvent::new(event_type, payload, self.metadata.clone())],
                idempotency: None,
            })
            .await?;
        self.id_stream_version += 1;
        self.last_id = last;

        let mut by_station: BTreeMap<usize, Vec<NewEvent>> = BTreeMap::new();
        for (offset, &station_index) in stations.iter().enumerate() {
            let event = self.fuel_event(first + offset as i64, station_index)?;
            by_station.entry(station_index).or_default().push(event);
        }
        let mut requests = Vec::with_capacity(by_station.len());
        for (station_index, events) in by_station {
            let expected_version = self.versions[station_index];
            self.versions[station_index] += events.len() as i64;
            requests.push(AppendRequest {
                stream_type: FuelStation::TYPE.to_string(),
                stream_id: self.fleet.stations[station_index].id.to_string(),
                expected_version,
                events,
                idempotency: None,
            });
        }
        let log = &self.log;
        let appends = requests.into_iter().map(|request| log.append(request));
        let appended = try_join_all(appends).await?;
        Ok(appended
            .iter()
            .map(|a| a.last_position)
            .max()
            .unwrap_or_default())
    }

    /// A refuel (nine in ten) or an advance payment at the station, as the API would record it.
    fn fuel_event(&mut self, id: i64, station_index: usize) -> Result<NewEvent, BenchError> {
        let station = self.fleet.stations[station_index];
        let rng = &mut self.rng;
        let fecha = NaiveDate::from_yo_opt(2024, rng.gen_range(1..=365)).unwrap_or_default();
        let anticipo = rng.gen_ratio(1, 10);
        let record = if anticipo {
            let valor = Decimal::from(rng.gen_range(500_000..=2_500_000));
            advance_record(id, fecha, station.id, station.area_id, valor)
        } else {
            let valor = Decimal::from(rng.gen_range(50_000..=300_000));
            let galones = Decimal::new(rng.gen_range(40..=800), 1);
            FuelRecord {
                id,
                fecha,
                bomba_id: station.id,
                area_operacion_id: station.area_id,
                concepto: Concepto::Operativo,
                tipo_operacion: TipoOperacion::Tanqueo,
                observacion: None,
                saldo_disponible: None,
                conductor_id: Some(self.fleet.drivers[rng.gen_range(0..self.fleet.drivers.len())]),
                placa_id: Some(self.fleet.plates[rng.gen_range(0..self.fleet.plates.len())]),
                tipo_combustible: Some("ACPM".to_string()),
                valor_tanqueo: Some(valor),
                cantidad_galones: Some(galones),
                costo_por_galon: costo_por_galon(valor, galones),
                horometro: Some(Decimal::new(rng.gen_range(1_000..=200_000), 1)),
                valor_anticipo: None,
            }
        };
        let acknowledged = Acknowledged {
            id,
            bomba_id: station.id,
            tipo: record.tipo_operacion,
            valor: record
                .valor_anticipo
                .or(record.valor_tanqueo)
                .unwrap_or_default(),
        };
        *self.expected.balances.entry(station.id).or_default() += acknowledged.effect();
        self.expected.acknowledged += 1;
        if self.records.is_multiple_of(self.read_back_every)
            && self.expected.read_back.len() < READ_BACK_MAX
        {
            self.expected.read_back.push(acknowledged);
        }
        self.records += 1;
        let event = if anticipo {
            FuelEvent::AnticipoPaid { record }
        } else {
            FuelEvent::TanqueoRecorded { record }
        };
        let (event_type, payload) = codec::encode(&event)?;
        Ok(NewEvent::new(event_type, payload, self.metadata.clone()))
    }
}

/// An advance payment (ANTICIPO) of `valor` to station `bomba_id`, as the API records one.
pub(crate) fn advance_record(
    id: i64,
    fecha: NaiveDate,
    bomba_id: i64,
    area_operacion_id: i64,
    valor: Decimal,
) -> FuelRecord {
    FuelRecord {
        id,
        fecha,
        bomba_id,
        area_operacion_id,
        concepto: Concepto::Operativo,
        tipo_operacion: TipoOperacion::Anticipo,
        observacion: None,
        saldo_disponible: None,
        conductor_id: None,
        placa_id: None,
        tipo_combustible: None,
        valor_tanqueo: None,
        cantidad_galones: None,
        costo_por_galon: None,
        horometro: None,
        valor_anticipo: Some(valor),
    }
}
