//! The figures of a run: one [`ScenarioReport`] per scenario, printed as a table next to the
//! targets the issue set, and the same figures as JSON.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::stats::LatencySummary;
use super::verify::Verification;
use super::Scenario;

const MB: u64 = 1024 * 1024;

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: Scenario,
    /// `sqlite`, `postgres`, or `remote` for a service at `--url`.
    pub store: String,
    /// Concurrent connections (1 for sequential requests, 0 without HTTP load).
    pub connections: usize,
    /// How long the measured phase took: the load, the rebuild, open → ready.
    pub elapsed_s: f64,
    /// HTTP exchanges of the measured phase, retries included.
    pub requests: u64,
    pub requests_per_s: f64,
    pub latency_ms: Option<LatencySummary>,
    /// Non-2xx answers by status (409s that were retried excepted).
    pub non_2xx: BTreeMap<u16, u64>,
    /// The first body of each non-2xx status.
    pub non_2xx_samples: BTreeMap<u16, String>,
    /// Requests with no usable answer.
    pub transport_errors: u64,
    /// 409s answered and retried with the same body.
    pub conflicts_retried: u64,
    /// Writes answered before the read models showed them (`X-Read-Models-Lag`).
    pub lagged_answers: u64,
    /// Events the phase appended (the log's head delta) or, for rebuild, folded.
    pub events: i64,
    pub events_per_s: f64,
    /// Peak resident set of this process during the phase (the in-process service included).
    pub peak_rss_bytes: Option<u64>,
    /// A first request timed on its own because it warms what the others answer from (as-of).
    pub first_request_ms: Option<f64>,
    /// `None` for scenarios that check nothing beyond their figures.
    pub verification: Option<Verification>,
    pub target: TargetVerdict,
    /// What else a reader of the figures should know.
    pub notes: Vec<String>,
}

impl ScenarioReport {
    /// Non-2xx answers (retried 409s excepted) plus requests without an answer.
    pub fn errors(&self) -> u64 {
        self.non_2xx.values().sum::<u64>() + self.transport_errors
    }

    pub fn verified(&self) -> bool {
        self.verification.as_ref().is_none_or(Verification::passed)
    }

    /// One line for the progress output.
    pub fn summary(&self) -> String {
        let mut line = format!("done in {:.2} s", self.elapsed_s);
        if self.requests > 0 {
            line += &format!(", {:.0} req/s", self.requests_per_s);
        }
        if let Some(latency) = self.latency_ms {
            line += &format!(", p99 {:.2} ms", latency.p99_ms);
        }
        if self.events_per_s > 0.0 {
            line += &format!(", {:.0} events/s", self.events_per_s);
        }
        line += &format!(", {} errors", self.errors());
        line + match &self.verification {
            Some(v) if v.passed() => ", verified",
            Some(_) => ", VERIFICATION FAILED",
            None => "",
        }
    }
}

/// One measured figure against its target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub what: String,
    pub met: bool,
}

/// The scenario's targets, as the issue states them, and whether every one was met.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetVerdict {
    pub description: String,
    pub met: bool,
    pub checks: Vec<Check>,
}

