//! Business settings of a running ledger, with the original service's defaults.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use crate::webhooks::seal::SealingKey;

/// The service's time zone: when a plain date given as `as_of` (or `desde`/`hasta`) begins and
/// ends. An IANA zone keeps its history, so a date in 2018 ends at the offset in force in 2018.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTimeZone {
    pub name: String,
    zone: Zone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zone {
    Named(Tz),
    Fixed(FixedOffset),
}

impl ServiceTimeZone {
    /// What the zone's clock read at `instant` (the dashboard writes times as the operators
    /// read them).
    pub fn local(&self, instant: DateTime<Utc>) -> NaiveDateTime {
        match self.zone {
            Zone::Fixed(offset) => instant.with_timezone(&offset).naive_local(),
            Zone::Named(tz) => instant.with_timezone(&tz).naive_local(),
        }
    }

    /// The instant `local` names on the zone's clock. In a gap (a clock moved forward: Brazil's
    /// daylight saving began at midnight) the first instant after it; when the clock moved back
    /// and `local` happened twice, the earlier with `Earliest`, the later with `Latest`.
    pub fn instant(&self, local: NaiveDateTime, pick: Pick) -> Option<DateTime<Utc>> {
        match self.zone {
            Zone::Fixed(offset) => resolve(offset.from_local_datetime(&local), pick),
            Zone::Named(tz) => resolve(tz.from_local_datetime(&local), pick).or_else(|| {
                // A gap: the offset in force before it, applied to the missing local time, is
                // the instant the clock jumped at.
                let before = tz
                    .from_local_datetime(&(local - chrono::Duration::hours(3)))
                    .earliest()?;
                let offset = before.offset().fix();
                resolve(offset.from_local_datetime(&local), pick)
            }),
        }
    }
}

/// Which of two instants a local time that happened twice means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Earliest,
    Latest,
}

fn resolve<T: TimeZone>(local: LocalResult<DateTime<T>>, pick: Pick) -> Option<DateTime<Utc>> {
    let chosen = match (local, pick) {
        (LocalResult::Single(at), _) => at,
        (LocalResult::Ambiguous(early, _), Pick::Earliest) => early,
        (LocalResult::Ambiguous(_, late), Pick::Latest) => late,
        (LocalResult::None, _) => return None,
    };
    Some(chosen.with_timezone(&Utc))
}

impl FromStr for ServiceTimeZone {
    type Err = String;

    /// An IANA name (any letter case) of the tz database's American zones or UTC, or a fixed
    /// offset such as `-05:00`.
    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Some(tz) = chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(raw))
        {
            return Ok(Self {
                name: tz.name().to_string(),
                zone: Zone::Named(*tz),
            });
        }
        let offset = FixedOffset::from_str(raw).map_err(|_| {
            format!(
                "unknown time zone {raw:?}: use an IANA name such as America/Bogota or \
                 America/Sao_Paulo, or an offset such as -05:00"
            )
        })?;
        Ok(Self {
            name: raw.to_string(),
            zone: Zone::Fixed(offset),
        })
    }
}

impl std::fmt::Display for ServiceTimeZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSettings {
    pub time_zone: ServiceTimeZone,
    /// Below this balance a station is `CRITICO`; from here up to zero it is `BAJO`.
    pub saldo_critico_cop: Decimal,
    pub webhooks: WebhookSettings,
    /// Events between snapshots of a stream's aggregate (`--snapshot-every`); 0 turns them off.
    pub snapshot_every_events: u64,
    /// `/readyz` answers 503 when a projection is more than this many events behind the log's
    /// head (`--ready-lag-max`).
    pub ready_lag_max_events: u64,
    /// The dashboard's login offers a role picker that signs in without a token
    /// (`--dev-login`): for development only, off by default.
    pub dev_login: bool,
    /// Where each fuel check draws its line (issue 16), and the reference bands.
    pub anomalies: aggregates::anomaly::Thresholds,
}

/// Events a projection may trail the head by and still be ready: steady writes keep every
/// projection a batch or two behind the newest commit, which is no reason to leave the pool.
pub const READY_LAG_MAX_EVENTS_DEFAULT: u64 = 1_000;

