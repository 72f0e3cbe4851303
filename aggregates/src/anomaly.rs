//! Fuel fraud and error checks: pure rules over one refuel and what the ledger already knew
//! before it (the plate's earlier refuels, the vehicle's registered capacity and fuel type, the
//! station's recent prices). Each rule answers at most one [`Finding`] carrying the values it
//! was decided on, so an auditor can replay the decision from the evidence alone.
//!
//! Nothing here reads a store or a clock: the consumer that runs the rules gathers the context
//! from the log and records each finding as an event.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Every check, by the name an alert carries (`regla`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Rule {
    /// The hourmeter reads less than at the plate's previous refuel.
    HorometroRetrocede,
    /// More hourmeter hours since the previous refuel than calendar hours.
    HorometroSaltoImposible,
    /// No hourmeter where the plate usually reports one.
    HorometroFaltante,
    /// More gallons than the vehicle's tank holds, beyond the tolerance.
    GalonesSobreCapacidad,
    /// A refuel of the same plate sooner than the minimum interval after the previous one.
    TanqueoMuyPronto,
    /// A fuel other than the vehicle's registered one.
    CombustibleDistinto,
    /// A cost per gallon far from the station's recent median for that fuel (robust z-score).
    CostoAtipicoEstacion,
    /// A cost per gallon outside the reference band for that fuel and date.
    CostoFueraDeBanda,
    /// Gallons per hourmeter hour far from the vehicle's own history (robust z-score).
    ConsumoAtipico,
    /// Same plate, station and amount within a short window of days.
    PosibleDuplicado,
    /// The station's reported balance drifts from the computed one beyond the tolerance.
    SaldoReportadoDesviado,
}

impl Rule {
    pub const ALL: [Self; 11] = [
        Self::HorometroRetrocede,
        Self::HorometroSaltoImposible,
        Self::HorometroFaltante,
        Self::GalonesSobreCapacidad,
        Self::TanqueoMuyPronto,
        Self::CombustibleDistinto,
        Self::CostoAtipicoEstacion,
        Self::CostoFueraDeBanda,
        Self::ConsumoAtipico,
        Self::PosibleDuplicado,
        Self::SaldoReportadoDesviado,
    ];

    /// The name an alert carries (`regla`), as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HorometroRetrocede => "HOROMETRO_RETROCEDE",
            Self::HorometroSaltoImposible => "HOROMETRO_SALTO_IMPOSIBLE",
            Self::HorometroFaltante => "HOROMETRO_FALTANTE",
            Self::GalonesSobreCapacidad => "GALONES_SOBRE_CAPACIDAD",
            Self::TanqueoMuyPronto => "TANQUEO_MUY_PRONTO",
            Self::CombustibleDistinto => "COMBUSTIBLE_DISTINTO",
            Self::CostoAtipicoEstacion => "COSTO_ATIPICO_ESTACION",
            Self::CostoFueraDeBanda => "COSTO_FUERA_DE_BANDA",
            Self::ConsumoAtipico => "CONSUMO_ATIPICO",
            Self::PosibleDuplicado => "POSIBLE_DUPLICADO",
            Self::SaldoReportadoDesviado => "SALDO_REPORTADO_DESVIADO",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|rule| rule.as_str() == raw)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Baja,
    Media,
    Alta,
}

impl Severity {
    pub const ALL: [Self; 3] = [Self::Baja, Self::Media, Self::Alta];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Baja => "BAJA",
            Self::Media => "MEDIA",
            Self::Alta => "ALTA",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// One rule's verdict on one refuel, with the figures it was decided on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    pub tanqueo_id: i64,
    /// Named values the rule compared (`horometro`, `horometro_anterior`, …), as decimals.
    pub evidence: BTreeMap<String, Decimal>,
}

/// A fuel's reference band of cost per gallon (COP), inclusive, over a range of dates (each end
/// open when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceBand {
    pub tipo_combustible: String,
    pub desde: Option<NaiveDate>,
    pub hasta: Option<NaiveDate>,
    pub minimo: Decimal,
    pub maximo: Decimal,
}

impl ReferenceBand {
    fn applies(&self, tipo_combustible: &str, fecha: NaiveDate) -> bool {
        self.tipo_combustible.eq_ignore_ascii_case(tipo_combustible)
            && self.desde.is_none_or(|desde| desde <= fecha)
            && self.hasta.is_none_or(|hasta| fecha <= hasta)
    }

    /// The original service's defaults: ACPM 9,000–15,000, GASOLINA 10,000–16,000 and EXTRA
    /// 11,000–17,000 COP/gal, for every date.
    pub fn defaults() -> Vec<Self> {
        [
            ("ACPM", 9_000, 15_000),
            ("GASOLINA", 10_000, 16_000),
            ("EXTRA", 11_000, 17_000),
        ]
        .into_iter()
        .map(|(tipo, minimo, maximo)| Self {
            tipo_combustible: tipo.to_string(),
            desde: None,
            hasta: None,
            minimo: Decimal::from(minimo),
            maximo: Decimal::from(maximo),
        })
        .collect()
    }
}

