//! Accounting periods: the calendar months the origin system closes (issue 16).
//!
//! A month is closed in two places, and both matter:
//! - the station registry's stream records that the month is closed for every station
//!   (`AccountingPeriodClosed`, see [`crate::registry`]), naming the stations registered at that
//!   moment. A station registered later inherits the closed months from that stream (the index
//!   of references reads it in order, so what a station inherits never changes);
//! - each of those stations records it in its own stream with its closing balance
//!   (`PeriodClosed`, see [`crate::fuel`]). That event is the lock: a refuel and the close of
//!   its month are decided on the same station version, so a refuel either lands before the
//!   close (and counts in its balance) or is refused, never after it.
//!
//! The log appends to one stream at a time, so a close touches the streams one after another;
//! one that stopped half way is visible (`PARCIAL`) and completed by sending it again.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// The years a period may name: those a record's `fecha` can hold.
pub const ANIO_MIN: i32 = 1;
pub const ANIO_MAX: i32 = 9999;

/// One calendar month. Ordered by year, then month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Periodo {
    pub anio: i32,
    pub mes: u32,
}

impl Periodo {
    /// The month `anio`/`mes` names, if it is one (years [`ANIO_MIN`]..=[`ANIO_MAX`]).
    pub fn new(anio: i64, mes: i64) -> Option<Self> {
        let anio = i32::try_from(anio).ok()?;
        let mes = u32::try_from(mes).ok()?;
        ((ANIO_MIN..=ANIO_MAX).contains(&anio) && (1..=12).contains(&mes))
            .then_some(Self { anio, mes })
    }

    /// The month a date falls in.
    pub fn of(fecha: NaiveDate) -> Self {
        Self {
            anio: fecha.year(),
            mes: fecha.month(),
        }
    }

    /// The month after this one.
    pub fn next(self) -> Self {
        if self.mes == 12 {
            Self {
                anio: self.anio + 1,
                mes: 1,
            }
        } else {
            Self {
                anio: self.anio,
                mes: self.mes + 1,
            }
        }
    }
}

/// `01/2026`: how the origin system's messages name a month.
impl std::fmt::Display for Periodo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}/{:04}", self.mes, self.anio)
    }
}

/// Months closed for every station when a station was registered: they stay closed on it until
/// its own stream reopens them (see the module's doc).
pub type InheritedClosures = BTreeSet<Periodo>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_a_real_month_of_a_year_a_date_can_hold() {
        assert_eq!(Periodo::new(2026, 1), Some(Periodo { anio: 2026, mes: 1 }));
        assert_eq!(Periodo::new(2026, 12).map(|p| p.mes), Some(12));
        for (anio, mes) in [(2026, 0), (2026, 13), (2026, -1), (0, 5), (10_000, 5)] {
            assert_eq!(Periodo::new(anio, mes), None, "{anio}/{mes}");
        }
        assert_eq!(Periodo::new(i64::MAX, 1), None);
        assert_eq!(Periodo::new(2026, i64::from(u32::MAX) + 2), None);
    }

    #[test]
    fn a_period_reads_as_the_origin_system_writes_it() {
        assert_eq!(Periodo { anio: 2026, mes: 1 }.to_string(), "01/2026");
        assert_eq!(Periodo { anio: 987, mes: 11 }.to_string(), "11/0987");
    }

    #[test]
    fn december_is_followed_by_january_of_the_next_year() {
        assert_eq!(
            Periodo {
                anio: 2025,
                mes: 12
            }
            .next(),
            Periodo { anio: 2026, mes: 1 }
        );
        assert_eq!(
            Periodo { anio: 2026, mes: 1 }.next(),
            Periodo { anio: 2026, mes: 2 }
        );
        let fecha = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        assert_eq!(Periodo::of(fecha), Periodo { anio: 2026, mes: 1 });
    }
}
