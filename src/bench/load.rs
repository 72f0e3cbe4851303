//! The load generator: a fixed number of tasks, each issuing requests back to back over its own
//! keep-alive connection for a fixed time (a closed loop: the service's speed sets the rate, and
//! a slow answer holds its connection up exactly as it would hold a client up).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregates::fuel::TipoOperacion;
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::client::{Answer, Api, TransportError};
use super::fleet::{Fleet, Station};
use super::progress::Ticker;
use super::zipf::Zipf;
use super::BenchError;

/// Tries per record when the service answers 409 (its own retries on a contended stream ran out).
/// A 409 appends nothing, so sending the same body again is safe.
const CONFLICT_ATTEMPTS_MAX: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Refuels only.
    Tanqueos,
    /// 80% refuels, 10% advance payments, 10% reads.
    Mixed,
}

/// What one request of a workload does.
enum Operation {
    Tanqueo,
    Anticipo,
    Read(Read),
}

#[derive(Clone, Copy)]
enum Read {
    Balance,
    Statement,
    List,
}

impl Workload {
    fn next(self, rng: &mut impl Rng) -> Operation {
        match self {
            Self::Tanqueos => Operation::Tanqueo,
            Self::Mixed => match rng.gen_range(0..100) {
                0..=79 => Operation::Tanqueo,
                80..=89 => Operation::Anticipo,
                90..=92 => Operation::Read(Read::Balance),
                93..=96 => Operation::Read(Read::Statement),
                _ => Operation::Read(Read::List),
            },
        }
    }
}

/// A fuel record the service acknowledged with 201: what its balance and its read-back must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Acknowledged {
    pub id: i64,
    pub bomba_id: i64,
    pub tipo: TipoOperacion,
    /// `valor_tanqueo` or `valor_anticipo`.
    pub valor: Decimal,
}

impl Acknowledged {
    /// What it does to the station's balance: + anticipo, − tanqueo.
    pub fn effect(&self) -> Decimal {
        match self.tipo {
            TipoOperacion::Anticipo => self.valor,
            TipoOperacion::Tanqueo => -self.valor,
        }
    }
}

/// Everything the requests of a load phase answered.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Of every HTTP exchange, retries included.
    pub latencies: Vec<Duration>,
    /// Non-2xx answers by status, 409s that were then retried excepted.
    pub non_2xx: BTreeMap<u16, u64>,
    /// The first body of each non-2xx status: what the problem was.
    pub non_2xx_samples: BTreeMap<u16, String>,
    /// Requests without a usable answer (connection errors, a 201 without an id).
    pub transport_errors: u64,
    pub first_transport_error: Option<String>,
    /// 409s answered and retried.
    pub conflicts_retried: u64,
    /// Writes answered with `X-Read-Models-Lag`.
    pub lagged: u64,
    pub acknowledged: Vec<Acknowledged>,
}

impl Outcome {
    pub(crate) fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        for (status, count) in other.non_2xx {
            *self.non_2xx.entry(status).or_default() += count;
        }
        for (status, body) in other.non_2xx_samples {
            self.non_2xx_samples.entry(status).or_insert(body);
        }
        self.transport_errors += other.transport_errors;
        self.first_transport_error = self
            .first_transport_error
            .take()
            .or(other.first_transport_error);
        self.conflicts_retried += other.conflicts_retried;
        self.lagged += other.lagged;
        self.acknowledged.extend(other.acknowledged);
    }

    pub(crate) fn transport_error(&mut self, reason: String) {
        self.transport_errors += 1;
        self.first_transport_error.get_or_insert(reason);
    }

    pub(crate) fn refused(&mut self, answer: &Answer) {
        let status = answer.status.as_u16();
        *self.non_2xx.entry(status).or_default() += 1;
        self.non_2xx_samples.entry(status).or_insert_with(|| {
            String::from_utf8_lossy(&answer.body)
                .chars()
                .take(300)
                .collect()
        });
    }

    pub fn requests(&self) -> u64 {
        self.latencies.len() as u64
    }
}