/// Where each rule draws its line. [`Default`] holds the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Gallons may exceed the tank's capacity by this fraction before it is flagged (0.05: 5%).
    pub capacity_tolerance: Decimal,
    /// Days that must pass between two refuels of a plate (0: the same day is too soon).
    pub min_interval_days: i64,
    /// A plate "usually reports" an hourmeter when at least this share of its earlier refuels
    /// (and at least [`Self::history_min`] of them) had one.
    pub hourmeter_usual_share: Decimal,
    /// Earlier values a robust z-score needs before it is computed at all.
    pub history_min: usize,
    /// The robust z-score (0.6745 · |x − median| / MAD) past which a value is atypical.
    pub robust_z_max: Decimal,
    /// The least spread assumed of a station's costs per gallon, as a share of their median:
    /// prices are often all equal (regulated), and a few cents off is not atypical.
    pub price_spread_floor: Decimal,
    /// The least spread assumed of a vehicle's gallons per hour, as a share of their median:
    /// consumption varies with load and idling by more than a handful of refuels may show.
    pub consumption_spread_floor: Decimal,
    /// Days within which the same plate, station and amount is a likely duplicate.
    pub duplicate_window_days: i64,
    /// COP the reported balance may differ from the computed one.
    pub saldo_tolerance: Decimal,
    pub bands: Vec<ReferenceBand>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            capacity_tolerance: Decimal::new(5, 2),
            min_interval_days: 0,
            hourmeter_usual_share: Decimal::new(8, 1),
            history_min: 5,
            robust_z_max: Decimal::new(35, 1),
            price_spread_floor: Decimal::new(1, 2),
            consumption_spread_floor: Decimal::new(5, 2),
            duplicate_window_days: 1,
            saldo_tolerance: Decimal::from(1_000),
            bands: ReferenceBand::defaults(),
        }
    }
}

/// What a rule needs of one refuel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refuel {
    pub id: i64,
    pub fecha: NaiveDate,
    pub bomba_id: i64,
    pub placa_id: i64,
    pub tipo_combustible: Option<String>,
    pub valor_tanqueo: Decimal,
    pub cantidad_galones: Decimal,
    pub horometro: Option<Decimal>,
    /// The balance the station reported with this record, if any.
    pub saldo_disponible: Option<Decimal>,
}

impl Refuel {
    fn cost_per_gallon(&self) -> Option<Decimal> {
        (!self.cantidad_galones.is_zero())
            .then(|| self.valor_tanqueo.checked_div(self.cantidad_galones))
            .flatten()
    }
}

/// What the ledger knew when the refuel arrived.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    /// The plate's earlier live refuels, oldest first.
    pub plate_history: &'a [Refuel],
    /// The vehicle's registered tank capacity, in gallons.
    pub capacity_galones: Option<Decimal>,
    /// The vehicle's registered fuel type.
    pub tipo_combustible: Option<&'a str>,
    /// Costs per gallon the station charged recently for this refuel's fuel type.
    pub station_recent_costs: &'a [Decimal],
    /// The station's computed balance after this refuel.
    pub saldo_computed: Option<Decimal>,
}

