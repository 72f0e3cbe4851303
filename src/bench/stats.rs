//! Exact latency quantiles: every latency is kept and sorted (a few million `Duration`s at most),
//! so no histogram bucketing hides a tail.

use std::time::Duration;

use serde::Serialize;

/// Quantiles of one scenario's request latencies, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// `None` without latencies. `latencies` need not be sorted.
    pub fn of(latencies: &mut [Duration]) -> Option<Self> {
        latencies.sort_unstable();
        let max = *latencies.last()?;
        // Nearest rank: the smallest latency at or above which `q` of the requests fall.
        let at = |q: f64| {
            let rank = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len());
            latencies[rank - 1]
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Some(Self {
            p50_ms: ms(at(0.50)),
            p99_ms: ms(at(0.99)),
            p999_ms: ms(at(0.999)),
            max_ms: ms(max),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let mut latencies: Vec<Duration> = (1..=1000).rev().map(Duration::from_millis).collect();
        let summary = LatencySummary::of(&mut latencies).unwrap();
        assert_eq!(summary.p50_ms, 500.0);
        assert_eq!(summary.p99_ms, 990.0);
        assert_eq!(summary.p999_ms, 999.0);
        assert_eq!(summary.max_ms, 1000.0);
        assert!(LatencySummary::of(&mut []).is_none());
    }
}