pub(crate) struct LoadOptions {
    pub connections: usize,
    pub duration: Duration,
    pub skew: f64,
    pub label: &'static str,
    pub progress: bool,
}

pub(crate) struct LoadRun {
    pub outcome: Outcome,
    /// From the first request to the last answer (a little over the duration: requests in
    /// flight at the deadline are waited for).
    pub elapsed: Duration,
    pub highest_rss_sample: Option<u64>,
}

/// Runs `workload` over `fleet` with `options.connections` connections for `options.duration`.
pub(crate) async fn drive(
    api: &Api,
    fleet: &Arc<Fleet>,
    workload: Workload,
    options: &LoadOptions,
) -> Result<LoadRun, BenchError> {
    let zipf = Arc::new(Zipf::new(fleet.stations.len(), options.skew));
    let completed = Arc::new(AtomicU64::new(0));
    let ticker = {
        let completed = completed.clone();
        let mut last = (Duration::ZERO, 0u64);
        Ticker::start(options.label, options.progress, move |elapsed| {
            let now = completed.load(Ordering::Relaxed);
            let interval = (elapsed - last.0).as_secs_f64().max(1e-9);
            let rate = (now - last.1) as f64 / interval;
            last = (elapsed, now);
            format!(
                "{:6.1} s  {now:>9} requests  {rate:>8.0} req/s",
                elapsed.as_secs_f64()
            )
        })
    };
    let base_seed: u64 = rand::thread_rng().gen();
    let started = Instant::now();
    let deadline = started + options.duration;
    let workers: Vec<_> = (0..options.connections)
        .map(|index| {
            let worker = Worker {
                api: api.clone(),
                fleet: fleet.clone(),
                zipf: zipf.clone(),
                rng: StdRng::seed_from_u64(base_seed.wrapping_add(index as u64)),
                completed: completed.clone(),
                outcome: Outcome::default(),
            };
            tokio::spawn(worker.run(workload, deadline))
        })
        .collect();
    let mut outcome = Outcome::default();
    let mut failure = None;
    for worker in workers {
        match worker.await {
            Ok(done) => outcome.merge(done),
            Err(error) => failure = Some(error),
        }
    }
    let elapsed = started.elapsed();
    let highest_rss_sample = ticker.finish().await;
    if let Some(error) = failure {
        return Err(error.into());
    }
    Ok(LoadRun {
        outcome,
        elapsed,
        highest_rss_sample,
    })
}

struct Worker {
    api: Api,
    fleet: Arc<Fleet>,
    zipf: Arc<Zipf>,
    rng: StdRng,
    completed: Arc<AtomicU64>,
    outcome: Outcome,
}

#[derive(Deserialize)]
struct Created {
    id: i64,
}

impl Worker {
    async fn run(mut self, workload: Workload, deadline: Instant) -> Outcome {
        while Instant::now() < deadline {
            let station = self.fleet.stations[self.zipf.sample(&mut self.rng)];
            match workload.next(&mut self.rng) {
                Operation::Tanqueo => {
                    let (body, valor) = self.tanqueo(station);
                    self.write(body, station, TipoOperacion::Tanqueo, valor)
                        .await
                }
                Operation::Anticipo => {
                    let (body, valor) = self.anticipo(station);
                    self.write(body, station, TipoOperacion::Anticipo, valor)
                        .await
                }
                Operation::Read(read) => self.read(read, station).await,
            }
        }
        self.outcome
    }