/// Every rule's finding on `refuel`, in [`Rule::ALL`] order.
pub fn evaluate(refuel: &Refuel, context: &Context<'_>, thresholds: &Thresholds) -> Vec<Finding> {
    let previous = context.plate_history.last();
    [
        horometro_retrocede(refuel, previous),
        horometro_salto_imposible(refuel, previous),
        horometro_faltante(refuel, context.plate_history, thresholds),
        galones_sobre_capacidad(refuel, context.capacity_galones, thresholds),
        tanqueo_muy_pronto(refuel, previous, thresholds),
        combustible_distinto(refuel, context.tipo_combustible),
        costo_atipico(refuel, context.station_recent_costs, thresholds),
        costo_fuera_de_banda(refuel, &thresholds.bands),
        consumo_atipico(refuel, context.plate_history, thresholds),
        posible_duplicado(refuel, context.plate_history, thresholds),
        saldo_desviado(refuel, context.saldo_computed, thresholds),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn finding(
    rule: Rule,
    severity: Severity,
    refuel: &Refuel,
    evidence: &[(&str, Decimal)],
) -> Finding {
    Finding {
        rule,
        severity,
        tanqueo_id: refuel.id,
        evidence: evidence
            .iter()
            .map(|(name, value)| ((*name).to_string(), *value))
            .collect(),
    }
}

pub fn horometro_retrocede(refuel: &Refuel, previous: Option<&Refuel>) -> Option<Finding> {
    let (now, before) = (refuel.horometro?, previous?.horometro?);
    (now < before).then(|| {
        finding(
            Rule::HorometroRetrocede,
            Severity::Alta,
            refuel,
            &[("horometro", now), ("horometro_anterior", before)],
        )
    })
}

/// Calendar hours between two dates: whole days, the later one counted in full (a refuel at the
/// start of one day and another at the end of the next are up to 48 hours apart).
fn calendar_hours(from: NaiveDate, to: NaiveDate) -> Decimal {
    Decimal::from(((to - from).num_days() + 1).max(1) * 24)
}

pub fn horometro_salto_imposible(refuel: &Refuel, previous: Option<&Refuel>) -> Option<Finding> {
    let previous = previous?;
    let (now, before) = (refuel.horometro?, previous.horometro?);
    let hours = now - before;
    let possible = calendar_hours(previous.fecha, refuel.fecha);
    (hours > possible).then(|| {
        finding(
            Rule::HorometroSaltoImposible,
            Severity::Alta,
            refuel,
            &[
                ("horas_horometro", hours),
                ("horas_calendario_maximas", possible),
            ],
        )
    })
}

pub fn horometro_faltante(
    refuel: &Refuel,
    history: &[Refuel],
    thresholds: &Thresholds,
) -> Option<Finding> {
    if refuel.horometro.is_some() || history.len() < thresholds.history_min {
        return None;
    }
    let reported = history.iter().filter(|r| r.horometro.is_some()).count();
    let share = Decimal::from(reported) / Decimal::from(history.len());
    (share >= thresholds.hourmeter_usual_share).then(|| {
        finding(
            Rule::HorometroFaltante,
            Severity::Baja,
            refuel,
            &[("proporcion_con_horometro", share.round_dp(4))],
        )
    })
}

pub fn galones_sobre_capacidad(
    refuel: &Refuel,
    capacity: Option<Decimal>,
    thresholds: &Thresholds,
) -> Option<Finding> {
    let capacity = capacity.filter(|c| c > &Decimal::ZERO)?;
    let allowed = capacity * (Decimal::ONE + thresholds.capacity_tolerance);
    (refuel.cantidad_galones > allowed).then(|| {
        finding(
            Rule::GalonesSobreCapacidad,
            Severity::Alta,
            refuel,
            &[
                ("cantidad_galones", refuel.cantidad_galones),
                ("capacidad_galones", capacity),
                ("tolerancia", thresholds.capacity_tolerance),
            ],
        )
    })
}

pub fn tanqueo_muy_pronto(
    refuel: &Refuel,
    previous: Option<&Refuel>,
    thresholds: &Thresholds,
) -> Option<Finding> {
    let days = (refuel.fecha - previous?.fecha).num_days();
    (days <= thresholds.min_interval_days).then(|| {
        finding(
            Rule::TanqueoMuyPronto,
            Severity::Media,
            refuel,
            &[
                ("dias_desde_anterior", Decimal::from(days)),
                ("dias_minimos", Decimal::from(thresholds.min_interval_days)),
            ],
        )
    })
}

pub fn combustible_distinto(refuel: &Refuel, registered: Option<&str>) -> Option<Finding> {
    let (used, registered) = (refuel.tipo_combustible.as_deref()?, registered?);
    (!used.eq_ignore_ascii_case(registered))
        .then(|| finding(Rule::CombustibleDistinto, Severity::Media, refuel, &[]))
}

fn median_of_sorted(sorted: &[Decimal]) -> Option<Decimal> {
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[middle]),
        _ => Some((sorted[middle - 1] + sorted[middle]) / Decimal::TWO),
    }
}

