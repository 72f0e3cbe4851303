//! Reference bands of cost per gallon (`bandas-referencia`, issue 16): set by an admin per fuel
//! type and date range, one stream for all of them so they are audited and replayed in order.
//!
//! **Overlaps.** A band set later wins over an earlier one on every date both cover: setting a
//! band never refuses for an overlap, it narrows what the earlier bands still decide. The
//! original service's defaults ([`ReferenceBand::defaults`]) decide a date no set band covers.
//!
//! **No re-judging.** A refuel is judged on the bands set before it in the log; a band set later
//! does not reopen or close alerts of earlier refuels (a correction of such a refuel is judged
//! anew, on the bands in force when the correction is recorded).

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::anomaly::ReferenceBand;

/// The one stream of the reference bands.
pub const BANDS_STREAM: &str = "bandas";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BandEvent {
    ReferenceBandSet {
        tipo_combustible: String,
        desde: NaiveDate,
        hasta: Option<NaiveDate>,
        minimo: Decimal,
        maximo: Decimal,
    },
}

impl BandEvent {
    /// The band this event set.
    pub fn band(&self) -> ReferenceBand {
        match self {
            Self::ReferenceBandSet {
                tipo_combustible,
                desde,
                hasta,
                minimo,
                maximo,
            } => ReferenceBand {
                tipo_combustible: tipo_combustible.clone(),
                desde: Some(*desde),
                hasta: *hasta,
                minimo: *minimo,
                maximo: *maximo,
            },
        }
    }
}

impl DomainEvent for BandEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ReferenceBandSet { .. } => "ReferenceBandSet",
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
pub enum BandCommand {
    /// `tipo_combustible` is already checked against the `combustibles` catalogue (the
    /// catalogue lives in another stream).
    Set {
        tipo_combustible: String,
        desde: NaiveDate,
        hasta: Option<NaiveDate>,
        minimo: Decimal,
        maximo: Decimal,
    },
}

/// Each refusal names the field at fault, in the /api family's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BandError {
    #[error("Invalid value for minimo: must be greater than 0")]
    MinimoNotPositive,
    #[error("Invalid value for maximo: must be greater than or equal to minimo")]
    MaximoBelowMinimo,
    #[error("Invalid value for hasta: must be on or after desde")]
    HastaBeforeDesde,
}

/// Every band set, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReferenceBands {
    set: Vec<ReferenceBand>,
}

impl ReferenceBands {
    pub fn set(&self) -> &[ReferenceBand] {
        &self.set
    }
}

/// The bands as the checks consult them, first match wins: the bands `set` (oldest first) from
/// the latest back, then the defaults.
pub fn in_force(set: &[ReferenceBand]) -> Vec<ReferenceBand> {
    set.iter()
        .rev()
        .cloned()
        .chain(ReferenceBand::defaults())
        .collect()
}

impl Aggregate for ReferenceBands {
    const TYPE: &'static str = "bandas-referencia";
    type Command = BandCommand;
    type Event = BandEvent;
    type Error = BandError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            BandCommand::Set {
                tipo_combustible,
                desde,
                hasta,
                minimo,
                maximo,
            } => {
                if minimo <= Decimal::ZERO {
                    return Err(BandError::MinimoNotPositive);
                }
                if maximo < minimo {
                    return Err(BandError::MaximoBelowMinimo);
                }
                if hasta.is_some_and(|hasta| hasta < desde) {
                    return Err(BandError::HastaBeforeDesde);
                }
                sink.write(
                    BandEvent::ReferenceBandSet {
                        tipo_combustible: tipo_combustible.trim().to_uppercase(),
                        desde,
                        hasta,
                        minimo: minimo.normalize(),
                        maximo: maximo.normalize(),
                    },
                    self,
                )
                .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.set.push(event.band());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::band_for;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, d).unwrap()
    }

    fn band(tipo: &str, desde: u32, hasta: Option<u32>, minimo: i64, maximo: i64) -> ReferenceBand {
        ReferenceBand {
            tipo_combustible: tipo.to_string(),
            desde: Some(day(desde)),
            hasta: hasta.map(day),
            minimo: Decimal::from(minimo),
            maximo: Decimal::from(maximo),
        }
    }

    #[test]
    fn a_date_no_set_band_covers_is_decided_by_the_defaults() {
        let bands = in_force(&[band("ACPM", 10, Some(20), 9_500, 14_500)]);
        let before = band_for(&bands, "ACPM", day(9)).unwrap();
        assert_eq!(
            (before.minimo, before.maximo),
            (9_000.into(), 15_000.into())
        );
        let after = band_for(&bands, "acpm", day(21)).unwrap();
        assert_eq!(after.desde, None);
        let other = band_for(&bands, "GASOLINA", day(15)).unwrap();
        assert_eq!(other.minimo, Decimal::from(10_000));
    }

    #[test]
    fn a_set_band_decides_the_dates_it_covers_both_ends_included() {
        let bands = in_force(&[band("ACPM", 10, Some(20), 9_500, 14_500)]);
        for d in [10, 15, 20] {
            assert_eq!(
                band_for(&bands, "ACPM", day(d)).unwrap().minimo,
                9_500.into()
            );
        }
    }

    #[test]
    fn the_latest_set_band_wins_where_bands_overlap() {
        let bands = in_force(&[
            band("ACPM", 1, None, 9_500, 14_500),
            band("ACPM", 10, Some(12), 10_000, 13_000),
        ]);
        assert_eq!(
            band_for(&bands, "ACPM", day(5)).unwrap().minimo,
            9_500.into()
        );
        assert_eq!(
            band_for(&bands, "ACPM", day(11)).unwrap().minimo,
            10_000.into()
        );
        assert_eq!(
            band_for(&bands, "ACPM", day(13)).unwrap().minimo,
            9_500.into()
        );
    }

    #[tokio::test]
    async fn a_band_is_refused_naming_the_field_at_fault() {
        let set = |minimo: i64, maximo: i64, hasta: Option<u32>| BandCommand::Set {
            tipo_combustible: "ACPM".to_string(),
            desde: day(10),
            hasta: hasta.map(day),
            minimo: minimo.into(),
            maximo: maximo.into(),
        };
        let cases = [
            (set(0, 10, None), BandError::MinimoNotPositive),
            (set(10, 9, None), BandError::MaximoBelowMinimo),
            (set(10, 20, Some(9)), BandError::HastaBeforeDesde),
        ];
        for (command, refusal) in cases {
            let mut bands = ReferenceBands::default();
            let sink = EventSink::default();
            assert_eq!(bands.handle(command, &(), &sink).await, Err(refusal));
        }
    }
}