    /// A refuel as a station's operator records it: a random plate and driver, an integer amount
    /// in pesos and gallons with one decimal.
    fn tanqueo(&mut self, station: Station) -> (Bytes, Decimal) {
        let rng = &mut self.rng;
        let valor: i64 = rng.gen_range(50_000..=300_000);
        let tenths_of_gallon: u32 = rng.gen_range(40..=800);
        let horometro_tenths: u32 = rng.gen_range(1_000..=200_000);
        let conductor = self.fleet.drivers[rng.gen_range(0..self.fleet.drivers.len())];
        let placa = self.fleet.plates[rng.gen_range(0..self.fleet.plates.len())];
        let combustible = if rng.gen_ratio(9, 10) {
            "ACPM"
        } else {
            "GASOLINA"
        };
        let body = format!(
            r#"{{"fecha":"{}","conductor_id":{conductor},"placa_id":{placa},"bomba_id":{},"area_operacion_id":{},"tipo_combustible":"{combustible}","valor_tanqueo":{valor},"cantidad_galones":{}.{},"horometro":{}.{}}}"#,
            fecha(rng),
            station.id,
            station.area_id,
            tenths_of_gallon / 10,
            tenths_of_gallon % 10,
            horometro_tenths / 10,
            horometro_tenths % 10,
        );
        (Bytes::from(body), Decimal::from(valor))
    }

    /// An advance payment to the station, large enough that a station's anticipos roughly cover
    /// the eight refuels that come with each one.
    fn anticipo(&mut self, station: Station) -> (Bytes, Decimal) {
        let valor: i64 = self.rng.gen_range(500_000..=2_500_000);
        let body = format!(
            r#"{{"fecha":"{}","bomba_id":{},"area_operacion_id":{},"tipo_operacion":"ANTICIPO","valor_anticipo":{valor}}}"#,
            fecha(&mut self.rng),
            station.id,
            station.area_id,
        );
        (Bytes::from(body), Decimal::from(valor))
    }

    async fn write(&mut self, body: Bytes, station: Station, tipo: TipoOperacion, valor: Decimal) {
        for attempt in 1..=CONFLICT_ATTEMPTS_MAX {
            let answer = self
                .exchange(Method::POST, "/api/tanqueos", Some(body.clone()))
                .await;
            let answer = match answer {
                Ok(answer) => answer,
                Err(error) => return self.outcome.transport_error(error.to_string()),
            };
            if answer.lagged {
                self.outcome.lagged += 1;
            }
            match answer.status {
                StatusCode::CREATED => {
                    match serde_json::from_slice::<Created>(&answer.body) {
                        Ok(Created { id }) => self.outcome.acknowledged.push(Acknowledged {
                            id,
                            bomba_id: station.id,
                            tipo,
                            valor,
                        }),
                        Err(error) => self
                            .outcome
                            .transport_error(format!("a 201 without a record id: {error}")),
                    }
                    return;
                }
                StatusCode::CONFLICT if attempt < CONFLICT_ATTEMPTS_MAX => {
                    self.outcome.conflicts_retried += 1;
                }
                _ => return self.outcome.refused(&answer),
            }
        }
    }

    async fn read(&mut self, read: Read, station: Station) {
        let path = match read {
            Read::Balance => format!("/api/bombas/{}/saldo", station.id),
            Read::Statement => format!("/api/bombas/{}/movimientos", station.id),
            Read::List => format!("/api/tanqueos?bomba_id={}&limit=20", station.id),
        };
        match self.exchange(Method::GET, &path, None).await {
            Ok(answer) if answer.status.is_success() => {}
            Ok(answer) => self.outcome.refused(&answer),
            Err(error) => self.outcome.transport_error(error.to_string()),
        }
    }

    /// One timed HTTP exchange.
    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Answer, TransportError> {
        let sent = Instant::now();
        let answer = self.api.send(method, path, body).await;
        self.outcome.latencies.push(sent.elapsed());
        self.completed.fetch_add(1, Ordering::Relaxed);
        answer
    }
}

/// A day of March 2024, as the seed's examples use.
fn fecha(rng: &mut impl Rng) -> String {
    format!("2024-03-{:02}", rng.gen_range(1..=28))
}