/// The robust z-score of `value` against `history` (Iglewicz and Hoaglin's modified z-score,
/// 0.6745 · |x − median| / MAD), with the median and the MAD; `None` below `history_min`
/// values. The MAD is taken as at least `spread_floor` times the median: a few values can agree
/// closely by chance (or all be equal: regulated prices), and a small difference must not then
/// look extreme. With a median of zero too, any other value is infinitely atypical
/// (`Decimal::MAX`).
pub fn robust_z(
    value: Decimal,
    history: &[Decimal],
    history_min: usize,
    spread_floor: Decimal,
) -> Option<RobustZ> {
    if history.len() < history_min.max(1) {
        return None;
    }
    let mut sorted = history.to_vec();
    sorted.sort();
    let median = median_of_sorted(&sorted)?;
    let mut deviations: Vec<Decimal> = sorted.iter().map(|v| (*v - median).abs()).collect();
    deviations.sort();
    let mad = median_of_sorted(&deviations)?.max(median.abs() * spread_floor);
    let distance = (value - median).abs();
    let z = if !mad.is_zero() {
        Decimal::new(6745, 4) * distance / mad
    } else if distance.is_zero() {
        Decimal::ZERO
    } else {
        Decimal::MAX
    };
    Some(RobustZ {
        z: z.round_dp(4),
        median,
        mad,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RobustZ {
    pub z: Decimal,
    pub median: Decimal,
    pub mad: Decimal,
}

pub fn costo_atipico(
    refuel: &Refuel,
    station_costs: &[Decimal],
    thresholds: &Thresholds,
) -> Option<Finding> {
    let cost = refuel.cost_per_gallon()?;
    let score = robust_z(
        cost,
        station_costs,
        thresholds.history_min,
        thresholds.price_spread_floor,
    )?;
    (score.z > thresholds.robust_z_max).then(|| {
        finding(
            Rule::CostoAtipicoEstacion,
            Severity::Media,
            refuel,
            &[
                ("costo_por_galon", cost.round_dp(2)),
                ("mediana_estacion", score.median.round_dp(2)),
                ("mad", score.mad.round_dp(2)),
                ("z_robusto", score.z),
            ],
        )
    })
}

pub fn costo_fuera_de_banda(refuel: &Refuel, bands: &[ReferenceBand]) -> Option<Finding> {
    let tipo = refuel.tipo_combustible.as_deref()?;
    let cost = refuel.cost_per_gallon()?;
    let band = band_for(bands, tipo, refuel.fecha)?;
    (cost < band.minimo || cost > band.maximo).then(|| {
        finding(
            Rule::CostoFueraDeBanda,
            Severity::Media,
            refuel,
            &[
                ("costo_por_galon", cost.round_dp(2)),
                ("minimo", band.minimo),
                ("maximo", band.maximo),
            ],
        )
    })
}

/// The band that decides `tipo_combustible` on `fecha`: the first of `bands` covering it (the
/// detector lists the bands set latest first, then the defaults: see [`crate::band`]).
pub fn band_for<'a>(
    bands: &'a [ReferenceBand],
    tipo_combustible: &str,
    fecha: NaiveDate,
) -> Option<&'a ReferenceBand> {
    bands.iter().find(|b| b.applies(tipo_combustible, fecha))
}

/// Gallons per hourmeter hour of a refuel of `gallons` read at `reading`, after `earlier`: the
/// fuel put in since the last earlier reading (each refuel refills what was burnt since the one
/// before, so a refuel without a reading still counts) over the hours between the two readings.
/// `None` without an earlier reading or with no hours between them.
fn rate_since_last_reading(
    earlier: &[Refuel],
    gallons: Decimal,
    reading: Decimal,
) -> Option<Decimal> {
    let last = earlier.iter().rposition(|r| r.horometro.is_some())?;
    let hours = reading - earlier[last].horometro?;
    let gallons = gallons
        + earlier[last + 1..]
            .iter()
            .map(|r| r.cantidad_galones)
            .sum::<Decimal>();
    (hours > Decimal::ZERO).then(|| gallons / hours)
}

pub fn consumo_atipico(
    refuel: &Refuel,
    history: &[Refuel],
    thresholds: &Thresholds,
) -> Option<Finding> {
    let rate = rate_since_last_reading(history, refuel.cantidad_galones, refuel.horometro?)?;
    let rates: Vec<Decimal> = history
        .iter()
        .enumerate()
        .filter_map(|(at, earlier)| {
            rate_since_last_reading(&history[..at], earlier.cantidad_galones, earlier.horometro?)
        })
        .collect();
    let score = robust_z(
        rate,
        &rates,
        thresholds.history_min,
        thresholds.consumption_spread_floor,
    )?;
    (score.z > thresholds.robust_z_max).then(|| {
        finding(
            Rule::ConsumoAtipico,
            Severity::Media,
            refuel,
            &[
                ("galones_por_hora", rate.round_dp(4)),
                ("mediana_vehiculo", score.median.round_dp(4)),
                ("z_robusto", score.z),
            ],
        )
    })
}

pub fn posible_duplicado(
    refuel: &Refuel,
    history: &[Refuel],
    thresholds: &Thresholds,
) -> Option<Finding> {
    let twin = history.iter().rev().find(|earlier| {
        earlier.bomba_id == refuel.bomba_id
            && earlier.valor_tanqueo == refuel.valor_tanqueo
            && (refuel.fecha - earlier.fecha).num_days().abs() <= thresholds.duplicate_window_days
    })?;
    Some(finding(
        Rule::PosibleDuplicado,
        Severity::Alta,
        refuel,
        &[
            ("tanqueo_similar", Decimal::from(twin.id)),
            ("valor_tanqueo", refuel.valor_tanqueo),
        ],
    ))
}

pub fn saldo_desviado(
    refuel: &Refuel,
    computed: Option<Decimal>,
    thresholds: &Thresholds,
) -> Option<Finding> {
    let (reported, computed) = (refuel.saldo_disponible?, computed?);
    let drift = (reported - computed).abs();
    (drift > thresholds.saldo_tolerance).then(|| {
        finding(
            Rule::SaldoReportadoDesviado,
            Severity::Media,
            refuel,
            &[
                ("saldo_reportado", reported),
                ("saldo_calculado", computed),
                ("diferencia", drift),
            ],
        )
    })
}

/// Earlier refuels of a plate the checks look back on; the oldest fall off. A month's worth is
/// a dozen; the consumption and hourmeter checks need a handful.
pub const PLATE_HISTORY_MAX: usize = 64;
/// Costs per gallon of a station and fuel the cost check compares with.
pub const STATION_COSTS_RECENT: usize = 30;

/// What the fleet registered about the vehicle behind a plate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VehicleFacts {
    pub capacity_galones: Option<Decimal>,
    /// The product the vehicle burns, as refuels name it (`ACPM`, `GASOLINA`, …).
    pub tipo_combustible: Option<String>,
}

