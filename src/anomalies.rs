//! A synthetic fleet-month with known anomalies, and the evaluation of the fuel checks
//! ([`aggregates::anomaly`]) against it: precision and recall per rule.
//!
//! The month is built from ground truth (each vehicle's tank, fuel, consumption and hourmeter,
//! each station's regular prices, every balance), then a share of refuels is altered in exactly
//! one way each. What each alteration must raise is decided from that ground truth, never from
//! the rules: an altered price more than 10% off the station's regular price is atypical for the
//! station whatever the rule computes, and an impossible hourmeter jump also makes that refuel's
//! consumption (gallons per hour) wrong, since the hours are.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aggregates::anomaly::{Detector, Refuel, Rule, Thresholds, VehicleFacts};
use chrono::{Days, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;

/// Refuels of a plate before any is altered: the rules that compare with history need some.
const CLEAN_REFUELS_FIRST: usize = 6;
/// The advance every station opens the month with.
const OPENING_ADVANCE_COP: i64 = 500_000_000;
const STATIONS: i64 = 6;

/// The fuels, their reference bands' ends (COP/gal) and the range stations' regular prices are
/// drawn from: the middle of the band, so an altered price can leave the band or the station's
/// habits on purpose.
const FUELS: [(&str, i64, i64, i64, i64); 3] = [
    ("ACPM", 9_000, 15_000, 11_000, 13_000),
    ("GASOLINA", 10_000, 16_000, 12_000, 14_000),
    ("EXTRA", 11_000, 17_000, 13_000, 15_000),
];

/// One way a refuel is altered, named by the rule it targets.
const ALTERATIONS: [Rule; 11] = Rule::ALL;

#[derive(Debug, Clone)]
struct Vehicle {
    placa_id: i64,
    capacity: Decimal,
    fuel: usize,
    /// Gallons per hourmeter hour.
    rate: f64,
    reports_hourmeter: bool,
    home_station: i64,
}

/// A generated month: every refuel in the order the ledger recorded them, what each should
/// raise, and what the checks are given besides the refuels.
#[derive(Debug, Clone)]
pub struct SyntheticMonth {
    pub refuels: Vec<Refuel>,
    /// Each altered refuel's id and the rules it must raise; every other refuel must raise none.
    pub expected: HashMap<i64, BTreeSet<Rule>>,
    capacity: HashMap<i64, Decimal>,
    fuel_type: HashMap<i64, &'static str>,
}

fn decimal(value: f64, places: u32) -> Decimal {
    Decimal::from_f64(value)
        .unwrap_or_default()
        .round_dp(places)
}

/// `vehicles` vehicles over January 2026; `altered_share` of the refuels after each plate's
/// first [`CLEAN_REFUELS_FIRST`] are altered, each in one of the eleven ways. Deterministic for
/// a `seed`.
pub fn generate(seed: u64, vehicles: usize, altered_share: f64) -> SyntheticMonth {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
    let month_days = 31;
    // Regular price of each station for each fuel.
    let prices: HashMap<(i64, usize), f64> = (1..=STATIONS)
        .flat_map(|station| (0..FUELS.len()).map(move |fuel| (station, fuel)))
        .map(|(station, fuel)| {
            let (_, _, _, low, high) = FUELS[fuel];
            ((station, fuel), rng.gen_range(low as f64..high as f64))
        })
        .collect();
    let fleet: Vec<Vehicle> = (1..=vehicles as i64)
        .map(|placa_id| Vehicle {
            placa_id,
            capacity: Decimal::from(rng.gen_range(20..=80)),
            fuel: match rng.gen_range(0..10) {
                0..=5 => 0,
                6..=8 => 1,
                _ => 2,
            },
            rate: rng.gen_range(2.0..8.0),
            reports_hourmeter: rng.gen_bool(0.85),
            home_station: rng.gen_range(1..=STATIONS),
        })
        .collect();

    let mut month = SyntheticMonth {
        refuels: Vec::new(),
        expected: HashMap::new(),
        capacity: fleet.iter().map(|v| (v.placa_id, v.capacity)).collect(),
        fuel_type: fleet
            .iter()
            .map(|v| (v.placa_id, FUELS[v.fuel].0))
            .collect(),
    };
    let mut next_id = 1;
    let mut drifts: Vec<i64> = Vec::new();
    for vehicle in &fleet {
        let capacity = vehicle.capacity.to_string().parse::<f64>().unwrap_or(40.0);
        let mut counter = rng.gen_range(100.0..5_000.0_f64);
        let mut day = rng.gen_range(0..3_u64);
        let mut previous: Option<Refuel> = None;
        let mut count = 0;
        while day < month_days {
            let gallons = capacity * rng.gen_range(0.5..0.9);
            let hours = gallons / (vehicle.rate * rng.gen_range(0.95..1.05));
            let station = if rng.gen_bool(0.9) {
                vehicle.home_station
            } else {
                rng.gen_range(1..=STATIONS)
            };
            let fecha = start + Days::new(day);
            counter += hours;
            let price = prices[&(station, vehicle.fuel)] * rng.gen_range(0.997..1.003);
            let mut refuel = Refuel {
                id: next_id,
                fecha,
                bomba_id: station,
                placa_id: vehicle.placa_id,
                tipo_combustible: Some(FUELS[vehicle.fuel].0.to_string()),
                valor_tanqueo: decimal(gallons * price, 0),
                cantidad_galones: decimal(gallons, 3),
                horometro: vehicle.reports_hourmeter.then(|| decimal(counter, 1)),
                saldo_disponible: None,
            };
            next_id += 1;
            let mut extra: Option<Refuel> = None;
            if count >= CLEAN_REFUELS_FIRST && rng.gen_bool(altered_share) {
                let alteration = ALTERATIONS[rng.gen_range(0..ALTERATIONS.len())];
                let expected = alter(
                    alteration,
                    &mut refuel,
                    &mut extra,
                    previous.as_ref(),
                    vehicle,
                    &prices,
                    &mut counter,
                    &mut next_id,
                    &mut rng,
                );
                if let Some((id, rules)) = expected {
                    if rules.contains(&Rule::SaldoReportadoDesviado) {
                        drifts.push(id);
                    }
                    month.expected.insert(id, rules);
                }
            }
            month.refuels.push(refuel.clone());
            if let Some(extra) = extra {
                month.refuels.push(extra.clone());
                previous = Some(extra);
            } else {
                previous = Some(refuel);
            }
            count += 1;
            day += (hours / 10.0).ceil().max(2.0) as u64;
        }
    }
    // The ledger's order: by date, then by id (refuels of one day in the order they arrived).
    month.refuels.sort_by_key(|r| (r.fecha, r.id));
    // Every station opens the month with an advance; each refuel reports the balance it left,
    // exactly, or (altered) off by more than the tolerance.
    let mut saldo: BTreeMap<i64, Decimal> = (1..=STATIONS)
        .map(|station| (station, Decimal::from(OPENING_ADVANCE_COP)))
        .collect();
    let drifts: BTreeSet<i64> = drifts.into_iter().collect();
    for refuel in &mut month.refuels {
        let balance = saldo.entry(refuel.bomba_id).or_default();
        *balance -= refuel.valor_tanqueo;
        refuel.saldo_disponible = if drifts.contains(&refuel.id) {
            let off = Decimal::from(rng.gen_range(5_000..50_000));
            Some(if rng.gen_bool(0.5) {
                *balance + off
            } else {
                *balance - off
            })
        } else if rng.gen_bool(0.7) {
            Some(*balance)
        } else {
            None
        };
    }
    month
}

/// Alters `refuel` (or adds `extra` after it) the way that `rule` checks, and answers the
/// altered record's id with the rules it must raise; `None` when this refuel cannot carry that
/// alteration (it then stays as it was).
#[allow(clippy::too_many_arguments)]
fn alter(
    rule: Rule,
    refuel: &mut Refuel,
    extra: &mut Option<Refuel>,
    previous: Option<&Refuel>,
    vehicle: &Vehicle,
    prices: &HashMap<(i64, usize), f64>,
    counter: &mut f64,
    next_id: &mut i64,
    rng: &mut StdRng,
) -> Option<(i64, BTreeSet<Rule>)> {
    let previous = previous?;
    let only = |rules: &[Rule]| rules.iter().copied().collect::<BTreeSet<Rule>>();
    let gallons = refuel
        .cantidad_galones
        .to_string()
        .parse::<f64>()
        .unwrap_or(1.0);
    let price = |station: i64, fuel: usize| prices[&(station, fuel)];
    match rule {
        Rule::HorometroRetrocede => {
            let before = previous.horometro?;
            let back = Decimal::from(rng.gen_range(1..20));
            refuel.horometro = Some(before - back);
            // The meter was reset: later readings go on from here.
            *counter = (before - back).to_string().parse().unwrap_or(*counter);
            Some((refuel.id, only(&[rule])))
        }
        Rule::HorometroSaltoImposible => {
            let before = previous.horometro?;
            let days = (refuel.fecha - previous.fecha).num_days();
            let jump = Decimal::from((days + 1) * 24 + rng.gen_range(10..200));
            refuel.horometro = Some(before + jump);
            *counter = (before + jump).to_string().parse().unwrap_or(*counter);
            // The hours are wrong, so is the consumption over them.
            Some((refuel.id, only(&[rule, Rule::ConsumoAtipico])))
        }
        Rule::HorometroFaltante => {
            refuel.horometro?;
            refuel.horometro = None;
            Some((refuel.id, only(&[rule])))
        }
        Rule::GalonesSobreCapacidad => {
            let capacity: f64 = vehicle.capacity.to_string().parse().unwrap_or(40.0);
            let over = capacity * rng.gen_range(1.15..1.4);
            // Burnt over the hours the meter shows, so the consumption stays the vehicle's.
            let hours = over / vehicle.rate;
            if let (Some(before), true) = (previous.horometro, refuel.horometro.is_some()) {
                *counter = before.to_string().parse::<f64>().unwrap_or(*counter) + hours;
                refuel.horometro = Some(decimal(*counter, 1));
            }
            let unit = price(refuel.bomba_id, vehicle.fuel);
            refuel.cantidad_galones = decimal(over, 3);
            refuel.valor_tanqueo = decimal(over * unit, 0);
            Some((refuel.id, only(&[rule])))
        }
        Rule::TanqueoMuyPronto => {
            // A top-up the same day: a few gallons, burnt over the hours they last.
            let top_up = gallons * 0.15;
            let hours = top_up / vehicle.rate;
            *counter += hours;
            let unit = price(refuel.bomba_id, vehicle.fuel);
            let mut top = refuel.clone();
            top.id = *next_id;
            *next_id += 1;
            top.cantidad_galones = decimal(top_up, 3);
            top.valor_tanqueo = decimal(top_up * unit, 0);
            top.horometro = refuel.horometro.map(|_| decimal(*counter, 1));
            let id = top.id;
            *extra = Some(top);
            Some((id, only(&[rule])))
        }
        Rule::CombustibleDistinto => {
            let other = (vehicle.fuel + rng.gen_range(1..FUELS.len())) % FUELS.len();
            let unit = price(refuel.bomba_id, other);
            refuel.tipo_combustible = Some(FUELS[other].0.to_string());
            refuel.valor_tanqueo = decimal(gallons * unit, 0);
            Some((refuel.id, only(&[rule])))
        }
        Rule::CostoAtipicoEstacion => {
            // 12% off the station's price, towards the middle of the band: still inside it.
            let (_, low, high, _, _) = FUELS[vehicle.fuel];
            let regular = price(refuel.bomba_id, vehicle.fuel);
            let middle = (low + high) as f64 / 2.0;
            let factor = if regular > middle { 0.88 } else { 1.12 };
            refuel.valor_tanqueo = decimal(gallons * regular * factor, 0);
            Some((refuel.id, only(&[rule])))
        }
        Rule::CostoFueraDeBanda => {
            // Just past the band's nearer end: more than 10% off the station's price too.
            let (_, low, high, _, _) = FUELS[vehicle.fuel];
            let regular = price(refuel.bomba_id, vehicle.fuel);
            let unit = if regular > (low + high) as f64 / 2.0 {
                high as f64 * rng.gen_range(1.02..1.08)
            } else {
                low as f64 * rng.gen_range(0.92..0.98)
            };
            refuel.valor_tanqueo = decimal(gallons * unit, 0);
            Some((refuel.id, only(&[rule, Rule::CostoAtipicoEstacion])))
        }
        Rule::ConsumoAtipico => {
            // Three times the vehicle's consumption: the meter shows a third of the hours.
            let before = previous.horometro?;
            refuel.horometro?;
            let hours = gallons / (vehicle.rate * 3.0);
            *counter = before.to_string().parse::<f64>().unwrap_or(*counter) + hours;
            refuel.horometro = Some(decimal(*counter, 1));
            Some((refuel.id, only(&[rule])))
        }
        Rule::PosibleDuplicado => {
            // The previous refuel entered again the next day.
            let mut twin = previous.clone();
            twin.id = *next_id;
            *next_id += 1;
            twin.fecha = previous.fecha + Days::new(1);
            if twin.fecha >= refuel.fecha {
                return None;
            }
            let id = twin.id;
            *extra = Some(twin);
            // Recorded before this refuel: swap so the twin comes first.
            std::mem::swap(extra.as_mut()?, refuel);
            Some((id, only(&[rule])))
        }
        Rule::SaldoReportadoDesviado => Some((refuel.id, only(&[rule]))),
    }
}

/// True and false positives and misses of one rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleScore {
    pub true_positives: u64,
    pub false_positives: u64,
    pub missed: u64,
}