impl Default for LedgerSettings {
    fn default() -> Self {
        Self {
            time_zone: "America/Bogota".parse().expect("a listed zone"),
            saldo_critico_cop: Decimal::from(-500_000),
            webhooks: WebhookSettings::default(),
            snapshot_every_events: crate::store::snapshots::SNAPSHOT_EVERY_EVENTS_DEFAULT,
            ready_lag_max_events: READY_LAG_MAX_EVENTS_DEFAULT,
            dev_login: false,
            anomalies: aggregates::anomaly::Thresholds::default(),
        }
    }
}

/// How the self-inspections' webhooks are registered and delivered (seed 003).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Seals the signing secrets at rest. `serve` reads it from `FLEET_LEDGER_WEBHOOK_KEY` or
    /// the data directory ([`SealingKey::load`]); the default is a fixed development key.
    pub key: SealingKey,
    /// Whether a webhook may point at loopback, private or link-local addresses
    /// (`--webhook-allow-private`): off, so a company cannot make the service call into the
    /// network it runs in (SSRF).
    pub allow_private: bool,
    /// Deliveries in flight at once, per instance.
    pub concurrency: usize,
    /// Longest a receiver may take to answer an attempt (seed 003's issue: 10 s).
    pub timeout: Duration,
    /// The pause after a delivery's first failed attempt; each further failure doubles it (up
    /// to `retry_delay_max`), with jitter.
    pub retry_base: Duration,
    pub retry_delay_max: Duration,
    /// A delivery is retried for at least this long after it was scheduled, then given up
    /// (`FALHOU`).
    pub retry_window: Duration,
    /// How often an idle worker looks for deliveries that came due.
    pub poll: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            key: SealingKey::development(),
            allow_private: false,
            concurrency: 16,
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(10),
            retry_delay_max: Duration::from_secs(3600),
            retry_window: Duration::from_secs(24 * 3600),
            poll: Duration::from_millis(250),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn end_of(zone: &str, date: &str) -> DateTime<Utc> {
        let zone: ServiceTimeZone = zone.parse().unwrap();
        let local = NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .unwrap()
            .and_hms_opt(23, 0, 0)
            .unwrap();
        zone.instant(local, Pick::Latest).unwrap()
    }

    #[test]
    fn zones_are_named_in_any_case_or_fixed_offsets() {
        let bogota: ServiceTimeZone = "america/bogota".parse().unwrap();
        assert_eq!(bogota.name, "America/Bogota");
        let fixed: ServiceTimeZone = "-03:00".parse().unwrap();
        assert_eq!(
            fixed.zone,
            Zone::Fixed(FixedOffset::west_opt(3 * 3600).unwrap())
        );
        assert!("Mars/Olympus_Mons".parse::<ServiceTimeZone>().is_err());
    }

    #[test]
    fn a_past_date_ends_at_the_offset_in_force_on_that_date() {
        // São Paulo kept daylight saving (-02:00) in January 2018; Brazil abolished it in 2019.
        assert_eq!(
            end_of("America/Sao_Paulo", "2018-01-15").to_rfc3339(),
            "2018-01-16T01:00:00+00:00"
        );
        assert_eq!(
            end_of("America/Sao_Paulo", "2020-01-15").to_rfc3339(),
            "2020-01-16T02:00:00+00:00"
        );
        // Santiago still changes: -03:00 in its summer, -04:00 in its winter.
        assert_eq!(
            end_of("America/Santiago", "2024-01-15").to_rfc3339(),
            "2024-01-16T02:00:00+00:00"
        );
        assert_eq!(
            end_of("America/Santiago", "2024-07-15").to_rfc3339(),
            "2024-07-16T03:00:00+00:00"
        );
    }

    #[test]
    fn a_midnight_skipped_by_the_clock_means_the_instant_it_jumped_at() {
        // 2018-11-04 00:00 did not happen in São Paulo: the clocks went from 23:59:59 to 01:00.
        let zone: ServiceTimeZone = "America/Sao_Paulo".parse().unwrap();
        let midnight = NaiveDate::from_ymd_opt(2018, 11, 4)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        assert_eq!(
            zone.instant(midnight, Pick::Earliest).unwrap().to_rfc3339(),
            "2018-11-04T03:00:00+00:00"
        );
    }
}