/// The context the checks need, kept up to date refuel by refuel: each plate's latest refuels,
/// each station's latest costs per fuel, each station's balance. The live consumer and the
/// synthetic evaluation both feed it and ask it, so the evaluation's figures speak for the live
/// path. Bounded: [`PLATE_HISTORY_MAX`] refuels a plate, [`STATION_COSTS_RECENT`] costs a
/// station and fuel, one balance a station.
#[derive(Debug, Clone, Default)]
pub struct Detector {
    /// Each plate's live refuels, by (fecha, id).
    plates: HashMap<i64, Vec<Refuel>>,
    /// Each station and fuel's latest costs per gallon, in the order they were recorded, with
    /// the refuel they came from (so a correction or a void takes its own back).
    costs: HashMap<(i64, String), VecDeque<(i64, Decimal)>>,
    balances: HashMap<i64, Decimal>,
    /// The reference bands set so far, oldest first: they come before the thresholds' own
    /// bands, the latest first (see [`crate::band`]).
    bands_set: Vec<ReferenceBand>,
}

fn fuel_key(refuel: &Refuel) -> (i64, String) {
    (
        refuel.bomba_id,
        refuel
            .tipo_combustible
            .as_deref()
            .unwrap_or_default()
            .to_uppercase(),
    )
}

impl Detector {
    /// Every rule's finding on `refuel`, which the detector has not been told of yet, against
    /// what it was told before.
    pub fn check(
        &self,
        refuel: &Refuel,
        vehicle: &VehicleFacts,
        thresholds: &Thresholds,
    ) -> Vec<Finding> {
        let with_bands;
        let thresholds = if self.bands_set.is_empty() {
            thresholds
        } else {
            with_bands = Thresholds {
                bands: self
                    .bands_set
                    .iter()
                    .rev()
                    .cloned()
                    .chain(thresholds.bands.iter().cloned())
                    .collect(),
                ..thresholds.clone()
            };
            &with_bands
        };
        let history = self.plates.get(&refuel.placa_id).map_or(&[][..], |h| {
            let end = h.partition_point(|r| (r.fecha, r.id) < (refuel.fecha, refuel.id));
            &h[..end]
        });
        let costs: Vec<Decimal> = self
            .costs
            .get(&fuel_key(refuel))
            .map(|c| {
                c.iter()
                    .skip(c.len().saturating_sub(STATION_COSTS_RECENT))
                    .map(|(_, cost)| *cost)
                    .collect()
            })
            .unwrap_or_default();
        // A product no reference band names (urea, lubricant, a car wash) is not a fuel: it
        // does not go in a tank, so the vehicle's fuel type says nothing of it.
        let is_fuel = refuel.tipo_combustible.as_deref().is_some_and(|tipo| {
            thresholds
                .bands
                .iter()
                .any(|b| b.tipo_combustible.eq_ignore_ascii_case(tipo))
        });
        let balance = self
            .balances
            .get(&refuel.bomba_id)
            .copied()
            .unwrap_or_default();
        let context = Context {
            plate_history: history,
            capacity_galones: vehicle.capacity_galones,
            tipo_combustible: vehicle.tipo_combustible.as_deref().filter(|_| is_fuel),
            station_recent_costs: &costs,
            saldo_computed: Some(balance - refuel.valor_tanqueo),
        };
        evaluate(refuel, &context, thresholds)
    }

    /// Takes a band set into the context of the refuels after it: it wins over every band set
    /// before it on the dates it covers.
    pub fn set_band(&mut self, band: ReferenceBand) {
        self.bands_set.push(band);
    }

    /// Takes `refuel` into the context of the refuels after it.
    pub fn remember(&mut self, refuel: Refuel) {
        *self.balances.entry(refuel.bomba_id).or_default() -= refuel.valor_tanqueo;
        if let Some(cost) = refuel.cost_per_gallon() {
            let costs = self.costs.entry(fuel_key(&refuel)).or_default();
            costs.push_back((refuel.id, cost));
            if costs.len() > STATION_COSTS_RECENT {
                costs.pop_front();
            }
        }
        let history = self.plates.entry(refuel.placa_id).or_default();
        let at = history.partition_point(|r| (r.fecha, r.id) < (refuel.fecha, refuel.id));
        history.insert(at, refuel);
        if history.len() > PLATE_HISTORY_MAX {
            history.remove(0);
        }
        debug_assert!(history
            .windows(2)
            .all(|w| (w[0].fecha, w[0].id) < (w[1].fecha, w[1].id)));
    }

    /// Takes `refuel` (as it was remembered) out of the context: it was voided, or is about to
    /// be remembered as corrected.
    pub fn forget(&mut self, refuel: &Refuel) {
        *self.balances.entry(refuel.bomba_id).or_default() += refuel.valor_tanqueo;
        if let Some(costs) = self.costs.get_mut(&fuel_key(refuel)) {
            costs.retain(|(id, _)| *id != refuel.id);
        }
        if let Some(history) = self.plates.get_mut(&refuel.placa_id) {
            history.retain(|r| r.id != refuel.id);
        }
    }