impl TargetVerdict {
    fn of(checks: Vec<Check>) -> Self {
        Self {
            description: checks
                .iter()
                .map(|c| c.what.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            met: checks.iter().all(|c| c.met),
            checks,
        }
    }
}

fn check(what: &str, met: bool) -> Check {
    Check {
        what: what.to_string(),
        met,
    }
}

/// The targets of the issue, unchanged. A service at `--url` is held to the SQLite ones (the
/// default store); memory is only judged when the service runs in this process.
pub(crate) fn target_for(report: &ScenarioReport) -> TargetVerdict {
    let p99 = report.latency_ms.map_or(f64::INFINITY, |l| l.p99_ms);
    let rss_mb = report.peak_rss_bytes.map(|b| b as f64 / MB as f64);
    let checks = match report.scenario {
        Scenario::Tanqueos if report.store == "postgres" => vec![
            check("≥ 8,000 req/s", report.requests_per_s >= 8_000.0),
            check("p99 ≤ 25 ms", p99 <= 25.0),
        ],
        Scenario::Tanqueos => vec![
            check("≥ 10,000 req/s", report.requests_per_s >= 10_000.0),
            check("p99 ≤ 25 ms", p99 <= 25.0),
            check("0 errors", report.errors() == 0),
        ],
        Scenario::Mixed => {
            let mut checks = vec![
                check("≥ 8,000 req/s", report.requests_per_s >= 8_000.0),
                check("p99 ≤ 25 ms", p99 <= 25.0),
            ];
            if report.store != "remote" {
                checks.push(check("RSS ≤ 200 MB", rss_mb.is_some_and(|mb| mb <= 200.0)));
            }
            checks
        }
        Scenario::Rebuild => vec![check(
            "≥ 300,000 events/s",
            report.events_per_s >= 300_000.0,
        )],
        Scenario::AsOf => vec![check("p99 ≤ 10 ms", p99 <= 10.0)],
        Scenario::Startup => vec![check("≤ 1 s", report.elapsed_s <= 1.0)],
        Scenario::Lookup => vec![
            check("p99 ≤ 20 ms", p99 <= 20.0),
            check("0 errors", report.errors() == 0),
        ],
        // Latencies are of batches (1,000 entries each at the size).
        Scenario::Inspecciones => vec![
            check("batch p99 ≤ 200 ms", p99 <= 200.0),
            check("0 errors", report.errors() == 0),
        ],
    };
    TargetVerdict::of(checks)
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub scenarios: Vec<ScenarioReport>,
}

impl BenchReport {
    /// Every verification passed (targets missed do not count: they are figures, not failures).
    pub fn verified(&self) -> bool {
        self.scenarios.iter().all(ScenarioReport::verified)
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

/// `12,345`.
pub(crate) fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

fn rate(per_s: f64) -> String {
    if per_s > 0.0 {
        thousands(per_s.round() as u64)
    } else {
        "-".to_string()
    }
}

fn statuses(report: &ScenarioReport) -> String {
    let mut parts: Vec<String> = report
        .non_2xx
        .iter()
        .map(|(status, count)| format!("{status}×{}", thousands(*count)))
        .collect();
    if report.transport_errors > 0 {
        parts.push(format!("io×{}", thousands(report.transport_errors)));
    }
    if parts.is_empty() {
        "0".to_string()
    } else {
        parts.join(" ")
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers = [
            "scenario",
            "store",
            "conns",
            "time",
            "requests",
            "req/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "non-2xx",
            "409 retried",
            "events/s",
            "peak RSS",
            "verified",
            "target",
        ];
        let ms = |value: Option<f64>| value.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
        let rows: Vec<Vec<String>> = self
            .scenarios
            .iter()
            .map(|r| {
                let latency = r.latency_ms;
                vec![
                    r.scenario.name().to_string(),
                    r.store.clone(),
                    r.connections.to_string(),
                    format!("{:.2} s", r.elapsed_s),
                    thousands(r.requests),
                    rate(r.requests_per_s),
                    ms(latency.map(|l| l.p50_ms)),
                    ms(latency.map(|l| l.p99_ms)),
                    ms(latency.map(|l| l.p999_ms)),
                    ms(latency.map(|l| l.max_ms)),
                    statuses(r),
                    thousands(r.conflicts_retried),
                    rate(r.events_per_s),
                    r.peak_rss_bytes
                        .map_or_else(|| "-".to_string(), |b| format!("{} MB", b / MB)),
                    match &r.verification {
                        Some(v) if v.passed() => "ok".to_string(),
                        Some(v) => format!("FAILED ({})", v.differences),
                        None => "-".to_string(),
                    },
                    format!(
                        "{}: {}",
                        r.target.description,
                        if r.target.met { "met" } else { "missed" }
                    ),
                ]
            })
            .collect();
        let widths: Vec<usize> = headers
            .iter()
            .enumerate()
            .map(|(column, header)| {
                rows.iter()
                    .map(|row| row[column].chars().count())
                    .chain([header.chars().count()])
                    .max()
                    .unwrap_or_default()
            })
            .collect();
        let line = |cells: Vec<&str>| {
            cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        writeln!(f, "{}", line(headers.to_vec()))?;
        for row in &rows {
            writeln!(f, "{}", line(row.iter().map(String::as_str).collect()))?;
        }
        for report in &self.scenarios {
            let name = report.scenario.name();
            for note in &report.notes {
                writeln!(f, "{name}: {note}")?;
            }
            if report.lagged_answers > 0 {
                writeln!(
                    f,
                    "{name}: {} writes answered with X-Read-Models-Lag",
                    thousands(report.lagged_answers)
                )?;
            }
            for (status, body) in &report.non_2xx_samples {
                writeln!(f, "{name}: first {status} answer: {body}")?;
            }
            if let Some(verification) = &report.verification {
                writeln!(
                    f,
                    "{name}: verification: {} station balances, {} of {} acknowledged records read back: {}",
                    verification.stations_checked,
                    thousands(verification.records_read_back as u64),
                    thousands(verification.records_acknowledged as u64),
                    if verification.passed() {
                        "all agree".to_string()
                    } else {
                        format!("{} differences", verification.differences)
                    }
                )?;
                for difference in &verification.first_differences {
                    writeln!(f, "{name}:   {difference}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
