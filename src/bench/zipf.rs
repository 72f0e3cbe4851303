//! Zipf-distributed choice of a station: a few stations get most of the traffic, as the busy
//! highway stations of a fleet do. Rank 0 is the hottest.

use rand::Rng;

pub(crate) struct Zipf {
    /// `cumulative[k]` = P(rank ≤ k); the last entry is 1.
    cumulative: Vec<f64>,
}

impl Zipf {
    /// Ranks `0..n` with P(rank k) ∝ 1 / (k + 1)^exponent; `n` is at least 1.
    pub fn new(n: usize, exponent: f64) -> Self {
        let weights: Vec<f64> = (1..=n.max(1))
            .map(|rank| (rank as f64).powf(-exponent))
            .collect();
        let total: f64 = weights.iter().sum();
        let mut running = 0.0;
        let mut cumulative: Vec<f64> = weights
            .iter()
            .map(|weight| {
                running += weight / total;
                running
            })
            .collect();
        // Rounding may leave the sum a hair under 1; the last rank must catch every draw.
        if let Some(last) = cumulative.last_mut() {
            *last = 1.0;
        }
        Self { cumulative }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let draw: f64 = rng.gen();
        self.cumulative
            .partition_point(|p| *p < draw)
            .min(self.cumulative.len() - 1)
    }

    /// The share of draws the hottest rank gets.
    pub fn hottest_share(&self) -> f64 {
        self.cumulative[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn exponent_one_over_300_stations_gives_the_hottest_about_16_percent() {
        let zipf = Zipf::new(300, 1.0);
        assert!((zipf.hottest_share() - 0.159).abs() < 0.002);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let hot = (0..100_000).filter(|_| zipf.sample(&mut rng) == 0).count();
        assert!((14_500..17_500).contains(&hot), "{hot}");
    }

    #[test]
    fn every_draw_is_a_rank() {
        let zipf = Zipf::new(3, 0.0);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert!((0..1000).all(|_| zipf.sample(&mut rng) < 3));
    }
}