    /// Money paid into (or, negative, taken back from) a station's balance: an advance, its
    /// correction or its void.
    pub fn pay(&mut self, bomba_id: i64, amount: Decimal) {
        *self.balances.entry(bomba_id).or_default() += amount;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn day(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, n).unwrap()
    }

    /// A refuel of plate 1 at station 1: 40 gallons of ACPM at 11,000 COP/gal.
    fn refuel(id: i64, fecha: NaiveDate, horometro: Option<&str>) -> Refuel {
        Refuel {
            id,
            fecha,
            bomba_id: 1,
            placa_id: 1,
            tipo_combustible: Some("ACPM".into()),
            valor_tanqueo: Decimal::from(440_000 + id),
            cantidad_galones: d("40"),
            horometro: horometro.map(d),
            saldo_disponible: None,
        }
    }

    #[test]
    fn an_ordinary_refuel_raises_nothing() {
        let history: Vec<Refuel> = (1..=6)
            .map(|n| refuel(n, day(n as u32 * 3), Some(&format!("{}", 100 + n * 10))))
            .collect();
        let now = refuel(7, day(21), Some("170"));
        let costs = vec![d("11000"); 6];
        let context = Context {
            plate_history: &history,
            capacity_galones: Some(d("50")),
            tipo_combustible: Some("acpm"),
            station_recent_costs: &costs,
            saldo_computed: None,
        };
        assert_eq!(evaluate(&now, &context, &Thresholds::default()), vec![]);
    }

    #[test]
    fn the_hourmeter_may_stay_but_not_go_back() {
        let before = refuel(1, day(1), Some("100"));
        assert_eq!(
            horometro_retrocede(&refuel(2, day(2), Some("100")), Some(&before)),
            None
        );
        let finding = horometro_retrocede(&refuel(2, day(2), Some("99.5")), Some(&before)).unwrap();
        assert_eq!(finding.severity, Severity::Alta);
        assert_eq!(finding.evidence["horometro"], d("99.5"));
        assert_eq!(finding.evidence["horometro_anterior"], d("100"));
        // Without a reading on either side there is nothing to compare.
        assert_eq!(
            horometro_retrocede(&refuel(2, day(2), None), Some(&before)),
            None
        );
    }

    #[test]
    fn a_jump_is_impossible_only_past_the_calendar_hours() {
        let before = refuel(1, day(1), Some("100"));
        // Next day: up to 48 hours.
        assert_eq!(
            horometro_salto_imposible(&refuel(2, day(2), Some("148")), Some(&before)),
            None
        );
        let finding =
            horometro_salto_imposible(&refuel(2, day(2), Some("148.1")), Some(&before)).unwrap();
        assert_eq!(finding.evidence["horas_calendario_maximas"], d("48"));
        // The same day: up to 24.
        assert!(
            horometro_salto_imposible(&refuel(2, day(1), Some("125")), Some(&before)).is_some()
        );
    }

    #[test]
    fn a_missing_hourmeter_counts_only_where_the_plate_usually_reports_one() {
        let thresholds = Thresholds::default();
        let mut history: Vec<Refuel> = (1..=4)
            .map(|n| refuel(n, day(n as u32), Some("100")))
            .collect();
        let now = refuel(9, day(20), None);
        assert_eq!(
            horometro_faltante(&now, &history, &thresholds),
            None,
            "too little history"
        );
        history.push(refuel(5, day(5), None));
        // 4 of 5 = 0.8: usual.
        assert!(horometro_faltante(&now, &history, &thresholds).is_some());
        history.push(refuel(6, day(6), None));
        // 4 of 6: not usual.
        assert_eq!(horometro_faltante(&now, &history, &thresholds), None);
    }

    #[test]
    fn gallons_over_capacity_allow_the_tolerance() {
        let thresholds = Thresholds::default();
        let mut now = refuel(1, day(1), None);
        now.cantidad_galones = d("52.5");
        assert_eq!(
            galones_sobre_capacidad(&now, Some(d("50")), &thresholds),
            None
        );
        now.cantidad_galones = d("52.51");
        assert!(galones_sobre_capacidad(&now, Some(d("50")), &thresholds).is_some());
        assert_eq!(galones_sobre_capacidad(&now, None, &thresholds), None);
        assert_eq!(
            galones_sobre_capacidad(&now, Some(Decimal::ZERO), &thresholds),
            None
        );
    }

    #[test]
    fn too_soon_is_within_the_minimum_interval() {
        let thresholds = Thresholds {
            min_interval_days: 1,
            ..Thresholds::default()
        };
        let before = refuel(1, day(10), None);
        assert!(
            tanqueo_muy_pronto(&refuel(2, day(11), None), Some(&before), &thresholds).is_some()
        );
        assert_eq!(
            tanqueo_muy_pronto(&refuel(2, day(12), None), Some(&before), &thresholds),
            None
        );
        assert_eq!(
            tanqueo_muy_pronto(&refuel(2, day(12), None), None, &thresholds),
            None
        );
    }