impl RuleScore {
    pub fn precision(&self) -> Option<f64> {
        let flagged = self.true_positives + self.false_positives;
        (flagged > 0).then(|| self.true_positives as f64 / flagged as f64)
    }

    pub fn recall(&self) -> Option<f64> {
        let expected = self.true_positives + self.missed;
        (expected > 0).then(|| self.true_positives as f64 / expected as f64)
    }
}

/// Replays the month in the ledger's order through the same [`Detector`] the live consumer
/// ([`crate::alert_detector`]) feeds, each refuel seeing only what was recorded before it, and
/// scores each rule against what was injected.
pub fn score(month: &SyntheticMonth, thresholds: &Thresholds) -> BTreeMap<Rule, RuleScore> {
    let mut scores: BTreeMap<Rule, RuleScore> = Rule::ALL
        .iter()
        .map(|rule| (*rule, RuleScore::default()))
        .collect();
    let mut detector = Detector::default();
    for station in 1..=STATIONS {
        detector.pay(station, Decimal::from(OPENING_ADVANCE_COP));
    }
    let none = BTreeSet::new();
    for refuel in &month.refuels {
        let vehicle = VehicleFacts {
            capacity_galones: month.capacity.get(&refuel.placa_id).copied(),
            tipo_combustible: month
                .fuel_type
                .get(&refuel.placa_id)
                .map(|tipo| tipo.to_string()),
        };
        let raised: BTreeSet<Rule> = detector
            .check(refuel, &vehicle, thresholds)
            .into_iter()
            .map(|finding| finding.rule)
            .collect();
        let expected = month.expected.get(&refuel.id).unwrap_or(&none);
        for (rule, score) in scores.iter_mut() {
            match (raised.contains(rule), expected.contains(rule)) {
                (true, true) => score.true_positives += 1,
                (true, false) => score.false_positives += 1,
                (false, true) => score.missed += 1,
                (false, false) => {}
            }
        }
        detector.remember(refuel.clone());
    }
    scores
}

