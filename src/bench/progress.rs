//! The progress line: once a second on stderr while a phase runs, so a long run shows it is
//! alive and how fast it goes; it also samples the resident set for the phase's peak.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::memory;

const INTERVAL: Duration = Duration::from_secs(1);

pub(crate) struct Ticker {
    stop: watch::Sender<bool>,
    task: JoinHandle<Option<u64>>,
}

impl Ticker {
    /// Every second: samples the resident set and, when `print`, writes `line(elapsed)` (after
    /// `[label]`) to stderr.
    pub fn start(
        label: &'static str,
        print: bool,
        mut line: impl FnMut(Duration) -> String + Send + 'static,
    ) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut highest = memory::current_bytes();
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + INTERVAL, INTERVAL);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stopped.changed() => return highest,
                }
                let rss = memory::current_bytes();
                highest = highest.max(rss);
                if print {
                    let rss_mb = rss.map_or_else(|| "?".to_string(), |b| (b >> 20).to_string());
                    eprintln!("[{label}] {}  rss {rss_mb} MB", line(started.elapsed()));
                }
            }
        });
        Self { stop, task }
    }

    /// Stops the line; answers the highest resident set sampled.
    pub async fn finish(self) -> Option<u64> {
        let _ = self.stop.send(true);
        self.task.await.ok().flatten()
    }
}