    #[test]
    fn the_fuel_type_is_compared_without_case() {
        let now = refuel(1, day(1), None);
        assert_eq!(combustible_distinto(&now, Some("acpm")), None);
        assert!(combustible_distinto(&now, Some("GASOLINA")).is_some());
        assert_eq!(combustible_distinto(&now, None), None);
    }

    #[test]
    fn the_robust_z_score_ignores_outliers_in_the_history() {
        let floor = Decimal::new(1, 2);
        let history: Vec<Decimal> = ["100", "101", "99", "100", "102", "98", "5000"]
            .into_iter()
            .map(d)
            .collect();
        let score = robust_z(d("100"), &history, 5, floor).unwrap();
        assert_eq!(score.median, d("100"));
        assert_eq!(score.mad, d("1"));
        assert_eq!(score.z, Decimal::ZERO);
        // 0.6745 · 10 / 1.
        assert_eq!(
            robust_z(d("110"), &history, 5, floor).unwrap().z,
            d("6.745")
        );
        assert_eq!(robust_z(d("110"), &history[..4], 5, floor), None);
        // All equal (a regulated price): the spread is taken as 1% of the median, so cents
        // off are ordinary and a real difference is not.
        let flat = vec![d("11000"); 6];
        assert_eq!(robust_z(d("11000"), &flat, 5, floor).unwrap().mad, d("110"));
        assert_eq!(
            robust_z(d("11000.18"), &flat, 5, floor).unwrap().z,
            d("0.0011")
        );
        assert_eq!(
            robust_z(d("14000"), &flat, 5, floor).unwrap().z,
            d("18.3955")
        );
        // All zero: anything else is infinitely atypical.
        let zeros = vec![Decimal::ZERO; 6];
        assert_eq!(
            robust_z(d("0.01"), &zeros, 5, floor).unwrap().z,
            Decimal::MAX
        );
    }

    #[test]
    fn the_station_cost_and_the_band_are_separate_checks() {
        let thresholds = Thresholds::default();
        let costs: Vec<Decimal> = ["11000", "11100", "10900", "11050", "10950"]
            .into_iter()
            .map(d)
            .collect();
        let mut now = refuel(1, day(1), None);
        now.valor_tanqueo = d("560000"); // 14,000 COP/gal: in the ACPM band, far from the station.
        assert!(costo_atipico(&now, &costs, &thresholds).is_some());
        assert_eq!(costo_fuera_de_banda(&now, &thresholds.bands), None);
        now.valor_tanqueo = d("600000"); // 15,000: the band's upper end, inclusive.
        assert_eq!(costo_fuera_de_banda(&now, &thresholds.bands), None);
        now.valor_tanqueo = d("600040"); // 15,001.
        let finding = costo_fuera_de_banda(&now, &thresholds.bands).unwrap();
        assert_eq!(finding.evidence["maximo"], d("15000"));
        // A band bounded in time does not apply outside its dates.
        let dated = vec![ReferenceBand {
            desde: Some(day(10)),
            ..ReferenceBand::defaults().remove(0)
        }];
        assert_eq!(costo_fuera_de_banda(&now, &dated), None);
    }

    #[test]
    fn consumption_is_compared_with_the_vehicle_s_own_history() {
        let thresholds = Thresholds::default();
        // 40 gallons every 10 hours: 4 gal/h.
        let history: Vec<Refuel> = (0..7)
            .map(|n| refuel(n, day(n as u32 + 1), Some(&format!("{}", 100 + n * 10))))
            .collect();
        let ordinary = refuel(8, day(9), Some("170"));
        assert_eq!(consumo_atipico(&ordinary, &history, &thresholds), None);
        let thirsty = refuel(8, day(9), Some("162"));
        let finding = consumo_atipico(&thirsty, &history, &thresholds).unwrap();
        assert_eq!(finding.evidence["galones_por_hora"], d("20"));
        assert_eq!(finding.evidence["mediana_vehiculo"], d("4"));
        // A refuel without a reading in between: its gallons count towards the next reading,
        // so the rate stays 4 gal/h over the 20 hours.
        let mut skipped = history.clone();
        skipped.push(refuel(8, day(9), None));
        let after = refuel(9, day(10), Some("180"));
        assert_eq!(consumo_atipico(&after, &skipped, &thresholds), None);
    }

    #[test]
    fn a_duplicate_is_the_same_station_and_amount_within_the_window() {
        let thresholds = Thresholds::default();
        let before = refuel(1, day(10), None);
        let mut twin = refuel(2, day(11), None);
        twin.valor_tanqueo = before.valor_tanqueo;
        let finding = posible_duplicado(&twin, std::slice::from_ref(&before), &thresholds).unwrap();
        assert_eq!(finding.evidence["tanqueo_similar"], Decimal::ONE);
        twin.fecha = day(12);
        assert_eq!(
            posible_duplicado(&twin, std::slice::from_ref(&before), &thresholds),
            None
        );
        twin.fecha = day(10);
        twin.bomba_id = 2;
        assert_eq!(
            posible_duplicado(&twin, std::slice::from_ref(&before), &thresholds),
            None
        );
    }

