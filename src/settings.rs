//! Business settings of a running ledger, with the original service's defaults.

use std::str::FromStr;
use std::time::Duration;

use chrono::FixedOffset;
use rust_decimal::Decimal;

use crate::webhooks::seal::SealingKey;

/// Zones the operators work in. Only zones without daylight saving are listed: a date's end of
/// day then has one unambiguous instant.
const ZONES: &[(&str, i32)] = &[
    ("America/Bogota", -5),
    ("America/Lima", -5),
    ("America/Guayaquil", -5),
    ("America/Panama", -5),
    ("America/Mexico_City", -6),
    ("America/Guatemala", -6),
    ("America/Costa_Rica", -6),
    ("America/El_Salvador", -6),
    ("America/Tegucigalpa", -6),
    ("America/Caracas", -4),
    ("America/La_Paz", -4),
    ("America/Santo_Domingo", -4),
    ("America/Argentina/Buenos_Aires", -3),
    ("America/Sao_Paulo", -3),
    ("America/Montevideo", -3),
    ("UTC", 0),
];

/// The service's time zone: when a plain date given as `as_of` ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTimeZone {
    pub name: String,
    pub offset: FixedOffset,
}

impl FromStr for ServiceTimeZone {
    type Err = String;

    /// An IANA name from the list above, or a fixed offset such as `-05:00`.
    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Some((name, hours)) = ZONES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(raw))
        {
            let offset = FixedOffset::east_opt(hours * 3600).ok_or("invalid offset")?;
            return Ok(Self {
                name: name.to_string(),
                offset,
            });
        }
        let offset = FixedOffset::from_str(raw).map_err(|_| {
            let names: Vec<&str> = ZONES.iter().map(|(name, _)| *name).collect();
            format!(
                "unknown time zone {raw:?}: use one of {} or an offset such as -05:00",
                names.join(", ")
            )
        })?;
        Ok(Self {
            name: raw.to_string(),
            offset,
        })
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
}

impl Default for LedgerSettings {
    fn default() -> Self {
        Self {
            time_zone: "America/Bogota".parse().expect("a listed zone"),
            saldo_critico_cop: Decimal::from(-500_000),
            webhooks: WebhookSettings::default(),
            snapshot_every_events: crate::store::snapshots::SNAPSHOT_EVERY_EVENTS_DEFAULT,
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

    #[test]
    fn zones_are_named_or_fixed_offsets() {
        let bogota: ServiceTimeZone = "america/bogota".parse().unwrap();
        assert_eq!(bogota.offset, FixedOffset::west_opt(5 * 3600).unwrap());
        let fixed: ServiceTimeZone = "-03:00".parse().unwrap();
        assert_eq!(fixed.offset, FixedOffset::west_opt(3 * 3600).unwrap());
        assert!("America/Santiago".parse::<ServiceTimeZone>().is_err());
    }
}
