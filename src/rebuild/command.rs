//! `fleet-ledger replay`: a rebuild from the command line, with a progress bar on a terminal and
//! a summary at the end.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;

use super::{select, RebuildError, RebuildProgress, RebuildSummary, ShadowRebuild};
use crate::bench::thousands;
use crate::read_store::ReadStore;
use crate::state::all_projections;
use crate::{store, StoreLocation};

/// How often the bar is redrawn.
const BAR_REFRESH: Duration = Duration::from_millis(200);

/// Rebuilds the projections named in `names` (all when empty) on the store at `location`, beside
/// a service that may be running on it, and writes the summary to `out`.
pub async fn replay(
    location: &StoreLocation,
    names: &[String],
    out: &mut impl Write,
) -> Result<RebuildSummary, RebuildError> {
    // Before opening anything: a misspelt name is answered at once.
    let projections = select(&all_projections(), names)?;
    let log = store::open(&location.log_url).await?;
    let read_models = match ReadStore::open(&location.read_models_url).await {
        Ok(read_models) => read_models,
        Err(error) => {
            log.shutdown().await;
            return Err(error.into());
        }
    };
    let rebuilt = async {
        let rebuild = ShadowRebuild::start(log.clone(), read_models.clone(), projections).await?;
        let bar = Bar::start(rebuild.progress());
        // Nothing stops a rebuild from the command line but the process ending (Ctrl-C): the
        // shadows stay behind, and the next rebuild drops them.
        let (_never, stop) = watch::channel(false);
        let summary = rebuild.complete(&stop).await;
        bar.finish().await;
        summary
    }
    .await;
    read_models.close().await;
    log.shutdown().await;
    let summary = rebuilt?;
    let _ = write!(out, "{summary}");
    Ok(summary)
}

/// The progress bar: events folded into the shadows of the log's head, the rate and the ETA,
/// on stderr when it is a terminal (hidden otherwise: a log file gets only the summary).
struct Bar {
    bar: ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Bar {
    fn start(mut progress: watch::Receiver<RebuildProgress>) -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let first = *progress.borrow();
        let bar = ProgressBar::with_draw_target(Some(first.target.max(0) as u64), target);
        let style = ProgressStyle::with_template(
            "replay [{bar:32}] {human_pos}/{human_len} events  {per_sec}  ETA {eta}",
        )
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let task = tokio::spawn({
            let bar = bar.clone();
            async move {
                loop {
                    let now = *progress.borrow_and_update();
                    bar.set_length(now.target.max(0) as u64);
                    bar.set_position(now.position.max(0) as u64);
                    tokio::select! {
                        _ = tokio::time::sleep(BAR_REFRESH) => {}
                        changed = progress.changed() => if changed.is_err() { break },
                    }
                }
            }
        });
        Self { bar, task }
    }

    async fn finish(self) {
        self.task.abort();
        let _ = self.task.await;
        self.bar.finish_and_clear();
    }
}

impl std::fmt::Display for RebuildSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        writeln!(
            f,
            "rebuilt {} read model{} from position 0 to {} in {seconds:.2} s; swapped in with \
             their checkpoints in one transaction that held the live tables {} ms",
            self.projections.len(),
            if self.projections.len() == 1 { "" } else { "s" },
            thousands(self.position.max(0) as u64),
            self.swap.as_millis()
        )?;
        writeln!(
            f,
            "{:<16} {:>12} {:>12} {:>9} {:>11}",
            "projection", "events", "rows", "seconds", "events/s"
        )?;
        for projection in &self.projections {
            let busy = projection.busy.as_secs_f64();
            writeln!(
                f,
                "{:<16} {:>12} {:>12} {:>9.2} {:>11}",
                projection.name,
                thousands(projection.events),
                thousands(projection.rows.max(0) as u64),
                busy,
                per_second(projection.events, busy)
            )?;
        }
        let events = self.projections.iter().map(|p| p.events).max().unwrap_or(0);
        let rows: i64 = self.projections.iter().map(|p| p.rows).sum();
        writeln!(
            f,
            "{:<16} {:>12} {:>12} {:>9.2} {:>11}",
            "all (wall clock)",
            thousands(events),
            thousands(rows.max(0) as u64),
            seconds,
            per_second(events, seconds)
        )
    }
}

/// Events per second, or `-` under a millisecond, where the rate says nothing.
fn per_second(events: u64, seconds: f64) -> String {
    if seconds >= 0.001 {
        thousands((events as f64 / seconds).round() as u64)
    } else {
        "-".to_string()
    }
}