    #[test]
    fn the_reported_balance_may_drift_up_to_the_tolerance() {
        let thresholds = Thresholds::default();
        let mut now = refuel(1, day(1), None);
        now.saldo_disponible = Some(d("101000"));
        assert_eq!(saldo_desviado(&now, Some(d("100000")), &thresholds), None);
        now.saldo_disponible = Some(d("98999.99"));
        let finding = saldo_desviado(&now, Some(d("100000")), &thresholds).unwrap();
        assert_eq!(finding.evidence["diferencia"], d("1000.01"));
        assert_eq!(saldo_desviado(&now, None, &thresholds), None);
    }

    #[test]
    fn the_detector_judges_a_refuel_on_the_plate_s_earlier_refuels_only() {
        let thresholds = Thresholds::default();
        let vehicle = VehicleFacts {
            capacity_galones: Some(d("50")),
            tipo_combustible: Some("ACPM".into()),
        };
        let mut detector = Detector::default();
        detector.pay(1, d("1000000"));
        detector.remember(refuel(1, day(10), Some("100")));
        // Recorded later but dated earlier: the refuel of day 10 is not before it.
        let backdated = refuel(2, day(5), Some("150"));
        assert_eq!(detector.check(&backdated, &vehicle, &thresholds), vec![]);
        // Dated the same day as refuel 1, after it: too soon, and the hourmeter went back.
        let mut same_day = refuel(3, day(10), Some("90"));
        same_day.saldo_disponible = Some(d("1000000") - d("440001") - d("440003"));
        let rules: Vec<Rule> = detector
            .check(&same_day, &vehicle, &thresholds)
            .into_iter()
            .map(|f| f.rule)
            .collect();
        assert_eq!(
            rules,
            vec![Rule::HorometroRetrocede, Rule::TanqueoMuyPronto]
        );
        // Refuel 1 voided: nothing before refuel 3, and the balance has it back.
        detector.forget(&refuel(1, day(10), Some("100")));
        same_day.saldo_disponible = Some(d("1000000") - d("440003"));
        assert_eq!(detector.check(&same_day, &vehicle, &thresholds), vec![]);
        // Not a fuel (no band names it): the vehicle's fuel type says nothing of it.
        let mut urea = refuel(4, day(20), None);
        urea.tipo_combustible = Some("UREA".into());
        assert_eq!(detector.check(&urea, &vehicle, &thresholds), vec![]);
    }

    #[test]
    fn the_detector_judges_a_refuel_on_the_band_set_for_its_date() {
        let thresholds = Thresholds::default();
        let vehicle = VehicleFacts::default();
        let mut detector = Detector::default();
        // 11,000 COP/gal: inside the default ACPM band (9,000–15,000).
        let mut now = refuel(1, day(15), None);
        now.valor_tanqueo = d("440000");
        assert_eq!(detector.check(&now, &vehicle, &thresholds), vec![]);
        detector.set_band(ReferenceBand {
            tipo_combustible: "ACPM".into(),
            desde: Some(day(10)),
            hasta: Some(day(20)),
            minimo: d("12000"),
            maximo: d("14000"),
        });
        let findings = detector.check(&now, &vehicle, &thresholds);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].rule, Rule::CostoFueraDeBanda);
        assert_eq!(findings[0].evidence["minimo"], d("12000"));
        // Outside the band's dates, the defaults decide.
        now.fecha = day(21);
        assert_eq!(detector.check(&now, &vehicle, &thresholds), vec![]);
    }

    #[test]
    fn the_detector_keeps_a_bounded_window() {
        let mut detector = Detector::default();
        for n in 0..(PLATE_HISTORY_MAX as i64 + 10) {
            detector.remember(refuel(n, day(1), None));
        }
        assert_eq!(detector.plates[&1].len(), PLATE_HISTORY_MAX);
        assert_eq!(
            detector.costs[&(1, "ACPM".to_string())].len(),
            STATION_COSTS_RECENT
        );
        // The oldest fell off.
        assert_eq!(detector.plates[&1][0].id, 10);
    }

    #[test]
    fn every_rule_is_listed_once() {
        let mut listed = Rule::ALL.to_vec();
        listed.sort();
        listed.dedup();
        assert_eq!(listed.len(), Rule::ALL.len());
        let names: Vec<String> = Rule::ALL
            .iter()
            .map(|rule| serde_json::to_string(rule).unwrap())
            .collect();
        assert!(names.contains(&"\"HOROMETRO_RETROCEDE\"".to_string()));
        for rule in Rule::ALL {
            assert_eq!(
                serde_json::to_string(&rule).unwrap(),
                format!("\"{}\"", rule.as_str())
            );
            assert_eq!(Rule::parse(rule.as_str()), Some(rule));
        }
        for severity in Severity::ALL {
            assert_eq!(
                serde_json::to_string(&severity).unwrap(),
                format!("\"{}\"", severity.as_str())
            );
        }
    }
}