/// The recall and precision every rule must reach on the synthetic month.
pub const RECALL_MIN: f64 = 0.95;
pub const PRECISION_MIN: f64 = 0.90;

/// A month's evaluation, printable as a table.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub refuels: usize,
    pub altered: usize,
    /// Whether the thresholds were the defaults.
    pub defaults: bool,
    pub scores: BTreeMap<Rule, RuleScore>,
}

impl Evaluation {
    pub fn of(month: &SyntheticMonth, thresholds: &Thresholds) -> Self {
        Self {
            refuels: month.refuels.len(),
            altered: month.expected.len(),
            defaults: *thresholds == Thresholds::default(),
            scores: score(month, thresholds),
        }
    }

    fn meets(score: &RuleScore) -> bool {
        score.recall().is_some_and(|r| r >= RECALL_MIN)
            && score.precision().is_some_and(|p| p >= PRECISION_MIN)
    }

    /// Every rule had something to find and found it well enough.
    pub fn meets_target(&self) -> bool {
        self.scores.values().all(Self::meets)
    }
}

impl std::fmt::Display for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} refuels, {} altered; thresholds: {}",
            self.refuels,
            self.altered,
            if self.defaults {
                "the defaults"
            } else {
                "as configured"
            }
        )?;
        writeln!(
            f,
            "{:<26} {:>8} {:>6} {:>6} {:>9} {:>7}  target",
            "rule", "expected", "hits", "false", "precision", "recall"
        )?;
        let ratio = |value: Option<f64>| value.map_or("-".to_string(), |v| format!("{v:.3}"));
        for (rule, score) in &self.scores {
            let name = serde_json::to_value(rule)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            writeln!(
                f,
                "{:<26} {:>8} {:>6} {:>6} {:>9} {:>7}  {}",
                name,
                score.true_positives + score.missed,
                score.true_positives,
                score.false_positives,
                ratio(score.precision()),
                ratio(score.recall()),
                if Self::meets(score) { "met" } else { "MISSED" }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_injected_kind_is_caught_with_the_documented_precision_and_recall() {
        for seed in [1, 7, 42] {
            let evaluation = Evaluation::of(&generate(seed, 400, 0.2), &Thresholds::default());
            for (rule, score) in &evaluation.scores {
                let expected = score.true_positives + score.missed;
                assert!(
                    expected >= 10,
                    "seed {seed}, {rule:?}: only {expected} injected"
                );
            }
            assert!(evaluation.meets_target(), "seed {seed}:\n{evaluation}");
        }
    }

    #[test]
    fn an_unaltered_month_raises_nothing() {
        let month = generate(5, 200, 0.0);
        assert!(month.expected.is_empty());
        let scores = score(&month, &Thresholds::default());
        let raised: u64 = scores.values().map(|s| s.false_positives).sum();
        assert_eq!(raised, 0, "{scores:?}");
    }

    #[test]
    fn the_month_is_the_same_for_a_seed() {
        let (a, b) = (generate(3, 20, 0.2), generate(3, 20, 0.2));
        assert_eq!(a.refuels, b.refuels);
        assert_ne!(a.refuels, generate(4, 20, 0.2).refuels);
    }
}
